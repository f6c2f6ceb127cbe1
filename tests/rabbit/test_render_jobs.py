"""Rendering on remote workers: the ``render_frames`` job and the RemotePerformer on real
``vstage worker`` processes behind a real broker: the same frames as a local performer, the
reply pipeline's remote path, and a worker killed mid-render."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from avatar_engine.performer import LocalPerformer, RemotePerformer, create_performer
from avatar_engine.performer.codec import unpack_frames
from avatar_engine.performer.render import render_speech
from avatar_engine.renderers.factory import create_renderer
from avatar_engine.settings import AvatarSettings, ClipSettings
from avatar_engine.types import Performance, PhonemeTiming, Speech, frame_count
from avatar_engine.workers.jobs import RenderedFrames, avatar_payload, render_frames
from avatar_engine.workers.rabbit import RabbitRenderPool
from bots.brain.base import ChatTurn
from bots.config import PersonaConfig
from bots.orchestrator.pipeline import perform
from bots.personas.runtime import PersonaRuntime
from tests.rabbit.jobs import slow_render_frames

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[2]
AVATAR = AvatarSettings(sprites=REPO / "config" / "avatars" / "default", device="cpu")
RATE = 16_000


def synthetic_speech(text: str, seconds: float = 0.5) -> Speech:
    """A loud, syllable-like tone with phoneme timings: enough to move the mouth."""
    t = np.arange(int(seconds * RATE)) / RATE
    audio = (0.5 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)))
    phonemes = (PhonemeTiming("h", 0.0, 0.1), PhonemeTiming("a", 0.1, 0.3),
                PhonemeTiming("o", 0.3, seconds))
    return Speech(text, audio.astype(np.float32), RATE, phonemes)


@pytest.fixture(scope="module")
def renderer():
    return create_renderer(AVATAR)


async def test_render_frames_job_sends_back_the_local_frames_packed(
    broker, queue, start_worker, renderer
):
    start_worker(cli=True)  # `vstage worker`: registers render_frames itself
    speech = synthetic_speech("Hello there.")
    async with RabbitRenderPool(url=broker.url, queue=queue) as pool:
        rendered = await pool.run("mika", render_frames, avatar_payload(AVATAR), speech, 40)
    assert isinstance(rendered, RenderedFrames)
    assert rendered.fps == AVATAR.fps
    assert rendered.n_frames == frame_count(speech.duration, AVATAR.fps)
    frames = unpack_frames(rendered.frames)
    assert np.array_equal(frames, render_speech(renderer, speech, 40))
    assert rendered.frames.packed_bytes < rendered.frames.raw_bytes / 10  # sent compactly


async def test_local_and_remote_performers_give_identical_frames(
    broker, queue, start_worker, renderer
):
    start_worker(cli=True)
    speeches = [synthetic_speech("One.", 0.6), synthetic_speech("Two, longer.", 1.1)]
    local = LocalPerformer(persona="mika", renderer=renderer, start_frame=40)
    async with RabbitRenderPool(url=broker.url, queue=queue) as pool:
        remote = RemotePerformer(persona="mika", renderer=renderer, avatar=AVATAR, pool=pool,
                                 start_frame=40)
        for i, speech in enumerate(speeches):
            mine = await local.perform(speech, reply_id="r", index=i)
            theirs = await remote.perform(speech, reply_id="r", index=i)
            assert (theirs.start_frame, theirs.n_frames) == (mine.start_frame, mine.n_frames)
            assert np.array_equal(theirs.frames, mine.frames), i
        # idle frames are drawn here either way, on the same clock
        assert np.array_equal(remote.idle_frames(5), local.idle_frames(5))
    assert remote.frame_clock == local.frame_clock == 40 + sum(
        frame_count(s.duration, AVATAR.fps) for s in speeches) + 5


def started_frames(mark_dir: Path) -> dict[int, list[int]]:
    """Start frames each worker (pid) began rendering, in order."""
    return {int(p.name.split("-")[1]): [int(x) for x in p.read_text().split()]
            for p in mark_dir.glob("started-*")}


async def test_worker_killed_mid_render_performance_arrives_once_in_order(
    broker, queue, start_worker, renderer, tmp_path, monkeypatch
):
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("VSTAGE_TEST_MARK_DIR", str(marks))
    monkeypatch.setenv("VSTAGE_TEST_RENDER_DELAY_S", "1.0")
    workers = {w.pid: w for w in (start_worker(), start_worker())}  # serve tests.rabbit.jobs
    speeches = [synthetic_speech(f"Sentence {i}.", 0.4) for i in range(3)]
    n = frame_count(speeches[0].duration, AVATAR.fps)
    arrived: list[Performance] = []
    async with RabbitRenderPool(url=broker.url, queue=queue) as pool:
        performer = RemotePerformer(persona="mika", renderer=renderer, avatar=AVATAR,
                                    pool=pool, job=slow_render_frames)

        async def perform(i: int) -> None:
            arrived.append(await performer.perform(speeches[i], reply_id="r", index=i))

        tasks = [asyncio.create_task(perform(i), name=f"perform:{i}") for i in range(3)]
        deadline = time.monotonic() + 20
        while not any(0 in started for started in started_frames(marks).values()):
            assert time.monotonic() < deadline, "no worker took the first sentence"
            await asyncio.sleep(0.02)
        (victim,) = [pid for pid, started in started_frames(marks).items() if 0 in started]
        workers[victim].kill()  # mid-render of sentence 0
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        await asyncio.sleep(0.3)  # a late duplicate answer would show here
        assert pool.duplicates == 0 and pool.served == {"mika": 3}
    (survivor,) = set(workers) - {victim}
    assert 0 in started_frames(marks)[survivor]  # redelivered to the survivor
    assert [p.index for p in arrived] == [0, 1, 2]  # each once, in order
    assert [p.start_frame for p in arrived] == [0, n, 2 * n]
    for p in arrived:
        assert np.array_equal(p.frames, render_speech(renderer, p.speech, p.start_frame))


class OneLineLLM:
    """A fake of our LLM base that says fixed sentences."""

    name = "scripted"

    def __init__(self, text: str) -> None:
        self.text = text

    async def load(self) -> None: ...

    async def aclose(self) -> None: ...

    async def stream(self, messages: Sequence[ChatTurn]) -> AsyncIterator[str]:
        for word in self.text.split(" "):
            yield word + " "
            await asyncio.sleep(0)


class ToneTTS:
    """A fake of our TTS base: a synthetic tone per sentence, longer for longer text."""

    def synthesize(self, text: str) -> Speech:
        return synthetic_speech(text, seconds=0.2 + 0.02 * len(text))


class NoLocalRenderer:
    """Stands in for the persona's renderer: the remote path must never render speech here."""

    fps = AVATAR.fps
    size = (512, 512)

    def render(self, *args, **kwargs):
        raise AssertionError("rendered in the caller's process, not on the worker")


