"""A local stand-in for Twitch (aiohttp): the EventSub WebSocket (welcome, keepalive,
notification, session_reconnect, revocation) and the Helix / id.twitch.tv endpoints the Twitch
adapter uses, with message shapes as in Twitch's EventSub and Helix reference.

It knows two users, the bot and the broadcaster: each token validates to its user, and, as
Twitch does, broadcaster-only subscriptions, redemption updates and chat messages made with
another user's token are refused (HTTP 403). ``patched()`` points twitchio's host constants
(read at use time) at it. Its Channel Points side (rewards, redemption updates refused to an
app that did not create the reward) is in :mod:`tests.standins.twitch_helix`; event payloads
shaped as in Twitch's reference are built by :mod:`tests.standins.twitch_payloads`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import json
import uuid
from typing import Any

from aiohttp import web

from tests.standins.twitch_helix import REDEEM, ChannelPoints
from tests.standins.twitch_ws import EventSubWebSocket

BOT_ID, BOT_LOGIN = "141981764", "vstagebot"
BROADCASTER_ID, BROADCASTER_LOGIN = "1971641", "mikachannel"
CLIENT_ID = "standin-client-id"
LOGINS = {BOT_ID: BOT_LOGIN, BROADCASTER_ID: BROADCASTER_LOGIN}
TOKEN_PREFIX = {BOT_ID: "user", BROADCASTER_ID: "broadcaster"}
# need a token of the broadcaster named in the condition (Twitch's EventSub reference)
BROADCASTER_ONLY = frozenset({
    "channel.channel_points_custom_reward_redemption.add", "channel.cheer",
    "channel.subscribe", "channel.subscription.message", "channel.subscription.gift",
    "channel.bits.use", "channel.ban",
})


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class TwitchStandIn(ChannelPoints, EventSubWebSocket):
    """Start with ``async with TwitchStandIn() as tw:``; ``tw.notify(type, event)`` pushes a
    notification to the socket that holds a subscription of that type."""

    def __init__(self, *, pending_polls: int = 1, keepalive_s: int = 10) -> None:
        self.pending_polls = pending_polls
        self.app = web.Application()
        r = self.app.router
        r.add_get("/ws", self._ws)
        r.add_post("/oauth2/device", self._device)
        r.add_post("/oauth2/token", self._token)
        r.add_get("/oauth2/validate", self._validate)
        r.add_get("/helix/users", self._users)
        r.add_post("/helix/eventsub/subscriptions", self._subscribe)
        r.add_get("/helix/eventsub/subscriptions", self._list_subs)
        r.add_delete("/helix/eventsub/subscriptions", self._delete_sub)
        r.add_post("/helix/chat/messages", self._chat)
        r.add_post("/helix/channel_points/custom_rewards", self._create_reward)
        r.add_get("/helix/channel_points/custom_rewards", self._list_rewards)
        r.add_patch("/helix/channel_points/custom_rewards/redemptions", self._redemption)
        self.runner: web.AppRunner | None = None
        self.port = 0
        self._init_eventsub_ws(keepalive_s=keepalive_s)
        self.subscriptions: dict[str, dict[str, Any]] = {}  # id -> subscription
        self.subscribed_by: dict[str, str] = {}  # subscription id -> the token's user id
        self.subscribe_requests: list[str] = []  # the type of each POST eventsub/subscriptions
        self.chat: list[dict[str, Any]] = []
        self._init_channel_points()
        self.access_tokens: dict[str, str] = {"user-access-0": BOT_ID}  # token -> user id
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> user id
        self.approve_as = BOT_ID  # the user who approves the next device code
        self.refused: list[dict[str, Any]] = []  # 403s: what was asked, by whom
        self.refreshes = 0
        self.polls = 0
        self.expire_next = 0  # answer the next N Helix calls with 401
        self.chat_event = asyncio.Event()
        self._seq = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()

    async def __aenter__(self) -> TwitchStandIn:
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._close_eventsub_ws()
        if self.runner is not None:
            await self.runner.cleanup()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @contextlib.contextmanager
    def patched(self):
        """Point twitchio's hosts and vstage's EventSub socket at this stand-in."""
        from twitchio.eventsub import websockets
        from twitchio.http import Route

        from bots.adapters.twitch import eventsub

        saved = Route.BASE, Route.ID_BASE, websockets.WSS, eventsub.WSS
        Route.BASE, Route.ID_BASE = f"{self.base}/helix/", f"{self.base}/"
        websockets.WSS = eventsub.WSS = f"ws://127.0.0.1:{self.port}/ws"
        try:
            yield self
        finally:
            Route.BASE, Route.ID_BASE, websockets.WSS, eventsub.WSS = saved

    # ------------------------------------------------------------------ EventSub WebSocket
    # (the socket itself, reconnects, keepalives, revocations: tests.standins.twitch_ws)

    def _saw_notification(self, sub_type: str, event: dict[str, Any]) -> None:
        if sub_type == REDEEM:
            self.saw_redemption(event)

    def subscriber(self, sub_type: str) -> str:
        """The user whose token created the subscription of ``sub_type``."""
        return self.subscribed_by[self._sub_of(sub_type)["id"]]

    # ------------------------------------------------------------------ id.twitch.tv

    async def _device(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("client_id") != CLIENT_ID:
            return web.json_response({"status": 400, "message": "invalid client"}, status=400)
        self.polls = 0
        self._device_user = self.approve_as
        self._device_scopes = str(form.get("scopes", "")).split()
        return web.json_response({
            "device_code": "dev-code-1", "expires_in": 1800, "interval": 5,
            "user_code": "ABCDEFGH", "verification_uri":
                "https://www.twitch.tv/activate?public=true&device-code=ABCDEFGH"})

    async def _token(self, request: web.Request) -> web.Response:
        # Twitch takes the parameters as a form or in the query string (twitchio sends those)
        form = {**request.query, **(await request.post())}
        grant = form.get("grant_type")
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            self.polls += 1
            if self.polls <= self.pending_polls:
                return web.json_response({"status": 400, "message": "authorization_pending"},
                                         status=400)
            user = self._device_user
            prefix = TOKEN_PREFIX[user]
            return web.json_response(self._new_token(
                user, f"{prefix}-access-1", f"{prefix}-refresh-1", self._device_scopes))
        if grant == "refresh_token":
            user = self.refresh_tokens.get(str(form.get("refresh_token")))
            if user is None:
                return web.json_response({"status": 400, "message": "Invalid refresh token"},
                                         status=400)
            self.refreshes += 1
            n, prefix = self.refreshes + 1, TOKEN_PREFIX[user]
            return web.json_response(self._new_token(user, f"{prefix}-access-{n}",
                                                     f"{prefix}-refresh-{n}"))
        if grant == "client_credentials":
            self.access_tokens["app-access"] = ""
            return web.json_response({"access_token": "app-access", "expires_in": 5000000,
                                      "token_type": "bearer"})
        return web.json_response({"status": 400, "message": "unsupported grant"}, status=400)

    def _new_token(self, user: str, access: str, refresh: str,
                   scopes: list[str] | None = None) -> dict[str, Any]:
        self.access_tokens[access] = user
        self.refresh_tokens[refresh] = user
        return {"access_token": access, "expires_in": 14000, "refresh_token": refresh,
                "scope": scopes or ["user:read:chat", "user:write:chat"],
                "token_type": "bearer"}

    def _token_of(self, request: web.Request) -> str:
        return request.headers.get("Authorization", "").partition(" ")[2]

    async def _validate(self, request: web.Request) -> web.Response:
        token = self._token_of(request)
        if token not in self.access_tokens:
            return web.json_response({"status": 401, "message": "invalid access token"},
                                     status=401)
        if token == "app-access":
            return web.json_response({"client_id": CLIENT_ID, "scopes": [],
                                      "expires_in": 5000000})
        user = self.access_tokens[token]
        return web.json_response({"client_id": CLIENT_ID, "login": LOGINS[user],
                                  "scopes": ["user:read:chat", "user:write:chat"],
                                  "user_id": user, "expires_in": 5000000})

    # ------------------------------------------------------------------ Helix

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        if self.expire_next > 0:
            self.expire_next -= 1
            self.access_tokens.pop(self._token_of(request), None)
        if self._token_of(request) not in self.access_tokens:
            return web.json_response({"error": "Unauthorized", "status": 401,
                                      "message": "Invalid OAuth token"}, status=401)
        return None

    def _forbidden(self, request: web.Request, need: str | None, what: str,
                   message: str) -> web.Response | None:
        """403 unless the token belongs to the user ``need``, as Twitch answers it."""
        user = self.access_tokens.get(self._token_of(request))
        if user == need:
            return None
        self.refused.append({"what": what, "token_user": user, "needed": need})
        return web.json_response({"error": "Forbidden", "status": 403, "message": message},
                                 status=403)

    async def _users(self, request: web.Request) -> web.Response:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        user = self.access_tokens.get(self._token_of(request)) or BOT_ID
        return web.json_response({"data": [{
            "id": user, "login": LOGINS[user], "display_name": LOGINS[user], "type": "",
            "broadcaster_type": "", "description": "", "profile_image_url": "",
            "offline_image_url": "", "view_count": 0, "created_at": "2020-01-01T00:00:00Z"}]})

    async def _subscribe(self, request: web.Request) -> web.Response:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        body = await request.json()
        condition = body.get("condition") or {}
        if body["type"] in BROADCASTER_ONLY and (denied := self._forbidden(
                request, condition.get("broadcaster_user_id"), body["type"],
                "subscription missing proper authorization")) is not None:
            return denied
        # channel.chat.* are read as the chatting user named in the condition
        if body["type"].startswith("channel.chat.") and (denied := self._forbidden(
                request, condition.get("user_id"), body["type"],
                "subscription missing proper authorization")) is not None:
            return denied
        session = body["transport"]["session_id"]
        if session not in self.sockets:
            return web.json_response({"error": "Bad Request", "status": 400,
                                      "message": "websocket transport session does not exist"},
                                     status=400)
        self.subscribe_requests.append(body["type"])
        if any(s["type"] == body["type"] and s["condition"] == body["condition"]
               for s in self.subscriptions.values()):  # Create EventSub Subscription: 409
            return web.json_response({"error": "Conflict", "status": 409, "message":
                                      "subscription already exists"}, status=409)
        sub = {"id": str(uuid.uuid4()), "status": "enabled", "type": body["type"],
               "version": body["version"], "condition": body["condition"],
               "transport": {"method": "websocket", "session_id": session,
                             "connected_at": _now()},
               "created_at": _now(), "cost": 0}
        self.subscriptions[sub["id"]] = sub
        self.subscribed_by[sub["id"]] = self.access_tokens[self._token_of(request)]
        return web.json_response({"data": [sub], "total": len(self.subscriptions),
                                  "total_cost": 0, "max_total_cost": 10}, status=202)

    async def _list_subs(self, request: web.Request) -> web.Response:
        return web.json_response({"data": list(self.subscriptions.values()),
                                  "total": len(self.subscriptions), "total_cost": 0,
                                  "max_total_cost": 10, "pagination": {}})

    async def _delete_sub(self, request: web.Request) -> web.Response:
        self.subscriptions.pop(request.query.get("id", ""), None)
        return web.Response(status=204)

    async def _chat(self, request: web.Request) -> web.Response:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        body = await request.json()
        if (denied := self._forbidden(
                request, body.get("sender_id"), "chat/messages",
                "The ID in sender_id must match the user ID in the access token.")) is not None:
            return denied
        if len(body.get("message", "")) > 500:
            return web.json_response({"status": 400, "message": "message too long"}, status=400)
        self.chat.append(body)
        self.chat_event.set()
        return web.json_response({"data": [{"message_id": str(uuid.uuid4()), "is_sent": True,
                                            "drop_reason": None}]})


def dumps(obj: Any) -> str:
    return json.dumps(obj)
