"""Fixtures of the dashboard tests: a config copy, an editor on it, and a running show (a real
orchestrator and studio server; personas whose replies a fake pipeline performs)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from avatar_engine.settings import ClipSettings
from bots.config import Config, PersonaConfig, load_config
from bots.moderation.audit import AuditLog
from bots.orchestrator.orchestrator import Orchestrator
from bots.personas.editor import PersonaEditor
from bots.personas.runtime import PersonaRuntime
from overlays.bus import StageBus
from overlays.studio.server import StudioServer
from tests.orchestrator.fakes import FakeAdapter, FakePipeline, FakeStage

TOKEN = "dashboard-test-token-0123456789"
QUICK = {"user_cooldown_s": 0, "duplicate_window_s": 0}


class IdleLLM:
    """An LLM never asked (the fake pipeline answers); it can be closed."""

    name = "idle"
    closed = False

    async def aclose(self) -> None:
        self.closed = True


def fake_runtime(cfg: PersonaConfig, clips: Path) -> PersonaRuntime:
    """A persona whose replies the fake pipeline performs (no models loaded)."""
    return PersonaRuntime(config=cfg, llm=IdleLLM(), tts=None, renderer=None,  # type: ignore[arg-type]
                          clips_dir=clips / cfg.id, clip_settings=ClipSettings())


async def fake_create(cfg: PersonaConfig, *, clips_dir: Path, clip_settings: Any,
                      pool: Any = None) -> PersonaRuntime:
    return fake_runtime(cfg, clips_dir)


class RecordingPipeline(FakePipeline):
    """The fake pipeline, also noting which runtime object answered each line."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.runtimes: list[tuple[PersonaRuntime, str]] = []

    async def __call__(self, persona, **kw):  # type: ignore[override]
        self.runtimes.append((persona, kw.get("say") or kw["text"]))
        return await super().__call__(persona, **kw)


async def until(cond, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@dataclass
class FakeApp:
    """What the dashboard reads of ``bots.app.StudioApp`` (the same attributes)."""

    config: Config
    orchestrator: Orchestrator | None = None
    server: StudioServer | None = None
    bus: StageBus | None = None
    supervisor: Any = None
    talk: Any = None
    streams: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def config(config_copy: Path) -> Config:
    return load_config(config_copy)


@pytest.fixture
def editor(config: Config) -> PersonaEditor:
    return PersonaEditor(personas_dir=config.root / "personas",
                         default_persona=lambda: config.app.default_persona)


@dataclass
class Show:
    app: FakeApp
    orch: Orchestrator
    pipeline: RecordingPipeline
    adapter: FakeAdapter
    stage: FakeStage
    audit: AuditLog


@pytest.fixture
async def show(config: Config, tmp_path: Path):
    """A running orchestrator on the config's personas (fake replies), its audit log, and a
    fake app holding it."""
    clips = tmp_path / "clips"
    personas = {}
    for pid, cfg in config.personas.items():
        cfg = cfg.model_copy(update={"queue": cfg.queue.model_copy(update=QUICK)})
        personas[pid] = fake_runtime(cfg, clips)
    pipeline = RecordingPipeline(clips=1, work_s=0.01)
    adapter, stage = FakeAdapter(), FakeStage()
    async with AuditLog(config.state_dir / "audit.jsonl", flush_interval_s=0.05) as audit:
        async with Orchestrator(personas=personas, stages=[stage], default_persona="mika",
                                adapters=[adapter], pipeline=pipeline, greet=False,
                                audit=audit) as orch:
            app = FakeApp(config=config, orchestrator=orch, bus=orch.bus)
            yield Show(app, orch, pipeline, adapter, stage, audit)


def studio_server(config: Config, personas: dict[str, str]) -> StudioServer:
    return StudioServer(host="127.0.0.1", port=0, token=SecretStr(TOKEN),
                        clips_dir=config.state_dir / "clips", personas=dict(personas))
