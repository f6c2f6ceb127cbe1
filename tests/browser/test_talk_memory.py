"""Long-term memory on the /talk page, in real headless Chromium against a real ``vstage demo``
(SmolLM2, Piper, the memory service on SQLite): a visitor types a fact, comes back in a new
conversation from the same browser (same localStorage, so the same visitor id), asks "What do
you remember?" and sees the fact; "Forget me" asks for confirmation (dismissed: nothing
happens; accepted: it is erased), the confirmation shows in the transcript, and "What do you
remember?" then says nothing is kept.

The microphone is refused (no fake-UI switch), so the page offers typing and no sound from a
fake device makes turns of its own."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM, REPO, Demo
from tests.netutil import free_port

pytestmark = [pytest.mark.browser, pytest.mark.models]

TOKEN = "talk-memory-browser-token-0123456789"
PAGE = f"/talk?token={TOKEN}&persona=mika"
ANSWER_TIMEOUT_MS = 120_000  # SmolLM2 on two busy cores
FACT = "My name is Ann and I have a cat called Miso."
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--autoplay-policy=no-user-gesture-required", "--use-fake-device-for-media-stream"]


@pytest.fixture(scope="module")
def memory_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """``vstage demo`` with /talk on the token and the memory database in its own state dir."""
    tmp = tmp_path_factory.mktemp("talk-memory-demo")
    config = tmp / "config"
    shutil.copytree(REPO / "config", config)
    app = config / "vstage.yaml"
    app.write_text(app.read_text().replace("state_dir: var", f"state_dir: {tmp / 'var'}"))
    port = free_port()
    env = {**os.environ, "VSTAGE_STUDIO__TOKEN": TOKEN, "VSTAGE_STUDIO__PORT": str(port)}
    log_path = tmp / "demo.log"
    with log_path.open("w+") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bots.cli", "--config", str(config),
                                 "demo"], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
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


def _wait(page: Any, predicate: str, timeout: float, arg: Any = None) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(predicate, arg=arg, timeout=timeout)
    except PlaywrightTimeout:
        summary = page.evaluate("() => window.__talk ? {view: __talk.view(), state: "
                                "__talk.state(), transcript: __talk.transcript(), messages: "
                                "__talk.messages().slice(-20)} : 'no __talk'")
        pytest.fail(f"waited {timeout / 1000:g} s for {predicate}; the page: {summary}")


def _start(page: Any, demo: Demo) -> str:
    """Open /talk and start a conversation with mika; its session id."""
    page.goto(f"{demo}{PAGE}")
    _wait(page, "() => window.__talk && __talk.view() === 'pick'", 15_000)
    page.click("#start")
    _wait(page, "() => __talk.view() === 'talk' && __talk.session() !== null", 30_000)
    return str(page.evaluate("() => __talk.session().id"))


def _memory_entries(page: Any) -> list[dict[str, Any]]:
    return [e for e in page.evaluate("() => __talk.transcript()") if e["kind"] == "memory"]


def _ask(page: Any, button: str, command: str) -> dict[str, Any]:
    """Press a memory button; the memory entry its answer adds to the transcript."""
    before = _memory_entries(page)
    page.click(button)
    _wait(page, """([before, command]) => {
            const got = __talk.transcript().filter(e => e.kind === 'memory');
            return JSON.stringify(got) !== JSON.stringify(before)
                && got.length > 0 && got[got.length - 1].command === command;
          }""", 30_000, arg=[before, command])
    return _memory_entries(page)[-1]


def _stored(db: Path) -> list[str]:
    """Every note and turn the demo's memory database holds."""
    with sqlite3.connect(db) as conn:
        notes = [r[0] for r in conn.execute("SELECT text FROM memories")]
        said = [r[0] for r in conn.execute("SELECT said FROM turns")]
    return notes + said


def test_a_fact_is_remembered_in_a_new_conversation_and_forget_me_erases_it(
        memory_demo: Demo, artifacts: Path) -> None:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run `make install` (apt package chromium)")
    db = memory_demo.config.parent / "var" / "memory.db"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 760})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            first = _start(page, memory_demo)
            visitor = page.evaluate("() => __talk.visitor()")
            assert isinstance(visitor, str) and len(visitor) == 32
            page.fill("#say-text", FACT)
            page.press("#say-text", "Enter")
            _wait(page, "() => __talk.messages().some(m => m.type === 'answer')",
                  ANSWER_TIMEOUT_MS)
            # Notes are taken in the background after the answer.
            deadline = time.monotonic() + 30
            while not any("Miso" in t for t in _stored(db)):
                assert time.monotonic() < deadline, f"nothing noted: {_stored(db)}"
                time.sleep(0.2)

            # Back later: a reload to the plain link starts a new conversation; the same
            # browser storage brings the same visitor id.
            second = _start(page, memory_demo)
            assert second != first
            assert page.evaluate("() => __talk.visitor()") == visitor
            shown = _ask(page, "#memory-show", "show")
            assert shown["command"] == "show"
            assert "They have a cat called Miso" in shown["text"], shown
            assert "Their name is Ann" in shown["text"], shown
            page.screenshot(path=str(artifacts / "talk_memory_recalled.png"))

            # "Forget me" asks first: dismissed, nothing is sent.
            page.once("dialog", lambda d: d.dismiss())
            page.click("#memory-forget")
            time.sleep(1.0)
            assert len(_memory_entries(page)) == 1
            assert any("Miso" in t for t in _stored(db))

            dialogs: list[str] = []

            def accept(dialog: Any) -> None:
                dialogs.append(dialog.message)
                dialog.accept()

            page.once("dialog", accept)
            forgot = _ask(page, "#memory-forget", "forget")
            assert dialogs and "Forget me" in dialogs[0] and "Mika" in dialogs[0]
            assert forgot == {"kind": "memory", "command": "forget",
                              "text": "Done: I have forgotten everything about you."}
            # The conversation so far is cleared from the page too: only the confirmation.
            assert page.evaluate("() => __talk.transcript()") == [forgot]
            assert not any("Miso" in t or "Ann" in t for t in _stored(db)), _stored(db)
            page.screenshot(path=str(artifacts / "talk_memory_forgot.png"))
            after = _ask(page, "#memory-show", "show")
            assert after["text"] == "I don't keep anything about you."
            page.screenshot(path=str(artifacts / "talk_memory.png"))
            assert not errors, errors
        finally:
            if page.evaluate("() => window.__talk && __talk.session() !== null"):
                page.click("#end")
            browser.close()
