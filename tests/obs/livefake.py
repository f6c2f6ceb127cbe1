"""A small live stream for the OBS tests: ticks in ``overlays.live.stream.LiveTick``'s shape,
paced in real time, idle frames of a real avatar (or any frames) and speech pushed by hand.

It stands in for ``overlays.live.stream.LiveStream`` (helper "live" builds the real one) only
where that is not importable yet; it follows that class's documented API: ``subscribe(name)``
-> async-iterable subscription with ``close()``, ``push(frames, audio, reply_id, sentence,
text)``, ``cancel(reply_id)``, ``fps``, ``size``, ``sample_rate``, ``persona``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True, eq=False)
class Tick:
    index: int
    pts_s: float
    rgba: np.ndarray
    audio: np.ndarray
    reply_id: str | None
    sentence: int | None
    text: str | None
    idle_key: int | None
    released: float


@dataclass(slots=True)
class _Segment:
    frames: np.ndarray
    audio: np.ndarray
    reply_id: str
    sentence: int
    text: str


class FakeLiveStream:
    """Releases a tick every 1/fps s (monotonic schedule) while someone is subscribed."""

    def __init__(self, *, persona: str, idle: Callable[[int], np.ndarray], fps: int = 25,
                 size: tuple[int, int] = (512, 512), sample_rate: int = 48000) -> None:
        self.persona = persona
        self.fps = fps
        self.size = size
        self.sample_rate = sample_rate
        self._idle = idle  # frame index -> RGBA [H, W, 4]
        self._segments: deque[_Segment] = deque()
        self._pos = 0
        self._subs: list[_Sub] = []
        self._task: asyncio.Task | None = None
        self.index = 0
        self.idle_period = 50  # idle frame i looks like idle frame i + 50 (idle_key)

    async def __aenter__(self) -> FakeLiveStream:
        self._task = asyncio.create_task(self._run(), name=f"fake-live:{self.persona}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    def push(self, frames: np.ndarray, audio: np.ndarray, *, reply_id: str, sentence: int,
             text: str) -> None:
        self._segments.append(_Segment(frames, audio, reply_id, sentence, text))

    def cancel(self, reply_id: str) -> None:
        self._segments = deque(s for s in self._segments if s.reply_id != reply_id)
        self._pos = 0

    @property
    def speaking(self) -> bool:
        return bool(self._segments)

    def subscribe(self, name: str, *, max_queue: int = 8) -> _Sub:
        sub = _Sub(self, max_queue)
        self._subs.append(sub)
        return sub

    async def _run(self) -> None:
        per_tick = self.sample_rate // self.fps
        start = time.monotonic()
        n = 0
        while True:
            n += 1
            await asyncio.sleep(max(0.0, start + n / self.fps - time.monotonic()))
            if not self._subs:
                start, n = time.monotonic(), 0
                continue
            i = self.index
            self.index += 1
            if self._segments:
                seg = self._segments[0]
                k = self._pos
                self._pos += 1
                audio = seg.audio[k * per_tick:(k + 1) * per_tick]
                audio = np.pad(audio, (0, per_tick - len(audio)))
                tick = Tick(i, i / self.fps, seg.frames[k], audio, seg.reply_id, seg.sentence,
                            seg.text, None, time.monotonic())
                if self._pos >= len(seg.frames):
                    self._segments.popleft()
                    self._pos = 0
            else:
                tick = Tick(i, i / self.fps, self._idle(i), np.zeros(per_tick, np.int16), None,
                            None, None, i % self.idle_period, time.monotonic())
            for sub in self._subs:
                sub.put(tick)


class _Sub:
    def __init__(self, stream: FakeLiveStream, max_queue: int) -> None:
        self._stream = stream
        self._queue: deque[Tick] = deque(maxlen=max_queue)  # drops the oldest when lagging
        self._ready = asyncio.Event()

    def put(self, tick: Tick) -> None:
        self._queue.append(tick)
        self._ready.set()

    def close(self) -> None:
        if self in self._stream._subs:
            self._stream._subs.remove(self)

    async def __aiter__(self) -> AsyncIterator[Tick]:
        while True:
            while not self._queue:
                self._ready.clear()
                await self._ready.wait()
            yield self._queue.popleft()
