"""The /talk page in real headless Chromium against a real ``vstage demo``: a learner speaks
into a fake microphone (Chromium plays a WAV made with Piper as the mic), the server hears it
(Silero VAD + faster-whisper), the persona answers (SmolLM2, Piper) on the session's own live
stream (WebRTC, colour|alpha video unpacked in WebGL, Opus voice), and the page shows both
sides of the transcript.

What the page shows and hears is read from its own hooks (``window.__talk``: state, the
server's messages, the transcript as drawn, frames drawn, the voice's level as received).

Barge-in needs speech that starts while the answer plays. Reply latency on these shared
2-core machines ranges from ~3 s to over 30 s, so a recording with a fixed pause before the
interruption cannot hit the answer reliably. The recording is fixed; the page's Mute button
holds it back: muted after the question, unmuted when the first sentence of the answer plays,
the rest of the recording (continuous talk) reaches the server in hands-free mode and the
server's voice activity detection cuts the answer. The persona's own voice cannot interrupt
it here because fake devices have no acoustic echo; the echo guard that keeps it from doing
so through real speakers is tested in talk-core's Python tests (tests/talk).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM, REPO, Demo
from tests.browser.talk_audio import Recording, record
from tests.netutil import free_port

pytestmark = [pytest.mark.browser, pytest.mark.models]

TOKEN = "talk-test-token-0123456789"
IDLE_S = 10  # the demo's talk.idle_timeout_s: short, so the idle test is quick
MAX_SESSIONS = 2
PERSONA = "mika"
LOUD = 0.02  # RMS of the received voice that counts as the persona talking
BASE_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--autoplay-policy=no-user-gesture-required"]
FAKE_MIC = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
# Whisper writes American spelling; Piper reads either the same way.
SPELLING = {"favourite": "favorite", "colour": "color"}
ANSWER_TIMEOUT_MS = 120_000  # the slowest reply seen under load here was ~35 s


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def talk_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """``vstage demo`` with /talk on invites, a short idle timeout and a cap of two."""
    tmp = tmp_path_factory.mktemp("talk-demo")
    config = tmp / "config"
    shutil.copytree(REPO / "config", config)
    app = config / "vstage.yaml"
    app.write_text(app.read_text().replace("state_dir: var", f"state_dir: {tmp / 'var'}"))
    port = free_port()
    env = {**os.environ, "VSTAGE_STUDIO__TOKEN": TOKEN, "VSTAGE_STUDIO__PORT": str(port),
           "VSTAGE_TALK__ACCESS": "invite", "VSTAGE_TALK__IDLE_TIMEOUT_S": str(IDLE_S),
           "VSTAGE_TALK__MAX_SESSIONS": str(MAX_SESSIONS)}
    log_path = tmp / "demo.log"
    with log_path.open("w+") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bots.cli", "--config", str(config),
                                 "demo"], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240
        while "studio is live" not in log_path.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"vstage demo did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        demo = Demo(f"http://127.0.0.1:{port}")
        demo.config, demo.port = config, port
        yield demo
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    out = log_path.read_text()
    assert "Traceback" not in out, out[-3000:]


@pytest.fixture(scope="module")
def pw() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run `make install` (apt package chromium)")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Recording]:
    """What the fake microphones say. Each starts with 2 s of room noise: the page connects
    while it plays, so the question is not cut."""
    d = tmp_path_factory.mktemp("mic")
    chatter: list[str | float] = [
        "Wait, wait, I have another question.", 0.25, "Do you like dogs or cats more?", 0.25,
        "I really like big friendly dogs.", 0.25] * 16  # ~100 s: outlasts the slowest reply
    return {
        "colour": record(d / "colour.wav", [2.0, "What is your favourite colour?", 40.0]),
        "chess": record(d / "chess.wav", [2.0, "Do you like to play chess?", 40.0]),
        "story": record(d / "story.wav",
                        [2.0, "Tell me a story about your favourite colour.", 1.5, *chatter]),
        "silence": record(d / "silence.wav", [60.0]),
        # Played in a loop: the question again and again.
        "again": record(d / "again.wav", ["What is your favourite colour?", 0.3]),
    }


# ----------------------------------------------------------------------------------- helpers

# What a failed wait reports about the page.
_PAGE_SUMMARY = """() => window.__talk ? {
  view: __talk.view(), state: __talk.state(), now: __talk.now(), mic: __talk.mic(),
  link: __talk.link() && __talk.link().state, audio: __talk.audio(),
  loud: __talk.audioSeries().filter(s => s.rms > 0.01).map(s => Math.round(s.t)).slice(-20),
  messages: __talk.messages().slice(-30).map(m => JSON.stringify(m)),
} : 'no __talk'"""


@dataclass
class Learner:
    """One browser with its own fake microphone and its /talk page."""

    browser: Any
    page: Any
    errors: list[str]

    def messages(self, since: float = -1) -> list[dict[str, Any]]:
        return self.page.evaluate("(s) => __talk.messages(s)", since)

    def wait(self, predicate: str, timeout: float = ANSWER_TIMEOUT_MS, arg: Any = None) -> None:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_function(predicate, arg=arg, timeout=timeout)
        except PlaywrightTimeout:
            pytest.fail(f"waited {timeout / 1000:g} s for {predicate} ({arg}); the page: "
                        f"{self.page.evaluate(_PAGE_SUMMARY)}")

    def wait_message(self, js_test: str, timeout: float = ANSWER_TIMEOUT_MS) -> dict[str, Any]:
        """The first message ``m`` for which ``js_test`` holds (waiting for it)."""
        self.wait(f"() => __talk.messages().some(m => {js_test})", timeout)
        return self.page.evaluate(f"() => __talk.messages().find(m => {js_test})")

    def close(self) -> None:
        self.browser.close()


def _launch(pw: Any, *args: str) -> Any:
    return pw.chromium.launch(executable_path=CHROMIUM, args=[*BASE_ARGS, *args])


def _learner(pw: Any, demo: Demo, mic: Recording | None, *, fake_ui: bool = True,
             query: str = f"token={TOKEN}&persona={PERSONA}", loop: bool = False) -> Learner:
    """A browser whose microphone plays ``mic`` (once, or in a loop; None: a fake device
    without a file), on the persona picker of /talk."""
    args = ["--use-fake-device-for-media-stream"]
    if fake_ui:
        args.append("--use-fake-ui-for-media-stream")
    if mic is not None:
        args.append(mic.chromium_arg(loop=loop))
    browser = _launch(pw, *args)
    page = browser.new_page(viewport={"width": 1280, "height": 760})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{demo}/talk?{query}")
    page.wait_for_function("() => window.__talk && __talk.view() === 'pick'", timeout=15_000)
    return Learner(browser, page, errors)


def _start(learner: Learner) -> None:
    learner.page.click("#start")
    learner.wait("() => __talk.view() === 'talk' && __talk.session() !== null", 30_000)


def _words(text: str) -> list[str]:
    return [SPELLING.get(w, w) for w in re.findall(r"[a-z']+", text.lower())]


def _recovered(said: str, heard: str) -> float:
    """Share of the words said that were heard."""
    ref, got = _words(said), set(_words(heard))
    return sum(w in got for w in ref) / len(ref)


def _wait_words(learner: Learner, turn: int, said: str, timeout_s: float = 60) -> str:
    """The learner's line of ``turn`` once it holds the words ``said`` (its parts may
    arrive one by one); the line as it was at the deadline otherwise."""
    deadline = time.monotonic() + timeout_s
    you = ""
    while time.monotonic() < deadline:
        you = learner.page.evaluate(
            "(n) => (__talk.transcript().find(e => e.turn === n) || {}).you || ''", turn)
        if _recovered(said, you) >= 0.75:
            break
        time.sleep(0.25)
    return you


def _api(demo: Demo, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{demo}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except json.JSONDecodeError:
            return e.code, {"html": raw.decode(errors="replace")}


def _end_all(demo: Demo, learners: list[Learner]) -> None:
    """End the learners' conversations (their places free for the next test)."""
    for learner in learners:
        try:
            if learner.page.evaluate("() => __talk.session() !== null"):
                learner.page.click("#end")
                learner.wait("() => __talk.state() === 'ended'", 10_000)
        finally:
            learner.close()


