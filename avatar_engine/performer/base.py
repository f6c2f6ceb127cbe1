"""The performer capability: one per persona, it turns a voiced sentence into a
:class:`~avatar_engine.types.Performance` (the speech plus the avatar's frames) and owns the
persona's frame clock, so speech and idle frames of one persona form one continuous timeline.

Implementations differ only in where the speech frames are rendered (this process or a
RabbitMQ worker); they share :class:`OrderedClock` for the clock and the call order and
:func:`~avatar_engine.performer.render.render_speech` for the frames.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

import numpy as np

from avatar_engine.performer.render import render_idle
from avatar_engine.renderers.base import Renderer
from avatar_engine.types import Performance, Speech, frame_count


@runtime_checkable
class Performer(Protocol):
    """Turns one persona's speech into frames, in order, on one continuous frame clock.

    Attributes:
        persona: the persona's id.
        fps: frames per second of every frame it returns.
        size: ``(width, height)`` of a frame.
    """

    persona: str

    @property
    def fps(self) -> int: ...

    @property
    def size(self) -> tuple[int, int]: ...

    @property
    def frame_clock(self) -> int:
        """The global index of the next frame not yet handed out (speech or idle)."""
        ...

    async def perform(self, speech: Speech, *, reply_id: str, index: int) -> Performance:
        """The avatar saying ``speech``.

        Calls of one performer complete in call order, and each one's frames continue the
        clock where the previous call (or :meth:`idle_frames`) left it: the range is reserved
        when the call starts, so concurrent calls get consecutive ranges. A cancelled call
        leaves its range unused (the avatar skips those frames' blinks and breaths).
        """
        ...

    def idle_frames(self, n: int) -> np.ndarray:
        """Blocking: the next ``n`` frames of the avatar silent (``uint8`` RGBA
        ``[n, H, W, 4]`` on the CPU), advancing the clock. Always rendered in this process
        (cheap); the live stream calls it from a thread of its own."""
        ...

    async def aclose(self) -> None:
        """Release what the performer holds (idempotent)."""
        ...


class OrderedClock:
    """A persona's frame clock and the order of its ``perform`` calls.

    The clock is only read and advanced under a :class:`threading.Lock`, because idle frames
    are taken from the live stream's thread while ``perform`` runs on the event loop.
    """

    def __init__(self, *, start: int = 0) -> None:
        self._lock = threading.Lock()
        self._next = start
        # Done when the latest call so far (and every call before it) has completed.
        self._last: asyncio.Future[None] | None = None

    @property
    def value(self) -> int:
        with self._lock:
            return self._next

    def take(self, n: int) -> int:
        """Reserve the next ``n`` frames; returns the first one's index. Thread-safe."""
        with self._lock:
            start = self._next
            self._next += n
            return start

    async def run_in_order(
        self, speech: Speech, fps: int, render: Callable[[int], Awaitable[np.ndarray]]
    ) -> tuple[int, np.ndarray]:
        """Reserve ``speech``'s frames, ``render(start)`` them, and return ``(start, frames)``
        only after every earlier call has returned (or was cancelled).

        Rendering itself is not serialised here: the pools keep each persona's jobs in order
        (the local pool runs a key's jobs first come first served, the RabbitMQ pool hands a
        key's results back in submission order); this only orders the completions.
        """
        loop = asyncio.get_running_loop()
        start = self.take(frame_count(speech.duration, fps))
        before, mine = self._last, loop.create_future()
        self._last = mine
        try:
            frames = await render(start)
            if before is not None and not before.done():
                # shield: cancelling us must not cancel the earlier call's marker
                await asyncio.shield(before)
            return start, frames
        finally:
            _resolve_after(before, mine)


def _resolve_after(before: asyncio.Future[None] | None, mine: asyncio.Future[None]) -> None:
    """Mark ``mine`` done once ``before`` is: a cancelled call never lets a later call
    complete before an earlier one."""

    def done(_: object = None) -> None:
        if not mine.done():
            mine.set_result(None)

    if before is None or before.done():
        done()
    else:
        before.add_done_callback(done)


class ClockedPerformer:
    """What every performer shares: the persona's renderer (frame size, rate, idle frames
    rendered here) and its :class:`OrderedClock`. Subclasses say how a sentence's frames are
    rendered from a start frame (:meth:`_render`); :meth:`perform` keeps the order."""

    def __init__(self, *, persona: str, renderer: Renderer, start_frame: int = 0) -> None:
        self.persona = persona
        self.renderer = renderer
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

    async def _render(self, speech: Speech, start: int) -> np.ndarray:
        raise NotImplementedError

    async def perform(self, speech: Speech, *, reply_id: str, index: int) -> Performance:
        start, frames = await self._clock.run_in_order(
            speech, self.fps, lambda s: self._render(speech, s))
        return Performance(persona=self.persona, reply_id=reply_id, index=index, speech=speech,
                           frames=frames, fps=self.fps, start_frame=start)

    def idle_frames(self, n: int) -> np.ndarray:
        return render_idle(self.renderer, n, self._clock.take(n))

    async def aclose(self) -> None:
        return None
