"""The studio page in headless Chromium: type as a viewer, watch the persona answer."""

from __future__ import annotations

import pytest

from tests.browser.conftest import TOKEN

pytestmark = [pytest.mark.browser, pytest.mark.models]


def test_viewer_message_plays_clips_with_subtitles(demo, browser, artifacts):
    page = browser.new_page(viewport={"width": 1100, "height": 700})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{demo}/studio?token={TOKEN}")
    page.wait_for_selector("#status.online", timeout=15_000)
    # Idle: the loop plays before anyone talks.
    page.wait_for_function(
        "() => { const v = document.querySelector('[data-slot=idle]');"
        " return v && v.readyState >= 2 && !v.paused && v.currentTime > 0; }", timeout=20_000)
    page.fill("#user", "ann")
    page.fill("#text", "Hi Mika, what are you playing today?")
    page.click("#send")
    page.wait_for_selector("#chat-log li.viewer", timeout=10_000)
    page.wait_for_function("() => window.vstage.players.mika.played.length >= 1",
                           timeout=60_000)
    # The subtitle shows the sentence being spoken.
    played = page.evaluate("() => window.vstage.players.mika.played")
    subtitle = page.inner_text("[data-persona=mika] .subtitle")
    assert subtitle.strip() and subtitle.strip() in {p["text"] for p in played}
    page.wait_for_function(
        "() => { const p = window.vstage.players.mika.playing;"
        " return p && p.video.currentTime > 0.2 && !p.video.paused; }", timeout=20_000)
    page.screenshot(path=str(artifacts / "studio.png"))
    # The whole reply plays, clip after clip, then the page returns to idle.
    page.wait_for_selector("#chat-log li.persona", timeout=60_000)
    page.wait_for_function("() => window.vstage.players.mika.playing === null", timeout=60_000)
    player = page.evaluate("() => ({played: window.vstage.players.mika.played,"
                           " blank: window.vstage.players.mika.blankFrames,"
                           " log: window.vstage.players.mika.blankLog})")
    indexes = [p["index"] for p in player["played"]]
    assert indexes == list(range(len(indexes))) and indexes
    assert player["blank"] == 0, (player["log"][:5], player["played"])  # never an empty frame
    reply = page.inner_text("#chat-log li.persona span")
    assert " ".join(p["text"] for p in player["played"]) == reply.strip()
    assert not errors, errors


def test_rejected_message_shows_the_reason(demo, browser):
    page = browser.new_page()
    page.goto(f"{demo}/studio?token={TOKEN}")
    page.wait_for_selector("#status.online", timeout=15_000)
    page.fill("#text", "   ")
    page.click("#send")
    page.wait_for_function("() => document.querySelector('#form-error').textContent.length > 0",
                           timeout=10_000)
    assert "empty" in page.inner_text("#form-error")


def test_wrong_token_is_refused(demo, browser):
    page = browser.new_page()
    resp = page.goto(f"{demo}/studio?token=wrong")
    assert resp.status == 401
    assert "token" in page.content()
