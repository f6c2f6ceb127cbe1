"""Channel-point redemptions as Twitch really settles them: only the app that created a
reward may update its redemptions (a dashboard reward answers 403), a reward that skips the
request queue arrives already fulfilled, and `vstage twitch setup` creates each persona's
reward through Helix so vstage may manage it, once."""

from __future__ import annotations

import logging

from bots.adapters.twitch.setup import broadcaster_token_store, build_adapter, token_store
from bots.cli import _twitch_setup, build_parser
from bots.config import load_config
from tests.standins import twitch_payloads as tp
from tests.standins.twitch import BOT_ID, BROADCASTER_ID, CLIENT_ID
from tests.standins.twitch_helix import REDEEM
from tests.twitch.channel import channel_adapter, login, orchestrator
from tests.twitch.helpers import until

ADAPTER_LOG = "bots.adapters.twitch.adapter"


async def test_dashboard_reward_is_answered_and_reported_once_with_the_fix(twitch, tmp_path,
                                                                           caplog):
    reward = twitch.add_reward("Ask Mika", client_id=None)  # made in the Twitch dashboard
    adapter = await channel_adapter(twitch, tmp_path)
    with caplog.at_level(logging.ERROR, logger=ADAPTER_LOG):
        async with orchestrator(adapter, tmp_path), adapter:
            await twitch.notify(REDEEM, tp.redemption(reward, user_input="favourite colour?"))
            await until(lambda: len(twitch.chat) == 1 and twitch.redemption_requests)
            for i in range(2):
                await twitch.notify(REDEEM, tp.redemption(
                    reward, user=f"fan{i}", user_input=f"what is your favourite song {i}?"))
            await until(lambda: len(twitch.chat) == 3)
    # every answer is in chat although Twitch refused the update
    assert all(m["sender_id"] == BOT_ID for m in twitch.chat)
    assert twitch.redemptions == []
    # asked once, refused with Twitch's 403, then not asked again
    assert len(twitch.redemption_requests) == 1
    (refusal,) = [r for r in twitch.refused if r.get("reward_id") == reward["id"]]
    assert refusal["needed"] is None
    reports = [r for r in caplog.records if "was not created by vstage" in r.getMessage()]
    assert len(reports) == 1
    assert "vstage twitch setup" in reports[0].getMessage()
    assert "Ask Mika" in reports[0].getMessage()


async def test_skip_queue_rewards_are_not_updated(twitch, tmp_path):
    instant = twitch.add_reward("Ask Mika", client_id=CLIENT_ID, skip_queue=True)
    adapter = await channel_adapter(twitch, tmp_path)
    async with orchestrator(adapter, tmp_path), adapter:
        event = tp.redemption(instant, user_input="tell me a joke")
        assert event["status"] == "fulfilled"  # Twitch fulfilled it at once
        await twitch.notify(REDEEM, event)
        # one that is spoken and one refused by moderation: neither is PATCHed
        await twitch.notify(REDEEM, tp.redemption(
            instant, user="spammer", user_input="visit https://spam.example.com now"))
        await until(lambda: len(twitch.chat) == 1 and adapter.counts[
            "redemption_auto_fulfilled"] == 2)
    assert twitch.redemption_requests == []
    assert twitch.refused == []


def _enable(config_copy):
    app = config_copy / "vstage.yaml"
    app.write_text(app.read_text() + f"\ntwitch:\n  enabled: true\n  client_id: {CLIENT_ID}\n")
    return load_config(config_copy)


async def _setup(config_copy) -> int:
    args = build_parser().parse_args(["--config", str(config_copy), "twitch", "setup"])
    return await _twitch_setup(args)


async def test_twitch_setup_creates_the_reward_once_and_vstage_manages_it(
        config_copy, twitch, tmp_path, capsys):
    cfg = _enable(config_copy)
    await login(twitch, token_store(cfg).path, BOT_ID)
    await login(twitch, broadcaster_token_store(cfg).path, BROADCASTER_ID)

    assert await _setup(config_copy) == 0
    (created,) = twitch.created_rewards
    assert created["title"] == cfg.personas["mika"].twitch.reward_title == "Ask Mika"
    assert created["_client_id"] == CLIENT_ID and created["broadcaster_id"] == BROADCASTER_ID
    assert created["is_user_input_required"] is True
    assert created["should_redemptions_skip_request_queue"] is False
    assert "created the reward 'Ask Mika'" in capsys.readouterr().out

    assert await _setup(config_copy) == 0  # idempotent: the second run creates nothing
    assert len(twitch.created_rewards) == 1 and len(twitch.rewards) == 1
    assert "nothing to change" in capsys.readouterr().out

    # the app-built adapter settles redemptions of the reward setup made
    adapter = build_adapter(cfg, list(cfg.personas.values()))
    assert adapter is not None
    async with orchestrator(adapter, tmp_path), adapter:
        event = tp.redemption(created, user_input="what do you dream about?")
        await twitch.notify(REDEEM, event)
        await until(lambda: len(twitch.redemptions) == 1 and len(twitch.chat) == 1)
    assert twitch.redemptions[0]["status"] == "FULFILLED"
    assert twitch.redemptions[0]["id"] == event["id"]


async def test_twitch_setup_reports_a_dashboard_reward_with_the_fix(config_copy, twitch, capsys):
    cfg = _enable(config_copy)
    await login(twitch, token_store(cfg).path, BOT_ID)
    await login(twitch, broadcaster_token_store(cfg).path, BROADCASTER_ID)
    twitch.add_reward("ask mika", client_id=None)  # same title (any case), made by hand

    assert await _setup(config_copy) == 2
    out = capsys.readouterr().out
    assert twitch.created_rewards == []
    assert out.count("problem:") == 1
    assert "'Ask Mika'" in out and "delete it in the Twitch dashboard" in out
    assert "vstage twitch setup" in out
