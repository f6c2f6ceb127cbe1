"""Fixtures of the conversation tests: a hub on fake personas with fake models (fast logic
tests), or on the embedded personas and real models (``models`` marker, in test_hub.py)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bots.hearing.settings import HearingSettings
from bots.orchestrator.fairshare import FairShare
from bots.talk.hub import TalkHub
from bots.talk.settings import TalkSettings
from overlays.live.settings import LiveSettings
from tests.talk.fakes import EnergyVAD, TalkPipeline, ToneSTT, fake_persona

PHRASES = {440: "hello there", 660: "how are you", 880: "tell me a story"}

MakeHub = Callable[..., Awaitable[TalkHub]]


@pytest.fixture
async def make_hub(tmp_path: Path) -> AsyncIterator[MakeHub]:
    """Build and start a hub on fake personas (``mika`` by default) and fake models; every
    hub made is shut down after the test."""
    hubs: list[TalkHub] = []

    async def make(*, pipeline: Any = None, stt: Any = None, clock: Any = None,
                   personas: tuple[str, ...] = ("mika",), fair: FairShare | None = None,
                   hearing: HearingSettings | None = None, persona_overrides: Any = None,
                   **settings: Any) -> TalkHub:
        runtimes = {pid: fake_persona(pid, tmp_path, **(persona_overrides or {}))
                    for pid in personas}
        hub = TalkHub(personas=runtimes, settings=TalkSettings(**settings),
                      hearing=hearing or HearingSettings(), live=LiveSettings(),
                      fair=fair or FairShare(), pipeline=pipeline or TalkPipeline(),
                      clock=clock or time.monotonic, vad=EnergyVAD(),  # type: ignore[arg-type]
                      stt=stt or ToneSTT(PHRASES))
        await hub.__aenter__()
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        await hub.__aexit__(None, None, None)
