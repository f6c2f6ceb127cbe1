"""The bot is not the broadcaster: both accounts log in with the Device Code flow against the
stand-in, which refuses (403) broadcaster-only requests made with the bot's token. Chat goes
out as the bot; channel events and redemption updates use the broadcaster's token; without
the broadcaster's login the adapter says which subscriptions failed and chat still works."""

from __future__ import annotations

import logging
import stat
from types import SimpleNamespace

import pytest

from bots.adapters.twitch.adapter import BROADCASTER_ONLY, SUBSCRIPTIONS, TwitchAdapter
from bots.adapters.twitch.auth import BROADCASTER_SCOPES, TokenManager, TokenStore, device_login
from bots.adapters.twitch.events import EventMapper, PersonaTrigger
from bots.adapters.twitch.setup import broadcaster_token_store, build_adapter, token_store
from bots.cli import _twitch_login, build_parser
from bots.config import load_config
from bots.orchestrator.orchestrator import Orchestrator
from tests.orchestrator.fakes import FakePipeline, FakeStage, persona
from tests.standins.twitch import BOT_ID, BROADCASTER_ID, CLIENT_ID
from tests.twitch.helpers import chat_event, fixture, until

REDEEM = "channel.channel_points_custom_reward_redemption.add"
QUICK = {"queue": {"user_cooldown_s": 0, "duplicate_window_s": 0, "max_length": 10_000}}


async def _no_sleep(_s: float) -> None:
    return None


async def _login(twitch, store: TokenStore, user: str, **kw) -> TokenManager:
    twitch.approve_as = user
    await device_login(client_id=CLIENT_ID, store=store, show=lambda *a: None, sleep=_no_sleep,
                       **kw)
    return TokenManager(store=store, client_id=CLIENT_ID)


def _mapper() -> EventMapper:
    return EventMapper(triggers=[PersonaTrigger(persona="mika", name="Mika", mode="prefix",
                                                reward_title="Ask Mika")])


def _orchestrator(adapter, tmp_path, perf=None) -> Orchestrator:
    personas = {"mika": persona("mika", tmp_path, **QUICK)}
    return Orchestrator(personas=personas, stages=[FakeStage()], default_persona="mika",
                        adapters=[adapter], pipeline=perf or FakePipeline(clips=1, work_s=0))


async def test_broadcaster_token_for_channel_events_bot_token_for_chat(tmp_path, twitch):
    bot = await _login(twitch, TokenStore(path=tmp_path / "bot.json"), BOT_ID)
    channel_store = TokenStore(path=tmp_path / "broadcaster.json")
    channel = await _login(twitch, channel_store, BROADCASTER_ID, scopes=BROADCASTER_SCOPES)
    assert channel.tokens.user_id == BROADCASTER_ID
    assert stat.S_IMODE(channel_store.path.stat().st_mode) == 0o600
    adapter = TwitchAdapter(mapper=_mapper(), tokens=bot, broadcaster_tokens=channel,
                            bot_is_mod=True)
    assert (adapter.bot_id, adapter.broadcaster_id) == (BOT_ID, BROADCASTER_ID)

    twitch.add_reward("Ask Mika", client_id=CLIENT_ID,  # made by `vstage twitch setup`
                      reward_id=fixture(REDEEM)["reward"]["id"])
    async with _orchestrator(adapter, tmp_path), adapter:
        for sub_type, _ in SUBSCRIPTIONS:
            expected = BROADCASTER_ID if sub_type in BROADCASTER_ONLY else BOT_ID
            assert twitch.subscriber(sub_type) == expected, sub_type
        assert adapter.failed_subscriptions == []

        await twitch.notify("channel.chat.message", chat_event("!ask hi Mika", message_id="c1"))
        await until(lambda: len(twitch.chat) == 1)
        twitch.expire_next = 1  # the PATCH meets an expired broadcaster token: refreshed
        await twitch.notify(REDEEM, fixture(REDEEM, id="r-ok"))
        await until(lambda: len(twitch.redemptions) == 1 and len(twitch.chat) == 2)

    assert twitch.refused == []
    reply = twitch.chat[0]
    assert reply["sender_id"] == BOT_ID and reply["broadcaster_id"] == BROADCASTER_ID
    assert reply["reply_parent_message_id"] == "c1"
    (redemption,) = twitch.redemptions
    assert redemption["status"] == "FULFILLED" and redemption["id"] == "r-ok"
    assert redemption["token_user"] == BROADCASTER_ID
    assert redemption["broadcaster_id"] == BROADCASTER_ID
    # the refreshed pair went to the broadcaster's file, not the bot's
    assert channel_store.load().access_token.startswith("broadcaster-access-")
    assert channel_store.load().access_token != "broadcaster-access-1"
    assert TokenStore(path=tmp_path / "bot.json").load().access_token == "user-access-1"


