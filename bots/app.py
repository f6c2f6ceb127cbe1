"""The studio app: personas, orchestrator and studio server wired together (``vstage demo``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import numpy as np

from avatar_engine.clips.encode import encode_clip
from bots.config import Config, studio_token
from bots.events import ChatMessage, Viewer
from bots.orchestrator.orchestrator import Orchestrator
from bots.personas.runtime import PersonaRuntime, prune_clips
from overlays.studio import ChatResult, StudioServer

logger = logging.getLogger(__name__)

IDLE_SECONDS = 8.0


async def load_personas(config: Config, ids: list[str] | None = None) -> dict[str, PersonaRuntime]:
    """Load the personas (all of them by default), each with its models."""
    clips_dir = config.state_dir / "clips"
    chosen = ids or list(config.personas)
    loaded = await asyncio.gather(
        *(
            PersonaRuntime.create(config.persona(pid), clips_dir=clips_dir,
                                  clip_settings=config.app.clips)
            for pid in chosen
        )
    )
    return {p.id: p for p in loaded}


def make_idle_loop(persona: PersonaRuntime) -> dict[str, Path]:
    """Blocking: render and encode the persona's idle loop (blinks and breathing, no speech)."""
    fps = persona.renderer.fps
    n = int(IDLE_SECONDS * fps)
    frames = persona.renderer.idle(n, start_frame=0)
    files = encode_clip(
        frames=frames, audio=np.zeros(int(IDLE_SECONDS * 22050), np.float32), sample_rate=22050,
        fps=fps, out_base=persona.clips_dir / "idle", formats=persona.clip_settings.formats,
    )
    return {f.format: f.path for f in files}


class StudioApp:
    """Runs the local studio until cancelled: ``await StudioApp(config).run()``."""

    def __init__(self, config: Config, *, host: str | None = None, port: int | None = None):
        self.config = config
        self.host = host or config.app.studio.host
        self.port = config.app.studio.port if port is None else port
        self.ready = asyncio.Event()
        self.server: StudioServer | None = None
        self.orchestrator: Orchestrator | None = None

    async def run(self) -> None:
        cfg = self.config
        personas = await load_personas(cfg)
        idle = await asyncio.gather(
            *(asyncio.to_thread(make_idle_loop, p) for p in personas.values())
        )
        clips_dir = cfg.state_dir / "clips"

        async def on_chat(user: str, text: str, persona: str | None) -> ChatResult:
            assert self.orchestrator is not None
            event = ChatMessage(viewer=Viewer(id=f"studio:{user.lower()}", name=user),
                                message=text, persona=persona)
            d = self.orchestrator.submit(event)
            if not d.accepted and self.server is not None:
                self.server.notice(persona, f"not answered: {d.reason}", level="warn")
            return ChatResult(accepted=d.accepted, trace_id=d.trace_id, reason=d.reason)

        server = StudioServer(
            host=self.host, port=self.port, token=studio_token(cfg), clips_dir=clips_dir,
            personas={pid: p.config.name for pid, p in personas.items()}, on_chat=on_chat,
        )
        for p, files in zip(personas.values(), idle, strict=True):
            server.set_idle(p.id, files)
        self.server = server
        try:
            async with server, Orchestrator(
                personas=personas, stages=[server], default_persona=cfg.app.default_persona,
                max_message_chars=cfg.app.studio.max_message_chars,
            ) as orch:
                self.orchestrator = orch
                self.ready.set()
                while True:
                    await asyncio.sleep(30)
                    for p in personas.values():
                        await asyncio.to_thread(prune_clips, p.clips_dir,
                                                keep=cfg.app.clips.keep)
        finally:
            for p in personas.values():
                with contextlib.suppress(Exception):
                    await p.aclose()
