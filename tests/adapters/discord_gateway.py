"""A local stand-in for the part of Discord a bot's login and gateway connection touch, from
Discord's developer reference: ``GET /users/@me`` (401 for a token it does not know, as the
"HTTP Response Codes" table says), ``GET /oauth2/applications/@me``, the
application-commands bulk overwrite, and the Gateway: Hello (opcode 10) on connect, then,
after Identify (opcode 2) or Resume (opcode 6), either a close with the configured code
("Gateway Close Event Codes") or silence (a connection that stays open; heartbeats are
acknowledged with opcode 11).

``patched()`` points discord.py's REST base and default gateway URL at it.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import yarl
from aiohttp import WSMsgType, web

TOKEN = "standin.bot.token"
APP_ID = "1234567890123456789"
BOT = {"id": APP_ID, "username": "vstage", "discriminator": "0", "global_name": None,
       "avatar": None, "bot": True, "flags": 0, "public_flags": 0}


def _json(data: Any, status: int = 200) -> web.Response:
    # Discord answers exactly "application/json" (discord.py parses nothing else as JSON)
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={"Content-Type": "application/json"})


class DiscordStandIn:
    """``async with DiscordStandIn(closes=[4014]) as d:``: the n-th gateway connection is
    closed after Identify/Resume with ``closes[n]`` (the last repeats); None keeps it open."""

    def __init__(self, *, closes: list[int | None] | None = None) -> None:
        self.closes = closes or [None]
        self.identified = 0  # Identify payloads received
        self.connected = 0  # Identify or Resume payloads received
        self.logins = 0
        self.app = web.Application()
        r = self.app.router
        r.add_get("/api/v10/users/@me", self._me)
        r.add_get("/api/v10/oauth2/applications/@me", self._application)
        r.add_put("/api/v10/applications/{app}/commands", self._commands)
        r.add_get("/gateway", self._gateway)
        self.runner: web.AppRunner | None = None
        self.port = 0
        self._sockets: set[web.WebSocketResponse] = set()

    async def __aenter__(self) -> DiscordStandIn:
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1001)
        if self.runner is not None:
            await self.runner.cleanup()

    @contextlib.contextmanager
    def patched(self):
        from discord.gateway import DiscordWebSocket
        from discord.http import Route

        saved = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
        Route.BASE = f"http://127.0.0.1:{self.port}/api/v10"
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(f"ws://127.0.0.1:{self.port}/gateway")
        try:
            yield self
        finally:
            Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bot {TOKEN}"

    async def _me(self, request: web.Request) -> web.Response:
        self.logins += 1
        if not self._authorized(request):
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        return _json(BOT)

    async def _application(self, request: web.Request) -> web.Response:
        return _json({
            "id": APP_ID, "name": "vstage", "icon": None, "description": "", "summary": "",
            "bot_public": False, "bot_require_code_grant": False, "verify_key": "00" * 32,
            "owner": {**BOT, "id": "42", "username": "owner", "bot": False}, "team": None,
            "flags": 0, "rpc_origins": [], "terms_of_service_url": None,
            "privacy_policy_url": None, "interactions_endpoint_url": None})

    async def _commands(self, request: web.Request) -> web.Response:
        return _json([])

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 45000},
                                          "s": None, "t": None}))
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                payload: dict[str, Any] = json.loads(msg.data)
                if payload.get("op") == 1:  # Heartbeat -> Heartbeat ACK
                    await ws.send_str(json.dumps({"op": 11, "d": None}))
                elif payload.get("op") in (2, 6):  # Identify, or Resume after a close
                    code = self.closes[min(self.connected, len(self.closes) - 1)]
                    self.connected += 1
                    self.identified += payload["op"] == 2
                    if code is not None:
                        await ws.close(code=code, message=b"closed by the stand-in")
                        break
        finally:
            self._sockets.discard(ws)
        return ws
