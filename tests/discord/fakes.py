"""Stand-ins for the parts of discord.py that need a live gateway: a text channel, a voice
client, a person talking in the voice channel, an event sink, and Discord's REST API on
localhost. They record what the adapter (or discord.py on its behalf) does with them."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from aiohttp import web

from bots.events import Decision, Event


class Channel:
    """A text channel: ``send`` is what discord.abc.Messageable offers."""

    def __init__(self, cid: int = 1) -> None:
        self.id = cid
        self.sent: list[str] = []
        self.got = asyncio.Event()

    async def send(self, content: str) -> None:
        self.sent.append(content)
        self.got.set()


class Sink:
    """An orchestrator that accepts everything (or nothing)."""

    def __init__(self, *, accept: bool = True) -> None:
        self.events: list[Event] = []
        self.interrupts: list[tuple[str | None, str]] = []
        self.accept = accept
        self.got = asyncio.Event()

    def submit(self, event: Event) -> Decision:
        self.events.append(event)
        self.got.set()
        return Decision(self.accept, event.trace_id, None if self.accept else "queue full")

    def interrupt(self, persona: str | None, *, reason: str) -> bool:
        self.interrupts.append((persona, reason))
        return True


class SpeakingClient:
    """A person talking in a voice channel, as the bot's receive path gets their packets.

    Written from Discord's developer documentation, *Voice Connections -> Voice Data
    Interpolation*: "When there's a break in the sent data, the packet transmission shouldn't
    simply stop. Instead, send five frames of silence (0xF8, 0xFF, 0xFE) before stopping", so
    when the user stops talking the client sends five silence frames, 20 ms apart, and then
    nothing at all until they talk again (no continuous silence).
    """

    SILENCE_FRAME = b"\xf8\xff\xfe"

    def __init__(self, receiver, user_id: int) -> None:
        self.receiver = receiver
        self.user_id = user_id

    async def say(self, packets: list[bytes]) -> float:
        """Send one utterance's opus packets (at once, as a burst the receive thread could get
        after a network hiccup), then the five silence frames in real time, then stop.
        Returns the monotonic time the speech ended (the last speech packet was in)."""
        for i, packet in enumerate(packets):
            self.receiver.receive(self.user_id, packet)
            if i % 10 == 9:
                await asyncio.sleep(0)
        speech_end = time.monotonic()
        for _ in range(5):
            await asyncio.sleep(0.02)
            self.receiver.receive(self.user_id, self.SILENCE_FRAME)
        return speech_end


class VoiceClient:
    """discord.VoiceClient's playback surface, driving the source like its player thread."""

    def __init__(self) -> None:
        self.source = None
        self.after = None

    def is_playing(self) -> bool:
        return self.source is not None

    def play(self, source, *, after=None) -> None:
        self.source, self.after = source, after

    def stop(self) -> None:
        self.source = None


@dataclass
class Member:
    id: int
    display_name: str
    bot: bool = False
    guild: object = None
    guild_permissions: object = field(default=None)


def _json(data: object, *, status: int = 200):
    """A JSON response as Discord sends it: ``Content-Type: application/json`` exactly (no
    charset), which is what discord.py checks before decoding a body."""
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={"Content-Type": "application/json"})


class DiscordREST:
    """Discord's REST API, as much of it as a bot answering slash commands uses, served over
    real HTTP on localhost (point ``discord.http.Route.BASE`` at :attr:`base`).

    Request and response bodies follow Discord's API reference: ``GET /users/@me`` and
    ``GET /oauth2/applications/@me`` at login, ``PUT /applications/{app}/commands`` when the
    tree syncs (ids are assigned as Discord would), ``POST /interactions/{id}/{token}/callback``
    for an interaction response and ``POST /webhooks/{app}/{token}`` for a follow-up. Each
    callback and follow-up is recorded in :attr:`responses` under its interaction token.
    """

    def __init__(self, *, bot_id: int, application_id: int, token: str) -> None:
        self.bot_id = bot_id
        self.application_id = application_id
        self.token = token
        self.base = ""
        self.commands: dict[str, dict] = {}  # registered slash commands by name
        self.responses: dict[str, list[dict]] = {}  # interaction token -> bodies, in order
        self.unexpected: list[str] = []
        self._arrived: dict[str, asyncio.Event] = {}
        self._runner = None
        self._next_id = 1_300_000_000_000_000_000

    def _snowflake(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    async def __aenter__(self) -> DiscordREST:
        app = web.Application()
        app.router.add_get("/api/v10/users/@me", self._me)
        app.router.add_get("/api/v10/oauth2/applications/@me", self._application)
        app.router.add_put("/api/v10/applications/{app}/commands", self._sync)
        app.router.add_post("/api/v10/interactions/{iid}/{token}/callback", self._callback)
        app.router.add_post("/api/v10/webhooks/{app}/{token}", self._followup)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base = f"http://127.0.0.1:{port}/api/v10"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def response_to(self, token: str, count: int = 1) -> list[dict]:
        """The first ``count`` bodies sent in answer to the interaction with ``token`` (waits
        for them: wrap it in ``asyncio.timeout``)."""
        while len(self.responses.get(token, [])) < count:
            event = self._arrived.setdefault(token, asyncio.Event())
            await event.wait()
            event.clear()
        return self.responses[token][:count]

    def _authorized(self, request) -> bool:
        return request.headers.get("Authorization") == f"Bot {self.token}"

    def _record(self, token: str, body: dict) -> None:
        self.responses.setdefault(token, []).append(body)
        self._arrived.setdefault(token, asyncio.Event()).set()

    def _user(self) -> dict:
        return {"id": str(self.bot_id), "username": "vstage", "discriminator": "0",
                "global_name": "vstage", "avatar": None, "bot": True, "system": False,
                "mfa_enabled": True, "verified": True, "flags": 0, "public_flags": 0}

    async def _me(self, request):
        if not self._authorized(request):
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        return _json(self._user())

    async def _application(self, request):
        return _json({
            "id": str(self.application_id), "name": "vstage", "icon": None,
            "description": "", "bot_public": False, "bot_require_code_grant": False,
            "verify_key": "0" * 64, "flags": 0, "team": None, "summary": "",
            "owner": {"id": "1", "username": "owner", "discriminator": "0", "avatar": None,
                      "public_flags": 0},
            "bot": self._user(), "redirect_uris": [], "interactions_endpoint_url": None})

    async def _sync(self, request):
        registered = []
        for command in await request.json():
            previous = self.commands.get(command["name"])
            command = {**command, "id": previous["id"] if previous else self._snowflake(),
                       "application_id": str(self.application_id),
                       "version": self._snowflake(), "type": command.get("type", 1)}
            self.commands[command["name"]] = command
            registered.append(command)
        return _json(registered)

    async def _callback(self, request):
        body = await request.json()
        self._record(request.match_info["token"], body)
        # ?with_response=1: Discord answers with an interaction callback response object
        return _json({"interaction": {
            "id": request.match_info["iid"], "type": 2,
            "response_message_loading": body["type"] == 5,
            "response_message_ephemeral": bool(body.get("data", {}).get("flags", 0) & 64)}})

    async def _followup(self, request):
        self._record(request.match_info["token"], await request.json())
        return web.Response(status=204)

    async def _unknown(self, request):
        self.unexpected.append(f"{request.method} {request.path}")
        return _json({"message": "404: Not Found", "code": 0}, status=404)
