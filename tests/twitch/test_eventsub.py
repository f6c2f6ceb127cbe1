"""The EventSub WebSocket layer against a stand-in that behaves as Twitch documents: a reconnect
hand-over during a burst loses and duplicates nothing, malformed frames cost one log line
each and reading goes on, ``keepalive_timeout_seconds`` is asked for and silence past it is
recovered in time, a revocation renews only what was revoked and only when that can work, and
an expired token is refreshed once, by its one owner."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from bots.adapters.twitch.adapter import TwitchAdapter
from bots.adapters.twitch.auth import TokenManager, TokenStore, device_login
from bots.adapters.twitch.events import EventMapper, PersonaTrigger
from bots.adapters.twitch.eventsub import EventSubPolicy
from bots.events import Decision
from tests.standins.twitch import BOT_ID, CLIENT_ID
from tests.twitch.helpers import chat_event, until

CHAT = "channel.chat.message"
# short timings, so a test does not wait out production delays
FAST = EventSubPolicy(silence_grace_s=2.0, drain_idle_s=0.2, drain_max_s=2.0, backoff_s=0.05,
                      resubscribe_delay_s=0.0)


class Recorder:
    """An :class:`~bots.adapters.base.EventSink` that accepts and keeps every event."""

    def __init__(self) -> None:
        self.events: list = []

    def submit(self, event) -> Decision:
        self.events.append(event)
        return Decision(True, event.trace_id)

    def interrupt(self, persona, *, reason: str) -> bool:
        return False

    def withdraw(self, persona, match, *, reason: str) -> int:
        return 0

    @property
    def ids(self) -> list[str]:
        return [e.msg_id for e in self.events]


async def _no_sleep(_s: float) -> None:
    return None


async def _adapter(tmp_path, twitch, **kw) -> tuple[TwitchAdapter, Recorder, TokenStore]:
    store = TokenStore(path=tmp_path / "twitch-tokens.json")
    await device_login(client_id=CLIENT_ID, store=store, show=lambda *a: None, sleep=_no_sleep)
    mapper = EventMapper(triggers=[PersonaTrigger(persona="mika", name="Mika", mode="prefix")])
    adapter = TwitchAdapter(mapper=mapper, tokens=TokenManager(store=store, client_id=CLIENT_ID),
                            bot_is_mod=True, eventsub_policy=kw.pop("policy", FAST), **kw)
    sink = Recorder()
    adapter.bind(sink)
    return adapter, sink, store


def _twitch_lines(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("bots.adapters.twitch") and r.levelno == level]


async def test_reconnect_during_a_burst_loses_and_duplicates_nothing(tmp_path, twitch):
    # 200 msg/s for 1.5 s; at 0.5 s Twitch asks for a reconnect that takes 300 ms to welcome,
    # and sends the last notifications of the old socket again on the new one
    twitch.reconnect_welcome_delay_s = 0.3
    twitch.redeliver_on_reconnect = 5
    adapter, sink, _ = await _adapter(tmp_path, twitch)
    events = [chat_event(f"!ask q{i}", message_id=f"m{i}", user=f"u{i % 50}")
              for i in range(300)]
    async with adapter:
        await twitch.burst(CHAT, events, rate_hz=200, reconnect_at=100)
        await until(lambda: len(set(sink.ids)) == 300, 5)
        old, new = twitch.connections
        await until(lambda: old.ws.closed, 5)
        await asyncio.sleep(0.3)  # anything late would show up as a duplicate
    # the old socket really carried part of the burst after session_reconnect
    after = [m for m in old.sent if int(m["payload"]["event"]["message_id"][1:]) >= 100]
    assert len(after) > 20, len(after)
    assert new.sent and len(new.sent) < 300
    assert sorted(sink.ids) == sorted(f"m{i}" for i in range(300))  # none lost, none twice
    assert adapter.counts["redelivered"] >= 5
    assert old.closed_by == "client" and old.close_code is None  # not Twitch's 4004
    assert adapter.counts["reconnects"] == 1 and adapter.counts["sessions_lost"] == 0


# frames that ended twitchio's read task without a word
KILLERS = [
    '{"payload": {}}',  # JSON without metadata
    '{"metadata": {"message_id": "x"}, "payload": {}}',  # no message_type
    "[]", "null", '"text"',
]


@pytest.mark.parametrize("frame", KILLERS)
async def test_a_malformed_frame_is_one_log_line_and_reading_goes_on(tmp_path, twitch, caplog,
                                                                     frame):
    adapter, sink, _ = await _adapter(tmp_path, twitch)
    async with adapter:
        await twitch.send_raw(frame)
        await twitch.notify(CHAT, chat_event("!ask still here", message_id="after"))
        await until(lambda: sink.ids == ["after"], 5)
    warnings = _twitch_lines(caplog, logging.WARNING)
    assert len(warnings) == 1 and "skipped an EventSub frame" in warnings[0], warnings
    assert not _twitch_lines(caplog, logging.ERROR)
    assert len(twitch.connections) == 1  # the same socket kept reading


async def test_every_bad_frame_in_a_row_is_one_line_each_on_the_same_socket(tmp_path, twitch,
                                                                            caplog):
    frames = ["{not json", '{"metadata": {"message_type": "mystery"}, "payload": {}}',
              '{"metadata": {"message_type": "notification"}, "payload": []}', *KILLERS]
    adapter, sink, _ = await _adapter(tmp_path, twitch)
    async with adapter:
        for frame in frames:
            await twitch.send_raw(frame)
        await twitch.notify(CHAT, chat_event("!ask still here", message_id="after"))
        await until(lambda: sink.ids == ["after"], 5)
    warnings = _twitch_lines(caplog, logging.WARNING)
    assert len(warnings) == len(frames), warnings
    assert adapter.counts["frames_skipped"] == len(frames)
    assert len(twitch.connections) == 1


async def test_an_unreadable_notification_is_one_line_and_the_next_arrives(tmp_path, twitch,
                                                                           caplog):
    adapter, sink, _ = await _adapter(tmp_path, twitch)
    broken = chat_event("!ask x", message_id="b1")
    del broken["message"]
    async with adapter:
        sub = twitch._sub_of(CHAT)
        unknown = twitch._message("notification", {"subscription": {**sub, "type": "x.y"},
                                                   "event": {}},
                                  sub={"type": "channel.unheard_of", "version": "1"})
        await twitch.send_raw(json.dumps(unknown))
        await twitch.notify(CHAT, broken)
        await twitch.notify(CHAT, chat_event("!ask fine", message_id="ok"))
        await until(lambda: sink.ids == ["ok"], 5)
    warnings = _twitch_lines(caplog, logging.WARNING)
    assert len(warnings) == 2, warnings
    assert len(twitch.connections) == 1


async def test_keepalive_is_asked_for_and_silence_is_recovered_in_time(tmp_path, twitch):
    keepalive = 11
    adapter, sink, _ = await _adapter(tmp_path, twitch, keepalive_s=keepalive)
    async with adapter:
        (first,) = twitch.connections
        assert first.query["keepalive_timeout_seconds"] == str(keepalive)
        assert first.keepalive_s == keepalive
        # a quiet channel is not a lost session: Twitch's keepalives keep it
        await asyncio.sleep(keepalive + FAST.silence_grace_s + 0.5)
        assert len(twitch.connections) == 1 and adapter.counts["sessions_lost"] == 0
        # a half-open socket: nothing arrives any more, not even keepalives
        t0 = time.monotonic()
        twitch.go_silent()
        await until(lambda: len(twitch.live()) == 1 and twitch.live()[0] is not first
                    and twitch.has_subscription(CHAT), keepalive + 10)
        recovered = time.monotonic() - t0
        await twitch.notify(CHAT, chat_event("!ask back?", message_id="back"))
        await until(lambda: sink.ids == ["back"], 5)
    assert recovered <= keepalive + FAST.silence_grace_s + 1.0, recovered
    assert twitch.connections[-1].query["keepalive_timeout_seconds"] == str(keepalive)
    assert adapter.counts["sessions_lost"] == 1


async def test_revocation_renews_only_the_revoked_subscription(tmp_path, twitch, caplog):
    adapter, sink, _ = await _adapter(tmp_path, twitch)
    async with adapter:
        before = len(twitch.subscribe_requests)
        # a status twitchio 3 has no name for
        await twitch.revoke("channel.raid", status="moderator_removed")
        await until(lambda: adapter.counts["resubscribed"] == 1, 5)
        await twitch.notify(CHAT, chat_event("!ask still", message_id="s"))
        await until(lambda: sink.ids == ["s"], 5)
        assert twitch.has_subscription("channel.raid")
        assert "channel.raid" in adapter.active_subscriptions
    assert twitch.subscribe_requests[before:] == ["channel.raid"]
    warnings = _twitch_lines(caplog, logging.WARNING)
    assert len(warnings) == 1 and "channel.raid" in warnings[0], warnings
    assert not _twitch_lines(caplog, logging.ERROR)


@pytest.mark.parametrize("status", ["authorization_revoked", "user_removed"])
async def test_no_renewal_when_twitch_would_refuse_it(tmp_path, twitch, caplog, status):
    adapter, sink, _ = await _adapter(tmp_path, twitch)
    async with adapter:
        before = len(twitch.subscribe_requests)
        await twitch.revoke("channel.raid", status=status)
        await until(lambda: adapter.counts["revoked"] == 1, 5)
        await asyncio.sleep(0.3)  # a renewal (no delay here) would have been asked by now
        await twitch.notify(CHAT, chat_event("!ask still", message_id="s"))
        await until(lambda: sink.ids == ["s"], 5)
        assert "channel.raid" not in adapter.active_subscriptions
    assert twitch.subscribe_requests[before:] == []
    warnings = _twitch_lines(caplog, logging.WARNING)
    assert len(warnings) == 1 and status in warnings[0], warnings
    assert not _twitch_lines(caplog, logging.ERROR)


async def test_an_expired_token_is_refreshed_once_by_its_one_owner(tmp_path, twitch):
    adapter, sink, store = await _adapter(tmp_path, twitch)
    async with adapter:
        twitch.expire_next = 1  # the reply's POST chat/messages meets an expired token
        await adapter.send_chat("hello", reply_to=None)
        # a lost session: subscribing again needs the token too
        await twitch.drop()
        await until(lambda: twitch.has_subscription(CHAT) and len(twitch.connections) == 2, 10)
        await adapter.send_chat("hello again", reply_to=None)
        await twitch.notify(CHAT, chat_event("!ask still there?", message_id="s"))
        await until(lambda: sink.ids == ["s"], 5)
        owner_token = adapter._client.tokens[BOT_ID]["token"]
    assert twitch.refreshes == 1
    assert [m["message"] for m in twitch.chat] == ["hello", "hello again"]
    assert store.load().access_token == owner_token == "user-access-2"
    assert twitch.access_tokens[owner_token] == BOT_ID
