"""The Twitch adapter under the supervisor, against the Twitch stand-in: a revoked token
(``GET /oauth2/validate`` answers 401 and the refresh token is refused, as Twitch documents in
"Validating tokens" and "Refreshing access tokens") goes ``down`` on connect with the fix and
is not retried, and so does a token refused (401) while subscribing to EventSub; Twitch
answering 5xx or refusing the connection is transient (``retrying``) until it answers again."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web

from bots.adapters.supervise import AdapterHealth, AdapterState, Supervisor
from bots.adapters.twitch.auth import device_login
from bots.adapters.twitch.setup import build_adapter, token_store
from bots.config import load_config
from tests.standins.twitch import CLIENT_ID, TwitchStandIn
from tests.twitch.helpers import until

S = AdapterState


class FlakyTwitch(TwitchStandIn):
    """The stand-in, with two documented awkward parts switched on by the test: Twitch
    answering ``/oauth2/validate`` with a 5xx for a while, and the user disconnecting the app
    just as the first EventSub subscription is made (its ``POST eventsub/subscriptions`` then
    answers 401, as a revoked token gets everywhere)."""

    def __init__(self) -> None:
        super().__init__(pending_polls=0)
        self.validate_5xx = 0  # answer the next N validations with 503
        self.revoke_on_subscribe = False
        self.validations = 0

    async def _validate(self, request: web.Request) -> web.Response:
        self.validations += 1
        if self.validate_5xx > 0:
            self.validate_5xx -= 1
            return web.json_response({"status": 503, "message": "Service Unavailable"},
                                     status=503)
        return await super()._validate(request)

    async def _subscribe(self, request: web.Request) -> web.Response:
        if self.revoke_on_subscribe:
            self.revoke_on_subscribe = False
            revoke(self)
        return await super()._subscribe(request)


@pytest.fixture
async def twitch():
    async with FlakyTwitch() as tw:
        with tw.patched():
            yield tw


async def _no_sleep(_s: float) -> None:
    return None


async def _adapter(config_copy):
    app = config_copy / "vstage.yaml"
    app.write_text(app.read_text() + f"\ntwitch:\n  enabled: true\n  client_id: {CLIENT_ID}\n")
    cfg = load_config(config_copy)
    await device_login(client_id=CLIENT_ID, store=token_store(cfg), show=lambda *a: None,
                       sleep=_no_sleep)
    adapter = build_adapter(cfg, list(cfg.personas.values()))
    assert adapter is not None
    return adapter


def _state(sup: Supervisor) -> AdapterState | None:
    health = sup.snapshot()
    return health[0].state if health else None


def revoke(twitch: TwitchStandIn) -> None:
    """The user disconnected the app: its access and refresh tokens stop working."""
    twitch.access_tokens = {t: u for t, u in twitch.access_tokens.items()
                            if not t.startswith("user-")}
    twitch.refresh_tokens.clear()


async def test_a_revoked_token_goes_down_on_connect_and_is_not_retried(
        config_copy, twitch, caplog):
    adapter = await _adapter(config_copy)
    revoke(twitch)
    seen: list[AdapterHealth] = []
    with caplog.at_level(logging.ERROR):
        async with Supervisor([adapter], on_change=seen.append, sleep=_no_sleep) as sup:
            await until(lambda: _state(sup) is S.DOWN)
    assert [h.state for h in seen] == [S.CONNECTING, S.DOWN]
    assert seen[-1].code == "token_invalid"
    assert twitch.subscribe_requests == []
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(lines) == 1 and lines[0].startswith("twitch: down: ")
    assert "vstage twitch login" in lines[0]


async def test_twitch_unreachable_is_transient(config_copy, twitch):
    adapter = await _adapter(config_copy)
    await twitch.__aexit__(None, None, None)  # Twitch is gone: connection refused
    async with Supervisor([adapter], sleep=_no_sleep) as sup:
        await until(lambda: sup.snapshot() and sup.snapshot()[0].failures >= 2)
        assert _state(sup) in (S.RETRYING, S.CONNECTING)
        assert sup.snapshot()[0].code == "connection_failed"


async def test_a_token_refused_while_subscribing_goes_down(config_copy, twitch):
    adapter = await _adapter(config_copy)
    twitch.revoke_on_subscribe = True
    async with Supervisor([adapter], sleep=_no_sleep) as sup:
        await until(lambda: _state(sup) is S.DOWN)
        assert sup.snapshot()[0].code == "token_invalid"
        assert sup.snapshot()[0].attempts == 1
    assert twitch.subscribe_requests == []  # the first one was refused; no more were tried


async def test_twitch_answering_5xx_is_retried_and_comes_back_up(config_copy, twitch):
    adapter = await _adapter(config_copy)
    twitch.validate_5xx = 2
    seen: list[AdapterHealth] = []
    async with Supervisor([adapter], on_change=seen.append, sleep=_no_sleep) as sup:
        await until(lambda: _state(sup) is S.UP)
        assert twitch.has_subscription("channel.chat.message")
    assert [h.state for h in seen][:5] == [S.CONNECTING, S.RETRYING, S.CONNECTING,
                                           S.RETRYING, S.CONNECTING]
    assert seen[1].code == "http_503"
