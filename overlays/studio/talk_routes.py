"""HTTP side of private conversations: the ``/talk`` page and its ``/api/talk/`` endpoints.

These routes check access themselves (the studio's guard lets them through): the page and the
session-making endpoints take the studio token or, when invites are on, a one-time invite
code; everything about one session takes that session's key, and a wrong key is answered as
an unknown session (404), so nobody learns which sessions exist. The conversation itself
(hearing, turns, the persona's stream) lives behind the small protocols below
(``bots.talk.hub.TalkHub`` and ``TalkSession`` fit them): this layer knows HTTP, not the
conversation.

=============================================  ==========================================
``GET /talk?token=T|invite=C|session=S&key=K``  the page; 401 page saying why when refused
``GET /api/talk/personas?token|invite``         ``{"personas", "sessions", "max_sessions"}``
``POST /api/talk/sessions?token|invite``        ``{"persona", "visitor"?}`` -> 201 session and
                                                key; 503 ``{"error": "full", "retry_after_s"}``
                                                when full
``POST /api/talk/sessions/{sid}/offer?key=K``   ``{"sdp", "type"}`` -> the answer
``GET /api/talk/sessions/{sid}/ws?key=K``       the session's messages; the page's commands
``POST /api/talk/sessions/{sid}/memory?key=K``   ``{"command": "show"|"forget"}`` ->
                                                ``{"command", "text"}``: long-term memory
``DELETE /api/talk/sessions/{sid}?key=K``       204, ended; ``POST .../end?key=K`` (the page's
                                                beacon): ended unless it is back within 5 s
``POST /api/talk/invites?token=T``              ``{"persona"?, "uses"?}`` -> ``{"url"}``
=============================================  ==========================================

A page may send ``visitor``, a random id its browser keeps (32-64 hex digits): the visitor's
long-term memory (the app's memory service, handed to each new session with
``use_memory``) is keyed by a SHA-256 of it, never by the id itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from aiohttp import WSMsgType, web

from overlays.live.talk_rtc import TalkPeer
from vstage_core.errors import VStageError
from vstage_core.tasks import cancel_and_wait

__all__ = ["TALK_PREFIXES", "TalkHubPort", "TalkLimits", "TalkRoutes", "TalkSessionPort"]

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
TALK_PREFIXES = ("/talk", "/api/talk/")
"""Path prefixes of these routes: pass as ``self_guarded`` to ``StudioServer.add_routes``."""

_LEAVE_GRACE_S = 5.0  # a page's goodbye beacon ends its conversation after this
_MODES = ("handsfree", "ptt")
_CLIENT_STATES = ("mic-denied", "mic-muted", "no-audio")
_SDP_MAX = 32 * 1024
_TEXT_MAX = 2000  # characters of one typed line (moderation cuts it further)
_WS_MESSAGE_MAX = 8 * 1024
_ANSWER_TIMEOUT_S = 15.0
_MAX_USES = 100
_VISITOR = re.compile(r"[0-9a-f]{32,64}")
_MEMORY_COMMANDS = ("show", "forget")
_INVITE_PROBLEMS = {
    "used": "this invite link was already used",
    "expired": "this invite link has expired",
    "unknown": "this invite link is not valid",
}


class _Named(Protocol):
    @property
    def id(self) -> str: ...


class TalkSessionPort(TalkPeer, Protocol):
    """What the routes use of one conversation (``bots.talk.session.TalkSession``)."""

    @property
    def key(self) -> str: ...

    @property
    def language(self) -> str: ...

    @property
    def persona(self) -> _Named: ...

    async def say_text(self, text: str) -> None: ...

    def set_mode(self, mode: Literal["handsfree", "ptt"]) -> None: ...

    def set_talking(self, down: bool) -> None: ...

    def client_state(self, what: str) -> None: ...

    def use_memory(self, memory: Any, viewer_id: str | None) -> None: ...

    async def memory_command(self, command: Literal["show", "forget"]) -> str: ...


class TalkHubPort(Protocol):
    """What the routes use of the conversations (``bots.talk.hub.TalkHub``)."""

    async def open(self, persona: str) -> TalkSessionPort: ...

    def get(self, sid: str, key: str) -> TalkSessionPort | None: ...

    async def close(self, sid: str, reason: str) -> None: ...

    def invite(self, *, persona: str | None = None, uses: int = 1) -> str: ...

    def redeem(self, code: str) -> str | None: ...

    def invite_problem(self, code: str) -> Literal["used", "expired", "unknown"] | None: ...

    def personas_info(self) -> list[dict[str, Any]]: ...

    @property
    def sessions(self) -> Mapping[str, object]: ...


@runtime_checkable
class RetryLater(Protocol):
    """An error that says when to try again (``bots.talk.hub.TalkFull``: all places taken)."""

    retry_after_s: int


TalkAnswer = Callable[[TalkSessionPort, str, str], Awaitable[tuple[str, str]]]
"""Answers a talk page's WebRTC offer: ``(session, sdp, type) -> (sdp, type)``
(``overlays.live.talk_rtc.TalkRTC.answer``); :class:`ValueError` for an offer it cannot use."""


@dataclass(frozen=True, slots=True)
class TalkLimits:
    """Request limits per session (a page makes a handful; a loop making hundreds is cut).

    Attributes:
        offers_per_min: WebRTC offers (connects and reconnects), sustained.
        offer_burst: ... and in a row (a page that reconnects a few times quickly).
        sockets: websockets open at once (a reload opens a new one before the old closes).
        messages_per_s: page-to-server websocket messages, sustained.
        message_burst: ... and in a burst (holding and releasing the talk key quickly).
        memory_per_min: "What do you remember?" / "Forget me" requests, sustained (each is a
            database query).
        memory_burst: ... and in a row.
    """

    offers_per_min: int = 12
    offer_burst: int = 4
    sockets: int = 3
    messages_per_s: float = 5.0
    message_burst: int = 20
    memory_per_min: int = 10
    memory_burst: int = 3


class _Bucket:
    """A token bucket: ``burst`` at once, refilled at ``rate`` per second."""

    __slots__ = ("burst", "clock", "level", "rate", "stamp")

    def __init__(self, *, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.level = float(burst)
        self.stamp = clock()

    def take(self) -> float:
        """Take one; returns 0 when allowed, else the seconds until one is there."""
        now = self.clock()
        self.level = min(self.burst, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.level >= 1.0:
            self.level -= 1.0
            return 0.0
        return (1.0 - self.level) / self.rate


@dataclass(slots=True, eq=False)
class _SessionUse:
    """Requests one session made (for its limits)."""

    offers: _Bucket
    memory: _Bucket
    sockets: int = 0
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    leaving: asyncio.Task[Any] | None = None  # the page said it left; ends unless it is back

    def back(self) -> None:
        """The page came back (a reload's websocket or offer): it has not left."""
        if self.leaving is not None:
            self.leaving.cancel()
            self.leaving = None


@dataclass(frozen=True, slots=True)
class _Access:
    """How a request got in: the studio token, or an invite (its code)."""

    invite: str | None = None


class TalkRoutes:
    """The ``/talk`` page and API; ``server.add_routes(routes.register,
    self_guarded=TALK_PREFIXES)``, and :meth:`aclose` when the server stops.

    Args:
        hub: the conversations; None while ``/talk`` is unavailable (then every route says
            ``unavailable``, 503).
        answer: answers WebRTC offers (:class:`~overlays.live.talk_rtc.TalkRTC`); None:
            no WebRTC (offers get 503; the page can still type).
        authorized: whether a request carries the studio token (``StudioServer.authorized``).
        invites: whether invite codes open the page (``talk.access == "invite"``).
        max_sessions: the cap, shown to the page.
        idle_timeout_s: when an idle session ends, told to the page.
        unavailable: why ``/talk`` is off (shown to token holders only).
        limits: request limits per session.
        memory: the app's long-term memory of viewers (``bots.memory.service.MemoryService``),
            handed to each new session whose page brings a visitor id; None: no memory
            (the page's memory controls say so).
        clock: monotonic clock (limits).
    """

    def __init__(self, *, hub: TalkHubPort | None, answer: TalkAnswer | None,
                 authorized: Callable[[web.Request], bool], invites: bool = False,
                 max_sessions: int = 12, idle_timeout_s: float = 180.0,
                 unavailable: str = "", limits: TalkLimits | None = None,
                 memory: object | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.hub = hub
        self.answer = answer
        self._authorized = authorized
        self.invites = invites
        self.max_sessions = max_sessions
        self.idle_timeout_s = idle_timeout_s
        self.unavailable = unavailable or "private conversations are off on this studio"
        self.limits = limits or TalkLimits()
        self.memory = memory
        self._clock = clock
        self._use: dict[str, _SessionUse] = {}
        self._sockets: set[web.WebSocketResponse] = set()

    def register(self, app: web.Application) -> None:
        """Add the routes to the studio's app (``StudioServer.add_routes``)."""
        app.router.add_get("/talk", self._page)
        app.router.add_get("/api/talk/personas", self._personas)
        app.router.add_post("/api/talk/sessions", self._open)
        app.router.add_post("/api/talk/sessions/{sid}/offer", self._offer)
        app.router.add_get("/api/talk/sessions/{sid}/ws", self._ws)
        app.router.add_post("/api/talk/sessions/{sid}/memory", self._memory)
        app.router.add_delete("/api/talk/sessions/{sid}", self._end)
        app.router.add_post("/api/talk/sessions/{sid}/end", self._end)
        app.router.add_post("/api/talk/invites", self._invite)
        app.on_shutdown.append(self._on_shutdown)

    async def _on_shutdown(self, app: web.Application) -> None:
        # The server waits for running handlers: the pages' websockets must end first.
        await self._close_sockets()

    async def _close_sockets(self) -> None:
        for ws in list(self._sockets):
            await ws.close()

    async def aclose(self) -> None:
        """Close the open websockets and stop their pending commands (server shutdown)."""
        await self._close_sockets()
        tasks = [t for use in self._use.values() for t in use.tasks]
        await cancel_and_wait(tasks)
        self._use.clear()

    # ------------------------------------------------------------------ access

    def _access(self, request: web.Request) -> _Access | str:
        """The access a page or session-making request has, or why it has none."""
        token = request.query.get("token") or request.headers.get("Authorization")
        code = request.query.get("invite")
        if token:
            if self._authorized(request):
                return _Access()
            return "the access token in this link is wrong"
        if code:
            if not self.invites:
                return "invite links are off on this studio (talk.access is 'token')"
            assert self.hub is not None
            problem = self.hub.invite_problem(code) if len(code) <= 256 else "unknown"
            if problem is None:
                return _Access(invite=code)
            return _INVITE_PROBLEMS.get(problem, _INVITE_PROBLEMS["unknown"])
        return "this page needs an invite link or the studio's access token"

    def _session(self, request: web.Request) -> TalkSessionPort | None:
        """The session named in the path if the key fits, else None (a 404, whatever the
        reason: an unknown id and a wrong key look the same)."""
        if self.hub is None:
            return None
        sid = request.match_info.get("sid", "")
        key = request.query.get("key", "")
        if not sid or not key or len(sid) > 64 or len(key) > 128:
            return None
        session = self.hub.get(sid, key)
        # The hub compares keys in constant time; this checks again so a stand-in cannot
        # leak sessions through a careless get().
        if session is None or not hmac.compare_digest(session.key.encode(), key.encode()):
            return None
        return session

    def _use_of(self, sid: str) -> _SessionUse:
        use = self._use.get(sid)
        if use is None:
            if self.hub is not None:  # forget sessions that ended
                for gone in [s for s in self._use if s not in self.hub.sessions]:
                    if not self._use[gone].tasks and not self._use[gone].sockets:
                        del self._use[gone]
            limits, clock = self.limits, self._clock
            use = self._use[sid] = _SessionUse(
                offers=_Bucket(rate=limits.offers_per_min / 60.0, burst=limits.offer_burst,
                               clock=clock),
                memory=_Bucket(rate=limits.memory_per_min / 60.0, burst=limits.memory_burst,
                               clock=clock))
        return use

    # ------------------------------------------------------------------ handlers

    async def _page(self, request: web.Request) -> web.StreamResponse:
        if self.hub is None:
            why = self.unavailable if self._authorized(request) else (
                "private conversations are not available on this studio")
            return _error_page(503, "Talk is not available", why)
        if "session" in request.query and "key" in request.query:
            # A page reloaded mid-conversation (its invite is used up by then).
            key = request.query["key"]
            found = self.hub.get(request.query["session"][:64], key[:128])
            if found is None:
                return _error_page(401, "This conversation has ended",
                                   "the conversation in this link has ended: start a new one")
        else:
            access = self._access(request)
            if isinstance(access, str):
                return _error_page(401, "Cannot open this conversation page", access)
        page = WEB_DIR / "talk.html"
        if not page.is_file():
            return _error_page(503, "Talk page missing",
                               "the talk page is not installed with this vstage")
        return web.FileResponse(page)

    async def _personas(self, request: web.Request) -> web.Response:
        if self.hub is None:
            return _json_error(503, self.unavailable)
        access = self._access(request)
        if isinstance(access, str):
            return _json_error(401, access)
        return web.json_response({"personas": self.hub.personas_info(),
                                  "sessions": len(self.hub.sessions),
                                  "max_sessions": self.max_sessions})

    async def _open(self, request: web.Request) -> web.Response:
        if self.hub is None:
            return _json_error(503, self.unavailable)
        access = self._access(request)
        if isinstance(access, str):
            return _json_error(401, access)
        body, error = await _json_body(request, ("persona", "visitor"))
        if error is not None:
            return error
        persona = body.get("persona")
        if not isinstance(persona, str) or not persona:
            return _json_error(400, "field 'persona' must be a persona id")
        visitor = body.get("visitor")
        if visitor is not None and (not isinstance(visitor, str)
                                    or not _VISITOR.fullmatch(visitor)):
            return _json_error(400, "field 'visitor' must be 32 to 64 lowercase hex digits "
                                    "(the random visitor id the page keeps)")
        known = {str(p["id"]) for p in self.hub.personas_info()}
        if persona not in known:
            return _json_error(404, f"unknown persona {persona[:40]!r}")
        try:
            session = await self.hub.open(persona)
        except KeyError:
            return _json_error(404, f"unknown persona {persona[:40]!r}")
        except VStageError as e:
            if isinstance(e, RetryLater):
                retry = max(1, math.ceil(e.retry_after_s))
                return web.json_response({"error": "full", "retry_after_s": retry},
                                         status=503, headers={"Retry-After": str(retry)})
            raise
        if access.invite is not None:
            # Used up only now that a session exists (a full studio does not eat the link).
            allowed = self.hub.redeem(access.invite)
            if allowed is None or (allowed and allowed != persona):
                await self.hub.close(session.id, "refused")
                if allowed is None:
                    return _json_error(401, "this invite link was used meanwhile")
                return _json_error(403, f"this invite link is for {allowed!r}, not "
                                        f"{persona[:40]!r}")
        if self.memory is not None:
            session.use_memory(self.memory, None if visitor is None else _viewer_id(visitor))
        logger.info("talk: session %s opened with %s (%s%s)", session.id, persona,
                    "invite" if access.invite else "token",
                    ", remembered visitor" if visitor is not None else "")
        return web.json_response({"session": session.id, "key": session.key,
                                  "persona": session.persona.id, "language": session.language,
                                  "idle_timeout_s": self.idle_timeout_s}, status=201)

    async def _offer(self, request: web.Request) -> web.Response:
        session = self._session(request)
        if session is None:
            return _no_session()
        use = self._use_of(session.id)
        use.back()
        wait = use.offers.take()
        if wait:
            return _too_many("too many connection attempts for this conversation", wait)
        body, error = await _json_body(request, ("sdp", "type"))
        if error is not None:
            return error
        sdp, kind = body.get("sdp"), body.get("type")
        if kind != "offer":
            return _json_error(400, "field 'type' must be 'offer'")
        if not isinstance(sdp, str) or len(sdp) > _SDP_MAX or not sdp.startswith("v=0"):
            return _json_error(400, "field 'sdp' is not an SDP offer")
        if self.answer is None:
            return _json_error(503, "WebRTC is off on this studio: type instead")
        try:
            answer_sdp, answer_type = await asyncio.wait_for(
                self.answer(session, sdp, kind), _ANSWER_TIMEOUT_S)
        except ValueError as e:
            return _json_error(400, f"field 'sdp' could not be used: {str(e)[:200]}")
        except TimeoutError:
            logger.warning("talk %s: no answer within %.0f s", session.id, _ANSWER_TIMEOUT_S)
            return _json_error(504, "the conversation's stream did not answer in time")
        except Exception:
            # A broken peer connection must not take the studio down; the page retries.
            logger.exception("talk %s: answering the offer failed", session.id)
            return _json_error(500, "the conversation's stream could not answer")
        return web.json_response({"sdp": answer_sdp, "type": answer_type})

    async def _memory(self, request: web.Request) -> web.Response:
        """The page's "What do you remember?" (``show``) and "Forget me" (``forget``)."""
        session = self._session(request)
        if session is None:
            return _no_session()
        use = self._use_of(session.id)
        wait = use.memory.take()
        if wait:
            return _too_many("too many memory requests for this conversation", wait)
        body, error = await _json_body(request, ("command",))
        if error is not None:
            return error
        command = body.get("command")
        if command not in _MEMORY_COMMANDS:
            return _json_error(400, f"field 'command' must be one of "
                                    f"{', '.join(_MEMORY_COMMANDS)}")
        try:
            text = await session.memory_command("forget" if command == "forget" else "show")
        except VStageError:  # the conversation ended meanwhile
            return _no_session()
        return web.json_response({"command": command, "text": text})

    async def _end(self, request: web.Request) -> web.Response:
        session = self._session(request)
        if session is None:
            return _no_session()
        assert self.hub is not None
        if request.method == "DELETE":  # the End button: now
            await self.hub.close(session.id, "closed")
            return web.Response(status=204)
        # The page's beacon as it goes away. A reload sends it too, then connects again at
        # once: the conversation ends only if the page is not back within the grace time.
        use = self._use_of(session.id)
        if use.leaving is None:
            hub, sid = self.hub, session.id

            async def leave() -> None:
                await asyncio.sleep(_LEAVE_GRACE_S)
                use.leaving = None
                await hub.close(sid, "closed")

            use.leaving = asyncio.create_task(leave(), name=f"talk:{sid}:leaving")
            use.tasks.add(use.leaving)
            use.leaving.add_done_callback(use.tasks.discard)
        return web.Response(status=204)

    async def _invite(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _json_error(401, "making invites needs the studio's access token")
        if self.hub is None:
            return _json_error(503, self.unavailable)
        if not self.invites:
            return _json_error(409, "invite links are off: set talk.access to 'invite' in "
                                    "config/vstage.yaml")
        body, error = await _json_body(request, ("persona", "uses"), empty_ok=True)
        if error is not None:
            return error
        persona, uses = body.get("persona"), body.get("uses", 1)
        if persona is not None:
            known = {str(p["id"]) for p in self.hub.personas_info()}
            if not isinstance(persona, str) or persona not in known:
                return _json_error(400, f"field 'persona': unknown persona {str(persona)[:40]!r}")
        if isinstance(uses, bool) or not isinstance(uses, int) or not 1 <= uses <= _MAX_USES:
            return _json_error(400, f"field 'uses' must be a whole number from 1 to {_MAX_USES}")
        code = self.hub.invite(persona=persona, uses=uses)
        url = f"{request.scheme}://{request.host}/talk?invite={code}"
        return web.json_response({"url": url, "persona": persona, "uses": uses}, status=201)

    # ------------------------------------------------------------------ websocket

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        if session is None:
            return _no_session()
        use = self._use_of(session.id)
        use.back()
        if use.sockets >= self.limits.sockets:
            return _too_many("too many open sockets for this conversation", 5.0)
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=_WS_MESSAGE_MAX)
        await ws.prepare(request)
        use.sockets += 1
        self._sockets.add(ws)
        pump: asyncio.Task[Any] = asyncio.create_task(
            self._pump(session, ws), name=f"talk:{session.id}:ws-out")
        messages = _Bucket(rate=self.limits.messages_per_s, burst=self.limits.message_burst,
                           clock=self._clock)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    break
                if msg.type != WSMsgType.TEXT:
                    continue
                if messages.take():
                    await _notice(ws, "warn", "too many messages: slow down")
                    continue
                try:
                    problem = self._command(session, use, msg.data)
                except (ValueError, TypeError, VStageError) as e:
                    problem = str(e)[:200]  # the session refused it (e.g. it has ended)
                if problem:
                    await _notice(ws, "error", problem)
        finally:
            use.sockets -= 1
            self._sockets.discard(ws)
            await cancel_and_wait([pump])
        return ws

    async def _pump(self, session: TalkSessionPort, ws: web.WebSocketResponse) -> None:
        """The session's messages to the page; the socket closes after ``ended``."""
        try:
            async for message in session.subscribe():
                if ws.closed:
                    return
                await ws.send_str(json.dumps(message))
                if message.get("type") == "ended":
                    break
        except ConnectionError:
            return  # the page went away
        except Exception:
            logger.exception("talk %s: sending to the page failed", session.id)
        await ws.close()

    def _command(self, session: TalkSessionPort, use: _SessionUse, data: str) -> str | None:
        """Carry out one page command; returns what was wrong with it, if anything."""
        try:
            msg = json.loads(data)
        except (json.JSONDecodeError, RecursionError):
            return "messages must be JSON objects"
        if not isinstance(msg, dict):
            return "messages must be JSON objects"
        kind = msg.get("type")
        if kind == "text":
            text = msg.get("text")
            if not isinstance(text, str) or not text.strip():
                return "'text' needs a non-empty 'text' string"
            if len(text) > _TEXT_MAX:
                return f"'text' is longer than {_TEXT_MAX} characters"
            task = asyncio.create_task(self._say(session, text), name=f"talk:{session.id}:text")
            use.tasks.add(task)
            task.add_done_callback(use.tasks.discard)
        elif kind == "mode":
            mode = msg.get("mode")
            if mode == "handsfree":
                session.set_mode("handsfree")
            elif mode == "ptt":
                session.set_mode("ptt")
            else:
                return f"'mode' must be one of {', '.join(_MODES)}"
        elif kind == "talking":
            down = msg.get("down")
            if not isinstance(down, bool):
                return "'talking' needs 'down': true or false"
            session.set_talking(down)
        elif kind == "client":
            state = msg.get("state")
            if state not in _CLIENT_STATES:
                return f"'client' needs 'state': one of {', '.join(_CLIENT_STATES)}"
            session.client_state(state)
        else:
            return f"unknown message type {str(kind)[:40]!r} (text, mode, talking, client)"
        return None

    @staticmethod
    async def _say(session: TalkSessionPort, text: str) -> None:
        try:
            await session.say_text(text)
        except asyncio.CancelledError:
            raise
        except VStageError as e:  # the conversation ended meanwhile: the page is told so
            logger.info("talk %s: a typed line was not taken: %s", session.id, e)
        except Exception:
            logger.exception("talk %s: a typed line failed", session.id)


def _viewer_id(visitor: str) -> str:
    """The visitor's name to the memory: a SHA-256 of the page's id (domain-separated), so
    the database never holds the id the browser sends."""
    return hashlib.sha256(b"vstage-talk-visitor:" + visitor.encode("ascii")).hexdigest()[:32]


# ---------------------------------------------------------------------- responses


def _json_error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def _no_session() -> web.Response:
    return _json_error(404, "no such conversation (it ended, or the link is wrong)")


def _too_many(reason: str, wait: float) -> web.Response:
    retry = max(1, math.ceil(wait))
    return web.json_response({"error": reason, "retry_after_s": retry}, status=429,
                             headers={"Retry-After": str(retry)})


async def _notice(ws: web.WebSocketResponse, level: str, text: str) -> None:
    if not ws.closed:
        await ws.send_str(json.dumps({"type": "notice", "level": level, "text": text}))


def _error_page(status: int, title: str, reason: str) -> web.Response:
    """The refusal page (``web/talk_error.html``) with ``title`` and ``reason`` in it."""
    try:
        template = (WEB_DIR / "talk_error.html").read_text(encoding="utf-8")
    except OSError:
        template = "<!doctype html><title>{{title}}</title><h1>{{title}}</h1><p>{{reason}}</p>"
    body = (template.replace("{{title}}", html.escape(title))
            .replace("{{reason}}", html.escape(reason[:1].upper() + reason[1:])))
    return web.Response(text=body, status=status, content_type="text/html")


async def _json_body(request: web.Request, fields: tuple[str, ...], *,
                     empty_ok: bool = False) -> tuple[dict[str, Any], web.Response | None]:
    """The request's JSON object (only ``fields`` in it), or the 400 response saying why."""
    if empty_ok and not await request.read():
        return {}, None
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}, _json_error(400, "body must be JSON")
    except RecursionError:
        return {}, _json_error(400, "body is nested too deeply")
    if not isinstance(body, dict):
        return {}, _json_error(400, "body must be a JSON object")
    unknown = sorted(k for k in body if k not in fields)
    if unknown:
        return {}, _json_error(400, f"unknown field {unknown[0][:40]!r} (fields: "
                                    f"{', '.join(fields)})")
    return body, None
