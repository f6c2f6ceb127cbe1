"""The performer that renders in this process: in the shared, fair render pool when there is
one, else in a thread of its own."""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from avatar_engine.performer.base import OrderedClock
from avatar_engine.performer.render import render_idle, render_speech
from avatar_engine.renderers.base import Renderer
from avatar_engine.types import Performance, Speech
from avatar_engine.workers.pool import RenderPool

logger = logging.getLogger(__name__)


class LocalPerformer:
    """A :class:`~avatar_engine.performer.base.Performer` rendering with ``renderer`` here.

    Args:
        persona: the persona's id (the pool's fairness key).
        renderer: the persona's renderer (thread-safe: speech renders in the pool while the
            live stream takes idle frames from its own thread).
        pool: the shared render pool (personas take turns); None renders in
            ``asyncio.to_thread``.
        start_frame: the frame clock's first value.
    """

    def __init__(
        self, *, persona: str, renderer: Renderer, pool: RenderPool | None = None,
        start_frame: int = 0,
    ) -> None:
        self.persona = persona
        self.renderer = renderer
        self.pool = pool
        self._clock = OrderedClock(start=start_frame)

    @property
    def fps(self) -> int:
        return self.renderer.fps

    @property
    def size(self) -> tuple[int, int]:
        return self.renderer.size

    @property
    def frame_clock(self) -> int:
        return self._clock.value

    async def perform(self, speech: Speech, *, reply_id: str, index: int) -> Performance:
        async def render(start: int) -> np.ndarray:
            if self.pool is not None:
                return await self.pool.run(
                    self.persona, render_speech, self.renderer, speech, start)
            return await asyncio.to_thread(render_speech, self.renderer, speech, start)

        start, frames = await self._clock.run_in_order(speech, self.fps, render)
        return Performance(persona=self.persona, reply_id=reply_id, index=index, speech=speech,
                           frames=frames, fps=self.fps, start_frame=start)

    def idle_frames(self, n: int) -> np.ndarray:
        return render_idle(self.renderer, n, self._clock.take(n))

    async def aclose(self) -> None:
        return None