def _shot(learner: Learner, artifacts: Path, name: str) -> Path:
    path = artifacts / f"talk_{name}.png"
    learner.page.screenshot(path=str(path))
    return path


# ------------------------------------------------------------------------------------- tests


def test_spoken_question_is_heard_and_answered_in_full(talk_demo, pw, recordings, artifacts):
    """The mic asks a question, then hears only the room: the page shows the question's
    words, the answer plays (avatar frames, voice) to its end, its transcript appears."""
    mic = recordings["colour"]
    learner = _learner(pw, talk_demo, mic)
    try:
        _shot(learner, artifacts, "picker")
        _start(learner)
        heard = learner.wait_message("m.type === 'heard'")
        assert heard["turn"] == 1 and heard["language"] == "en"
        frames_before = learner.page.evaluate("() => __talk.framesDrawn()")
        first = learner.wait_message("m.type === 'said' && m.turn === 1")
        answer = learner.wait_message("m.type === 'answer' && m.turn === 1")
        learner.wait("() => __talk.state() === 'listening'", 15_000)
        msgs = learner.messages()
        assert not [m for m in msgs if m["type"] == "interrupted"], msgs  # silence cuts nothing
        # The question's words (a pause may split it in two: both parts make turn 1).
        parts = [m["text"] for m in msgs if m["type"] == "heard"]
        assert [m["turn"] for m in msgs if m["type"] == "heard"] == [1] * len(parts)
        you = " ".join(parts)
        assert _recovered(mic.said[0].text, you) >= 0.75, parts
        said = sorted((m for m in msgs if m["type"] == "said" and m["turn"] == 1),
                      key=lambda m: m["index"])
        # Played to the end: every sentence of the reply started to play, in order.
        assert [m["index"] for m in said] == list(range(len(said)))
        assert _words(" ".join(m["text"] for m in said)) == _words(answer["text"]), (said, answer)
        states = [m["state"] for m in msgs if m["type"] == "state"]
        for a, b in (("hearing", "thinking"), ("thinking", "speaking"), ("speaking", "listening")):
            assert a in states and b in states[states.index(a):], states
        # The page drew the avatar and played the voice. (The server counts a sentence as
        # played when its stream has sent it; the page hears it a jitter buffer later.)
        assert learner.page.evaluate("() => __talk.framesDrawn()") > frames_before
        learner.wait(f"(t) => __talk.audioSeries(t).filter(s => s.rms > {LOUD}).length >= 4",
                     15_000, arg=first["at"])
        audio = learner.page.evaluate("() => __talk.audio()")
        assert not audio["paused"] and not audio["muted"]
        assert learner.page.evaluate("() => __talk.link().state") == "live"
        # The transcript as drawn: the learner's words, then the persona's sentences.
        entry = next(e for e in learner.page.evaluate("() => __talk.transcript()")
                     if e["kind"] == "turn")
        assert entry["you"] == you and not entry["interrupted"]
        assert entry["sentences"] == [m["text"] for m in said]
        text = learner.page.inner_text("#transcript")
        assert you in text and said[0]["text"] in text
        assert learner.page.inner_text("#state-label") == "Listening"
        _shot(learner, artifacts, "answered")
        assert not learner.errors, learner.errors
    finally:
        _end_all(talk_demo, [learner])


