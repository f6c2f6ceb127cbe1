"""EventSub over WebSocket, read by vstage itself: Twitch's reconnect hand-over without loss,
recovery driven by the keepalive setting, odd frames skipped with one log line, and each
notification handed on once however many sockets carried it.

twitchio 3 still owns the tokens and builds the event models; its ``Websocket`` is not used.
On ``session_reconnect`` it stops reading the old socket while it opens the new one and then
closes the old one unread, so everything Twitch sends in that window is lost; it always asks
for a 10 s keepalive; a frame without ``metadata`` or a revocation with a status it does not
know ends its read task without a log line; and it looks at silence only once per keepalive
period. What this module does instead follows Twitch's reference ("Handling WebSocket
Events" and "WebSocket Reference", dev.twitch.tv/docs/eventsub/):

- *Reconnect message*: "You should not close the old connection until you receive a Welcome
  message on the new connection"; "the old connection receives events up until you connect
  to the new URL and receive the welcome message". Both sockets are read until the new one
  is welcomed; the old one is then drained (read until it falls quiet) and closed by us, as
  Twitch expects (else it closes it with 4004).
- *Keepalive message*: "If your client doesn't receive an event or keepalive message for
  longer than keepalive_timeout_seconds, you should assume the connection is lost and
  reconnect". ``keepalive_timeout_seconds`` is sent in the URL; silence past the welcome's
  value plus :attr:`EventSubPolicy.silence_grace_s` opens a new session and subscribes again.
- *Which events is my WebSocket subscribed to?*: a lost session's subscriptions are disabled,
  so a new session (not a reconnect) subscribes to each again.
- *Revocation message*: Twitch sends it once per subscription; the subscription is forgotten
  and :class:`Revocation` goes to the adapter, which decides whether subscribing again makes
  sense (:attr:`Revocation.permanent`).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from bots.adapters.twitch.auth import TwitchError
from vstage_core.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

WSS = "wss://eventsub.wss.twitch.tv/ws"  # read at use time: tests point it at a stand-in
# Revocation statuses after which the same subscription would be refused again: the user
# revoked vstage's authorization, the user is gone, the type/version is withdrawn (Twitch's
# WebSocket Reference, "Revocation message"); the bot was banned from the chat (twitchio 3.0.1
# added this status Twitch sends for channel.chat.*)
PERMANENT_REVOCATIONS = frozenset({
    "authorization_revoked", "user_removed", "version_removed", "chat_user_banned",
})
# Twitch's close codes (WebSocket Reference, "Close message")
CLOSE_REASONS = {
    4000: "internal server error", 4001: "client sent inbound traffic",
    4002: "client failed ping-pong", 4003: "connection unused",
    4004: "reconnect grace time expired", 4005: "network timeout", 4006: "network error",
    4007: "invalid reconnect",
}


class HelixLike(Protocol):
    """What a session needs to create subscriptions: :class:`~bots.adapters.twitch.auth.Helix`."""

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      json_body: dict[str, Any] | None = None) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class EventSubPolicy:
    """Timings of the WebSocket layer (tests pass short ones).

    Attributes:
        silence_grace_s: how long past ``keepalive_timeout_seconds`` silence is tolerated
            before the session counts as lost (network jitter).
        welcome_timeout_s: the longest wait for a welcome after connecting.
        drain_idle_s: after a reconnect hand-over, the old socket is read until it has been
            quiet this long, then closed.
        drain_max_s: and never longer than this.
        backoff_s: first delay between attempts to open a new session; doubles (jittered)
            up to ``backoff_max_s``.
        backoff_max_s: the longest delay between attempts.
        resubscribe_delay_s: wait before subscribing again after a revocation.
    """

    silence_grace_s: float = 3.0
    welcome_timeout_s: float = 10.0
    drain_idle_s: float = 0.5
    drain_max_s: float = 5.0
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    resubscribe_delay_s: float = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscription:
    """One EventSub subscription as requested: type, version, condition."""

    type: str
    version: str
    condition: Mapping[str, str]

    @property
    def key(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        return self.type, self.version, tuple(sorted(self.condition.items()))

    @classmethod
    def of(cls, payload: Any) -> Subscription:
        """From a twitchio subscription payload (``type``, ``version``, ``condition``)."""
        kind = getattr(payload.type, "value", payload.type)
        return cls(type=str(kind), version=str(payload.version),
                   condition={str(k): str(v) for k, v in dict(payload.condition).items()})


@dataclass(frozen=True, slots=True, kw_only=True)
class Revocation:
    """Twitch revoked a subscription (it sends this once); ``status`` says why."""

    subscription: Subscription
    status: str
    subscription_id: str = ""
    user_id: str = ""  # whose session held it

    @property
    def type(self) -> str:
        return self.subscription.type

    @property
    def permanent(self) -> bool:
        """Subscribing again would be refused (see :data:`PERMANENT_REVOCATIONS`)."""
        return self.status in PERMANENT_REVOCATIONS


@dataclass(eq=False)
class _Connection:
    """One WebSocket connection and what its welcome said."""

    url: str
    http: aiohttp.ClientSession
    ws: aiohttp.ClientWebSocketResponse
    session_id: str | None = None
    keepalive_s: float | None = None
    welcomed: asyncio.Event = field(default_factory=asyncio.Event)
    last_frame: float = field(default_factory=time.monotonic)
    retiring: bool = False  # superseded by a reconnect: drained, then closed
    retired_at: float = 0.0
    deadline: asyncio.Timeout | None = None
    reader: asyncio.Task[None] | None = None

    def __str__(self) -> str:
        return self.session_id or "(not welcomed)"


class EventSubSession:
    """The EventSub WebSocket session of one user token (Twitch wants every subscription on a
    socket made with the same user's token). Keeps its subscriptions through reconnects and
    lost connections.

    Args:
        user_id: whose token creates the subscriptions.
        helix: Helix requests with that user's token.
        keepalive_s: asked of Twitch as ``keepalive_timeout_seconds`` (10-600).
        on_frame: called with each notification or revocation message (parsed JSON) and the
            session; never with anything malformed.
        counts: where to count what happened (the adapter's counter).
        policy: timings.
    """

    def __init__(self, *, user_id: str, helix: HelixLike, keepalive_s: int,
                 on_frame: Callable[[dict[str, Any], EventSubSession], None],
                 counts: collections.Counter[str], policy: EventSubPolicy) -> None:
        self.user_id = user_id
        self.helix = helix
        self.keepalive_s = max(10, min(int(keepalive_s), 600))
        self._on_frame = on_frame
        self.counts = counts
        self.policy = policy
        self.subscriptions: dict[tuple, Subscription] = {}
        self._ids: dict[str, tuple] = {}  # Twitch's subscription id -> key
        self._current: _Connection | None = None
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._open_lock = asyncio.Lock()
        self._recovering: asyncio.Task[None] | None = None
        self._handing_over = False
        self._closed = False

    @property
    def session_id(self) -> str | None:
        return self._current.session_id if self._current is not None else None

    @property
    def url(self) -> str:
        return f"{WSS}?keepalive_timeout_seconds={self.keepalive_s}"

    # ------------------------------------------------------------------ lifecycle

    async def aclose(self) -> None:
        self._closed = True
        await cancel_and_wait(list(self._tasks))
        for conn in list(self._connections):
            await self._close(conn)
        self._current = None

    async def _ready(self) -> _Connection:
        """The welcomed current connection, opened (or waited for) as needed."""
        async with self._open_lock:
            if self._recovering is not None and not self._recovering.done():
                await asyncio.shield(self._recovering)
            if self._current is None:
                self._current = await self._open(self.url)
            return self._current

    async def subscribe(self, sub: Subscription) -> dict[str, Any]:
        """Create ``sub`` on this session (Helix ``POST eventsub/subscriptions``) and keep it
        through reconnects. A 409 (it exists already) counts as done.

        Raises:
            TwitchError: Twitch refused it.
        """
        conn = await self._ready()
        self.subscriptions[sub.key] = sub
        try:
            return await self._create(sub, conn)
        except BaseException:
            self.subscriptions.pop(sub.key, None)
            raise

    async def _create(self, sub: Subscription, conn: _Connection) -> dict[str, Any]:
        body = {"type": sub.type, "version": sub.version, "condition": dict(sub.condition),
                "transport": {"method": "websocket", "session_id": conn.session_id}}
        try:
            result = await self.helix.request("POST", "eventsub/subscriptions", json_body=body)
        except TwitchError as e:
            if e.status == 409:  # "A subscription already exists" (Create EventSub Subscription)
                return {}
            raise
        for item in result.get("data") or []:
            if isinstance(item, dict) and item.get("id"):
                self._ids[str(item["id"])] = sub.key
        return result

    # ------------------------------------------------------------------ connections

    async def _open(self, url: str) -> _Connection:
        """Connect to ``url`` and wait for its welcome (the reader runs from the start)."""
        http = aiohttp.ClientSession()
        try:
            ws = await http.ws_connect(url, autoping=True, heartbeat=None)
        except BaseException:
            await http.close()
            raise
        conn = _Connection(url=url, http=http, ws=ws)
        self._connections.add(conn)
        conn.reader = self._spawn(self._read(conn), name=f"twitch:eventsub:{self.user_id}:read")
        try:
            async with asyncio.timeout(self.policy.welcome_timeout_s):
                await conn.welcomed.wait()
        except BaseException:
            await self._close(conn)
            raise
        return conn

    async def _close(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        if self._current is conn:
            self._current = None
        reader = conn.reader
        if reader is not None and reader is not asyncio.current_task() and not reader.done():
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        try:
            await conn.ws.close()
        except Exception:  # already gone: nothing to tell Twitch
            pass
        await conn.http.close()

    def _spawn(self, coro: Any, *, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _deadline(self, conn: _Connection) -> float:
        """When silence on ``conn`` ends it (loop time)."""
        loop_now, now = asyncio.get_running_loop().time(), time.monotonic()
        if conn.retiring:
            quiet = max(conn.last_frame, conn.retired_at) + self.policy.drain_idle_s
            until = min(quiet, conn.retired_at + self.policy.drain_max_s)
        elif conn.session_id is None:
            until = conn.last_frame + self.policy.welcome_timeout_s
        else:
            keepalive = conn.keepalive_s or self.keepalive_s
            until = conn.last_frame + keepalive + self.policy.silence_grace_s
        return loop_now + (until - now)

    async def _read(self, conn: _Connection) -> None:
        """Read ``conn`` until it closes, falls silent, or (retiring) has been drained."""
        reason = "closed"
        try:
            while True:
                try:
                    async with asyncio.timeout_at(self._deadline(conn)) as deadline:
                        conn.deadline = deadline
                        msg = await conn.ws.receive()
                except TimeoutError:
                    if conn.retiring or self._deadline(conn) > asyncio.get_running_loop().time():
                        if conn.retiring:
                            reason = "drained"
                            break
                        continue  # the deadline moved (a retiring socket's did)
                    keepalive = conn.keepalive_s or self.keepalive_s
                    reason = (f"no message for {keepalive + self.policy.silence_grace_s:.0f} s "
                              f"(keepalive {keepalive:.0f} s)")
                    break
                finally:
                    conn.deadline = None
                if msg.type == aiohttp.WSMsgType.TEXT:
                    conn.last_frame = time.monotonic()
                    self._frame(conn, msg.data)
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                                  aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    code = conn.ws.close_code
                    reason = f"closed by Twitch ({code} {CLOSE_REASONS.get(code or 0, '')})"
                    break
                else:  # binary frames are not part of the protocol
                    self._skip(conn, f"a {msg.type.name} frame", "")
        finally:
            if not self._closed:
                self._ended(conn, reason.strip())

    def _ended(self, conn: _Connection, reason: str) -> None:
        """``conn`` stopped being read: close it; if it was the live one, recover."""
        was_current = self._current is conn and not conn.retiring
        self._spawn(self._close(conn), name=f"twitch:eventsub:{self.user_id}:close")
        if conn.retiring:
            logger.debug("twitch: old EventSub socket %s closed after the reconnect (%s)",
                         conn, reason)
            return
        if not conn.welcomed.is_set() or not was_current:
            return  # a connection still being opened: its opener sees the failure
        if self._handing_over:
            return  # the new socket is on its way; the hand-over recovers if it fails
        self._lost(reason, conn)

    def _lost(self, reason: str, conn: _Connection | None = None) -> None:
        if self._current is conn:
            self._current = None
        if self._closed or (self._recovering is not None and not self._recovering.done()):
            return  # a recovery under way opens the next session
        self.counts["sessions_lost"] += 1
        if not self.subscriptions:
            logger.info("twitch: EventSub session %s ended (%s); nothing to subscribe to", conn,
                        reason)
            return
        logger.warning("twitch: EventSub session %s lost (%s); opening a new session and "
                       "subscribing to %d type(s) again", conn, reason, len(self.subscriptions))
        self._recovering = self._spawn(self._recover(), name=f"twitch:eventsub:{self.user_id}"
                                                             ":recover")

    async def _recover(self) -> None:
        delay = self.policy.backoff_s
        while not self._closed:
            try:
                conn = await self._open(self.url)
            except Exception as e:
                logger.warning("twitch: cannot open an EventSub session (%s); retrying in "
                               "%.1f s", e or type(e).__name__, delay)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self.policy.backoff_max_s)
                continue
            self._current = conn
            for sub in list(self.subscriptions.values()):
                try:
                    await self._create(sub, conn)
                except TwitchError as e:
                    self.subscriptions.pop(sub.key, None)
                    logger.error("twitch: cannot subscribe to %s again on the new session "
                                 "(%s); those events will not arrive", sub.type, e)
            if self._current is conn and not conn.ws.closed:
                self.counts["sessions_recovered"] += 1
                logger.info("twitch: EventSub session %s open, %d subscription(s) renewed",
                            conn, len(self.subscriptions))
                return
            # lost again while subscribing: start over

    async def _handover(self, old: _Connection, url: str) -> None:
        """Twitch's reconnect: open ``url`` while ``old`` keeps being read; once the new one is
        welcomed it is the live one and ``old`` is drained and closed."""
        self._handing_over = True
        try:
            new = await self._open(url)
        except Exception as e:
            self._handing_over = False
            logger.warning("twitch: could not follow Twitch's reconnect to a new EventSub "
                           "socket (%s)", e or type(e).__name__)
            self._lost("reconnect failed", old)
            return
        self._handing_over = False
        self._current = new
        self.counts["reconnects"] += 1
        old.retiring, old.retired_at = True, time.monotonic()
        if old.deadline is not None:  # wake its reader: the drain clock starts now
            old.deadline.reschedule(self._deadline(old))
        if old.reader is None or old.reader.done():
            self._spawn(self._close(old), name=f"twitch:eventsub:{self.user_id}:close")
        logger.info("twitch: EventSub session %s moved to %s (Twitch's reconnect)", old, new)

    # ------------------------------------------------------------------ frames

    def _skip(self, conn: _Connection, why: str, text: str) -> None:
        self.counts["frames_skipped"] += 1
        logger.warning("twitch: skipped an EventSub frame on session %s: %s %.80r", conn, why,
                       text)

    def _frame(self, conn: _Connection, text: str) -> None:
        """One text frame: act on it, or skip it with one log line. Never raises."""
        try:
            data = json.loads(text)
        except ValueError:
            self._skip(conn, "not JSON", text)
            return
        meta = data.get("metadata") if isinstance(data, dict) else None
        kind = meta.get("message_type") if isinstance(meta, dict) else None
        if not isinstance(kind, str):
            self._skip(conn, "no metadata.message_type", text)
            return
        payload = data.get("payload")
        if not isinstance(payload, dict):
            self._skip(conn, f"{kind} without a payload object", text)
            return
        try:
            if kind == "session_keepalive":
                return
            if kind == "session_welcome":
                self._welcome(conn, payload, text)
            elif kind == "session_reconnect":
                self._reconnect(conn, payload, text)
            elif kind == "notification":
                self._on_frame(data, self)
            elif kind == "revocation":
                self._revoked(conn, data, text)
            else:
                self._skip(conn, f"unknown message_type {kind!r}", text)
        except Exception as e:
            self._skip(conn, f"{kind} that could not be handled ({type(e).__name__}: {e})",
                       text)

    def _welcome(self, conn: _Connection, payload: dict[str, Any], text: str) -> None:
        session = payload.get("session")
        sid = session.get("id") if isinstance(session, dict) else None
        if not isinstance(sid, str) or not sid:
            self._skip(conn, "session_welcome without session.id", text)
            return
        if conn.welcomed.is_set():
            logger.debug("twitch: a second welcome on EventSub session %s ignored", conn)
            return
        conn.session_id = sid
        keepalive = session.get("keepalive_timeout_seconds") if isinstance(session, dict) else None
        conn.keepalive_s = float(keepalive) if isinstance(keepalive, int | float) else None
        conn.welcomed.set()

    def _reconnect(self, conn: _Connection, payload: dict[str, Any], text: str) -> None:
        session = payload.get("session")
        url = session.get("reconnect_url") if isinstance(session, dict) else None
        if not isinstance(url, str) or not url:
            self._skip(conn, "session_reconnect without reconnect_url", text)
            return
        if conn is not self._current or self._handing_over:
            logger.debug("twitch: reconnect on EventSub session %s ignored (not the live one "
                         "or already moving)", conn)
            return
        logger.info("twitch: Twitch moves EventSub session %s to a new socket", conn)
        self._spawn(self._handover(conn, url), name=f"twitch:eventsub:{self.user_id}:reconnect")

    def _revoked(self, conn: _Connection, data: dict[str, Any], text: str) -> None:
        sub = data["payload"].get("subscription")
        if not isinstance(sub, dict) or not isinstance(sub.get("type"), str):
            self._skip(conn, "revocation without subscription.type", text)
            return
        revoked = revocation_of(data, self).subscription
        key = self._ids.pop(str(sub.get("id", "")), None)
        if key is None:  # an id we did not see created: match type and condition
            key = next((k for k, s in self.subscriptions.items() if s.type == revoked.type
                        and dict(s.condition) == dict(revoked.condition)), None)
        if key is not None:  # forgotten: a new session does not subscribe to it again
            self.subscriptions.pop(key, None)
        self._on_frame(data, self)


def revocation_of(data: dict[str, Any], session: EventSubSession) -> Revocation:
    """The :class:`Revocation` a revocation message describes."""
    sub = data["payload"]["subscription"]
    condition = sub.get("condition") if isinstance(sub.get("condition"), dict) else {}
    return Revocation(
        subscription=Subscription(type=sub["type"], version=str(sub.get("version", "1")),
                                  condition={str(k): str(v) for k, v in condition.items()}),
        status=str(sub.get("status") or "unknown"), subscription_id=str(sub.get("id", "")),
        user_id=session.user_id)


class EventSub:
    """The adapter's EventSub WebSocket client: one :class:`EventSubSession` per user token,
    each notification handed on once (by ``metadata.message_id``, across every socket),
    as the twitchio model the adapter maps.

    Args:
        helix_for: the Helix client of each user whose token subscribes.
        keepalive_s: ``keepalive_timeout_seconds`` asked of Twitch (10-600).
        on_notification: gets each new notification as a twitchio event model.
        on_revocation: gets each :class:`Revocation`.
        counts: the adapter's counter.
        policy: timings.
        model_http: twitchio's HTTP client, given to the models it builds.
        dedupe_memory: how many message ids are remembered.
    """

    def __init__(self, *, helix_for: Mapping[str, HelixLike], keepalive_s: int,
                 on_notification: Callable[[Any], None],
                 on_revocation: Callable[[Revocation], None],
                 counts: collections.Counter[str], policy: EventSubPolicy | None = None,
                 model_http: Any = None, dedupe_memory: int = 20_000) -> None:
        self.helix_for = dict(helix_for)
        self.keepalive_s = keepalive_s
        self._on_notification = on_notification
        self._on_revocation = on_revocation
        self.counts = counts
        self.policy = policy or EventSubPolicy()
        self._model_http = model_http
        self.sessions: dict[str, EventSubSession] = {}
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._memory = dedupe_memory

    def session(self, user_id: str) -> EventSubSession:
        if user_id not in self.sessions:
            if user_id not in self.helix_for:
                raise TwitchError(f"no Twitch login for user {user_id} to subscribe with")
            self.sessions[user_id] = EventSubSession(
                user_id=user_id, helix=self.helix_for[user_id], keepalive_s=self.keepalive_s,
                on_frame=self._frame, counts=self.counts, policy=self.policy)
        return self.sessions[user_id]

    async def subscribe(self, payload: Any, *, token_for: str) -> dict[str, Any]:
        """Subscribe to a twitchio subscription payload with ``token_for``'s token (the
        same call as twitchio's ``Client.subscribe_websocket``)."""
        sub = payload if isinstance(payload, Subscription) else Subscription.of(payload)
        return await self.session(str(token_for)).subscribe(sub)

    async def aclose(self) -> None:
        for session in self.sessions.values():
            await session.aclose()

    def _first_time(self, data: dict[str, Any]) -> bool:
        mid = data["metadata"].get("message_id")
        if not mid:
            return True
        if mid in self._seen:
            self.counts["redelivered"] += 1
            return False
        self._seen[mid] = None
        if len(self._seen) > self._memory:
            self._seen.popitem(last=False)
        return True

    def _frame(self, data: dict[str, Any], session: EventSubSession) -> None:
        if not self._first_time(data):
            return
        kind = data["metadata"]["message_type"]
        if kind == "revocation":
            self._on_revocation(revocation_of(data, session))
            return
        from twitchio.models.eventsub_ import create_event_instance

        sub_type = data["metadata"].get("subscription_type")
        try:
            model = create_event_instance(str(sub_type), data, http=self._model_http)
        except Exception as e:
            self.counts["malformed"] += 1
            logger.warning("twitch: skipped a %s notification that could not be read (%s: %s)",
                           sub_type, type(e).__name__, e)
            return
        self._on_notification(model)
