"""The Twitch stand-in's EventSub WebSocket side, as Twitch documents it
(https://dev.twitch.tv/docs/eventsub/handling-websocket-events/ and
https://dev.twitch.tv/docs/eventsub/websocket-reference/), awkward parts included:

- the connect URL's ``keepalive_timeout_seconds`` is honoured ("Valid values are whole
  integers between 10 and 600 ... an invalid, but numeric value will return the nearest
  acceptable value") and a ``session_keepalive`` is sent whenever a socket has been silent
  that long ("Keepalive message");
- ``session_reconnect`` ("Reconnect message"): "The old connection receives events up until
  you connect to the new URL and receive the welcome message" - notifications keep going to
  the old socket until the new one is welcomed (after :attr:`reconnect_welcome_delay_s`, the
  time the hand-over takes); the subscriptions move with it; the client is expected to close
  the old socket, else Twitch closes it with 4004 ("Reconnect grace time expired": 30 s to
  reconnect and close the old connection), also when the client never connects;
- "Twitch sends messages at least once ... you may receive a notification twice"
  (WebSocket Reference, ``message_id``): :attr:`redeliver_on_reconnect` notifications last
  sent on the old socket are sent again, same message id, on the new one;
- "you must create a subscription within 10 seconds or the connection is closed" (close code
  4003, "Close message");
- a socket can go silent (:meth:`go_silent`: a half-open connection, nothing arrives, not even
  keepalives) or carry malformed frames (:meth:`send_raw`).

A mixin of :class:`tests.standins.twitch.TwitchStandIn`, which routes ``GET /ws`` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

RECONNECT_GRACE_S = 30.0  # "you have 30 seconds to reconnect ... and close the old connection"
UNUSED_CLOSE_S = 10.0  # "create a subscription within 10 seconds or the connection is closed"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(eq=False)
class WsConnection:
    """One client connection, as the stand-in sees it."""

    ws: web.WebSocketResponse
    session_id: str
    query: dict[str, str]
    keepalive_s: int
    last_sent: float = field(default_factory=time.monotonic)
    silent: bool = False  # half-open: nothing sent arrives
    superseded: bool = False  # a reconnect moved its session away
    closed_by: str = ""  # "client" or "twitch"
    close_code: int | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)  # notifications delivered
    swallowed: list[dict[str, Any]] = field(default_factory=list)  # sent while silent


class EventSubWebSocket:
    """EventSub WebSocket server behaviour. Needs, from the stand-in: ``subscriptions``
    (id -> subscription), ``port``."""

    subscriptions: dict[str, dict[str, Any]]
    port: int

    def _init_eventsub_ws(self, *, keepalive_s: int) -> None:
        self.keepalive_s = keepalive_s  # used when the URL does not ask for one
        self.sockets: dict[str, web.WebSocketResponse] = {}  # live session id -> socket
        self.connections: list[WsConnection] = []  # every connection, in order
        self._by_session: dict[str, WsConnection] = {}  # live session id -> connection
        self.welcomed = asyncio.Event()
        self.reconnect_welcome_delay_s = 0.0  # how long Twitch takes to welcome a reconnect
        self.redeliver_on_reconnect = 0
        self.reconnect_grace_s = RECONNECT_GRACE_S
        self.unused_close_s = UNUSED_CLOSE_S
        self._ws_seq = itertools.count(1)
        self._ws_tasks: set[asyncio.Task] = set()

    def _ws_spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._ws_tasks.add(task)
        task.add_done_callback(self._ws_tasks.discard)

    async def _close_eventsub_ws(self) -> None:
        for task in list(self._ws_tasks):
            task.cancel()
        await asyncio.gather(*self._ws_tasks, return_exceptions=True)
        for conn in self.connections:
            if not conn.ws.closed:
                await conn.ws.close()

    @staticmethod
    def _message(kind: str, payload: dict[str, Any], *, sub: dict[str, Any] | None = None,
                 message_id: str | None = None) -> dict[str, Any]:
        meta = {"message_id": message_id or str(uuid.uuid4()), "message_type": kind,
                "message_timestamp": _now()}
        if sub is not None:
            meta |= {"subscription_type": sub["type"], "subscription_version": sub["version"]}
        return {"metadata": meta, "payload": payload}

    # ------------------------------------------------------------------ the socket

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        query = dict(request.query)
        try:  # "an invalid, but numeric value will return the nearest acceptable value"
            keepalive = max(10, min(600, round(float(query["keepalive_timeout_seconds"]))))
        except (KeyError, ValueError):
            keepalive = self.keepalive_s
        session = f"session-{next(self._ws_seq)}"
        conn = WsConnection(ws=ws, session_id=session, query=query, keepalive_s=keepalive)
        self.connections.append(conn)
        old = self._by_session.get(query.get("reconnect", ""))
        if old is not None:  # the hand-over takes a moment; the old socket keeps delivering
            await asyncio.sleep(self.reconnect_welcome_delay_s)
        await self._send(conn, self._message("session_welcome", {"session": {
            "id": session, "status": "connected", "connected_at": _now(),
            "keepalive_timeout_seconds": keepalive, "reconnect_url": None,
            "recovery_url": None}}))
        self.sockets[session] = ws
        self._by_session[session] = conn
        if old is not None:  # from the welcome on, the subscriptions are the new socket's
            self._move(old, conn)
        self.welcomed.set()
        self._ws_spawn(self._keepalives(conn), f"standin:keepalive:{session}")
        if old is None:
            self._ws_spawn(self._close_if_unused(conn), f"standin:unused:{session}")
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:  # clients must not send: 4001
                conn.closed_by, conn.close_code = "twitch", 4001
                await ws.close(code=4001)
        if not conn.closed_by:
            conn.closed_by = "client"
        self._forget(conn)
        return ws

    def _move(self, old: WsConnection, new: WsConnection) -> None:
        old.superseded = True
        self.sockets.pop(old.session_id, None)
        self._by_session.pop(old.session_id, None)
        for sub in self.subscriptions.values():
            if sub["transport"]["session_id"] == old.session_id:
                sub["transport"]["session_id"] = new.session_id
        for msg in old.sent[-self.redeliver_on_reconnect:] if self.redeliver_on_reconnect else []:
            self._ws_spawn(self._send(new, msg), f"standin:redeliver:{new.session_id}")

    def _forget(self, conn: WsConnection) -> None:
        """A closed socket: its session's subscriptions are disabled (and dropped here)."""
        if self._by_session.get(conn.session_id) is conn:
            del self._by_session[conn.session_id]
            self.sockets.pop(conn.session_id, None)
            for sid, sub in list(self.subscriptions.items()):
                if sub["transport"]["session_id"] == conn.session_id:
                    del self.subscriptions[sid]

    async def _send(self, conn: WsConnection, msg: dict[str, Any]) -> None:
        if conn.silent:
            conn.swallowed.append(msg)
            return
        if conn.ws.closed:
            return
        conn.last_sent = time.monotonic()
        if msg["metadata"]["message_type"] == "notification":
            conn.sent.append(msg)
        with contextlib.suppress(ConnectionError):
            await conn.ws.send_json(msg)

    async def _keepalives(self, conn: WsConnection) -> None:
        """A keepalive whenever nothing was sent for ``keepalive_timeout_seconds``."""
        while not conn.ws.closed:
            wait = conn.last_sent + conn.keepalive_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(min(wait, 1.0))
                continue
            if conn.silent:
                conn.last_sent = time.monotonic()
                continue
            await self._send(conn, self._message("session_keepalive", {}))

    async def _close_if_unused(self, conn: WsConnection) -> None:
        await asyncio.sleep(self.unused_close_s)
        if conn.ws.closed or any(s["transport"]["session_id"] == conn.session_id
                                 for s in self.subscriptions.values()):
            return
        conn.closed_by, conn.close_code = "twitch", 4003
        await conn.ws.close(code=4003)

    async def _reconnect_grace(self, old: WsConnection) -> None:
        """4004 unless the client has connected to the new URL and closed the old socket."""
        await asyncio.sleep(self.reconnect_grace_s)
        if not old.ws.closed:
            old.closed_by, old.close_code = "twitch", 4004
            await old.ws.close(code=4004)
            self._forget(old)

    # ------------------------------------------------------------------ what tests drive

    def _sub_of(self, sub_type: str) -> dict[str, Any]:
        for sub in self.subscriptions.values():
            if sub["type"] == sub_type:
                return sub
        raise LookupError(f"no subscription of type {sub_type}")

    def has_subscription(self, sub_type: str) -> bool:
        return any(s["type"] == sub_type for s in self.subscriptions.values())

    def live(self) -> list[WsConnection]:
        """The connections that notifications go to now."""
        return list(self._by_session.values())

    async def notify(self, sub_type: str, event: dict[str, Any], *,
                     message_id: str | None = None) -> str:
        """Send a notification of ``sub_type`` carrying ``event``; returns its message id."""
        sub = self._sub_of(sub_type)
        self._saw_notification(sub_type, event)
        msg = self._message("notification", {"subscription": sub, "event": event}, sub=sub,
                            message_id=message_id)
        await self._send(self._by_session[sub["transport"]["session_id"]], msg)
        return msg["metadata"]["message_id"]

    def _saw_notification(self, sub_type: str, event: dict[str, Any]) -> None:
        """Hook for the REST side (redemptions it must know about)."""

    async def send_raw(self, text: str) -> None:
        """Send any text on every live socket (malformed frames)."""
        for conn in self.live():
            if not conn.silent:
                conn.last_sent = time.monotonic()
                await conn.ws.send_str(text)

    async def keepalive(self) -> None:
        for conn in self.live():
            await self._send(conn, self._message("session_keepalive", {}))

    async def session_reconnect(self) -> None:
        """Ask every client to move to a new connection (``session_reconnect``)."""
        for conn in self.live():
            url = f"ws://127.0.0.1:{self.port}/ws?reconnect={conn.session_id}"
            await self._send(conn, self._message("session_reconnect", {"session": {
                "id": conn.session_id, "status": "reconnecting",
                "keepalive_timeout_seconds": None, "reconnect_url": url,
                "connected_at": _now()}}))
            self._ws_spawn(self._reconnect_grace(conn), f"standin:grace:{conn.session_id}")

    def go_silent(self) -> None:
        """Every live socket stays open but nothing more reaches the client."""
        for conn in self.live():
            conn.silent = True

    async def drop(self) -> None:
        """Close every socket abruptly, as a network failure would."""
        for conn in self.live():
            conn.closed_by, conn.close_code = "twitch", 1006
            await conn.ws.close(code=1006)

    async def revoke(self, sub_type: str, status: str = "authorization_revoked") -> None:
        """Twitch's revocation message for the subscription of ``sub_type``; it is gone."""
        sub = self._sub_of(sub_type)
        del self.subscriptions[sub["id"]]
        sub = {**sub, "status": status}
        await self._send(self._by_session[sub["transport"]["session_id"]],
                         self._message("revocation", {"subscription": sub}, sub=sub))

    async def burst(self, sub_type: str, events: list[dict[str, Any]], *, rate_hz: float,
                    reconnect_at: int | None = None) -> list[str]:
        """Send ``events`` at ``rate_hz``; before event ``reconnect_at`` send
        ``session_reconnect`` (the hand-over then runs while the burst goes on). Returns the
        message ids sent."""
        ids: list[str] = []
        t0 = time.monotonic()
        for i, event in enumerate(events):
            if i == reconnect_at:
                await self.session_reconnect()
            ids.append(await self.notify(sub_type, event))
            wait = t0 + (i + 1) / rate_hz - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        return ids