def test_two_conversations_at_once_stay_private(talk_demo, pw, recordings, artifacts):
    """Two learners talk at once; each page shows only its own conversation, and the public
    overlay pages (open meanwhile) get nothing of either."""
    viewer = _launch(pw)
    overlays = [viewer.new_page(), viewer.new_page()]
    frames: list[str] = []
    for page, path in zip(overlays, ("/overlay", "/overlay/chat"), strict=True):
        page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(str(f))))
        page.goto(f"{talk_demo}{path}?token={TOKEN}")
    a = _learner(pw, talk_demo, recordings["colour"])
    b = _learner(pw, talk_demo, recordings["chess"])
    try:
        _start(a)
        _start(b)
        sids = [x.page.evaluate("() => __talk.session().id") for x in (a, b)]
        assert sids[0] != sids[1]
        for x in (a, b):  # both conversations are answering
            x.wait_message("m.type === 'said'")
        _shot(a, artifacts, "private_a")
        _shot(b, artifacts, "private_b")
        convo = {}
        for name, learner, mic in (("a", a, recordings["colour"]), ("b", b, recordings["chess"])):
            msgs = learner.messages()
            parts = [m["text"] for m in msgs if m["type"] == "heard"]
            you = " ".join(parts)
            assert _recovered(mic.said[0].text, you) >= 0.75, you
            turns = [e for e in learner.page.evaluate("() => __talk.transcript()")
                     if e["kind"] == "turn"]
            assert len(turns) == 1 and turns[0]["you"] == you, turns
            convo[name] = {"heard": parts,
                           "said": {m["text"] for m in msgs if m["type"] == "said"},
                           "page": learner.page.inner_text("#transcript")}
        # Neither page shows the other's question.
        assert "chess" not in convo["a"]["page"].lower()
        assert not re.search(r"colou?r", convo["b"]["page"].lower())
        # The public overlays got no message about either conversation.
        private = [*sids, *convo["a"]["heard"], *convo["b"]["heard"],
                   *convo["a"]["said"], *convo["b"]["said"]]
        leaked = [f for f in frames for p in private if p and p in f]
        assert not leaked, leaked
        for page in overlays:
            text = page.inner_text("body")
            assert not [p for p in private if p and p in text], text
        marks = overlays[0].evaluate("() => window.__live ? __live.marks : []")
        assert not [m for m in marks if any(s in str(m.get("reply_id")) for s in sids)], marks
        assert not a.errors and not b.errors, (a.errors, b.errors)
    finally:
        viewer.close()
        _end_all(talk_demo, [a, b])


