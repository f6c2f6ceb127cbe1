"""Put a new or edited persona on the running show, without restarting the app.

An edit never cuts a reply: the persona's queue is paused (a reply already being prepared
goes back to the queue), the reply on stage plays to its end, and only then is the persona
swapped: ``Orchestrator.remove_persona`` and ``add_persona`` with the new runtime. The
models a change does not touch are reused (editing the personality does not reload the LLM,
the voice or the avatar), so a swap is quick; the viewers' short conversation memory is kept.

What holds per-persona state besides the orchestrator follows the swap here: the studio's
persona list and idle loop, the clip recorder's folder, the persona's live stream (and its
WebRTC encoder, when the app hands :class:`LiveReload` its ``LiveRTC``) and the private
conversations' hub. OBS sources, Twitch triggers and Discord's persona list are made at
start-up: a new persona reaches them after a restart (see docs/dashboard.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from avatar_engine.renderers.factory import create_renderer
from avatar_engine.voice import create_tts
from bots.brain.base import create_llm
from bots.config import PersonaConfig
from bots.moderation.moderator import Moderator
from bots.personas.prompt import system_prompt
from bots.personas.runtime import PersonaRuntime
from overlays.recorder import ClipRecorder
from vstage_core.errors import ConfigError

if TYPE_CHECKING:
    from bots.app import StudioApp
    from bots.orchestrator.orchestrator import Orchestrator
    from overlays.live.encoder import SharedVideoEncoder
    from overlays.live.stream import LiveStream
    from overlays.live.webrtc import LiveRTC

__all__ = ["Applied", "LiveReload", "StudioRoster", "moderator_of"]

logger = logging.getLogger(__name__)

UPDATED = "the persona was updated: please ask again"
REMOVED = "the persona left the show"


class StudioRoster(Protocol):
    """Who the studio's pages list and accept chat for (the studio server)."""

    def show_persona(self, pid: str, name: str, language: str) -> None: ...

    def hide_persona(self, pid: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Applied:
    """What :meth:`LiveReload.apply` did.

    Attributes:
        persona: the persona's id.
        added: it was not on the show before (False: it replaced the running one).
        reused: parts kept from the running persona (``llm``, ``voice``, ``avatar``).
        waited_s: how long the swap waited for the persona's reply in flight.
        notes: what does not follow the change until a restart, one line each.
    """

    persona: str
    added: bool
    reused: tuple[str, ...] = ()
    waited_s: float = 0.0
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {"persona": self.persona, "added": self.added, "reused": list(self.reused),
                "waited_s": round(self.waited_s, 3), "notes": list(self.notes)}


def moderator_of(orchestrator: Orchestrator, pid: str) -> Moderator:
    """The moderator screening persona ``pid``'s show (for live switches like mod-only).

    The orchestrator has no public accessor for it yet; this is the one place that reads its
    per-persona slot, so a future ``Orchestrator.moderator(pid)`` replaces one line.

    Raises:
        KeyError: no such persona on the show.
    """
    return orchestrator._personas[pid].moderator


class LiveReload:
    """Applies persona configs to a running :class:`~bots.app.StudioApp`.

    Args:
        app: the running app (its orchestrator, studio server, streams and talk hub are read
            when a change is applied).
        roster: updates the studio's persona list (None: the pages list what they listed at
            start-up).
        rtc: the app's WebRTC side, so an edited avatar's new live stream gets an encoder
            (None: live viewers of an edited avatar keep the old stream until a restart).
        settle_timeout_s: the longest an edit waits for the reply in flight; after that the
            reply is cut (its viewer is told it was interrupted).
        poll_s: how often the wait looks again.
        idle_loop: renders a persona's idle loop for the clip player (``bots.app
            .make_idle_loop``; blocking, run in a thread).
        create: loads a new persona's models (``PersonaRuntime.create``; tests pass a fake).
    """

    def __init__(self, *, app: StudioApp, roster: StudioRoster | None = None,
                 rtc: LiveRTC | None = None, settle_timeout_s: float = 120.0,
                 poll_s: float = 0.05,
                 idle_loop: Callable[[PersonaRuntime], dict[str, Path]] | None = None,
                 create: Callable[..., Awaitable[PersonaRuntime]] = PersonaRuntime.create,
                 ) -> None:
        self.app = app
        self.roster = roster
        self.rtc = rtc
        self.settle_timeout_s = settle_timeout_s
        self.poll_s = poll_s
        self._idle_loop = idle_loop
        self._create = create
        self._locks: dict[str, asyncio.Lock] = {}
        # Runtimes and streams this object started: it closes them (the app closes its own).
        self._runtimes: dict[str, PersonaRuntime] = {}
        self._streams: dict[str, LiveStream] = {}
        self._encoders: dict[str, SharedVideoEncoder] = {}
        self._closed = False

    def _orchestrator(self) -> Orchestrator:
        orch = self.app.orchestrator
        if orch is None:
            raise ConfigError("the show is not running yet")
        return orch

    # ------------------------------------------------------------------ waiting

    def busy(self, pid: str) -> bool:
        """Whether persona ``pid`` has a reply between being taken from its queue and the end
        of its playback (read from the traces: dequeued, not finished, not back in the
        queue), or holds the stage."""
        orch = self._orchestrator()
        if orch.floor.holder == pid:
            return True
        waiting = {row["trace_id"] for row in orch.queue_snapshot(pid)}
        return any(
            t["persona"] == pid and t["status"] == "queued" and "dequeued" in t["stages"]
            and t["trace_id"] not in waiting
            for t in orch.tracer.recent(orch.tracer.keep))

    async def settled(self, pid: str, *, timeout_s: float | None = None) -> bool:
        """Wait until persona ``pid`` has no reply in flight; False if ``timeout_s`` (default
        ``settle_timeout_s``) passed first."""
        deadline = time.monotonic() + (self.settle_timeout_s if timeout_s is None else timeout_s)
        while self.busy(pid):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(self.poll_s)
        return True

    # ------------------------------------------------------------------ applying

    async def apply(self, config: PersonaConfig) -> Applied:
        """Put ``config`` (validated, its paths resolved) on the show: a new persona joins, an
        existing one is replaced once its reply in flight has played.

        Raises:
            ConfigError: the show is not running. VStageError: a model or the avatar
                cannot be loaded (the running persona is left as it was).
        """
        pid = config.id
        async with self._locks.setdefault(pid, asyncio.Lock()):
            orch = self._orchestrator()
            old = orch.personas.get(pid)
            runtime, reused = await self._runtime(config, old)
            try:
                idle = await self._idle(runtime) if "avatar" not in reused else None
            except BaseException:
                await self._close_parts(runtime, reused)
                raise
            waited = 0.0
            if old is None:
                orch.add_persona(runtime, greet=True)
                added = True
            else:
                was_paused = orch.is_paused(pid)
                orch.pause(pid)  # nothing new starts; a prepared reply goes back to the queue
                start = time.monotonic()
                if not await self.settled(pid):
                    logger.warning("persona %s: its reply did not end within %.1f s; cutting "
                                   "it to apply the edit", pid, self.settle_timeout_s)
                waited = time.monotonic() - start
                await self._swap(orch, pid, runtime)
                if was_paused:
                    orch.pause(pid)
                added = False
                runtime.conversations = old.conversations  # viewers' recent turns go on
            notes = await self._follow(runtime, old, reused, idle)
            if old is not None:
                await self._retire(old, reused)
            self._runtimes[pid] = runtime
            logger.info("persona %s %s live (reused: %s; waited %.2f s)", pid,
                        "added" if added else "updated", ", ".join(reused) or "nothing", waited)
            return Applied(pid, added, tuple(sorted(reused)), waited, tuple(notes))

    async def drop(self, pid: str) -> None:
        """Take persona ``pid`` off the show (its waiting viewers are told it left) once its
        reply in flight has played, and close it.

        Raises:
            KeyError: not on the show. ValueError: it is the default persona.
        """
        async with self._locks.setdefault(pid, asyncio.Lock()):
            orch = self._orchestrator()
            if pid not in orch.personas:
                raise KeyError(pid)
            if pid == orch.default_persona:
                raise ValueError(f"{pid!r} is the default persona; choose another default first")
            orch.pause(pid)
            await self.settled(pid)
            old = await orch.remove_persona(pid, reason=REMOVED)
            if self.roster is not None:
                self.roster.hide_persona(pid)
            hub = self.app.talk
            if hub is not None:
                await self._end_talks(pid, "the persona left")
                hub.personas.pop(pid, None)
                hub.moderators.pop(pid, None)
            for stage in self.app.bus.stages if self.app.bus is not None else ():
                if isinstance(stage, ClipRecorder):
                    stage.folders.pop(pid, None)
            await self._retire_stream(pid)
            self._runtimes.pop(pid, None)
            await old.aclose()

    async def aclose(self) -> None:
        """Close what this object started (runtimes and streams of applied personas); the
        app's own start-up personas are the app's to close."""
        if self._closed:
            return
        self._closed = True
        for encoder in self._encoders.values():
            await encoder.stop()
        self._encoders.clear()
        for stream in self._streams.values():
            await stream.stop()
        self._streams.clear()
        for runtime in self._runtimes.values():
            with contextlib.suppress(Exception):
                await runtime.aclose()
        self._runtimes.clear()

    # ------------------------------------------------------------------ internals

    async def _runtime(self, config: PersonaConfig, old: PersonaRuntime | None
                       ) -> tuple[PersonaRuntime, set[str]]:
        """A runtime for ``config``, reusing the parts of ``old`` whose settings are equal."""
        cfg = self.app.config
        clips_dir = cfg.state_dir / "clips"
        orch = self._orchestrator()
        pool = old.pool if old is not None else next(
            (p.pool for p in orch.personas.values()), None)
        if old is None:
            return await self._create(config, clips_dir=clips_dir,
                                      clip_settings=cfg.app.clips, pool=pool), set()
        reused: set[str] = set()
        if old.config.llm == config.llm:
            reused.add("llm")
        if old.config.voice == config.voice and old.config.language == config.language:
            reused.add("voice")
        if old.config.avatar == config.avatar:
            reused.add("avatar")
        llm = old.llm if "llm" in reused else create_llm(config.llm)
        try:
            renderer_job = (asyncio.sleep(0, old.renderer) if "avatar" in reused
                            else asyncio.to_thread(create_renderer, config.avatar))
            tts_job = (asyncio.sleep(0, old.tts) if "voice" in reused
                       else asyncio.to_thread(create_tts, config.voice,
                                              language=config.language))
            load = asyncio.sleep(0) if "llm" in reused else llm.load()
            renderer, tts, _ = await asyncio.gather(renderer_job, tts_job, load)
        except BaseException:
            if "llm" not in reused:
                await llm.aclose()
            raise
        runtime = PersonaRuntime(
            config=config, llm=llm, tts=tts, renderer=renderer, clips_dir=old.clips_dir,
            clip_settings=old.clip_settings, pool=pool,
            performer=old.performer if "avatar" in reused else None)
        return runtime, reused

    async def _idle(self, runtime: PersonaRuntime) -> dict[str, Path] | None:
        if self._idle_loop is None:
            return None
        return await asyncio.to_thread(self._idle_loop, runtime)

    @staticmethod
    async def _close_parts(runtime: PersonaRuntime, reused: set[str]) -> None:
        """Close what ``runtime`` does not share with the running persona."""
        if "avatar" not in reused:
            await runtime.performer.aclose()
        if "llm" not in reused:
            await runtime.llm.aclose()

    async def _retire(self, old: PersonaRuntime, reused: set[str]) -> None:
        """Close the running persona's parts that the new one did not take over."""
        await self._close_parts(old, reused)

    async def _swap(self, orch: Orchestrator, pid: str, runtime: PersonaRuntime) -> None:
        default = orch.default_persona
        if pid == default:
            # remove_persona refuses the default persona (events naming no persona must have
            # someone to go to); here it is back within this call. Until an
            # Orchestrator.replace_persona exists, such events are refused for that moment.
            orch.default_persona = f"{pid} (being updated)"
        try:
            await orch.remove_persona(pid, reason=UPDATED)
            orch.add_persona(runtime)
        finally:
            orch.default_persona = default

    async def _follow(self, runtime: PersonaRuntime, old: PersonaRuntime | None,
                      reused: set[str], idle: dict[str, Path] | None) -> list[str]:
        """Bring the studio, the clip recorder, the live stream and the talk hub along."""
        pid, cfg = runtime.id, runtime.config
        notes: list[str] = []
        server = self.app.server
        if server is not None and idle is not None:
            server.set_idle(pid, idle)
        if self.roster is not None:
            self.roster.show_persona(pid, cfg.name, cfg.language)
        for stage in self.app.bus.stages if self.app.bus is not None else ():
            if isinstance(stage, ClipRecorder):
                stage.folders[pid] = runtime.clips_dir
        if self.app.streams and "avatar" not in reused:
            if self.rtc is not None:
                await self._restream(runtime)
            else:
                # Without the WebRTC side no encoder can be made for a new stream: the
                # pages play this persona from clip files (the studio says so).
                notes.append("live viewers (WebRTC) see this avatar after a restart; the "
                             "pages play it from clips until then")
        hub = self.app.talk
        if hub is not None:
            if old is not None:
                await self._end_talks(pid, "the persona was updated: start again")
            hub.personas[pid] = runtime
            # The same audit log as the show's moderator of this persona.
            audit = moderator_of(self._orchestrator(), pid).audit
            hub.moderators[pid] = Moderator(
                settings=cfg.moderation, audit=audit, persona=pid,
                instructions=(system_prompt(cfg), cfg.personality))
        if old is None:
            if self.app.config.app.obs.enabled:
                notes.append("OBS gets a source for this persona after `vstage obs setup` "
                             "and a restart")
            if self.app.config.app.twitch.enabled:
                notes.append("Twitch chat reaches this persona after a restart")
            if self.app.config.app.discord is not None:
                notes.append("Discord can pick this persona after a restart")
        return notes

    async def _restream(self, runtime: PersonaRuntime) -> None:
        """Give the persona a live stream of its new avatar and an encoder for it."""
        from overlays.live.stream import LiveStream

        live = self.app.config.app.live
        pid = runtime.id
        stream = LiveStream(persona=pid, performer=runtime.performer,
                            sample_rate=live.sample_rate, lead_frames=live.lead_frames,
                            idle_batch=live.idle_batch, max_late_s=live.max_late_s)
        from overlays.live.encoder import SharedVideoEncoder

        assert self.rtc is not None
        await stream.start()
        encoder = SharedVideoEncoder(stream=stream, settings=self.rtc.settings)
        await encoder.start()
        # The live stage and the WebRTC side read this same dict.
        self.app.streams[pid] = stream
        old_encoder = self.rtc.encoders.get(pid)
        self.rtc.encoders[pid] = encoder  # new viewers get the new stream
        if old_encoder is not None:
            await old_encoder.stop()  # old viewers' connections end; their pages reconnect
        self._encoders[pid] = encoder
        previous = self._streams.pop(pid, None)
        self._streams[pid] = stream
        if previous is not None:
            await previous.stop()  # one of ours; the app stops its own start-up streams

    async def _retire_stream(self, pid: str) -> None:
        self.app.streams.pop(pid, None)
        if self.rtc is not None:
            encoder = self.rtc.encoders.pop(pid, None)
            if encoder is not None:
                await encoder.stop()
        self._encoders.pop(pid, None)
        stream = self._streams.pop(pid, None)
        if stream is not None:
            await stream.stop()

    async def _end_talks(self, pid: str, reason: str) -> None:
        hub = self.app.talk
        if hub is None:
            return
        for sid, session in list(hub.sessions.items()):
            if session.persona.id == pid:
                await hub.close(sid, reason)
