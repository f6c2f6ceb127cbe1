"""The performer that renders speech on RabbitMQ workers (the ``render_frames`` job) and idle
frames here.

The pool keeps what the remote path needs: each job has one id however often it is sent or
answered, so a performance arrives exactly once, and a persona's results come back in the
order its jobs were submitted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from avatar_engine.performer.base import ClockedPerformer
from avatar_engine.performer.codec import unpack_frames
from avatar_engine.renderers.base import Renderer
from avatar_engine.types import Speech
from avatar_engine.workers.jobs import (
    AnyAvatarSettings,
    RenderedFrames,
    avatar_payload,
    render_frames,
)
from avatar_engine.workers.pool import RemoteRenderPool
from avatar_engine.workers.worker import job_name
from vstage_core.errors import ProviderError

logger = logging.getLogger(__name__)

_UNPACK_IN_THREAD_BYTES = 1 << 20
"""Packed answers above this size are unpacked off the event loop."""


class RemotePerformer(ClockedPerformer):
    """A :class:`~avatar_engine.performer.base.Performer` whose speech frames are rendered by
    ``render_frames`` jobs on RabbitMQ workers.

    Args:
        persona: the persona's id (the pool's fairness and ordering key).
        renderer: the local renderer, for idle frames (and the frame size and rate).
        avatar: the avatar settings the workers build their renderer from (its paths must
            exist on the worker machines).
        pool: the RabbitMQ render pool.
        start_frame: the frame clock's first value.
        job: the registered job the workers run: ``render_frames``, or one with the same
            arguments and result that wraps it (tests slow it down to kill a worker
            mid-render).
    """

    def __init__(
        self, *, persona: str, renderer: Renderer, avatar: AnyAvatarSettings,
        pool: RemoteRenderPool, start_frame: int = 0,
        job: Callable[[Any, Speech, int], RenderedFrames] = render_frames,
    ) -> None:
        job_name(job)  # fails now, not at the first sentence, if it is not a registered job
        super().__init__(persona=persona, renderer=renderer, start_frame=start_frame)
        self.job = job
        self.pool = pool
        self._avatar: dict[str, Any] = avatar_payload(avatar)
        # Seconds workers spent rendering and packing, all jobs together (for benchmarks).
        self.render_s = 0.0
        self.pack_s = 0.0

    async def _render(self, speech: Speech, start: int) -> np.ndarray:
        rendered: RenderedFrames = await self.pool.run(
            self.persona, self.job, self._avatar, speech, start)
        self.render_s += rendered.render_s
        self.pack_s += rendered.pack_s
        if rendered.fps != self.fps:
            raise ProviderError(
                f"{self.persona}: the worker renders at {rendered.fps} fps, this process "
                f"at {self.fps}; are both on the same avatar settings?", retryable=False)
        try:
            if rendered.frames.raw_bytes > _UNPACK_IN_THREAD_BYTES:
                return await asyncio.to_thread(unpack_frames, rendered.frames)
            return unpack_frames(rendered.frames)
        except ValueError as e:  # a corrupt answer, or a worker on another codec version
            raise ProviderError(f"{self.persona}: the worker's frames do not unpack: {e}",
                                retryable=False) from e
