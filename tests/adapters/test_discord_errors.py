"""discord.py's login and gateway errors translated by the pure function: the close codes
Discord's Gateway reference marks "Reconnect: false" (4004, 4010-4014), a refused token and a
missing privileged intent are fatal with the fix named; other closes, 5xx and network errors
are transient."""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp
import discord
import pytest

from bots.adapters.discord.errors import platform_error


def closed(code: int) -> discord.ConnectionClosed:
    return discord.ConnectionClosed(SimpleNamespace(close_code=code), shard_id=None, code=code)


def http(status: int, cls: type[discord.HTTPException] = discord.HTTPException):
    response = SimpleNamespace(status=status, reason="x")
    return cls(response, {"message": "refused", "code": 0})  # type: ignore[arg-type]


def test_a_missing_privileged_intent_is_fatal_and_says_where_to_enable_it():
    error = platform_error(discord.PrivilegedIntentsRequired(None))
    assert error.fatal and error.code == "disallowed_intents"
    assert "Message Content" in str(error)
    assert "Privileged Gateway Intents" in error.fix
    assert "https://discord.com/developers/applications" in error.fix


def test_a_refused_token_is_fatal():
    for raised in (discord.LoginFailure("Improper token has been passed."), http(401),
                   closed(4004)):
        error = platform_error(raised)
        assert error.fatal and error.code == "token_invalid", raised
        assert "Reset Token" in error.fix and "DISCORD_TOKEN" in error.fix


@pytest.mark.parametrize("code", [4004, 4010, 4011, 4012, 4013, 4014])
def test_closes_marked_no_reconnect_are_fatal(code):
    error = platform_error(closed(code))
    assert error.fatal and error.fix, code
    assert str(code) in str(error)


@pytest.mark.parametrize("code", [1000, 1006, 4000, 4001, 4002, 4003, 4005, 4007, 4008, 4009])
def test_other_closes_are_transient(code):
    error = platform_error(closed(code))
    assert not error.fatal and error.code == f"gateway_closed_{code}"


def test_server_and_network_errors_are_transient():
    for raised in (http(503, discord.DiscordServerError), http(429),
                   discord.GatewayNotFound(), aiohttp.ClientConnectionError("refused"),
                   OSError(111, "Connection refused"), TimeoutError()):
        assert not platform_error(raised).fatal, raised
