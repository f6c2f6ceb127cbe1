"""The hub of private conversations: opens, finds and ends :class:`TalkSession` s, holds what
they share (hearing models, a moderator per persona, fair turns on the LLM, invite codes) and
ends the ones nobody talks in.

    async with TalkHub(personas=personas, settings=cfg.app.talk, hearing=hearing_settings,
                       live=cfg.app.live, fair=fair, audit=audit) as hub:
        session = await hub.open("mika")      # TalkFull when at max_sessions
        ...
        await hub.close(session.id, "closed")

Sessions scale on what the show already shares: the LLM (one turn at a time through
:class:`~bots.orchestrator.fairshare.FairShare`, round robin between sessions and the show),
the persona's TTS, and the render pool (each session's performer renders on the persona's
pool, on RabbitMQ workers when ``show.broker_url`` is set). An idle session costs little:
the sessions of a persona share its idle pictures (drawn and hashed once, an
:class:`~overlays.live.idle.IdleSource` per persona renderer) and, through it, the encoded
idle packets of their WebRTC encoders.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import secrets
import time
from collections.abc import Callable
from types import MappingProxyType
from typing import Any, Self

from avatar_engine.performer import create_performer
from bots.hearing.settings import HearingSettings
from bots.hearing.stt import WhisperSTT
from bots.hearing.vad import SileroVAD
from bots.moderation.audit import AuditLog
from bots.moderation.moderator import Moderator
from bots.orchestrator.fairshare import FairShare
from bots.orchestrator.pipeline import perform
from bots.personas.prompt import system_prompt
from bots.personas.runtime import PersonaRuntime
from bots.talk.ears import TalkHearing
from bots.talk.invites import InviteProblem, Invites
from bots.talk.session import Pipeline, TalkSession
from bots.talk.settings import TalkSettings
from overlays.live.idle import IdleSource, SharedIdleRenderer
from overlays.live.settings import LiveSettings
from overlays.live.stream import LiveStream
from vstage_core.errors import VStageError
from vstage_core.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

__all__ = ["TalkFull", "TalkHub", "spoken_language"]

_MIN_RETRY_S = 5


class TalkFull(VStageError):
    """Every place is taken; ``retry_after_s`` says when one is likely to free up."""

    code = "full"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def spoken_language(persona: PersonaRuntime) -> str:
    """The language a conversation with ``persona`` is held in: a teacher's target
    language, else the persona's own."""
    teacher = persona.config.teacher
    return teacher.target_language if teacher is not None else persona.config.language


