"""Fixtures for the live stream tests: a small performer of our own (the Performer protocol),
performances with marked frames and audio."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from avatar_engine.types import Performance, Speech, frame_count

FPS = 25
SIZE = (64, 48)  # width, height


class FakePerformer:
    """A :class:`~avatar_engine.performer.base.Performer` drawing each idle frame from its
    clock: a square whose grey level changes every ``period`` frames (so idle frames repeat,
    like the real avatar's breathing), alpha 255 inside, 0 around it."""

    persona = "vee"

    def __init__(self, *, fps: int = FPS, size: tuple[int, int] = SIZE, period: int = 5) -> None:
        self._fps = fps
        self._size = size
        self.period = period
        self.clock = 0
        self.idle_calls = 0
        self.idle_frames_made = 0
        self._lock = threading.Lock()

    @property
    def fps(self) -> int:
        return self._fps

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def frame_clock(self) -> int:
        return self.clock

    def idle_frames(self, n: int) -> np.ndarray:
        with self._lock:
            start, self.clock = self.clock, self.clock + n
            self.idle_calls += 1
            self.idle_frames_made += n
        w, h = self._size
        out = np.zeros((n, h, w, 4), np.uint8)
        for i in range(n):
            level = 40 + 20 * (((start + i) // self.period) % 4)
            out[i, h // 4: 3 * h // 4, w // 4: 3 * w // 4] = (level, level, level, 255)
        return out

    async def perform(self, speech: Speech, *, reply_id: str, index: int) -> Performance:
        return performance(reply_id=reply_id, index=index, speech=speech, fps=self._fps,
                           size=self._size)

    async def aclose(self) -> None:
        return None


def performance(*, reply_id: str = "r1", index: int = 0, seconds: float = 1.0,
                speech: Speech | None = None, fps: int = FPS, size: tuple[int, int] = SIZE,
                rate: int = 22050, click_frame: int | None = None) -> Performance:
    """A sentence whose frame ``i`` is red with ``i`` in its top-left pixel's green channel;
    silent audio except, if asked, a click at the start of frame ``click_frame``."""
    if speech is None:
        audio = np.zeros(round(seconds * rate), np.float32)
        if click_frame is not None:
            at = round(click_frame * rate / fps)
            audio[at + 20: at + 60] = 0.9  # 40 samples, well inside the frame
        speech = Speech(text=f"sentence {index} of {reply_id}", audio=audio, sample_rate=rate)
    n = frame_count(speech.duration, fps)
    w, h = size
    frames = np.zeros((n, h, w, 4), np.uint8)
    frames[..., 0] = 200
    frames[..., 3] = 255
    frames[:, 0, 0, 1] = np.arange(n) % 256
    return Performance(persona="vee", reply_id=reply_id, index=index, speech=speech,
                       frames=frames, fps=fps, start_frame=0)


@pytest.fixture
def performer() -> FakePerformer:
    return FakePerformer()


async def eventually(check, seconds: float = 10.0, step: float = 0.02) -> None:
    """Wait until ``check()`` is true (polling; the things watched have no event to wait on)."""
    import asyncio

    for _ in range(max(1, round(seconds / step))):
        if check():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"not true within {seconds} s: {check}")
