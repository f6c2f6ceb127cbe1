"""The chat log of the studio page and the chat overlay in headless Chromium: a persona's answer
appears sentence by sentence as each clip is heard (never whole before it is spoken), and the
overlay keeps its newest line on screen when the conversation overflows it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avatar_engine.clips.encode import encode_clip
from avatar_engine.types import Clip, Performance, Speech
from overlays.stage import ChatShown, ClipReady, Performed, ReplyCancelled, ReplyFinished
from tests.browser.threaded import ThreadedStudio

pytestmark = [pytest.mark.browser]

TOKEN = "chat-feed-test-token-0123456789"
PERSONA = "feed"
SENTENCES = ["First I say this to {who}.", "Then I add a second thought.", "And that is all!"]
CLIP_S = 2.0


class _Studio(ThreadedStudio):
    """The studio server of these tests, on its own loop in a thread."""

    def __init__(self, clips_dir: Path) -> None:
        super().__init__(clips_dir, token=TOKEN, personas={PERSONA: "Feedy"})

    def reply(self, reply_id: str, user: str, question: str) -> list[str]:
        """What the stage bus hands the studio for one answer: the question, each sentence
        performed and then its clip (made faster than they play), then the reply finished with
        the whole text, all before sentence 2 plays. Returns the answer's sentences."""
        sentences = _sentences(user)
        clips = [_clip(self.clips_dir, reply_id, i, text) for i, text in enumerate(sentences)]
        self.run(self.server.handle(ChatShown(persona=PERSONA, user=user, text=question,
                                              reply_id=reply_id)))
        for clip in clips:
            self.run(self.server.handle(Performed(_performance(reply_id, clip))))
            self.run(self.server.handle(ClipReady(persona=PERSONA, clip=clip)))
        self.run(self.server.handle(ReplyFinished(persona=PERSONA, reply_id=reply_id,
                                                  text=" ".join(sentences))))
        return sentences


def _sentences(who: str) -> list[str]:
    return [s.format(who=who) for s in SENTENCES]


def _clip(clips_dir: Path, reply: str, index: int, text: str) -> Clip:
    fps, n = 25, round(CLIP_S * 25)
    frames = np.zeros((n, 96, 96, 4), np.uint8)
    frames[:, 24:72, 24:72] = (40, 200, 90, 255)
    files = encode_clip(frames=frames, audio=np.zeros(n * 882, np.float32), sample_rate=22050,
                        fps=fps, out_base=clips_dir / PERSONA / f"{reply}-{index}",
                        formats=("webm",))
    return Clip(reply_id=reply, index=index, text=text, duration=n / fps, fps=fps, frames=n,
                files=files)


def _performance(reply_id: str, clip: Clip) -> Performance:
    """The sentence as performed (silent, blank frames): its text and length are what count."""
    rate = 16000
    speech = Speech(text=clip.text, audio=np.zeros(round(clip.duration * rate), np.float32),
                    sample_rate=rate)
    return Performance(persona=PERSONA, reply_id=reply_id, index=clip.index, speech=speech,
                       frames=np.zeros((clip.frames, 4, 4, 4), np.uint8), fps=clip.fps,
                       start_frame=0)


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    s = _Studio(tmp_path_factory.mktemp("chat-feed-clips"))
    yield s
    s.close()


def _persona_text(page, selector: str, who: str) -> list[str]:
    """The persona's lines in the list answering ``who`` (earlier tests' answers left out)."""
    texts = page.locator(f"{selector} li.persona span").all_inner_texts()
    return [t.strip() for t in texts if who in t]


def _played(page) -> int:
    return page.evaluate(f"() => window.vstage.players.{PERSONA}.played.length")


def test_studio_log_shows_each_sentence_when_its_clip_plays(browser, studio):
    page = browser.new_page(viewport={"width": 1100, "height": 700})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(studio.server.url("studio"))
    page.wait_for_selector("#status.online", timeout=15_000)
    said = studio.reply("r-studio", "ann", "Tell me three things?")
    page.wait_for_selector("#chat-log li.viewer", timeout=10_000)
    for n in range(1, len(SENTENCES) + 1):
        page.wait_for_function(f"() => window.vstage.players.{PERSONA}.played.length >= {n}",
                               timeout=20_000)
        # The moment clip n plays: its sentence and those before it, nothing said later.
        assert _played(page) == n
        assert _persona_text(page, "#chat-log", "ann") == [" ".join(said[:n])]
    page.wait_for_function(f"() => window.vstage.players.{PERSONA}.playing === null",
                           timeout=20_000)
    assert _persona_text(page, "#chat-log", "ann") == [" ".join(said)]  # one line per answer
    assert not errors, errors
    page.close()


