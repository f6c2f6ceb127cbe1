"""aiohttp server behind the studio page and the browser overlays.

Every page, socket, clip and control endpoint needs the per-install token, given as
``?token=`` (overlay URLs for OBS carry it) or ``Authorization: Bearer``. The server binds
127.0.0.1 unless configured otherwise. It also implements the :class:`~overlays.stage.Stage`
interface: the stage events it is handed (chat lines, sentences as they are performed, clip
files for the fallback player, replies finished or cancelled, the show degraded) are pushed to
every connected page over a websocket. The pages play each persona's live stream over WebRTC;
``POST /api/live/offer`` is its signalling endpoint (an SDP offer in, the answer of the injected
:data:`LiveAnswer` out).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import SecretStr

from avatar_engine.types import Clip
from overlays.stage import (
    ChatShown,
    ClipReady,
    Performed,
    ReplyCancelled,
    ReplyFinished,
    ShowDegraded,
    StageEvent,
    Transcript,
)

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
_CLIP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,80}\.(webm|mp4)$")
_PERSONA_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
# Who a line typed in the studio comes from; the page and the API default to "viewer", so
# chat rules (links, spam) apply unless the streamer picks a role.
STUDIO_ROLES = ("viewer", "subscriber", "vip", "mod", "broadcaster")
_CHAT_FIELDS = ("text", "user", "persona", "role")


@dataclass(frozen=True, slots=True)
class ChatResult:
    """What became of a line typed in the studio."""

    accepted: bool
    trace_id: str | None = None
    reason: str | None = None


ChatHandler = Callable[[str, str, str | None, str], Awaitable[ChatResult]]

LiveAnswer = Callable[[str, str, str], Awaitable[tuple[str, str]]]
"""Answers a page's WebRTC offer for a persona's live stream: ``(persona, sdp, type) ->
(sdp, type)`` (``overlays.live.webrtc.LiveRTC.answer``). Raises :class:`KeyError` for a persona
without a stream and :class:`ValueError` for an offer it cannot use."""

_OFFER_FIELDS = ("persona", "sdp", "type")
_OFFER_MAX_SDP = 32 * 1024
# aiortc gathers loopback candidates in milliseconds; a stuck answer must not hold a page forever.
_ANSWER_TIMEOUT_S = 15.0


class StudioServer:
    """The studio web server; use as ``async with StudioServer(...) as studio``.

    Args:
        host: address to bind; 127.0.0.1 by default.
        port: TCP port; 0 picks a free one (see :attr:`port` after start).
        token: the per-install access token.
        clips_dir: folder holding ``<persona>/<clip>.webm|mp4``.
        personas: persona id -> display name, in display order.
        on_chat: called with (user, text, persona id or None, role) for lines typed in the
            studio; role is one of :data:`STUDIO_ROLES`.
        metrics: optional callable returning (body, content type) for ``/metrics``.
        languages: persona id -> the language it speaks (BCP 47 / ISO 639-1), shown in the
            persona pickers.
        live: answers WebRTC offers for the personas' live streams; None while live streaming
            is off (the pages then use the clip player). See :meth:`set_live`.
    """

    name = "studio"
    wants: frozenset[type[StageEvent]] = frozenset(
        {ChatShown, Performed, ClipReady, ReplyFinished, ReplyCancelled, ShowDegraded,
         Transcript})

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        token: SecretStr,
        clips_dir: Path,
        personas: dict[str, str],
        on_chat: ChatHandler | None = None,
        metrics: Callable[[], tuple[bytes, str]] | None = None,
        history: int = 50,
        live: LiveAnswer | None = None,
        languages: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._token = token
        self._clips_dir = clips_dir
        self._personas = personas
        self._languages = dict(languages or {})
        self._on_chat = on_chat
        self._metrics = metrics
        self._traces: Callable[[int], list[dict[str, Any]]] | None = None
        self._queues: Callable[[], dict[str, list[dict[str, Any]]]] | None = None
        self._health: Callable[[], list[dict[str, Any]]] | None = None
        self._sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        self._recent: deque[dict[str, Any]] = deque(maxlen=history)
        self._idle: dict[str, dict[str, str]] = {}
        self._live = live
        self._degraded = False
        # Which personas each connected page plays from clip files (the fallback player):
        # the clip recorder encodes only while some page needs clips.
        self._clip_pages: dict[int, frozenset[str]] = {}
        self._runner: web.AppRunner | None = None
        self._sends: set[asyncio.Task] = set()
        # Path prefixes whose handlers check access themselves (invite links, session keys).
        self._self_guarded: list[str] = []
        self.app = self._build_app()

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> StudioServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._runner is not None:
            return
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        logger.info("studio listening on http://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is None:
            return
        for ws in list(self._sockets):
            await ws.close()
        await self._runner.cleanup()
        self._runner = None

    # ------------------------------------------------------------------ URLs

    def url(self, page: str = "studio", **params: str) -> str:
        """A page URL with the token in it (print it; it is the key to the studio)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        query = "&".join(
            f"{k}={v}" for k, v in {"token": self._token.get_secret_value(), **params}.items()
        )
        return f"http://{host}:{self.port}/{page}?{query}"

    def set_chat_handler(self, on_chat: ChatHandler) -> None:
        """Route lines typed in the studio to ``on_chat`` (the studio chat adapter)."""
        self._on_chat = on_chat

    def set_traces(self, traces: Callable[[int], list[dict[str, Any]]]) -> None:
        """Serve the last traces at ``/api/traces?n=N``."""
        self._traces = traces

    def set_queues(self, queues: Callable[[], dict[str, list[dict[str, Any]]]]) -> None:
        """Serve each persona's queue (persona id -> rows in answer order) at ``/api/queue``."""
        self._queues = queues

    def set_idle(self, persona: str, files: dict[str, Path]) -> None:
        """Register a persona's idle loop (format -> file inside clips_dir)."""
        self._idle[persona] = {fmt: self._clip_url(p) for fmt, p in files.items()}

    def set_live(self, answer: LiveAnswer | None) -> None:
        """Answer ``POST /api/live/offer`` with ``answer`` (None: live streaming is off, 503)."""
        self._live = answer

    def set_health(self, health: Callable[[], list[dict[str, Any]]]) -> None:
        """Serve the platform adapters' health (connecting, up, retrying, down with the
        reason and the fix) at ``/api/health``."""
        self._health = health

    def add_routes(self, register: Callable[[web.Application], None], *,
                   self_guarded: tuple[str, ...] = ()) -> None:
        """Let a feature add its pages and endpoints (call before :meth:`start`).

        Args:
            register: adds routes to the app.
            self_guarded: path prefixes whose handlers check access themselves (with
                :meth:`authorized` or a key of their own); every other route needs the token.
        """
        if self._runner is not None:
            raise RuntimeError("add routes before the server starts")
        register(self.app)
        self._self_guarded.extend(self_guarded)

    def authorized(self, request: web.Request) -> bool:
        """Whether ``request`` carries the studio token (``?token=`` or a bearer header)."""
        return self._authorized(request)

    def clips_wanted(self) -> bool:
        """Whether a connected page plays some persona from clip files right now (no WebRTC,
        live streaming off or failing, ``&mode=clips``): the clip recorder's ``needed``."""
        return any(self._clip_pages.values())

    # ------------------------------------------------------------------ Stage interface

    async def handle(self, event: StageEvent) -> None:
        """Push one stage event to every connected page (never waits for a page)."""
        if isinstance(event, ChatShown):
            self._broadcast({"type": "chat", "persona": event.persona, "user": event.user,
                             "text": event.text, "reply_id": event.reply_id})
        elif isinstance(event, Performed):
            # The live stream plays it now: pages time subtitles and the chat log from this.
            perf = event.performance
            self._broadcast({"type": "performed", "persona": perf.persona,
                             "reply_id": perf.reply_id, "index": perf.index, "text": perf.text,
                             "duration": round(perf.duration, 3)})
        elif isinstance(event, ClipReady):
            self._broadcast(self._clip_message(event.persona, event.clip))
        elif isinstance(event, ReplyFinished):
            self._broadcast({"type": "reply_done", "persona": event.persona,
                             "reply_id": event.reply_id, "text": event.text})
        elif isinstance(event, ReplyCancelled):
            self._broadcast({"type": "reply_cancelled", "persona": event.persona,
                             "reply_id": event.reply_id})
        elif isinstance(event, ShowDegraded):
            self._degraded = event.on
            self._broadcast({"type": "degraded", "on": event.on})
        elif isinstance(event, Transcript):
            # The chat log shows a teacher's correction and gloss under the answer.
            self._broadcast({"type": "transcript", "persona": event.persona,
                             "reply_id": event.reply_id, "user": event.user,
                             "said": event.said, "answer": event.answer,
                             "correction": event.correction, "gloss": event.gloss,
                             "language": event.language, "platform": event.platform,
                             "replay": event.replay})

    def _clip_message(self, persona: str, clip: Clip) -> dict[str, Any]:
        return {
            "type": "clip",
            "persona": persona,
            "reply_id": clip.reply_id,
            "index": clip.index,
            "text": clip.text,
            "duration": round(clip.duration, 3),
            "urls": {f.format: self._clip_url(f.path) for f in clip.files},
        }

    def notice(self, persona: str | None, text: str, *, level: str = "info") -> None:
        """Show a short status line (rejections, errors) on the studio page."""
        self._broadcast({"type": "notice", "persona": persona, "level": level, "text": text})

    # ------------------------------------------------------------------ internals

    def _clip_url(self, path: Path) -> str:
        rel = path.resolve().relative_to(self._clips_dir.resolve())
        return f"/clips/{rel.as_posix()}"

    def _broadcast(self, msg: dict[str, Any]) -> None:
        if msg["type"] in ("chat", "clip", "reply_done", "reply_cancelled", "notice",
                           "transcript"):
            self._recent.append(msg)
        data = json.dumps(msg)
        for ws in list(self._sockets):
            if not ws.closed:
                # send_str only queues on the transport; a slow page cannot stall the show.
                task = asyncio.ensure_future(ws.send_str(data))
                self._sends.add(task)
                task.add_done_callback(self._sent)

    def _authorized(self, request: web.Request) -> bool:
        given = request.query.get("token", "")
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            given = header[7:]
        expected = self._token.get_secret_value()
        return bool(given) and hmac.compare_digest(given.encode(), expected.encode())

    def _build_app(self) -> web.Application:
        @web.middleware
        async def guard(request: web.Request, handler):
            public = (request.path in ("/", "/favicon.ico")
                      or request.path.startswith("/static/")
                      or any(request.path.startswith(p) for p in self._self_guarded))
            if not public and not self._authorized(request):
                return web.json_response(
                    {"error": "missing or wrong token: use the URL vstage printed at start-up"},
                    status=401,
                )
            resp = await handler(request)
            resp.headers.setdefault("Cache-Control", "no-store")
            resp.headers.setdefault("X-Content-Type-Options", "nosniff")
            return resp

        app = web.Application(middlewares=[guard], client_max_size=64 * 1024)
        app.router.add_get("/", self._index)
        app.router.add_get("/studio", self._page("studio.html"))
        app.router.add_get("/overlay", self._page("overlay.html"))
        app.router.add_get("/overlay/chat", self._page("chat.html"))
        app.router.add_get("/overlay/queue", self._page("queue.html"))
        app.router.add_get("/api/queue", self._queue_endpoint)
        app.router.add_static("/static/", WEB_DIR, show_index=False)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/api/state", self._state)
        app.router.add_post("/api/chat", self._chat)
        app.router.add_post("/api/live/offer", self._live_offer)
        app.router.add_get("/clips/{persona}/{name}", self._clip)
        app.router.add_get("/metrics", self._metrics_endpoint)
        app.router.add_get("/api/traces", self._traces_endpoint)
        app.router.add_get("/api/health", self._health_endpoint)
        return app

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(
            text="vstage studio: open the studio URL printed in the terminal "
            "(it carries your access token).\n",
            content_type="text/plain",
        )

    def _page(self, name: str):
        async def handler(request: web.Request) -> web.FileResponse:
            return web.FileResponse(WEB_DIR / name)

        return handler

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "personas": [{"id": k, "name": v, "language": self._languages.get(k)}
                             for k, v in self._personas.items()],
                "idle": self._idle,
                "live": self._live is not None,
                "degraded": self._degraded,
                "recent": list(self._recent)[-20:],
            }
        )

    async def _chat(self, request: web.Request) -> web.Response:
        body, error = await _json_object(request)
        if error is not None:
            return error
        unknown = sorted(k for k in body if k not in _CHAT_FIELDS)
        if unknown:
            return web.json_response(
                {"error": f"unknown field {unknown[0][:40]!r} (fields: {', '.join(_CHAT_FIELDS)})"},
                status=400)
        for field in _CHAT_FIELDS:
            if body.get(field) is not None and not isinstance(body[field], str):
                return web.json_response({"error": f"field {field!r} must be a string"},
                                         status=400)
        text, user = body.get("text"), body.get("user") or "viewer"
        persona, role = body.get("persona"), body.get("role") or "viewer"
        if text is None:
            return web.json_response({"error": "field 'text' must be a string"}, status=400)
        if not 0 < len(user.strip()) <= 40:
            return web.json_response({"error": "field 'user' must be 1-40 characters"},
                                     status=400)
        if persona is not None and persona not in self._personas:
            return web.json_response({"error": f"field 'persona': unknown persona {persona!r}"},
                                     status=400)
        if role not in STUDIO_ROLES:
            return web.json_response(
                {"error": f"field 'role' must be one of {', '.join(STUDIO_ROLES)}"}, status=400)
        if self._on_chat is None:
            return web.json_response({"error": "chat is not connected yet"}, status=503)
        result = await self._on_chat(user.strip(), text, persona, role)
        if not result.accepted:
            return web.json_response({"error": result.reason}, status=422)
        return web.json_response({"trace_id": result.trace_id}, status=202)

    async def _live_offer(self, request: web.Request) -> web.Response:
        body, error = await _json_object(request)
        if error is not None:
            return error
        unknown = sorted(k for k in body if k not in _OFFER_FIELDS)
        if unknown:
            return _bad(f"unknown field {unknown[0][:40]!r} (fields: {', '.join(_OFFER_FIELDS)})")
        for field in _OFFER_FIELDS:
            if not isinstance(body.get(field), str) or not body[field]:
                return _bad(f"field {field!r} must be a non-empty string")
        persona, sdp, kind = body["persona"], body["sdp"], body["type"]
        if kind != "offer":
            return _bad("field 'type' must be 'offer'")
        if len(sdp) > _OFFER_MAX_SDP or not sdp.startswith("v=0"):
            return _bad("field 'sdp' is not an SDP offer")
        if persona not in self._personas:
            return web.json_response({"error": f"unknown persona {persona[:40]!r}"}, status=404)
        if self._live is None:
            return web.json_response({"error": "live streaming is off: use the clip player"},
                                     status=503)
        try:
            answer_sdp, answer_type = await asyncio.wait_for(
                self._live(persona, sdp, kind), _ANSWER_TIMEOUT_S)
        except KeyError:
            return web.json_response({"error": f"persona {persona!r} has no live stream"},
                                     status=404)
        except ValueError as e:
            return _bad(f"field 'sdp' could not be used: {str(e)[:200]}")
        except TimeoutError:
            logger.warning("live offer for %s: no answer within %.0f s", persona,
                           _ANSWER_TIMEOUT_S)
            return web.json_response({"error": "the live stream did not answer in time"},
                                     status=504)
        except Exception:
            # A broken peer connection must not take the studio down; the page retries.
            logger.exception("live offer for %s failed", persona)
            return web.json_response({"error": "the live stream could not answer"}, status=500)
        return web.json_response({"sdp": answer_sdp, "type": answer_type})

    async def _clip(self, request: web.Request) -> web.StreamResponse:
        persona, name = request.match_info["persona"], request.match_info["name"]
        if not _PERSONA_ID.match(persona) or not _CLIP_NAME.match(name):
            raise web.HTTPNotFound()
        path = self._clips_dir / persona / name
        if not path.is_file():
            raise web.HTTPNotFound()
        resp = web.FileResponse(path)
        resp.content_type = "video/webm" if name.endswith(".webm") else "video/mp4"
        return resp

    async def _metrics_endpoint(self, request: web.Request) -> web.Response:
        if self._metrics is None:
            raise web.HTTPNotFound()
        body, ctype = self._metrics()
        return web.Response(body=body, headers={"Content-Type": ctype})

    async def _queue_endpoint(self, request: web.Request) -> web.Response:
        queues = self._queues() if self._queues is not None else {}
        # Viewers' ids and trace ids stay private; an overlay shows names and previews.
        public = {
            pid: [{k: row[k] for k in ("user", "platform", "kind", "text", "waited_s", "paid")
                   if k in row} for row in rows]
            for pid, rows in queues.items()
        }
        return web.json_response({"queues": public})

    async def _health_endpoint(self, request: web.Request) -> web.Response:
        adapters = self._health() if self._health is not None else []
        return web.json_response({"adapters": adapters})

    async def _traces_endpoint(self, request: web.Request) -> web.Response:
        if self._traces is None:
            raise web.HTTPNotFound()
        try:
            n = max(1, min(500, int(request.query.get("n", "20"))))
        except ValueError:
            return web.json_response({"error": "n must be a number"}, status=400)
        return web.json_response({"traces": self._traces(n)})

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    break
                if msg.type == WSMsgType.TEXT:
                    self._page_said(id(ws), msg.data)
        finally:
            self._sockets.discard(ws)
            self._clip_pages.pop(id(ws), None)
        return ws

    def _page_said(self, page: int, data: str) -> None:
        """Pages only tell which personas they play from clips; anything else is ignored."""
        if len(data) > 4096:
            return
        try:
            msg = json.loads(data)
        except (json.JSONDecodeError, RecursionError):
            return
        if isinstance(msg, dict) and msg.get("type") == "clips" and isinstance(
                msg.get("personas"), list):
            self._clip_pages[page] = frozenset(
                p for p in msg["personas"] if isinstance(p, str) and p in self._personas)

    def _sent(self, task: asyncio.Task) -> None:
        self._sends.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.debug("dropped a message to a closed page: %s", task.exception())


def _bad(reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=400)


async def _json_object(request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
    """The request's JSON object body, or the 400 response saying why there is none."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}, _bad("body must be JSON")
    except RecursionError:  # [[[[...]]]]: the parser gives up; so do we, politely
        return {}, _bad("body is nested too deeply")
    if not isinstance(body, dict):
        return {}, _bad("body must be a JSON object")
    return body, None
