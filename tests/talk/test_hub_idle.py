"""The hub's sessions of one persona share its idle pictures (the real sprite avatar, fake
models): each picture is drawn once for all of them, each session keeps its own ticks and
speech, and sharing can be turned off (every session then draws its own idle frames)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from avatar_engine.renderers.sprite import SpriteRenderer
from avatar_engine.renderers.spriteset import SpriteSet
from bots.hearing.settings import HearingSettings
from bots.orchestrator.fairshare import FairShare
from bots.talk.hub import TalkHub
from bots.talk.settings import TalkSettings
from overlays.live.settings import LiveSettings
from overlays.live.stream import LiveTick
from tests.live.conftest import eventually
from tests.talk.conftest import PHRASES
from tests.talk.fakes import EnergyVAD, Messages, TalkPipeline, ToneSTT, fake_persona

REPO = Path(__file__).resolve().parents[2]


class CountingSprites(SpriteRenderer):
    """The real sprite renderer, counting the idle frames it draws."""

    idle_drawn = 0

    def idle(self, n_frames: int, *, start_frame: int = 0) -> torch.Tensor:
        self.idle_drawn += n_frames
        return super().idle(n_frames, start_frame=start_frame)


@pytest.fixture
async def sprite_hub(tmp_path: Path) -> AsyncIterator[Any]:
    hubs: list[TalkHub] = []

    async def make(*, share_idle: bool = True) -> tuple[TalkHub, CountingSprites]:
        runtime = fake_persona("mika", tmp_path)
        renderer = CountingSprites(sprites=SpriteSet.load(REPO / "config/avatars/default"),
                                   fps=25, device="cpu")
        runtime.renderer = renderer
        hub = TalkHub(personas={"mika": runtime}, settings=TalkSettings(),
                      hearing=HearingSettings(), live=LiveSettings(), fair=FairShare(),
                      pipeline=TalkPipeline(sentences=2, sentence_s=0.4),
                      clock=time.monotonic, vad=EnergyVAD(),  # type: ignore[arg-type]
                      stt=ToneSTT(PHRASES), share_idle=share_idle)
        await hub.__aenter__()
        hubs.append(hub)
        return hub, renderer

    yield make
    for hub in hubs:
        await hub.__aexit__(None, None, None)


class Ticks:
    """Every tick of a stream, kept."""

    def __init__(self, stream: Any) -> None:
        self.items: list[LiveTick] = []
        self._sub = stream.subscribe("test", max_queue=2000)
        self._task = asyncio.create_task(self._run(), name="test:ticks")

    async def _run(self) -> None:
        async for tick in self._sub:
            self.items.append(tick)

    async def until(self, n: int) -> None:
        await eventually(lambda: len(self.items) >= n, 30)

    async def close(self) -> None:
        self._sub.close()
        await self._task


async def test_sessions_of_a_persona_draw_its_idle_pictures_once(sprite_hub: Any) -> None:
    hub, renderer = await sprite_hub()
    a, b, c = [await hub.open("mika") for _ in range(3)]
    assert a.stream.idle_source is not None
    assert a.stream.idle_source is b.stream.idle_source is c.stream.idle_source
    watches = [Ticks(s.stream) for s in (a, b, c)]
    msgs = Messages(a)
    try:
        await asyncio.gather(*(w.until(25) for w in watches))
        await a.say_text("tell me a story")
        await msgs.wait_type("answer")
        # ... then idle again for a while.
        ticks = watches[0].items
        await eventually(lambda: any(t.reply_id for t in ticks) and ticks[-1].reply_id is None,
                         30)
        n = len(watches[0].items)
        await watches[0].until(n + 25)
    finally:
        await msgs.close()
        for w in watches:
            await w.close()
    ticks = watches[0].items
    assert [t.index for t in ticks] == list(range(len(ticks)))
    said = [t for t in ticks if t.reply_id is not None]
    assert len(said) == 2 * 10  # two sentences of 0.4 s at 25 fps, every frame played
    assert [t.sentence for t in said] == [0] * 10 + [1] * 10
    # Speech frames are the renderer's (the mouth moves: not the idle pictures).
    assert all(t.idle_key is None for t in said)
    after = ticks[ticks.index(said[-1]) + 1:]
    assert len(after) >= 25 and all(t.idle_key is not None for t in after)
    # The other sessions only idled, on their own timelines.
    for w in watches[1:]:
        assert w.items and all(t.reply_id is None for t in w.items)
        assert [t.index for t in w.items] == list(range(len(w.items)))
    # Hundreds of idle frames shown in three sessions: each distinct picture drawn once.
    source = a.stream.idle_source
    assert renderer.idle_drawn == source.drawn <= 12
    assert sum(s.stream.idle_rendered for s in (a, b, c)) == 0
    # Same picture, same array, across sessions: nothing copied per session.
    pics = {id(t.rgba) for w in watches for t in w.items if t.idle_key is not None}
    assert len(pics) <= 12


async def test_sharing_off_draws_idle_frames_per_session(sprite_hub: Any) -> None:
    hub, renderer = await sprite_hub(share_idle=False)
    a, b = await hub.open("mika"), await hub.open("mika")
    assert a.stream.idle_source is None and b.stream.idle_source is None
    watches = [Ticks(s.stream) for s in (a, b)]
    try:
        await asyncio.gather(*(w.until(40) for w in watches))
    finally:
        for w in watches:
            await w.close()
    assert renderer.idle_drawn >= 80  # every frame of every session drawn
    assert all(np.array_equal(t.rgba.shape, (512, 512, 4)) for t in watches[0].items)


async def test_a_renderer_that_cannot_share_keeps_the_old_way(tmp_path: Path) -> None:
    runtime = fake_persona("mika", tmp_path)  # FakeRenderer: no eye states, no breathing
    async with TalkHub(personas={"mika": runtime}, settings=TalkSettings(),
                       hearing=HearingSettings(), live=LiveSettings(), fair=FairShare(),
                       pipeline=TalkPipeline(), vad=EnergyVAD(),  # type: ignore[arg-type]
                       stt=ToneSTT(PHRASES)) as hub:
        session = await hub.open("mika")
        assert session.stream.idle_source is None and hub.idle_source("mika") is None


async def test_a_replaced_renderer_gets_a_new_source(sprite_hub: Any) -> None:
    hub, renderer = await sprite_hub()
    first = hub.idle_source("mika")
    assert first is not None and first.renderer is renderer
    assert hub.idle_source("mika") is first
    hub.personas["mika"].renderer = SpriteRenderer(
        sprites=SpriteSet.load(REPO / "config/avatars/default"), fps=25, device="cpu")
    second = hub.idle_source("mika")
    assert second is not None and second is not first
    assert second.renderer is hub.personas["mika"].renderer