async def test_pipeline_renders_on_the_worker(broker, queue, start_worker, renderer):
    start_worker(cli=True)
    config = PersonaConfig(id="mika", name="Mika", personality="A cheerful streamer.",
                           avatar=AVATAR)
    async with RabbitRenderPool(url=broker.url, queue=queue) as pool:
        local = NoLocalRenderer()
        performer = create_performer(persona="mika", renderer=local,  # type: ignore[arg-type]
                                     avatar=AVATAR, pool=pool, start_frame=100)
        assert isinstance(performer, RemotePerformer)
        persona = PersonaRuntime(
            config=config, llm=OneLineLLM("Hi Ann! Nice to see you here today."),
            tts=ToneTTS(), renderer=local, clips_dir=Path("/nonexistent"),  # type: ignore[arg-type]
            clip_settings=ClipSettings(), pool=pool, performer=performer,
        )
        got: list[Performance] = []

        async def on_performance(p: Performance) -> None:
            got.append(p)

        reply = await perform(persona, viewer="ann", text="hi", on_performance=on_performance)
    assert not reply.fell_back and got == reply.performances and len(got) == 2
    clock = 100
    for i, p in enumerate(got):
        assert (p.index, p.reply_id, p.persona) == (i, reply.reply_id, "mika")
        assert p.n_frames == frame_count(p.speech.duration, AVATAR.fps)
        assert p.start_frame == clock
        assert np.array_equal(p.frames, render_speech(renderer, p.speech, clock))
        clock += p.n_frames
    assert persona.performer.frame_clock == clock
