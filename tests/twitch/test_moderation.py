"""Twitch's own moderation reaches the show: a deleted message, a cleared chat, a timed-out
or banned viewer take their items out of the queue (paid ones refunded), and a reply already
on stage is cut. Real orchestrator; the fake performer's clips take time to play."""

from __future__ import annotations

from tests.orchestrator.fakes import FakePipeline, FakeStage
from tests.standins import twitch_payloads as tp
from tests.standins.twitch import CLIENT_ID
from tests.standins.twitch_helix import REDEEM
from tests.twitch.channel import channel_adapter, orchestrator
from tests.twitch.helpers import until

CHAT = "channel.chat.message"


def _slow(clip_s: float = 0.5) -> FakePipeline:
    return FakePipeline(clips=3, work_s=0.01, clip_s=clip_s)


def _on_stage(stage: FakeStage, text: str) -> bool:
    return any(c.text.startswith(text) for c in stage.clips())


def _answered(twitch, message_id: str) -> bool:
    return any(m.get("reply_parent_message_id") == message_id for m in twitch.chat)


async def test_deleted_messages_are_dropped_queued_and_cut_on_stage(twitch, tmp_path):
    perf, stage = _slow(), FakeStage()
    adapter = await channel_adapter(twitch, tmp_path)
    async with orchestrator(adapter, tmp_path, perf, stage), adapter:
        playing = tp.chat_message("!ask first question", user="ann")
        await twitch.notify(CHAT, playing)
        await until(lambda: _on_stage(stage, "first question"))
        queued = [tp.chat_message(f"!ask question {i}", user=f"u{i}") for i in range(3)]
        for m in queued:
            await twitch.notify(CHAT, m)
        await twitch.notify("channel.chat.message_delete",
                            tp.message_delete(queued[1]["message_id"], user="u1"))
        await twitch.notify("channel.chat.message_delete",
                            tp.message_delete(playing["message_id"], user="ann"))
        await until(lambda: _answered(twitch, queued[0]["message_id"])
                    and _answered(twitch, queued[2]["message_id"]))
    assert not _answered(twitch, playing["message_id"])  # cut: no answer in chat
    assert len([c for c in stage.clips() if c.text.startswith("first question")]) < 3
    assert not _answered(twitch, queued[1]["message_id"])
    assert not _on_stage(stage, "question 1")
    assert adapter.counts["withdrawn"] == 2


async def test_cleared_chat_drops_chat_but_not_redemptions(twitch, tmp_path):
    perf, stage = _slow(), FakeStage()
    reward = twitch.add_reward("Ask Mika", client_id=CLIENT_ID)
    adapter = await channel_adapter(twitch, tmp_path)
    async with orchestrator(adapter, tmp_path, perf, stage), adapter:
        playing = tp.chat_message("!ask opening question", user="ann")
        await twitch.notify(CHAT, playing)
        await until(lambda: _on_stage(stage, "opening question"))
        for i in range(3):
            await twitch.notify(CHAT, tp.chat_message(f"!ask chat {i}", user=f"u{i}"))
        paid = tp.redemption(reward, user_input="what is your favourite food?")
        await twitch.notify(REDEEM, paid)
        await until(lambda: adapter.counts["accepted"] == 5)  # another socket (broadcaster's)
        await twitch.notify("channel.chat.clear", tp.chat_clear())
        await until(lambda: len(twitch.redemptions) == 1)
    assert [r["status"] for r in twitch.redemptions] == ["FULFILLED"]
    assert [m for m in twitch.chat if "reply_parent_message_id" in m] == []
    assert not any(_on_stage(stage, f"chat {i}") for i in range(3))
    assert adapter.counts["withdrawn"] == 4  # three queued and the one on stage


async def test_timed_out_or_banned_viewer_is_dropped_and_refunded(twitch, tmp_path):
    # Long clips: the troll's first reply is still on stage when the timeout comes, however
    # slowly the five messages arrive (the paid one is prepared next and must not get to
    # play before the timeout).
    perf, stage = _slow(clip_s=1.5), FakeStage()
    reward = twitch.add_reward("Ask Mika", client_id=CLIENT_ID)
    adapter = await channel_adapter(twitch, tmp_path)
    async with orchestrator(adapter, tmp_path, perf, stage), adapter:
        troll = tp.chat_message("!ask troll question", user="troll")
        await twitch.notify(CHAT, troll)
        await until(lambda: _on_stage(stage, "troll question"))
        again = tp.chat_message("!ask troll again", user="troll")
        await twitch.notify(CHAT, again)
        paid = tp.redemption(reward, user="troll", user_input="troll paid question")
        await twitch.notify(REDEEM, paid)
        spammer = tp.chat_message("!ask spam question", user="spammer")
        await twitch.notify(CHAT, spammer)
        fine = tp.chat_message("!ask good question", user="nice")
        await twitch.notify(CHAT, fine)
        # the redemption comes on the broadcaster's socket, the rest on the bot's: Twitch
        # orders neither against the other, so wait until all five are in
        await until(lambda: adapter.counts["accepted"] == 5)
        # a timeout removes the troll's messages; a ban (broadcaster's token) the spammer
        await twitch.notify("channel.chat.clear_user_messages", tp.clear_user_messages("troll"))
        await twitch.notify("channel.ban", tp.ban("spammer"))
        await until(lambda: _answered(twitch, fine["message_id"])
                    and len(twitch.redemptions) == 1)
    (refund,) = twitch.redemptions
    assert (refund["id"], refund["status"]) == (paid["id"], "CANCELED")  # points given back
    for gone in (troll, again, spammer):
        assert not _answered(twitch, gone["message_id"])
    assert not _on_stage(stage, "troll again") and not _on_stage(stage, "spam question")
    assert not _on_stage(stage, "troll paid question")
    assert adapter.counts["withdrawn"] == 4