def test_talking_over_the_answer_cuts_it(talk_demo, pw, recordings, artifacts):
    """Barge-in from the page: speech that starts while the answer plays cuts it (shown as
    interrupted, its voice stops); the speech is heard as the next turn."""
    mic = recordings["story"]
    learner = _learner(pw, talk_demo, mic)
    try:
        _start(learner)
        learner.wait("() => __talk.mic() && __talk.mic().openedAt !== null", 15_000)
        # Muted once the question is said (the recording goes on talking meanwhile).
        learner.wait("(t) => performance.now() > __talk.mic().openedAt + t", 30_000,
                     arg=(mic.said[0].end_s + 0.7) * 1000)
        learner.page.click("#mute")
        assert learner.page.evaluate("() => __talk.mic().muted")
        said = learner.wait_message("m.type === 'said' && m.turn === 1")
        # The question: a pause may split it in two, whose parts merge into turn 1.
        you = learner.page.evaluate("() => __talk.transcript().find(e => e.turn === 1).you")
        assert _recovered(mic.said[0].text, you) >= 0.75, you
        # The learner hears the answer, then talks over it: unmuted, the talk goes through.
        learner.wait(f"(t) => __talk.audioSeries(t).some(s => s.rms > {LOUD})", 15_000,
                     arg=said["at"])
        learner.page.click("#mute")
        cut = learner.wait_message("m.type === 'interrupted' && m.turn === 1", 30_000)
        _shot(learner, artifacts, "barge_in")
        time.sleep(4.5)
        msgs = learner.messages()
        assert not [m for m in msgs if m["type"] == "answer" and m["turn"] == 1], msgs
        entry = next(e for e in learner.page.evaluate("() => __talk.transcript()")
                     if e["kind"] == "turn" and e["turn"] == 1)
        assert entry["interrupted"] and entry["sentences"], entry
        assert "interrupted" in learner.page.inner_text("#transcript")
        # The voice was on before the cut and is gone soon after it (what the page's jitter
        # buffer held still plays: up to a second or so on a loaded machine).
        series = learner.page.evaluate("(t) => __talk.audioSeries(t)", said["at"])
        before = [s["rms"] for s in series if s["t"] < cut["at"]]
        after = [s["rms"] for s in series if cut["at"] + 1500 < s["t"] < cut["at"] + 4500]
        assert before and max(before) > LOUD
        assert after and max(after) < LOUD / 2, after
        # The talk that cut it is being heard as the learner's next turn.
        assert [m for m in msgs if m["type"] == "state" and m["at"] > cut["at"]
                and m["state"] == "hearing"], msgs
        assert not learner.errors, learner.errors
    finally:
        _end_all(talk_demo, [learner])


