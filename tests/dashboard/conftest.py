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


# --------------------------------------------------------------------------- in Chromium


class Demo(str):
    """A running ``vstage demo``'s base URL, knowing its config folder and log."""

    config: Path
    log: Path


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """``vstage demo`` on a free port with a copy of the config (the dashboard writes to it),
    as a streamer runs it; yields its base URL."""
    import os
    import shutil
    import subprocess
    import sys

    from tests.conftest import REPO
    from tests.netutil import free_port

    tmp = tmp_path_factory.mktemp("dashdemo")
    config = tmp / "config"
    shutil.copytree(REPO / "config", config)
    app = config / "vstage.yaml"
    app.write_text(app.read_text().replace("state_dir: var", f"state_dir: {tmp / 'var'}"))
    for other in ("camille", "lena"):  # one persona at start-up: the show starts sooner
        (config / "personas" / f"{other}.yaml").unlink()
    port = free_port()
    env = {**os.environ, "VSTAGE_STUDIO__TOKEN": TOKEN, "VSTAGE_STUDIO__PORT": str(port)}
    log_path = tmp / "demo.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bots.cli", "--config", str(config),
                                 "demo"], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 150
    while "studio is live" not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"vstage demo did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    demo = Demo(f"http://127.0.0.1:{port}")
    demo.config, demo.log = config, log_path
    yield demo
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
    out = log_path.read_text()
    assert "Traceback" not in out, out[-3000:]


@pytest.fixture(scope="module")
def chromium():
    import shutil

    from playwright.sync_api import sync_playwright

    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("chromium is not installed: run `make install` (apt package chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=path,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--autoplay-policy=no-user-gesture-required"])
        yield b
        b.close()