async def test_without_broadcaster_login_failures_are_logged_and_chat_works(tmp_path, twitch,
                                                                          caplog):
    bot = await _login(twitch, TokenStore(path=tmp_path / "bot.json"), BOT_ID)
    adapter = TwitchAdapter(mapper=_mapper(), tokens=bot, broadcaster_id=BROADCASTER_ID)
    with caplog.at_level(logging.ERROR, logger="bots.adapters.twitch.adapter"):
        async with _orchestrator(adapter, tmp_path), adapter:
            assert twitch.has_subscription("channel.raid")  # any token will do
            await twitch.notify("channel.chat.message",
                                chat_event("!ask still here?", message_id="c2"))
            await until(lambda: len(twitch.chat) == 1)
    assert sorted(adapter.failed_subscriptions) == sorted(BROADCASTER_ONLY)
    assert {r["what"] for r in twitch.refused} == set(BROADCASTER_ONLY)
    assert all(r["token_user"] == BOT_ID for r in twitch.refused)
    for sub_type in BROADCASTER_ONLY:
        assert f"cannot subscribe to {sub_type}" in caplog.text
    assert "vstage twitch login --broadcaster" in caplog.text
    assert twitch.chat[0]["sender_id"] == BOT_ID
    assert twitch.chat[0]["broadcaster_id"] == BROADCASTER_ID


async def test_token_refreshed_by_twitchio_goes_to_the_right_file(tmp_path, twitch):
    bot = await _login(twitch, TokenStore(path=tmp_path / "bot.json"), BOT_ID)
    channel = await _login(twitch, TokenStore(path=tmp_path / "b.json"), BROADCASTER_ID)
    adapter = TwitchAdapter(mapper=_mapper(), tokens=bot, broadcaster_tokens=channel)
    adapter.on_token_refreshed(SimpleNamespace(user_id=BROADCASTER_ID, token="b-new",
                                               refresh_token="b-ref"))
    assert channel.store.load().access_token == "b-new"
    assert bot.store.load().access_token == "user-access-1"


async def test_cli_broadcaster_login_and_app_built_adapter(config_copy, twitch):
    twitch.pending_polls = 0  # approved at once: the CLI's real sleep is not reached
    app = config_copy / "vstage.yaml"
    app.write_text(app.read_text() + f"\ntwitch:\n  enabled: true\n  client_id: {CLIENT_ID}\n")
    args = build_parser().parse_args(["--config", str(config_copy), "twitch", "login"])
    assert await _twitch_login(args) == 0
    twitch.approve_as = BROADCASTER_ID
    args = build_parser().parse_args(["--config", str(config_copy), "twitch", "login",
                                      "--broadcaster"])
    assert await _twitch_login(args) == 0

    cfg = load_config(config_copy)
    store = broadcaster_token_store(cfg)
    assert store.path.name == "twitch-broadcaster-tokens.json"
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert set(store.load().scopes) == set(BROADCASTER_SCOPES)
    assert token_store(cfg).load().user_id == BOT_ID
    adapter = build_adapter(cfg, list(cfg.personas.values()))
    assert adapter is not None and adapter.broadcaster_tokens is not None
    assert (adapter.bot_id, adapter.broadcaster_id) == (BOT_ID, BROADCASTER_ID)


@pytest.mark.parametrize("explicit", [None, BOT_ID])
async def test_explicit_broadcaster_id_wins(tmp_path, twitch, explicit):
    bot = await _login(twitch, TokenStore(path=tmp_path / "bot.json"), BOT_ID)
    channel = await _login(twitch, TokenStore(path=tmp_path / "b.json"), BROADCASTER_ID)
    adapter = TwitchAdapter(mapper=_mapper(), tokens=bot, broadcaster_tokens=channel,
                            broadcaster_id=explicit)
    assert adapter.broadcaster_id == (explicit or BROADCASTER_ID)
