"""A teacher's correction and gloss in headless Chromium: the studio's chat log and the chat
overlay show them under the answer, muted and marked, as text (never as markup)."""

from __future__ import annotations

import pytest

from overlays.stage import ChatShown, ReplyFinished, Transcript
from tests.browser.threaded import ThreadedStudio

pytestmark = [pytest.mark.browser]

TOKEN = "transcript-test-token-0123456789"
PERSONA = "lena"
SAID = "Ich bin gegangen gestern ins Kino."
ANSWER = "Schön! Welchen Film hast du gestern gesehen?"
CORRECTION = "Ich bin gestern ins Kino gegangen. <img src=x onerror=\"window.pwned=1\">"
GLOSS = "Nice! Which film did you see yesterday?"


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    s = ThreadedStudio(tmp_path_factory.mktemp("transcript-clips"), token=TOKEN,
                       personas={PERSONA: "Lena"})
    yield s
    s.close()


def _exchange(studio: ThreadedStudio, reply_id: str, user: str) -> None:
    """What the bus hands the studio for an answer with nothing to play, then its transcript."""
    run, handle = studio.run, studio.server.handle
    run(handle(ChatShown(persona=PERSONA, user=user, text=SAID, reply_id=reply_id)))
    run(handle(ReplyFinished(persona=PERSONA, reply_id=reply_id, text=ANSWER)))
    run(handle(Transcript(persona=PERSONA, reply_id=reply_id, user=user, said=SAID,
                          answer=ANSWER, correction=CORRECTION, gloss=GLOSS, language="de",
                          platform="studio")))


def _lines(page, selector: str) -> list[dict[str, str]]:
    return page.evaluate(
        "(sel) => [...document.querySelectorAll(sel + ' > li')].map(li => ({cls: li.className,"
        " who: li.querySelector('b').textContent, text: li.querySelector('span').textContent,"
        " color: getComputedStyle(li.querySelector('span')).color}))", selector)


def test_studio_log_shows_correction_and_gloss_under_the_answer(browser, studio, artifacts):
    page = browser.new_page(viewport={"width": 1100, "height": 600})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(studio.server.url("studio"))
    page.wait_for_selector("#status.online", timeout=15_000)
    _exchange(studio, "r-studio", "ann")
    page.wait_for_selector("#chat-log li.note.gloss", timeout=10_000)
    lines = [li for li in _lines(page, "#chat-log") if "notice" not in li["cls"]]
    assert [(li["cls"], li["who"], li["text"]) for li in lines] == [
        ("viewer", "ann", SAID),
        ("persona", "Lena", ANSWER),
        ("note correction", "✎", CORRECTION),
        ("note gloss", "≈", GLOSS),
    ]
    # Quieter than the answer, and the viewer's markup stayed text.
    assert lines[2]["color"] != lines[1]["color"] and lines[3]["color"] != lines[1]["color"]
    assert page.locator("#chat-log img").count() == 0
    assert page.evaluate("() => window.pwned") is None
    page.locator("aside.chat").screenshot(path=str(artifacts / "studio-transcript.png"))
    assert not errors, errors
    page.close()


def test_chat_overlay_shows_notes_live_and_from_history(browser, studio, artifacts):
    chat = browser.new_page(viewport={"width": 700, "height": 400})
    errors: list[str] = []
    chat.on("pageerror", lambda e: errors.append(str(e)))
    chat.goto(studio.server.url("overlay/chat", persona=PERSONA))
    chat.wait_for_function("() => window.vstage && window.vstage.chatClock")
    chat.wait_for_timeout(600)  # the page has its state and its websocket
    _exchange(studio, "r-overlay", "bob")
    chat.wait_for_function("() => document.querySelectorAll('#feed li.note.gloss').length >= 2",
                           timeout=10_000)  # r-studio's from history, r-overlay's live
    lines = _lines(chat, "#feed")
    kinds = [(li["cls"], li["text"]) for li in lines]
    live = kinds[-4:]
    assert live == [("viewer", SAID), ("persona", ANSWER), ("note correction", CORRECTION),
                    ("note gloss", GLOSS)]
    assert kinds[:4] == live  # the earlier exchange, shown from /api/state's history
    assert chat.locator("#feed img").count() == 0
    chat.screenshot(path=str(artifacts / "chat-overlay-transcript.png"), omit_background=True)
    assert not errors, errors
    chat.close()