def test_hold_to_talk_hears_only_while_the_space_bar_is_down(talk_demo, pw, recordings,
                                                            artifacts):
    """Hold-to-talk (opened with ?mode=ptt): the microphone keeps asking, the server hears
    nothing until Space is held, then hears the question."""
    mic = recordings["again"]
    learner = _learner(pw, talk_demo, mic, loop=True,
                       query=f"token={TOKEN}&persona={PERSONA}&mode=ptt")
    try:
        _start(learner)
        assert learner.page.is_checked("input[name=mode][value=ptt]")
        assert learner.page.is_visible("#hold")
        learner.wait("() => __talk.link() && __talk.link().state === 'live'", 30_000)
        time.sleep(4)  # the question is said more than once meanwhile: not held, not heard
        assert not [m for m in learner.messages() if m["type"] in ("heard", "notice")
                    or m.get("state") == "hearing"], learner.messages()
        learner.page.focus("#end")  # Space works anywhere but the text box (no click here)
        learner.page.keyboard.down("Space")
        assert learner.page.get_attribute("#hold", "aria-pressed") == "true"
        learner.wait_message("m.type === 'state' && m.state === 'hearing'", 15_000)
        time.sleep(3.5)  # longer than one round of the recording: a whole question in it
        learner.page.keyboard.up("Space")
        assert learner.page.get_attribute("#hold", "aria-pressed") == "false"
        assert learner.page.evaluate("() => __talk.session() !== null")  # Space did not End
        # The held speech is turn 1 (cut by pauses into parts that merge into it).
        you = _wait_words(learner, 1, mic.said[0].text)
        assert learner.page.evaluate("() => __talk.transcript().filter(e => e.turn).length") == 1
        _shot(learner, artifacts, "hold_to_talk")
        assert _recovered(mic.said[0].text, you) >= 0.75, you
        assert not learner.errors, learner.errors
    finally:
        _end_all(talk_demo, [learner])


def test_idle_conversation_ends_and_frees_its_place(talk_demo, pw, recordings, artifacts):
    learner = _learner(pw, talk_demo, recordings["silence"])
    try:
        _start(learner)
        url = learner.page.url
        sid = learner.page.evaluate("() => __talk.session().id")
        key = re.search(r"[?&]key=([^&]+)", url)
        assert key and f"session={sid}" in url  # a reload comes back to the conversation
        learner.wait("() => __talk.state() === 'ended'", (IDLE_S + 20) * 1000)
        assert learner.page.evaluate("() => __talk.endedReason()") == "idle"
        assert learner.page.is_visible("#over")
        assert f"Nobody spoke for {IDLE_S} s" in learner.page.inner_text("#over-reason")
        assert learner.page.is_disabled("#say-text")
        _shot(learner, artifacts, "idle_ended")
        # Freed: its key opens nothing any more, and the address no longer names it.
        status, _ = _api(talk_demo, "DELETE", f"/api/talk/sessions/{sid}?key={key.group(1)}")
        assert status == 404
        assert "session=" not in learner.page.url
        assert not learner.errors, learner.errors
    finally:
        learner.close()


