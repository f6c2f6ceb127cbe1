"""End to end against the stand-in: EventSub -> twitchio -> adapter -> the real orchestrator
(fake performer) -> replies at chat/messages, redemptions fulfilled or cancelled; reconnects
lose and duplicate nothing; malformed payloads are skipped."""

from __future__ import annotations

import pytest

from bots.adapters.twitch.adapter import TwitchAdapter
from bots.adapters.twitch.auth import TokenManager, TokenStore, device_login
from bots.adapters.twitch.events import EventMapper, PersonaTrigger
from bots.orchestrator.orchestrator import Orchestrator
from tests.orchestrator.fakes import FakePipeline, FakeStage, persona
from tests.standins.twitch import BOT_ID, CLIENT_ID
from tests.twitch.helpers import chat_event, fixture, until

REDEEM = "channel.channel_points_custom_reward_redemption.add"
QUICK = {"queue": {"user_cooldown_s": 0, "duplicate_window_s": 0, "max_length": 10_000}}


async def _no_sleep(_s: float) -> None:
    return None


@pytest.fixture
async def adapter(tmp_path, twitch):
    store = TokenStore(path=tmp_path / "twitch-tokens.json")
    await device_login(client_id=CLIENT_ID, store=store, show=lambda *a: None, sleep=_no_sleep)
    mapper = EventMapper(triggers=[PersonaTrigger(persona="mika", name="Mika", mode="prefix",
                                                  reward_title="Ask Mika")])
    return TwitchAdapter(mapper=mapper, tokens=TokenManager(store=store, client_id=CLIENT_ID),
                         bot_is_mod=True)


async def run(adapter, tmp_path, perf=None, **persona_kw):
    personas = {"mika": persona("mika", tmp_path, **{**QUICK, **persona_kw})}
    orch = Orchestrator(personas=personas, stages=[FakeStage()], default_persona="mika",
                        adapters=[adapter], pipeline=perf or FakePipeline(clips=1, work_s=0))
    return orch


async def test_chat_message_is_answered_as_a_reply(adapter, twitch, tmp_path):
    long_perf = FakePipeline(  # 12 sentences: more than 500 characters
        clips=12, work_s=0, line="Once upon a time a dragon guarded a mountain of snacks.")
    async with await run(adapter, tmp_path, long_perf), adapter:
        assert twitch.has_subscription("channel.chat.message")
        question = "!ask " + "tell me a long story about dragons " * 2
        await twitch.notify("channel.chat.message", chat_event(question, message_id="msg-1"))
        await until(lambda: len(twitch.chat) >= 2)
    first, *rest = twitch.chat
    assert first["reply_parent_message_id"] == "msg-1"
    assert first["sender_id"] == BOT_ID and first["broadcaster_id"] == BOT_ID
    assert all(len(m["message"]) <= 500 for m in twitch.chat)
    assert rest and all("reply_parent_message_id" not in m for m in rest)


async def test_redemptions_fulfilled_or_cancelled(adapter, twitch, tmp_path):
    # made by `vstage twitch setup` (this app's client id), so vstage may settle it
    twitch.add_reward("Ask Mika", client_id=CLIENT_ID, broadcaster_id=BOT_ID,
                      reward_id=fixture(REDEEM)["reward"]["id"])
    async with await run(adapter, tmp_path), adapter:
        await twitch.notify(REDEEM, fixture(REDEEM, id="r-ok"))
        bad = fixture(REDEEM, id="r-link", user_input="visit https://spam.example.com now")
        await twitch.notify(REDEEM, bad)
        await until(lambda: len(twitch.redemptions) == 2)
    status = {r["id"]: r["status"] for r in twitch.redemptions}
    assert status == {"r-ok": "FULFILLED", "r-link": "CANCELED"}
    assert twitch.redemptions[0]["reward_id"] == "92af127c-7326-4483-a52b-b0da0be61c01"


async def test_reconnect_mid_burst_loses_and_duplicates_nothing(adapter, twitch, tmp_path):
    perf = FakePipeline(clips=1, work_s=0)
    async with await run(adapter, tmp_path, perf), adapter:
        ids = []
        for i in range(60):
            if i == 20:
                await twitch.session_reconnect()
                await until(lambda: any("reconnect" not in k for k in twitch.sockets)
                            and len(twitch.sockets) == 1 and "session-1" not in twitch.sockets)
            if i == 40:  # a dropped socket: twitchio reconnects and resubscribes
                await twitch.drop()
                await until(lambda: twitch.has_subscription("channel.chat.message"))
            mid = await twitch.notify("channel.chat.message",
                                      chat_event(f"!ask q{i}", message_id=f"m{i}",
                                                 user=f"u{i}"))
            ids.append(mid)
        # Twitch may redeliver: the same notifications again are dropped
        for i in (5, 25, 45):
            await twitch.notify("channel.chat.message",
                                chat_event(f"!ask q{i}", message_id=f"m{i}", user=f"u{i}"),
                                message_id=ids[i])
        await until(lambda: len(perf.started) == 60 and len(twitch.chat) == 60)
    asked = sorted(int(t.split("q")[1]) for _, t in perf.started)
    assert asked == list(range(60))
    assert adapter.counts["redelivered"] == 3


async def test_malformed_and_unknown_payloads_are_skipped(adapter, twitch, tmp_path, caplog):
    perf = FakePipeline(clips=1, work_s=0)
    async with await run(adapter, tmp_path, perf), adapter:
        await twitch.send_raw("{not json")
        await twitch.send_raw('{"metadata": {"message_type": "mystery"}, "payload": {}}')
        broken = chat_event("!ask x", message_id="b1")
        del broken["message"]
        await twitch.notify("channel.chat.message", broken)
        await twitch.notify("channel.chat.message", chat_event("!ask fine", message_id="ok"))
        await until(lambda: len(twitch.chat) == 1)
    assert [t for _, t in perf.started] == ["fine"]


async def test_revoked_subscription_is_logged_not_fatal(adapter, twitch, tmp_path, caplog):
    async with await run(adapter, tmp_path), adapter:
        await twitch.revoke("channel.raid")
        await until(lambda: adapter.counts["revoked"] == 1)
        await twitch.notify("channel.chat.message", chat_event("!ask still", message_id="s"))
        await until(lambda: len(twitch.chat) == 1)
    assert "revoked" in caplog.text
