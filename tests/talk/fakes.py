"""Fakes of our own bases for the conversation tests: a reply pipeline with perform's
signature, a renderer, an energy VAD and a speech recogniser that "hears" tones.

A tone of a registered frequency is a phrase: :class:`ToneSTT` finds the strongest frequency
of a segment and returns the phrase registered for it, or a caption of noise (``[noise]``,
which hearing treats as no words) for anything else. So the logic tests feed real audio
through the real segmenter and ear, fast and deterministically.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avatar_engine.settings import ClipSettings
from avatar_engine.types import Speech, frame_count
from bots.config import PersonaConfig
from bots.hearing.stt import Transcript
from bots.orchestrator.pipeline import Reply, ReplyTrace
from bots.personas.runtime import PersonaRuntime
from vstage_core.errors import ProviderError

RATE48 = 48_000
FRAME = 960  # 20 ms at 48 kHz


def tone48(freq: float, seconds: float, *, amp: float = 0.3) -> np.ndarray:
    """A tone as mono int16 48 kHz microphone samples."""
    t = np.arange(round(seconds * RATE48)) / RATE48
    return (np.sin(2 * np.pi * freq * t) * amp * 32767).astype(np.int16)


def silence48(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE48), np.int16)


def noise48(seconds: float, *, amp: float = 0.25, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.clip(rng.normal(0, amp, round(seconds * RATE48)), -1, 1) * 32767).astype(np.int16)


async def feed(session: Any, audio: np.ndarray, *, realtime: bool = False) -> None:
    """Feed ``audio`` as 20 ms frames, as the page's track reader does (yielding to the
    loop; ``realtime``: one frame every 20 ms)."""
    for i in range(0, len(audio), FRAME):
        session.hear(audio[i:i + FRAME])
        if realtime:
            await asyncio.sleep(FRAME / RATE48)
        elif (i // FRAME) % 5 == 0:
            await asyncio.sleep(0)


class FakeRenderer:
    """A tiny renderer (the Renderer protocol): grey frames, the alpha marks speech."""

    def __init__(self, *, fps: int = 25, size: tuple[int, int] = (32, 24)) -> None:
        self.fps = fps
        self.size = size
        self.device = "cpu"

    def render(self, speech: Speech, *, start_frame: int = 0) -> np.ndarray:
        n = frame_count(speech.duration, self.fps)
        return np.full((n, self.size[1], self.size[0], 4), 200, np.uint8)

    def idle(self, n_frames: int, *, start_frame: int = 0) -> np.ndarray:
        return np.full((n_frames, self.size[1], self.size[0], 4), 100, np.uint8)


def fake_persona(pid: str, tmp: Path, **overrides: Any) -> PersonaRuntime:
    cfg = PersonaConfig.model_validate(
        {"id": pid, "name": pid.title(), "personality": "test persona", **overrides})
    return PersonaRuntime(config=cfg, llm=None, tts=None,  # type: ignore[arg-type]
                          renderer=FakeRenderer(),  # type: ignore[arg-type]
                          clips_dir=tmp, clip_settings=ClipSettings())


class EnergyVAD:
    """Silero's interface (``stream().feed(audio16k) -> probabilities``) by loudness."""

    def stream(self, *, floor_dbfs: float | None = None) -> _EnergyStream:
        return _EnergyStream()


class _EnergyStream:
    def __init__(self) -> None:
        self._pending = np.zeros(0, np.float32)

    def feed(self, audio16k: np.ndarray) -> list[float]:
        buf = np.concatenate([self._pending, audio16k.astype(np.float32)])
        n = buf.size // 512
        probs = [0.95 if np.sqrt(np.mean(buf[i * 512:(i + 1) * 512] ** 2)) > 0.02 else 0.01
                 for i in range(n)]
        self._pending = buf[n * 512:]
        return probs


class ToneSTT:
    """WhisperSTT's ``transcribe`` for tones: the phrase registered for the segment's
    strongest frequency (within 15 Hz), else ``[noise]``."""

    def __init__(self, phrases: dict[int, str] | None = None, *, fail: bool = False) -> None:
        self.phrases = dict(phrases or {})
        self.fail = fail
        self.calls = 0
        self.seconds = 0.0  # audio transcribed

    def transcribe(self, audio16k: np.ndarray, *, language: str = "en") -> Transcript:
        self.calls += 1
        self.seconds += audio16k.size / 16000
        if self.fail:
            raise ProviderError("whisper failed: out of memory")
        spectrum = np.abs(np.fft.rfft(audio16k))
        peak = float(np.fft.rfftfreq(audio16k.size, 1 / 16000)[int(np.argmax(spectrum))])
        for freq, phrase in self.phrases.items():
            if abs(peak - freq) <= 15:
                return Transcript(text=phrase, language=language, seconds=0.0)
        return Transcript(text="[noise]", language=language, seconds=0.0)


@dataclass
class Call:
    text: str
    context_key: str | None
    reply_id: str
    viewer: str
    gate: bool
    cancelled: bool = False
    finished: bool = False


