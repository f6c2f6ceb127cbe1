"""The local performer: one continuous frame clock per persona, shared by speech and idle
frames and advanced under a lock; ``perform`` calls complete in call order on consecutive
frame ranges, whether they render in the fair pool or in threads of their own."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from avatar_engine.performer import LocalPerformer, Performer
from avatar_engine.performer.render import render_idle, render_speech
from avatar_engine.renderers.factory import create_renderer
from avatar_engine.settings import AvatarSettings
from avatar_engine.types import Speech, frame_count
from avatar_engine.workers import LocalRenderPool

REPO = Path(__file__).resolve().parents[2]
FPS = 25
RATE = 16_000


def speech(text: str, seconds: float) -> Speech:
    t = np.arange(int(seconds * RATE)) / RATE
    return Speech(text, (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), RATE)


class StampRenderer:
    """A fake of our renderer base: frame ``i`` is filled with its global index (mod 256 in
    each of three bytes), and rendering a speech whose text starts with a number of seconds
    sleeps that long (so a later call can finish its render first)."""

    fps = FPS
    size = (4, 2)
    device = torch.device("cpu")

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def _frames(self, start: int, n: int) -> torch.Tensor:
        idx = np.arange(start, start + n, dtype=np.int64)
        px = np.stack([idx % 256, idx // 256 % 256, idx // 65536 % 256, np.full_like(idx, 255)],
                      axis=-1).astype(np.uint8)
        return torch.from_numpy(np.broadcast_to(px[:, None, None, :], (n, 2, 4, 4)).copy())

    def render(self, speech: Speech, *, start_frame: int = 0) -> torch.Tensor:
        self.calls.append(("speech", start_frame))
        delay = speech.text.split(" ")[0]
        if delay.replace(".", "").isdigit():
            time.sleep(float(delay))
        return self._frames(start_frame, frame_count(speech.duration, self.fps))

    def idle(self, n_frames: int, *, start_frame: int = 0) -> torch.Tensor:
        self.calls.append(("idle", start_frame))
        return self._frames(start_frame, n_frames)


def stamps(frames: np.ndarray) -> list[int]:
    f = frames[:, 0, 0, :3].astype(np.int64)
    return list(f[:, 0] + 256 * f[:, 1] + 65536 * f[:, 2])


def test_a_local_performer_is_a_performer():
    assert isinstance(LocalPerformer(persona="p", renderer=StampRenderer()), Performer)


@pytest.mark.parametrize("pooled", [False, True], ids=["threads", "pool"])
async def test_concurrent_performs_get_consecutive_ranges_in_call_order(pooled):
    renderer = StampRenderer()
    async with LocalRenderPool(workers=2) as pool:
        performer = LocalPerformer(persona="p", renderer=renderer,
                                   pool=pool if pooled else None, start_frame=7)
        # The first sentence renders slowest: it must still be first, on the first range.
        said = [speech("0.6 slow one", 0.4), speech("0 quick two", 0.2),
                speech("0.2 three", 0.3)]
        done: list[int] = []

        async def perform(i: int):
            p = await performer.perform(said[i], reply_id="r", index=i)
            done.append(i)
            return p

        got = await asyncio.gather(*(asyncio.create_task(perform(i), name=f"perform:{i}")
                                     for i in range(3)))
    assert done == [0, 1, 2]
    start = 7
    for i, p in enumerate(got):
        n = frame_count(said[i].duration, FPS)
        assert (p.index, p.start_frame, p.n_frames, p.fps) == (i, start, n, FPS)
        assert stamps(p.frames) == list(range(start, start + n))
        assert p.frames.dtype == np.uint8 and p.frames.shape == (n, 2, 4, 4)
        start += n
    assert performer.frame_clock == start


async def test_idle_frames_between_performs_continue_the_clock():
    performer = LocalPerformer(persona="p", renderer=StampRenderer())
    a = await performer.perform(speech("a", 0.2), reply_id="r", index=0)
    idle = await asyncio.to_thread(performer.idle_frames, 10)  # as the live stream takes them
    b = await performer.perform(speech("b", 0.3), reply_id="r", index=1)
    more = performer.idle_frames(3)
    timeline = stamps(a.frames) + stamps(idle) + stamps(b.frames) + stamps(more)
    assert timeline == list(range(len(timeline)))
    assert performer.frame_clock == len(timeline)


async def test_idle_frames_from_another_thread_never_share_a_frame_with_speech():
    """The clock is advanced under a lock: idle frames taken from threads while sentences
    render get disjoint ranges, and together with the sentences they cover the clock."""
    performer = LocalPerformer(persona="p", renderer=StampRenderer())
    taken: list[int] = []
    stop = threading.Event()

    def idle_loop() -> None:
        while not stop.is_set():
            taken.extend(stamps(performer.idle_frames(2)))

    threads = [threading.Thread(target=idle_loop, name=f"idle:{i}") for i in range(2)]
    for t in threads:
        t.start()
    try:
        got = await asyncio.gather(*(performer.perform(speech(f"s{i}", 0.2), reply_id="r",
                                                       index=i) for i in range(20)))
    finally:
        stop.set()
        for t in threads:
            t.join()
    spoken = [s for p in got for s in stamps(p.frames)]
    assert not set(spoken) & set(taken)
    assert sorted(spoken + taken) == list(range(performer.frame_clock))


async def test_a_cancelled_perform_does_not_hold_back_the_next():
    performer = LocalPerformer(persona="p", renderer=StampRenderer())
    slow = asyncio.create_task(performer.perform(speech("1.0 slow", 0.2), reply_id="r", index=0))
    await asyncio.sleep(0.1)
    nxt = asyncio.create_task(performer.perform(speech("next", 0.2), reply_id="r", index=1))
    slow.cancel()
    p = await asyncio.wait_for(nxt, 5)
    assert p.start_frame == frame_count(0.2, FPS)  # the cancelled range stays unused
    with pytest.raises(asyncio.CancelledError):
        await slow


def test_the_shared_render_function_draws_the_sprite_avatar():
    renderer = create_renderer(AvatarSettings(sprites=REPO / "config" / "avatars" / "default",
                                              device="cpu"))
    s = speech("hello", 0.5)
    frames = render_speech(renderer, s, 40)
    assert isinstance(frames, np.ndarray) and frames.dtype == np.uint8
    assert frames.shape == (frame_count(s.duration, renderer.fps), 512, 512, 4)
    assert np.array_equal(frames, renderer.render(s, start_frame=40).cpu().numpy())
    idle = render_idle(renderer, 3, 40)
    assert np.array_equal(idle, renderer.idle(3, start_frame=40).cpu().numpy())
