"""Chat as Twitch really sends it: a reply carries ``@parent`` before its ``!ask``, cheermotes
sit in the text, Power-ups are paid with Bits (``channel.bits.use``), subs and raids come as
``channel.chat.notification`` when only the bot is logged in, and a shared chat brings other
channels' messages."""

from __future__ import annotations

from bots.events import ChatMessage, Notice
from tests.orchestrator.fakes import FakePipeline
from tests.standins import twitch_payloads as tp
from tests.twitch.channel import channel_adapter, orchestrator, record_submits
from tests.twitch.helpers import until

CHAT = "channel.chat.message"
OTHER = {"id": "55551111", "login": "friendchannel", "name": "FriendChannel"}


async def test_reply_prefixed_ask_is_answered_as_a_reply(twitch, tmp_path):
    perf = FakePipeline(clips=1, work_s=0)
    adapter = await channel_adapter(twitch, tmp_path)
    async with orchestrator(adapter, tmp_path, perf), adapter:
        parent = tp.chat_message("anyone know the next game?", user="ann")
        reply = tp.reply_to(parent, "!ask what game is next?", user="bob")
        assert reply["message"]["text"] == "@ann !ask what game is next?"  # as Twitch sends it
        await twitch.notify(CHAT, parent)
        await twitch.notify(CHAT, reply)
        await until(lambda: len(twitch.chat) == 1)
    assert [t for _, t in perf.started] == ["what game is next?"]
    assert twitch.chat[0]["reply_parent_message_id"] == reply["message_id"]


async def test_cheermotes_are_not_spoken_and_the_cheer_is_paid(twitch, tmp_path):
    perf = FakePipeline(clips=1, work_s=0)
    adapter = await channel_adapter(twitch, tmp_path)
    orch = orchestrator(adapter, tmp_path, perf)
    seen = record_submits(orch)
    async with orch, adapter:
        await twitch.notify(CHAT, tp.chat_message("Cheer100 !ask how are you today? Cheer50",
                                                  bits=150))
        await twitch.notify(CHAT, tp.chat_message("Cheer500 great stream", bits=500, user="c"))
        await until(lambda: len(twitch.chat) == 2)
    assert sorted(t for _, t in perf.started) == ["great stream", "how are you today?"]
    assert [e.bits for e in seen if isinstance(e, ChatMessage)] == [150, 500]


async def test_power_ups_and_bits_use_are_paid_and_answered_once(twitch, tmp_path):
    perf = FakePipeline(clips=1, work_s=0)
    adapter = await channel_adapter(twitch, tmp_path)
    orch = orchestrator(adapter, tmp_path, perf)
    seen = record_submits(orch)
    async with orch, adapter:
        assert "channel.bits.use" in adapter.active_subscriptions
        # a message effect: channel.bits.use (what it cost) and the chat message it made
        await twitch.notify("channel.bits.use", tp.bits_use(
            300, user="fan", text="!ask sing us a song"))
        await twitch.notify(CHAT, tp.chat_message(
            "!ask sing us a song", user="fan", message_type="power_ups_message_effect"))
        # a cheer also comes as channel.bits.use: it is answered from its chat message only
        await twitch.notify("channel.bits.use", tp.bits_use(
            100, user="cheery", use_type="cheer", text="Cheer100 hi"))
        await twitch.notify("channel.bits.use", tp.bits_use(50, power_up="celebration"))
        await until(lambda: adapter.counts["notifications"] == 4 and len(twitch.chat) == 1)
    (paid,) = seen
    assert isinstance(paid, ChatMessage) and paid.paid and paid.bits == 300
    assert paid.message == "sing us a song"
    assert "reply_parent_message_id" not in twitch.chat[0]  # no chat message to point at