class TalkHub:
    """Private conversations with the loaded personas; ``async with``.

    Args:
        personas: the loaded personas, by id.
        settings: the ``talk:`` settings.
        hearing: VAD and whisper settings of the conversations.
        live: how each conversation's stream is paced.
        fair: turns on the shared LLM (the show takes its own as ``show:<persona>``).
        audit: the moderation audit log, shared with the show.
        pipeline: the reply pipeline (tests pass a fake).
        clock: monotonic clock of idle timeouts and invites.
        vad, stt: hearing models to share (loaded at start otherwise).
        share_idle: the sessions of a persona share its idle pictures and encoded idle
            packets (off: each session draws and encodes its own, as a public stream does;
            for comparisons).
    """

    def __init__(
        self, *, personas: dict[str, PersonaRuntime], settings: TalkSettings,
        hearing: HearingSettings, live: LiveSettings, fair: FairShare,
        audit: AuditLog | None = None, pipeline: Pipeline = perform,
        clock: Callable[[], float] = time.monotonic, vad: SileroVAD | None = None,
        stt: WhisperSTT | None = None, share_idle: bool = True,
    ) -> None:
        self.personas = personas
        self.settings = settings
        self.live = live
        self.fair = fair
        self._pipeline = pipeline
        self._clock = clock
        self.hearing = TalkHearing(
            settings=hearing, max_turn_s=settings.max_turn_s,
            languages=[spoken_language(p) for p in personas.values()], vad=vad, stt=stt,
            clock=clock)
        # The same rules and audit log as the show's, one moderator per persona.
        self.moderators = {
            pid: Moderator(settings=rt.config.moderation, audit=audit, persona=pid,
                           instructions=(system_prompt(rt.config), rt.config.personality))
            for pid, rt in personas.items()
        }
        self.invites = Invites(ttl_s=settings.invite_ttl_s, clock=clock)
        self._sessions: dict[str, TalkSession] = {}
        self.share_idle = share_idle
        self._idle_sources: dict[str, IdleSource] = {}  # persona id -> its renderer's pictures
        self._opening = 0
        self._reaper: asyncio.Task[None] | None = None
        self._running = False
        self.opened = 0
        self.expired = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        if self._running:
            return self
        await self.hearing.__aenter__()
        self._reaper = asyncio.create_task(self._reap(), name="talk:reaper")
        self._running = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        if not self._running:
            return
        self._running = False
        for sid in list(self._sessions):
            await self.close(sid, "shutdown")
        reaper, self._reaper = self._reaper, None
        if reaper is not None:
            await cancel_and_wait(iter([reaper]))
        sources, self._idle_sources = list(self._idle_sources.values()), {}
        for source in sources:
            source.close()  # the idle packet caches' threads
        await self.hearing.__aexit__(*exc)

    # ------------------------------------------------------------------ sessions

    @property
    def sessions(self) -> MappingProxyType[str, TalkSession]:
        """The open conversations, by id (read only)."""
        return MappingProxyType(self._sessions)

    async def open(self, persona: str) -> TalkSession:
        """Start a conversation with ``persona``.

        Raises:
            KeyError: no such persona is loaded.
            TalkFull: ``max_sessions`` are open; ``retry_after_s`` says when to try again.
            RuntimeError: the hub is not running.
        """
        if not self._running:
            raise RuntimeError("the talk hub is not running (use `async with`)")
        runtime = self.personas.get(persona) if isinstance(persona, str) else None
        if runtime is None:
            raise KeyError(f"unknown persona {persona!r}; loaded: "
                           f"{', '.join(sorted(self.personas))}")
        if len(self._sessions) + self._opening >= self.settings.max_sessions:
            retry = self.retry_after_s()
            raise TalkFull(f"all {self.settings.max_sessions} conversations are taken; try "
                           f"again in {retry} s", retry_after_s=retry)
        self._opening += 1
        try:
            sid = secrets.token_urlsafe(9)
            # Its own frame clock, and its own key in the render pool: the pool serves its
            # keys round robin, so conversations and the show take turns there too.
            source = self.idle_source(persona)
            renderer = runtime.renderer if source is None else SharedIdleRenderer(source)
            performer = create_performer(persona=f"talk:{sid}", renderer=renderer,
                                         avatar=runtime.config.avatar, pool=runtime.pool)
            stream = LiveStream(persona=f"talk:{sid}", performer=performer,
                                sample_rate=self.live.sample_rate,
                                lead_frames=self.live.lead_frames,
                                idle_batch=self.live.idle_batch,
                                max_late_s=self.live.max_late_s, idle_source=source)
            await stream.start()
            try:
                session = TalkSession(
                    session_id=sid, key=secrets.token_urlsafe(24), persona=runtime,
                    language=spoken_language(runtime), settings=self.settings,
                    stream=stream, performer=performer, moderator=self.moderators[persona],
                    hearing=self.hearing, fair=self.fair, pipeline=self._pipeline,
                    clock=self._clock, on_closed=self._forget,
                    viewer_name=self.settings.viewer_name)
            except BaseException:
                await stream.stop()
                raise
        finally:
            self._opening -= 1
        self._sessions[sid] = session
        self.opened += 1
        logger.info("talk %s: opened with %s (%d open)", sid, persona, len(self._sessions))
        return session

    def idle_source(self, persona: str) -> IdleSource | None:
        """The idle pictures the sessions with ``persona`` share (made on first use, again
        when the persona's renderer was replaced); None when sharing is off or the renderer
        cannot share them (its idle frames are then drawn per session)."""
        runtime = self.personas[persona]
        if not self.share_idle:
            return None
        source = self._idle_sources.get(persona)
        if source is not None and source.renderer is runtime.renderer:
            return source
        # A replaced renderer (live reload): its old sessions keep the old source they hold.
        source = IdleSource.for_renderer(runtime.renderer)
        if source is None:
            self._idle_sources.pop(persona, None)
            return None
        self._idle_sources[persona] = source
        return source

    def get(self, sid: str, key: str) -> TalkSession | None:
        """The session ``sid`` if ``key`` is its key (None otherwise: never tell which)."""
        if not isinstance(sid, str) or not isinstance(key, str):
            return None
        session = self._sessions.get(sid)
        if session is None or not hmac.compare_digest(session.key.encode(),
                                                      key.encode("utf-8", "surrogatepass")):
            return None
        return session

    async def close(self, sid: str, reason: str) -> None:
        """End session ``sid`` (no-op when it is not open)."""
        session = self._sessions.get(sid)
        if session is not None:
            await session.close(reason)

    def retry_after_s(self) -> int:
        """Seconds until a place is likely free: when the stalest conversation would time
        out (at least 5)."""
        now = self._clock()
        timeout = self.settings.idle_timeout_s
        left = [timeout - s.idle_for(now) for s in self._sessions.values()]
        soonest = min(left) if left else 0.0
        return max(_MIN_RETRY_S, math.ceil(soonest))

    def _forget(self, session: TalkSession) -> None:
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]

    async def _reap(self) -> None:
        """End conversations nobody has spoken in for ``idle_timeout_s``."""
        timeout = self.settings.idle_timeout_s
        period = min(1.0, timeout / 5)
        while True:
            await asyncio.sleep(period)
            now = self._clock()
            for session in list(self._sessions.values()):
                if session.idle_for(now) >= timeout:
                    self.expired += 1
                    try:
                        await session.close("idle")
                    except Exception:
                        logger.exception("talk %s: closing an idle session failed", session.id)

    # ------------------------------------------------------------------ invites

    def invite(self, *, persona: str | None = None, uses: int = 1) -> str:
        """A new invite code opening ``uses`` conversations (with ``persona``; None: any).

        Raises:
            KeyError: ``persona`` is not loaded.
            ValueError: ``uses`` is not 1..1000.
        """
        if persona is not None and persona not in self.personas:
            raise KeyError(f"unknown persona {persona!r}; loaded: "
                           f"{', '.join(sorted(self.personas))}")
        return self.invites.create(persona=persona, uses=uses)

    def redeem(self, code: str) -> str | None:
        """Use an invite once: its persona id (``""``: any persona), or None when the code
        is not valid, already used or expired (:meth:`invite_problem` says which)."""
        return self.invites.redeem(code)

    def check_invite(self, code: str) -> bool:
        """Whether ``code`` opens a conversation now, without using it."""
        return self.invites.check(code)

    def invite_problem(self, code: str) -> InviteProblem | None:
        """Why ``code`` does not open a conversation: ``"used"``, ``"expired"``,
        ``"unknown"``; None when it does."""
        return self.invites.problem(code)

    # ------------------------------------------------------------------ for the page

    def personas_info(self) -> list[dict[str, Any]]:
        """The personas one can talk to: ``[{"id", "name", "language"}]``."""
        return [{"id": pid, "name": rt.config.name, "language": spoken_language(rt)}
                for pid, rt in self.personas.items()]
