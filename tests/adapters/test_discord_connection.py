"""The real Discord adapter (real discord.py) under the supervisor, against a stand-in that
speaks Discord's REST and Gateway protocol: a gateway closed with 4014 after the adapter has
entered goes ``down`` with the fix in one line and is not retried; a refused token is
``down`` at login; a close discord.py recovers from stays ``up``; no network at login is
retried and the adapter comes back up."""

from __future__ import annotations

import logging

import pytest

from bots.adapters.discord.adapter import DiscordAdapter
from bots.adapters.discord.settings import DiscordSettings
from bots.adapters.supervise import AdapterHealth, AdapterState, Supervisor
from tests.adapters.discord_gateway import TOKEN, DiscordStandIn
from tests.netutil import free_port
from tests.twitch.helpers import until

S = AdapterState


@pytest.fixture
async def gateway():
    async with DiscordStandIn() as standin:
        with standin.patched():
            yield standin


async def _no_sleep(_s: float) -> None:
    return None


def _adapter(token: str = TOKEN) -> DiscordAdapter:
    return DiscordAdapter(settings=DiscordSettings(token=token), personas=["mika"])


def _state(sup: Supervisor) -> AdapterState | None:
    health = sup.snapshot()
    return health[0].state if health else None


async def test_a_missing_privileged_intent_goes_down_in_one_line(gateway, caplog):
    gateway.closes = [4014]
    seen: list[AdapterHealth] = []
    with caplog.at_level(logging.ERROR, logger="bots.adapters.supervise"):
        async with Supervisor([_adapter()], on_change=seen.append, sleep=_no_sleep) as sup:
            await until(lambda: _state(sup) is S.DOWN)
    assert [h.state for h in seen] == [S.CONNECTING, S.UP, S.DOWN]
    assert gateway.identified == 1 and gateway.logins == 1  # not retried
    down = seen[-1]
    assert down.code == "disallowed_intents"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("discord: down: the bot lacks the "
                                                   "privileged Message Content intent")
    assert "Privileged Gateway Intents" in lines[0]


async def test_a_refused_token_goes_down_at_login(gateway):
    async with Supervisor([_adapter("not.a.token")], sleep=_no_sleep) as sup:
        await until(lambda: _state(sup) is S.DOWN)
        assert sup.snapshot()[0].code == "token_invalid"
    assert gateway.logins == 1 and gateway.identified == 0


async def test_a_gateway_refusing_the_token_after_entering_goes_down(gateway):
    gateway.closes = [4004]
    async with Supervisor([_adapter()], sleep=_no_sleep) as sup:
        await until(lambda: _state(sup) is S.DOWN)
        assert sup.snapshot()[0].code == "token_invalid"
    assert gateway.identified == 1


async def test_a_close_discord_py_recovers_from_stays_up(gateway):
    gateway.closes = [4000, None]  # "Unknown error", marked "Reconnect: true"
    seen: list[AdapterHealth] = []
    async with Supervisor([_adapter()], on_change=seen.append, sleep=_no_sleep) as sup:
        await until(lambda: gateway.connected == 2)
        assert _state(sup) is S.UP
    assert [h.state for h in seen] == [S.CONNECTING, S.UP, S.STOPPED]
    assert gateway.logins == 1  # discord.py reconnected inside; no new login


async def test_no_network_at_login_is_retried_and_comes_back_up(gateway):
    from discord.http import Route

    live = Route.BASE
    Route.BASE = f"http://127.0.0.1:{free_port()}/api/v10"  # nothing listens: refused
    seen: list[AdapterHealth] = []

    async def network_back(_s: float) -> None:
        Route.BASE = live

    async with Supervisor([_adapter()], on_change=seen.append, sleep=network_back) as sup:
        await until(lambda: _state(sup) is S.UP)
    assert [h.state for h in seen] == [S.CONNECTING, S.RETRYING, S.CONNECTING, S.UP,
                                       S.STOPPED]
    assert seen[1].code == "connection_failed" and gateway.logins == 1
