"""The remote performer's own part, with the pool faked in-process (the broker path is in
tests/rabbit): the job's packed frames become the performance bit for bit, and an answer that
does not unpack is a clear provider error, not a crash deep in numpy."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import pytest

from avatar_engine.performer import RemotePerformer
from avatar_engine.performer.render import render_speech
from avatar_engine.renderers.factory import create_renderer
from avatar_engine.settings import AvatarSettings
from avatar_engine.types import Speech
from avatar_engine.workers.jobs import RenderedFrames
from avatar_engine.workers.pool import RemoteRenderPool
from vstage_core.errors import ProviderError

REPO = Path(__file__).resolve().parents[2]
AVATAR = AvatarSettings(sprites=REPO / "config" / "avatars" / "default", device="cpu")
T = TypeVar("T")


class InProcessPool:
    """A fake of our remote pool base: runs the registered job here, then lets the test
    change its answer on the way back (as a faulty worker or a broken message would)."""

    remote: Literal[True] = True

    def __init__(self, tamper: Callable[[RenderedFrames], RenderedFrames] = lambda r: r) -> None:
        self.tamper = tamper

    async def run(self, key: str, fn: Callable[..., T], *args: Any) -> T:
        answer = fn(*args)
        assert isinstance(answer, RenderedFrames)
        return self.tamper(answer)  # type: ignore[return-value]  # T is RenderedFrames here


def speech(seconds: float = 1.2, rate: int = 16_000) -> Speech:
    t = np.arange(int(seconds * rate)) / rate
    audio = 0.5 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    return Speech("hello", audio.astype(np.float32), rate)


@pytest.fixture(scope="module")
def renderer():
    return create_renderer(AVATAR)


def test_the_fake_is_a_remote_pool():
    assert isinstance(InProcessPool(), RemoteRenderPool)


async def test_the_packed_answer_becomes_the_rendered_frames(renderer):
    performer = RemotePerformer(persona="mika", renderer=renderer, avatar=AVATAR,
                                pool=InProcessPool(), start_frame=40)
    performance = await performer.perform(speech(), reply_id="r", index=0)
    assert np.array_equal(performance.frames, render_speech(renderer, speech(), 40))
    assert performer.pack_s > 0 and performer.render_s > 0


async def test_an_answer_that_does_not_unpack_is_a_provider_error(renderer):
    def truncate(r: RenderedFrames) -> RenderedFrames:
        return dataclasses.replace(r, frames=dataclasses.replace(r.frames, patches=()))

    performer = RemotePerformer(persona="mika", renderer=renderer, avatar=AVATAR,
                                pool=InProcessPool(truncate))
    with pytest.raises(ProviderError, match="mika: the worker's frames do not unpack") as e:
        await performer.perform(speech(), reply_id="r", index=0)
    assert e.value.retryable is False
