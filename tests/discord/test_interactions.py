"""Slash commands end to end inside discord.py: the bot logs in and syncs its commands against
a local stand-in for Discord's REST API, INTERACTION_CREATE payloads shaped as in Discord's API
reference are parsed into real ``discord.Interaction`` objects and dispatched through the bot's
real ``app_commands.CommandTree`` (command lookup, option parsing, our handlers), and the
interaction responses discord.py sends back over HTTP are what the tests read."""

from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace

import pytest
from discord.http import Route

from bots.adapters.discord.adapter import DiscordAdapter, VoiceSession, build_client
from bots.adapters.discord.settings import DiscordSettings
from tests.discord.fakes import Channel, DiscordREST

TOKEN = "MTMwMDAwMDAwMDAwMDAwMDAwMA.test.token"
BOT_ID = 1_300_000_000_000_000_555
APP_ID = 1_300_000_000_000_000_777
GUILD_ID = 1_300_000_000_000_000_100
CHANNEL_ID = 1_300_000_000_000_000_200
USER_ID = 1_300_000_000_000_000_300

CHANNEL_MESSAGE_WITH_SOURCE = 4
DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 5
_ids = itertools.count(1_300_000_000_000_001_000)


@pytest.fixture
async def bot(monkeypatch):
    """A logged-in bot (REST only, no gateway) with its adapter and Discord's REST stand-in."""
    adapter = DiscordAdapter(settings=DiscordSettings(persona="leo"), personas=["mika", "leo"])
    async with DiscordREST(bot_id=BOT_ID, application_id=APP_ID, token=TOKEN) as rest:
        monkeypatch.setattr(Route, "BASE", rest.base)
        client = build_client(adapter)
        adapter.client = client
        errors: list[Exception] = []

        @client.tree.error
        async def record(interaction, error) -> None:
            errors.append(error)

        await client.login(TOKEN)  # GET /users/@me, application info, setup_hook's sync
        try:
            yield SimpleNamespace(adapter=adapter, client=client, rest=rest, errors=errors)
        finally:
            await client.close()
        assert not rest.unexpected, rest.unexpected


def interaction_create(rest: DiscordREST, command: str, **options: str) -> dict:
    """An INTERACTION_CREATE event for a slash command typed in a guild text channel, as
    Discord's API reference shapes it (interaction type 2, command option type 3 = STRING)."""
    user = {"id": str(USER_ID), "username": "ana", "discriminator": "0",
            "global_name": "Ana", "avatar": None, "public_flags": 0}
    return {
        "id": str(next(_ids)),
        "application_id": str(APP_ID),
        "type": 2,  # APPLICATION_COMMAND
        "data": {
            "id": rest.commands[command]["id"],
            "name": command,
            "type": 1,  # CHAT_INPUT
            "options": [{"name": k, "type": 3, "value": v} for k, v in options.items()],
        },
        "guild": {"id": str(GUILD_ID), "locale": "en-US", "features": []},
        "guild_id": str(GUILD_ID),
        "channel": {"id": str(CHANNEL_ID), "type": 0, "guild_id": str(GUILD_ID),
                    "name": "general", "position": 0, "permission_overwrites": [],
                    "nsfw": False, "parent_id": None, "topic": None,
                    "last_message_id": None, "rate_limit_per_user": 0, "flags": 0},
        "channel_id": str(CHANNEL_ID),
        "member": {"user": user, "nick": None, "avatar": None, "roles": [],
                   "joined_at": "2024-05-01T12:00:00.000000+00:00", "premium_since": None,
                   "deaf": False, "mute": False, "flags": 0, "pending": False,
                   "permissions": "2248473465835073", "communication_disabled_until": None},
        "token": f"aW50ZXJhY3Rpb246{next(_ids)}",
        "version": 1,
        "app_permissions": "2248473465835073",
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {"0": str(GUILD_ID)},
        "context": 0,  # GUILD
        "attachment_size_limit": 10_485_760,
    }


async def invoke(bot, command: str, *, responses: int = 1, **options: str) -> list[dict]:
    """Deliver the event the way the gateway does (its dispatcher calls the state's parser for
    INTERACTION_CREATE) and return what the bot sent back to Discord."""
    payload = interaction_create(bot.rest, command, **options)
    bot.client._connection.parsers["INTERACTION_CREATE"](payload)
    try:
        async with asyncio.timeout(5):
            return await bot.rest.response_to(payload["token"], responses)
    except TimeoutError:
        raise AssertionError(f"/{command} was not answered; handler errors: {bot.errors}") from None


def open_session(adapter: DiscordAdapter) -> VoiceSession:
    """A voice session in the test guild, as ``/join`` leaves one (hearing stood in for)."""
    listener = SimpleNamespace(persona="leo", language="en")
    session = VoiceSession(guild_id=GUILD_ID, text_channel=Channel(), persona="leo",
                           language="en", transcripts=True, listener=listener)
    adapter.sessions[GUILD_ID] = session
    return session


def content(body: dict) -> str:
    assert body["type"] == CHANNEL_MESSAGE_WITH_SOURCE, body
    return body["data"]["content"]


async def test_login_syncs_the_five_commands_with_their_options(bot):
    assert set(bot.rest.commands) == {"join", "leave", "persona", "language", "transcript"}
    transcript = bot.rest.commands["transcript"]["options"][0]
    assert transcript["name"] == "state" and transcript["type"] == 3
    assert [c["value"] for c in transcript["choices"]] == ["on", "off"]


async def test_persona_answers_and_switches_the_sessions_persona(bot):
    session = open_session(bot.adapter)
    (body,) = await invoke(bot, "persona", name="mika")
    assert content(body) == "mika is now listening."
    assert session.persona == "mika" and session.listener.persona == "mika"


async def test_unknown_persona_is_refused_with_the_known_ones(bot):
    session = open_session(bot.adapter)
    (body,) = await invoke(bot, "persona", name="nobody")
    assert content(body) == "Unknown persona 'nobody'. Known: leo, mika."
    assert session.persona == "leo"


async def test_language_sets_the_language(bot):
    session = open_session(bot.adapter)
    (body,) = await invoke(bot, "language", code="es")
    assert content(body) == "Listening in es."
    assert session.language == "es" and session.listener.language == "es"


async def test_language_without_a_session_becomes_the_default(bot):
    (body,) = await invoke(bot, "language", code="es")
    assert content(body) == "Listening in es."
    assert bot.adapter.settings.language == "es"


async def test_transcript_off_and_on(bot):
    session = open_session(bot.adapter)
    (body,) = await invoke(bot, "transcript", state="off")
    assert content(body) == "Transcripts off." and session.transcripts is False
    (body,) = await invoke(bot, "transcript", state="on")
    assert content(body) == "Transcripts on." and session.transcripts is True


async def test_join_outside_a_voice_channel_is_told_what_to_do(bot):
    deferred, followup = await invoke(bot, "join", responses=2)
    assert deferred == {"type": DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE}
    assert followup["content"] == "Join a voice channel first, then use /join."
    assert bot.adapter.sessions == {}


async def test_leave_without_a_session_answers_politely(bot):
    (body,) = await invoke(bot, "leave")
    assert content(body) == "I'm not in a voice channel here."
