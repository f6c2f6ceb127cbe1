"""The studio page in headless Chromium shows each platform adapter's health from
``/api/health`` in its header, and follows changes (it polls every 5 s)."""

from __future__ import annotations

import time

import pytest

from bots.adapters.supervise import AdapterHealth, AdapterState
from tests.browser.threaded import ThreadedStudio

pytestmark = [pytest.mark.browser]

TOKEN = "health-test-token-0123456789"


def test_studio_header_shows_each_platform_and_why_one_is_down(browser, tmp_path, artifacts):
    studio = ThreadedStudio(tmp_path, token=TOKEN, personas={"mika": "Mika"})
    now = time.time()
    adapters = [AdapterHealth(platform="twitch", state=AdapterState.UP, since=now, attempts=1)]
    studio.server.set_health(lambda: [a.to_json() for a in adapters])
    page = browser.new_page(viewport={"width": 1100, "height": 600})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(studio.server.url("studio"))
        page.wait_for_selector("#adapters li.up", timeout=10_000)
        assert page.locator("#adapters li").all_inner_texts() == ["twitch: up"]
        # Discord's token is refused: the next poll shows it down, with the reason and the fix.
        adapters.append(AdapterHealth(
            platform="discord", state=AdapterState.DOWN, since=now, attempts=1, failures=1,
            code="auth", reason="the bot token was refused <b>401</b>",
            fix="set discord.token to the bot's token"))
        page.wait_for_selector("#adapters li.down", timeout=8_000)
        assert page.locator("#adapters li").all_inner_texts() == [
            "twitch: up",
            "discord: down — the bot token was refused <b>401</b>; "
            "set discord.token to the bot's token"]
        assert page.locator("#adapters b").count() == 0  # a platform's words stay text
        down = page.locator("#adapters li.down").bounding_box()
        assert down is not None and down["y"] >= 0 and down["y"] + down["height"] <= 600
        page.screenshot(path=str(artifacts / "studio-adapter-health.png"))
        assert not errors, errors
    finally:
        page.close()
        studio.close()
