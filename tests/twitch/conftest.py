"""The Twitch stand-in as a fixture, with twitchio's hosts pointed at it."""

from __future__ import annotations

import pytest

from tests.standins.twitch import TwitchStandIn


@pytest.fixture
async def twitch():
    async with TwitchStandIn(pending_polls=2) as tw:
        with tw.patched():
            yield tw
