"""A persona brought to life: its LLM, voice, renderer, performer and per-viewer short memory,
loaded once."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from avatar_engine.performer import Performer, create_performer
from avatar_engine.renderers.base import Renderer
from avatar_engine.renderers.factory import create_renderer
from avatar_engine.settings import ClipSettings
from avatar_engine.voice import TTS, create_tts
from avatar_engine.workers import RenderPool
from bots.brain.base import LLM, create_llm
from bots.config import PersonaConfig
from bots.personas.context import Conversations

logger = logging.getLogger(__name__)


class PersonaRuntime:
    """Everything one persona needs to perform. Build with :meth:`create` (loads models)."""

    def __init__(
        self,
        *,
        config: PersonaConfig,
        llm: LLM,
        tts: TTS,
        renderer: Renderer,
        clips_dir: Path,
        clip_settings: ClipSettings,
        pool: RenderPool | None = None,
        performer: Performer | None = None,
    ) -> None:
        """Args:
            renderer: the local renderer (idle frames, the clip fallback's idle loop, and
                speech unless the pool is remote).
            pool: the shared render pool; a remote one renders speech on RabbitMQ workers.
            performer: the persona's performer; by default built from the renderer and pool.
        """
        self.config = config
        self.llm = llm
        self.tts = tts
        self.renderer = renderer
        self.clips_dir = clips_dir
        self.clip_settings = clip_settings
        self.pool = pool  # None: render in a thread of its own
        # Each viewer's own recent turns; never one viewer's words in another's prompt.
        self.conversations = Conversations(turns=config.llm.history_turns)
        # Owns the avatar's frame clock: blinks and breathing continue across sentences and
        # idle frames alike.
        self.performer: Performer = performer or create_performer(
            persona=config.id, renderer=renderer, avatar=config.avatar, pool=pool)

    @property
    def id(self) -> str:
        return self.config.id

    @classmethod
    async def create(
        cls,
        config: PersonaConfig,
        *,
        clips_dir: Path,
        clip_settings: ClipSettings,
        pool: RenderPool | None = None,
    ) -> PersonaRuntime:
        """Load the persona's models off the event loop (in parallel where possible)."""
        llm = create_llm(config.llm)
        renderer_task = asyncio.to_thread(create_renderer, config.avatar)
        tts_task = asyncio.to_thread(create_tts, config.voice, language=config.language)
        renderer, tts, _ = await asyncio.gather(renderer_task, tts_task, llm.load())
        folder = clips_dir / config.id
        folder.mkdir(parents=True, exist_ok=True)
        logger.info(
            "persona %s ready: llm=%s voice=%s avatar=%s on %s",
            config.id, llm.name, config.voice.model, config.avatar.renderer, renderer.device,
        )
        return cls(
            config=config, llm=llm, tts=tts, renderer=renderer, clips_dir=folder,
            clip_settings=clip_settings, pool=pool,
        )

    def remember(self, key: str, said: str, replied: str, *, viewer: str = "") -> None:
        """Keep an answered turn in viewer ``key``'s own context."""
        self.conversations.remember(key, said, replied, viewer=viewer)

    def forget(self, key: str) -> None:
        """Drop everything kept in RAM about viewer ``key`` (they asked to be forgotten)."""
        self.conversations.forget(key)

    async def aclose(self) -> None:
        await self.performer.aclose()
        await self.llm.aclose()


def prune_clips(folder: Path, *, keep: int) -> int:
    """Delete the oldest clip files beyond ``keep`` (idle loops are kept); returns how many."""
    files = [p for p in folder.glob("*") if p.suffix in (".webm", ".mp4")
             and not p.name.startswith("idle")]
    if len(files) <= keep:
        return 0
    files.sort(key=lambda p: p.stat().st_mtime)
    doomed = files[: len(files) - keep]
    for p in doomed:
        p.unlink(missing_ok=True)
    return len(doomed)