def test_chat_overlay_shows_each_sentence_as_the_overlay_plays_it(browser, studio, artifacts):
    overlay = browser.new_page(viewport={"width": 512, "height": 512})
    overlay.goto(studio.server.url("overlay", persona=PERSONA))
    overlay.wait_for_function(f"() => window.vstage && window.vstage.players"
                              f" && window.vstage.players.{PERSONA}")
    chat = browser.new_page(viewport={"width": 600, "height": 400})
    errors: list[str] = []
    chat.on("pageerror", lambda e: errors.append(str(e)))
    chat.goto(studio.server.url("overlay/chat", persona=PERSONA))
    chat.wait_for_function("() => window.vstage")
    overlay.wait_for_timeout(600)  # both pages have their state and websocket
    said = studio.reply("r-overlay", "bob", "And what about you?")
    chat.wait_for_function(
        "() => [...document.querySelectorAll('#feed li.viewer b')]"
        ".some(b => b.textContent === 'bob')", timeout=10_000)
    for n in range(1, len(SENTENCES) + 1):
        overlay.wait_for_function(
            f"() => window.vstage.players.{PERSONA}.played.length >= {n}", timeout=20_000)
        # The avatar overlay is playing clip n: the chat overlay shows sentences 1..n only
        # (its clock may run a few milliseconds ahead of the player, never a sentence ahead).
        want = " ".join(said[:n])
        chat.wait_for_function(
            "(want) => [...document.querySelectorAll('#feed li.persona span')]"
            ".some(s => s.textContent.trim() === want)", arg=want, timeout=1_000)
        assert _persona_text(chat, "#feed", "bob") == [want]
        if n == 1:
            chat.screenshot(path=str(artifacts / "chat-overlay-first-sentence.png"),
                            omit_background=True)
    spoken = chat.evaluate("() => window.vstage.chatClock.spoken")
    assert [s["index"] for s in spoken] == [0, 1, 2]
    gaps = [b["at"] - a["at"] for a, b in zip(spoken, spoken[1:], strict=False)]
    assert all(g > CLIP_S * 1000 * 0.9 for g in gaps), gaps  # one clip's length apart
    assert not errors, errors
    overlay.close()
    chat.close()


def test_chat_overlay_cancelled_reply_says_nothing_more(browser, studio):
    chat = browser.new_page(viewport={"width": 600, "height": 400})
    chat.goto(studio.server.url("overlay/chat", persona=PERSONA))
    chat.wait_for_function("() => window.vstage")
    chat.wait_for_timeout(600)
    said = studio.reply("r-cut", "cat", "Go on?")
    chat.wait_for_function(
        "() => [...document.querySelectorAll('#feed li.persona span')]"
        ".some(s => s.textContent.includes('cat'))", timeout=10_000)
    studio.run(studio.server.handle(ReplyCancelled(persona=PERSONA, reply_id="r-cut")))
    chat.wait_for_timeout(int(CLIP_S * 1000 * 2.5))
    assert _persona_text(chat, "#feed", "cat") == [said[0]]  # the skipped rest never shows
    chat.close()


def test_chat_overlay_keeps_the_newest_line_visible(browser, studio, artifacts):
    size = {"width": 600, "height": 400}
    chat = browser.new_page(viewport=size)
    chat.goto(studio.server.url("overlay/chat", persona=PERSONA))
    chat.wait_for_function("() => window.vstage")
    chat.wait_for_timeout(600)  # the page has its state and its websocket
    filler = "this line is long enough to wrap over two or three lines of the overlay"
    for i in range(30):
        studio.run(studio.server.handle(ChatShown(persona=PERSONA, user=f"viewer{i}",
                                                  text=f"message {i}: {filler}",
                                                  reply_id=f"r{i}")))
    last = "viewer29"
    chat.wait_for_function(
        "(u) => [...document.querySelectorAll('#feed li b')].some(b => b.textContent === u)",
        arg=last, timeout=10_000)
    chat.wait_for_timeout(200)
    lines = chat.locator("#feed li")
    newest = lines.last
    assert newest.locator("b").inner_text() == last
    box = newest.bounding_box()
    assert box is not None
    assert 0 <= box["y"] and box["y"] + box["height"] <= size["height"], box
    assert box["x"] >= 0 and box["x"] + box["width"] <= size["width"], box
    # The lines overflow the source: the oldest kept one is the one cut off, at the top.
    oldest = lines.first.bounding_box()
    assert oldest is not None and oldest["y"] < 0, oldest
    chat.screenshot(path=str(artifacts / "chat-overlay-overflow.png"), omit_background=True)
    chat.close()