class TalkPipeline:
    """:func:`~bots.orchestrator.pipeline.perform`, faked: thinks ``think_s`` inside the
    gate, then performs ``sentences`` tones of ``sentence_s`` each (and ``pause_s`` of
    silence after each) with the given performer, remembers the turn like perform does.
    ``fail``: raise this instead of answering; ``fallback_on(text)``: say the persona's
    fallback line instead."""

    def __init__(self, *, think_s: float = 0.05, sentences: int = 2, sentence_s: float = 0.4,
                 amp: float = 0.3, pause_s: float = 0.0, fail: BaseException | None = None,
                 fallback_on: Callable[[str], bool] | None = None) -> None:
        self.think_s = think_s
        self.sentences = sentences
        self.sentence_s = sentence_s
        self.amp = amp
        self.pause_s = pause_s
        self.fail = fail
        self.fallback_on = fallback_on
        self.calls: list[Call] = []

    async def __call__(self, persona: PersonaRuntime, *, viewer: str, text: str,
                       on_performance: Any = None, reply_id: str | None = None,
                       screen: Any = None, context_key: str | None = None,
                       performer: Any = None, gate: Any = None, marks: Any = None,
                       say: str | None = None, speed: float | None = None,
                       retry: Any = None, memory: Any = None) -> Reply:
        assert reply_id is not None and performer is not None
        call = Call(text, context_key, reply_id, viewer, gate is not None)
        self.calls.append(call)
        reply = Reply(reply_id=reply_id, text="", trace=ReplyTrace())
        spoken: list[str] = []
        try:
            async with gate() if gate is not None else nullcontext():
                await asyncio.sleep(self.think_s)
                if self.fail is not None:
                    raise self.fail
            fallback = self.fallback_on is not None and self.fallback_on(text)
            lines = [persona.config.fallback_line] if fallback else [
                f"Sentence {i} of my answer." for i in range(self.sentences)]
            for i, line in enumerate(lines):
                if screen is not None and not fallback and screen(line) is None:
                    continue
                t = np.arange(round(self.sentence_s * 16000)) / 16000
                audio = (np.sin(2 * np.pi * (300 + 40 * i) * t) * self.amp).astype(np.float32)
                audio = np.concatenate([audio, np.zeros(round(self.pause_s * 16000), np.float32)])
                performance = await performer.perform(
                    Speech(text=line, audio=audio, sample_rate=16000), reply_id=reply_id,
                    index=i)
                spoken.append(line)
                if on_performance is not None:
                    await on_performance(performance)
            reply.fell_back = fallback
        except asyncio.CancelledError:
            call.cancelled = True
            raise
        reply.text = " ".join(spoken)
        call.finished = True
        if not reply.fell_back:
            persona.remember(context_key or f"local:{viewer}", text, reply.text, viewer=viewer)
        return reply


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Messages:
    """Collects one session's messages (a subscriber, like the page)."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.items: list[dict[str, Any]] = []
        self.times: list[float] = []  # time.monotonic() each item came
        self._t0 = time.monotonic()
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._collect(), name="test:messages")

    async def _collect(self) -> None:
        async for message in self.session.subscribe():
            self.items.append(message)
            self.times.append(time.monotonic())
            self._changed.set()
        self._changed.set()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.items if m["type"] == kind]

    def states(self) -> list[str]:
        return [m["state"] for m in self.items if m["type"] == "state"]

    async def wait_for(self, match: Callable[[dict[str, Any]], bool], *,
                       within: float = 10.0, after: int = 0) -> dict[str, Any]:
        """The first message from index ``after`` on that ``match`` accepts."""
        deadline = time.monotonic() + within
        while True:
            for m in self.items[after:]:
                if match(m):
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                got = [(round(t - self._t0, 2), m) for t, m in zip(self.times, self.items,
                                                                   strict=True)]
                raise AssertionError(f"no such message within {within} s; got {got}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass

    async def wait_type(self, kind: str, **kw: Any) -> dict[str, Any]:
        return await self.wait_for(lambda m: m["type"] == kind, **kw)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class Watch:
    """Watches a stream like the page's video: keeps (reply_id, audio RMS) per tick."""

    def __init__(self, stream: Any) -> None:
        self.ticks: list[tuple[str | None, float]] = []
        self.audio: list[np.ndarray] = []
        self._sub = stream.subscribe("test-watch", max_queue=1000)
        self._task = asyncio.create_task(self._run(), name="test:watch")

    async def _run(self) -> None:
        async for tick in self._sub:
            a = tick.audio.astype(np.float32) / 32768
            self.ticks.append((tick.reply_id, float(np.sqrt(np.mean(a * a)))))
            self.audio.append(tick.audio)

    def loud_ticks(self, reply_id: str) -> int:
        return sum(1 for rid, rms in self.ticks if rid == reply_id and rms > 0.01)

    async def close(self) -> None:
        self._sub.close()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