async def test_power_up_message_is_paid_without_the_broadcaster_login(twitch, tmp_path):
    perf = FakePipeline(clips=1, work_s=0)
    adapter = await channel_adapter(twitch, tmp_path, broadcaster=False)
    orch = orchestrator(adapter, tmp_path, perf)
    seen = record_submits(orch)
    async with orch, adapter:
        assert "channel.bits.use" in adapter.failed_subscriptions
        message = tp.chat_message("look at me Mika", user="fan",
                                  message_type="power_ups_gigantified_emote")
        await twitch.notify(CHAT, message)
        await until(lambda: len(twitch.chat) == 1)
    (paid,) = seen
    assert paid.paid and paid.message == "look at me Mika"
    assert twitch.chat[0]["reply_parent_message_id"] == message["message_id"]


async def test_chat_notifications_thank_subs_gifts_and_raids_with_only_the_bot(twitch,
                                                                              tmp_path):
    adapter = await channel_adapter(twitch, tmp_path, broadcaster=False)
    orch = orchestrator(adapter, tmp_path)
    seen = record_submits(orch)
    async with orch, adapter:
        assert "channel.subscribe" in adapter.failed_subscriptions
        note = "channel.chat.notification"
        await twitch.notify(note, tp.chat_notification("sub", user="newbie"))
        await twitch.notify(note, tp.chat_notification("resub", user="old", text="10 months!",
                                                       cumulative_months=10))
        gift = tp.chat_notification("community_sub_gift", user="santa", total=5)
        await twitch.notify(note, gift)
        for i in range(5):  # the five gifts of it: thanked once, above
            await twitch.notify(note, tp.chat_notification(
                "sub_gift", user="santa",
                community_gift_id=gift["community_sub_gift"]["id"],
                **tp.user_fields(f"lucky{i}", "recipient_user")))
        await twitch.notify(note, tp.chat_notification("sub_gift", user="kind"))  # one, direct
        await twitch.notify(note, tp.chat_notification("raid", user="raider"))  # channel.raid's
        await twitch.notify(note, tp.chat_notification("shared_chat_sub", user="elsewhere"))
        await until(lambda: adapter.counts["notifications"] == 11)
    notices = [(e.kind, e.viewer.name, e.amount) for e in seen if isinstance(e, Notice)]
    assert notices == [("subscription", "newbie", 0), ("resubscription", "old", 10),
                       ("gift", "santa", 5), ("gift", "kind", 1)]
    assert [e.message for e in seen if isinstance(e, Notice) and e.kind == "resubscription"] \
        == ["10 months!"]


async def test_chat_notifications_are_not_doubled_with_the_broadcaster_login(twitch, tmp_path):
    adapter = await channel_adapter(twitch, tmp_path)
    orch = orchestrator(adapter, tmp_path)
    seen = record_submits(orch)
    async with orch, adapter:
        await twitch.notify("channel.chat.notification", tp.chat_notification("sub"))
        await until(lambda: adapter.counts["notifications"] == 1)
    assert seen == []  # thanked from channel.subscribe instead


async def test_shared_chat_from_other_channels_is_ignored_by_default(twitch, tmp_path):
    perf = FakePipeline(clips=1, work_s=0)
    adapter = await channel_adapter(twitch, tmp_path)
    async with orchestrator(adapter, tmp_path, perf), adapter:
        await twitch.notify(CHAT, tp.chat_message("!ask from the friend's chat", user="guest",
                                                  source=OTHER))
        here = {"id": tp.BROADCASTER["broadcaster_user_id"], "login": "mikachannel",
                "name": "MikaChannel"}
        await twitch.notify(CHAT, tp.chat_message("!ask from our own chat", user="local",
                                                  source=here))
        await until(lambda: len(twitch.chat) == 1)
    assert [t for _, t in perf.started] == ["from our own chat"]


async def test_shared_chat_allowed_is_tagged_with_its_channel(twitch, tmp_path):
    perf = FakePipeline(clips=1, work_s=0)
    adapter = await channel_adapter(twitch, tmp_path, shared_chat=True)
    orch = orchestrator(adapter, tmp_path, perf)
    seen = record_submits(orch)
    async with orch, adapter:
        await twitch.notify(CHAT, tp.chat_message("!ask hello from next door", user="guest",
                                                  source=OTHER))
        await until(lambda: len(twitch.chat) == 1)
    (event,) = seen
    assert event.viewer.name == "guest (in FriendChannel's chat)"
    assert event.viewer.id == tp.user_id("guest")
