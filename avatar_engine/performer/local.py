"""The performer that renders in this process: in the shared, fair render pool when there is
one, else in a thread of its own."""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from avatar_engine.performer.base import ClockedPerformer
from avatar_engine.performer.render import render_speech
from avatar_engine.renderers.base import Renderer
from avatar_engine.types import Speech
from avatar_engine.workers.pool import RenderPool

logger = logging.getLogger(__name__)


class LocalPerformer(ClockedPerformer):
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
        super().__init__(persona=persona, renderer=renderer, start_frame=start_frame)
        self.pool = pool

    async def _render(self, speech: Speech, start: int) -> np.ndarray:
        if self.pool is not None:
            return await self.pool.run(
                self.persona, render_speech, self.renderer, speech, start)
        return await asyncio.to_thread(render_speech, self.renderer, speech, start)