def test_full_shows_a_countdown_and_gets_in_when_a_place_frees(talk_demo, pw, recordings,
                                                              artifacts):
    taken = []
    while True:  # fill every place (the earlier tests' sessions may hold some)
        status, body = _api(talk_demo, "POST", f"/api/talk/sessions?token={TOKEN}",
                            {"persona": PERSONA})
        if status != 201:
            break
        taken.append(body)
        assert len(taken) <= MAX_SESSIONS
    assert status == 503 and body["error"] == "full" and body["retry_after_s"] >= 1
    learner = _learner(pw, talk_demo, recordings["silence"])
    try:
        assert f"{MAX_SESSIONS} of {MAX_SESSIONS}" in learner.page.inner_text("#capacity")
        learner.page.click("#start")
        learner.wait("() => __talk.view() === 'full'", 15_000)
        first = learner.page.evaluate("() => __talk.retryIn()")
        assert first >= 1
        lead = learner.page.inner_text("#view-full .lead")
        assert re.search(r"full, try again in \d+ s", lead), lead
        time.sleep(1.2)
        assert learner.page.evaluate("() => __talk.retryIn()") < first  # it counts down
        _shot(learner, artifacts, "full")
        for s in taken:  # places free up: the page gets in by itself when its count ends
            _api(talk_demo, "DELETE", f"/api/talk/sessions/{s['session']}?key={s['key']}")
        learner.wait("() => __talk.view() === 'talk' && __talk.session() !== null",
                     (first + 15) * 1000)
        assert learner.page.evaluate("() => __talk.retryIn()") is None
        assert not learner.errors, learner.errors
    finally:
        _end_all(talk_demo, [learner])


def test_bad_and_used_invites_are_refused(talk_demo, pw, recordings, artifacts):
    browser = _launch(pw)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        for query, why in (("invite=not-a-real-code", "not valid"),
                           ("", "needs an invite link"),
                           ("token=wrong-token", "token in this link is wrong")):
            resp = page.goto(f"{talk_demo}/talk?{query}")
            assert resp is not None and resp.status == 401
            assert why in page.inner_text("body"), (query, page.inner_text("body"))
        # A one-time invite opens one conversation; the same link then says it was used.
        status, made = _api(talk_demo, "POST", f"/api/talk/invites?token={TOKEN}",
                            {"persona": PERSONA})
        assert status == 201
        invite = made["url"].split("?", 1)[1]
        learner = _learner(pw, talk_demo, recordings["silence"],
                           query=f"{invite}&persona={PERSONA}")
        _start(learner)
        _end_all(talk_demo, [learner])
        resp = page.goto(f"{talk_demo}/talk?{invite}")
        assert resp is not None and resp.status == 401
        assert "already used" in page.inner_text("body")
        page.screenshot(path=str(artifacts / "talk_invite_used.png"))
    finally:
        browser.close()


def test_mic_denied_falls_back_to_typing(talk_demo, pw, artifacts):
    """No permission for the microphone: the page says so, offers typing, and a typed
    question becomes the conversation's turn."""
    learner = _learner(pw, talk_demo, None, fake_ui=False)
    try:
        _start(learner)
        learner.wait("() => __talk.mic() && __talk.mic().state === 'denied'", 15_000)
        note = learner.page.inner_text("#mic-note")
        assert "blocked" in note and "Type" in note, note
        assert learner.page.is_disabled("#mute")
        assert learner.page.evaluate("() => document.activeElement.id") == "say-text"
        question = "What is your favourite colour?"
        learner.page.fill("#say-text", question)
        learner.page.press("#say-text", "Enter")
        heard = learner.wait_message("m.type === 'heard'", 30_000)
        assert heard["text"] == question
        learner.wait_message("m.type === 'state' && m.state === 'thinking'", 30_000)
        entry = next(e for e in learner.page.evaluate("() => __talk.transcript()")
                     if e["kind"] == "turn")
        assert entry["typed"] and entry["turn"] == 1 and entry["you"] == question, entry
        # The server was told, and says so back in the conversation.
        assert [m for m in learner.messages() if m["type"] == "notice"
                and "blocked" in m["text"]]
        _shot(learner, artifacts, "mic_denied")
        assert not learner.errors, learner.errors
    finally:
        _end_all(talk_demo, [learner])


def test_studio_persona_picker_lists_languages(talk_demo, pw):
    browser = _launch(pw)
    try:
        page = browser.new_page()
        page.goto(f"{talk_demo}/studio?token={TOKEN}")
        page.wait_for_selector("#persona option[value=lena]", state="attached")
        options = page.eval_on_selector_all(
            "#persona option", "os => Object.fromEntries(os.map(o => [o.value, o.textContent]))")
        assert options["lena"] == "Lena · German"
        assert options["camille"] == "Camille · French"
        assert options["mika"] == "Mika · English"
    finally:
        browser.close()
