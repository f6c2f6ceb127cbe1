"""The studio page in headless Chromium with two personas: the streamer posts as a chosen role
(a viewer is held to the link rule, a mod may !skip), and ``default_persona`` - not the
alphabetical first - is what the studio selects and the overlay without ``&persona=`` shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.bots.test_startup import two_persona_config
from tests.browser.conftest import REPO
from tests.netutil import free_port

pytestmark = [pytest.mark.browser, pytest.mark.models]

TOKEN = "roles-test-token-0123456789"
LINK = "free skins at spam-skins.xyz/free"
ERROR_SHOWN = "() => document.querySelector('#form-error').textContent"


@pytest.fixture(scope="module")
def duo(tmp_path_factory):
    """``vstage demo`` with personas aria and mika (the default); yields its base URL."""
    tmp = tmp_path_factory.mktemp("duo")
    config = two_persona_config(tmp)
    port = free_port()
    env = {**os.environ, "VSTAGE_STUDIO__TOKEN": TOKEN, "VSTAGE_STUDIO__PORT": str(port)}
    log_path = tmp / "demo.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bots.cli", "--config", str(config), "demo"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 150
    while "studio is live" not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"vstage demo did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]


def _post(page, *, role: str, text: str, user: str = "ann") -> None:
    page.fill("#user", user)
    page.select_option("#role", role)
    page.fill("#text", text)
    page.eval_on_selector("#form-error", "e => { e.textContent = ''; }")
    with page.expect_response(lambda r: "/api/chat" in r.url):
        page.click("#send")


def test_default_persona_leads_the_studio_and_the_overlay(duo, browser):
    studio = browser.new_page()
    studio.goto(f"{duo}/studio?token={TOKEN}")
    studio.wait_for_selector("#persona option", state="attached")
    options = studio.eval_on_selector_all("#persona option", "os => os.map(o => o.value)")
    assert sorted(options) == ["aria", "mika"]
    assert studio.input_value("#persona") == "mika"  # default_persona, not alphabetical
    overlay = browser.new_page()
    overlay.goto(f"{duo}/overlay?token={TOKEN}")
    overlay.wait_for_selector("#stages [data-persona]")
    shown = overlay.eval_on_selector_all("#stages [data-persona]",
                                         "els => els.map(e => e.dataset.persona)")
    assert shown == ["mika"]


def test_post_as_a_role_link_rule_for_viewers_and_skip_for_mods(duo, browser, artifacts):
    chat = browser.new_page(viewport={"width": 600, "height": 400})
    chat.goto(f"{duo}/overlay/chat?token={TOKEN}")
    page = browser.new_page(viewport={"width": 1100, "height": 700})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{duo}/studio?token={TOKEN}")
    page.wait_for_selector("#status.online", timeout=15_000)
    assert page.input_value("#role") == "viewer"  # the page posts as a plain viewer by default
    page.select_option("#persona", "mika")

    # A viewer's link is refused, with the reason, and reaches no overlay.
    _post(page, role="viewer", text=LINK, user="spammer")
    page.wait_for_function(ERROR_SHOWN, timeout=10_000)
    assert "links are not allowed" in page.inner_text("#form-error")
    # A viewer cannot use mod commands either.
    _post(page, role="viewer", text="!skip")
    page.wait_for_function(ERROR_SHOWN, timeout=10_000)
    assert "only moderators" in page.inner_text("#form-error")
    page.select_option("#role", "mod")
    page.screenshot(path=str(artifacts / "studio-roles.png"), full_page=True)

    # An ordinary question as a viewer is answered; once it is on stage, a mod skips it.
    question = "Mika, tell me a long story about your favourite game and why you love it"
    _post(page, role="viewer", text=question, user="bea")
    assert page.inner_text("#form-error") == ""
    chat.wait_for_function(
        "() => [...document.querySelectorAll('#feed li.viewer b')].some(b => b.textContent"
        " === 'bea')", timeout=120_000)
    _post(page, role="mod", text="!skip", user="modmin")
    assert page.inner_text("#form-error") == ""
    page.wait_for_function(
        "() => [...document.querySelectorAll('#chat-log li.notice')]"
        ".some(li => li.textContent.includes('reply skipped'))", timeout=20_000)

    # The refused link never reached the chat overlay, the queue or the studio's chat log.
    feed = chat.inner_text("#feed")
    assert "spam-skins" not in feed and "bea" in feed
    req = urllib.request.Request(f"{duo}/api/queue", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert "spam-skins" not in json.dumps(json.loads(r.read()))
    assert "spam-skins" not in page.inner_text("#chat-log")
    page.screenshot(path=str(artifacts / "studio-roles-skipped.png"), full_page=True)
    assert not errors, errors
