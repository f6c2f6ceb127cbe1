"""Fakes of our own bases for orchestrator tests: a reply pipeline, a stage, an adapter."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np

from avatar_engine.settings import ClipSettings
from avatar_engine.types import Performance, Speech
from bots.config import PersonaConfig
from bots.events import ChatMessage, Outcome, Role, Viewer
from bots.orchestrator.pipeline import Reply, ReplyTrace
from bots.personas.runtime import PersonaRuntime
from overlays.stage import (
    ChatShown,
    Performed,
    ReplyCancelled,
    ReplyFinished,
    ShowDegraded,
    StageEvent,
)


def persona(pid: str, tmp: Path, **overrides: Any) -> PersonaRuntime:
    cfg = PersonaConfig.model_validate(
        {"id": pid, "name": pid.title(), "personality": "test persona", **overrides})
    return PersonaRuntime(config=cfg, llm=None, tts=None, renderer=None,  # type: ignore[arg-type]
                          clips_dir=tmp, clip_settings=ClipSettings())


def chat(user: str, text: str, *, persona: str | None = None, bits: int = 0,
         roles: frozenset[Role] = frozenset(), platform: str = "test") -> ChatMessage:
    return ChatMessage(viewer=Viewer(id=user, name=user, roles=roles), message=text,
                       persona=persona, bits=bits, platform=platform)


def tiny_performance(persona: str, reply_id: str, index: int, text: str, *,
                     seconds: float = 0.0, fps: int = 100) -> Performance:
    """A performance of ``seconds`` (0: none at all) with 2x2 frames and quiet audio."""
    n = round(seconds * fps)
    speech = Speech(text=text, audio=np.zeros(round(seconds * 16000), np.float32),
                    sample_rate=16000)
    return Performance(persona=persona, reply_id=reply_id, index=index, speech=speech,
                       frames=np.zeros((n, 2, 2, 4), np.uint8), fps=fps, start_frame=0)


class FakePipeline:
    """The reply pipeline, faked: performs a reply as ``clips`` sentences of ``clip_s`` seconds
    each, taking ``work_s`` per sentence (in the shared render pool when one is given),
    screening each sentence.

    Sentences are ``"<text> part <i>"``, or ``"<line> <i>"`` when ``line`` is given (for long
    questions: output moderation refuses a reply that reads the viewer's line back)."""

    def __init__(self, *, clips: int = 2, work_s: float = 0.01, clip_s: float = 0.0,
                 pool=None, fail_on: str | None = None, line: str | None = None):
        self.clips, self.work_s, self.clip_s = clips, work_s, clip_s
        self.pool, self.fail_on, self.line = pool, fail_on, line
        self.started: list[tuple[str, str]] = []

    async def __call__(self, persona, *, viewer, text, on_performance, reply_id, screen=None,
                       marks=None, context_key=None, say=None) -> Reply:
        if say is not None:
            text, screen = say, None  # a greeting: said as it is
        self.started.append((persona.id, text))
        trace = ReplyTrace(on_mark=marks)
        reply = Reply(reply_id=reply_id, text="", trace=trace)
        spoken = []
        for i in range(self.clips):
            if self.fail_on and self.fail_on in text:
                raise RuntimeError("renderer exploded")
            sentence = f"{self.line} {i}" if self.line else f"{text} part {i}"
            if screen is not None and screen(sentence) is None:
                continue
            if self.pool is not None:
                await self.pool.run(persona.id, time.sleep, self.work_s)
            else:
                await asyncio.sleep(self.work_s)
            trace.mark("first_clip")
            performance = tiny_performance(persona.id, reply_id, i, sentence,
                                           seconds=self.clip_s)
            spoken.append(sentence)
            reply.performances.append(performance)
            await on_performance(performance)
        trace.mark("done")
        reply.text = " ".join(spoken)
        return reply


class FakeStage:
    """A stage that takes every event and records it with the time it came:
    ``(time, kind, persona, payload)``, kind one of chat, clip (payload: the Performance),
    done, cancelled, degraded."""

    name = "fake"
    wants: frozenset[type[StageEvent]] = frozenset(
        {ChatShown, Performed, ReplyFinished, ReplyCancelled, ShowDegraded})

    def __init__(self, name: str = "fake"):
        self.name = name
        self.log: list[tuple[float, str, str, Any]] = []

    async def handle(self, event: StageEvent) -> None:
        now = time.monotonic()
        if isinstance(event, ChatShown):
            self.log.append((now, "chat", event.persona, event.text))
        elif isinstance(event, Performed):
            self.log.append((now, "clip", event.persona, event.performance))
        elif isinstance(event, ReplyFinished):
            self.log.append((now, "done", event.persona, event.reply_id))
        elif isinstance(event, ReplyCancelled):
            self.log.append((now, "cancelled", event.persona, event.reply_id))
        elif isinstance(event, ShowDegraded):
            self.log.append((now, "degraded", "", event.on))

    def clips(self, persona: str | None = None) -> list[Performance]:
        return [x[3] for x in self.log if x[1] == "clip" and (persona is None or x[2] == persona)]


class FakeAdapter:
    """Collects the outcomes the orchestrator reports for its platform."""

    platform = "test"

    def __init__(self):
        self.outcomes: list[Outcome] = []
        self.sink = None
        self.got = asyncio.Event()

    def bind(self, sink):
        self.sink = sink

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None

    async def deliver(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.got.set()

    def status_of(self, trace_id: str) -> list[str]:
        return [o.status for o in self.outcomes if o.event.trace_id == trace_id]


# --------------------------------------------------------------------------- the real pipeline
# For tests that run the real orchestrator *and* the real reply pipeline (prompt building,
# sentence cutting, output moderation, clip encoding) with a scripted brain and a tiny, fast
# voice and avatar, and look at what is spoken.


class FastTTS:
    """A voice of our TTS base: 0.2 s of quiet tone per sentence, no phoneme timings.
    ``hz`` tells voices apart; ``calls`` counts the sentences voiced."""

    def __init__(self, hz: float = 220.0) -> None:
        self.hz = hz
        self.calls: list[str] = []

    def synthesize(self, text: str):
        self.calls.append(text)
        t = np.arange(int(16000 * 0.2), dtype=np.float32) / 16000
        return Speech(text=text, audio=(0.1 * np.sin(2 * np.pi * self.hz * t)).astype(
            np.float32), sample_rate=16000)


class TinyRenderer:
    """A renderer of our base: flat 32x32 frames."""

    fps = 10

    def __init__(self):
        import torch

        self.device = torch.device("cpu")

    def render(self, speech, *, start_frame: int = 0):
        import torch

        from avatar_engine.types import frame_count

        n = frame_count(speech.duration, self.fps)
        return torch.full((n, 32, 32, 4), 200, dtype=torch.uint8)

    def idle(self, n_frames: int, *, start_frame: int = 0):
        import torch

        return torch.full((n_frames, 32, 32, 4), 200, dtype=torch.uint8)


def live_persona(pid: str, tmp: Path, llm, *, tts: FastTTS | None = None,
                 **overrides: Any) -> PersonaRuntime:
    """A persona with ``llm`` as its brain and the fast voice (``tts``)/avatar above."""
    cfg = PersonaConfig.model_validate(
        {"id": pid, "name": pid.title(), "personality": "You love cozy games and tea.",
         **overrides})
    folder = tmp / pid
    folder.mkdir(parents=True, exist_ok=True)
    return PersonaRuntime(config=cfg, llm=llm, tts=tts or FastTTS(), renderer=TinyRenderer(),
                          clips_dir=folder, clip_settings=ClipSettings(formats=("mp4",)))
