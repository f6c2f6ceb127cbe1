"""Rendering on remote workers: the ``render_clip`` job on a real ``vstage worker`` process
behind a real broker, and the reply pipeline's remote path writing its clips locally."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import av
import numpy as np
import pytest

from avatar_engine.settings import AvatarSettings, ClipSettings
from avatar_engine.types import PhonemeTiming, Speech, frame_count
from avatar_engine.workers.jobs import RenderedClip, avatar_payload, render_clip
from avatar_engine.workers.rabbit import RabbitRenderPool
from bots.brain.base import ChatTurn
from bots.config import PersonaConfig
from bots.orchestrator.pipeline import perform
from bots.personas.runtime import PersonaRuntime

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


def decoded_video_frames(path: Path) -> tuple[str, int, bool]:
    """(video codec, frames that decode, has an audio stream) of a media file."""
    with av.open(str(path)) as c:
        codec = c.streams.video[0].codec_context.name
        has_audio = bool(c.streams.audio)
        n = sum(1 for _ in c.decode(video=0))
    return codec, n, has_audio


async def test_render_clip_job_returns_playable_files(broker, queue, start_worker, tmp_path):
    start_worker(cli=True)  # `vstage worker`: registers render_clip itself
    speech = synthetic_speech("Hello there.")
    expected = frame_count(speech.duration, AVATAR.fps)
    async with RabbitRenderPool(url=broker.url, queue=queue) as pool:
        rendered = await pool.run(
            "mika", render_clip, avatar_payload(AVATAR), ("webm", "mp4"), speech, "r1", 0, 40
        )
    assert isinstance(rendered, RenderedClip)
    assert (rendered.frames, rendered.fps) == (expected, AVATAR.fps)
    assert [f.format for f in rendered.files] == ["webm", "mp4"]
    codecs = {}
    for f in rendered.files:
        path = tmp_path / f"got.{f.format}"
        path.write_bytes(f.data)
        codec, n, has_audio = decoded_video_frames(path)
        codecs[f.format] = codec
        assert n == expected and has_audio, (f.format, n, has_audio)
    assert codecs["mp4"] == "h264" and codecs["webm"].startswith("vp9"), codecs


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
    """Stands in for the persona's renderer: the remote path must never render here."""

    fps = AVATAR.fps

    def render(self, *args, **kwargs):
        raise AssertionError("rendered in the caller's process, not on the worker")


async def test_pipeline_renders_on_the_worker_and_writes_clips_here(
    broker, queue, start_worker, tmp_path
):
    start_worker(cli=True)
    clips_dir = tmp_path / "clips" / "mika"
    config = PersonaConfig(id="mika", name="Mika", personality="A cheerful streamer.",
                           avatar=AVATAR)
    async with RabbitRenderPool(url=broker.url, queue=queue) as pool:
        persona = PersonaRuntime(
            config=config, llm=OneLineLLM("Hi Ann! Nice to see you here today."),
            tts=ToneTTS(), renderer=NoLocalRenderer(), clips_dir=clips_dir,
            clip_settings=ClipSettings(formats=("webm", "mp4")), pool=pool,
        )
        persona.frame_clock = 100
        reply = await perform(persona, viewer="ann", text="hi", keep_media=True)
    assert len(reply.clips) == 2 and not reply.fell_back
    assert reply.frames == [None, None]  # frames stay on the worker
    total = 0
    for clip, speech in zip(reply.clips, reply.speeches, strict=True):
        assert clip.frames == frame_count(speech.duration, AVATAR.fps)
        assert clip.text == speech.text
        total += clip.frames
        assert {f.format for f in clip.files} == {"webm", "mp4"}
        for f in clip.files:
            assert f.path.parent == clips_dir and f.path.is_file()
            assert f.path.name == f"{reply.reply_id}-{clip.index:02d}.{f.format}"
            assert decoded_video_frames(f.path)[1] == clip.frames
    assert persona.frame_clock == 100 + total
    assert not list(clips_dir.glob(".*"))  # no temporary file left behind
