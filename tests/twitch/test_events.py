"""Twitch notifications (reference-shaped payloads) to typed events: triggers, roles, mod
commands, cheers, redemptions and notices."""

from __future__ import annotations

from bots.adapters.twitch.events import EventMapper, PersonaTrigger
from bots.events import ChatMessage, ModCommand, Notice, Redemption, Role
from tests.twitch.helpers import chat_event, fixture, model

CHAT = "channel.chat.message"


def mapper(**kw) -> EventMapper:
    return EventMapper(triggers=[
        PersonaTrigger(persona="mika", name="Mika", mode="prefix", prefix="!ask",
                       reward_title="Ask Mika"),
        PersonaTrigger(persona="kai", name="Kai", mode="mention"),
    ], **kw)


def test_prefix_message_becomes_a_chat_message_with_roles_and_msg_id():
    ev = mapper().map(CHAT, model(CHAT, fixture(CHAT)))
    assert isinstance(ev, ChatMessage)
    assert ev.message == "what is your favourite game?"
    assert ev.persona == "mika" and ev.platform == "twitch"
    assert ev.msg_id == "cc106a89-1814-919d-454c-f4f2f970aae7"
    assert ev.viewer.roles == {Role.MODERATOR, Role.SUBSCRIBER}
    assert ev.viewer.name == "viewer32"


def test_mention_persona_command_and_untriggered_messages():
    m = mapper()
    ev = m.map(CHAT, model(CHAT, chat_event("hey @Kai how are you", message_id="a")))
    assert isinstance(ev, ChatMessage) and ev.persona == "kai"
    ev = m.map(CHAT, model(CHAT, chat_event("!persona kai tell a joke", message_id="b")))
    assert isinstance(ev, ChatMessage) and (ev.persona, ev.message) == ("kai", "tell a joke")
    assert m.map(CHAT, model(CHAT, chat_event("just chatting", message_id="c"))) is None
    assert m.map(CHAT, model(CHAT, chat_event("!persona nobody hi", message_id="d"))) is None


def test_all_mode_answers_every_message():
    m = EventMapper(triggers=[PersonaTrigger(persona="mika", name="Mika", mode="all")])
    ev = m.map(CHAT, model(CHAT, chat_event("hello", message_id="a")))
    assert isinstance(ev, ChatMessage) and ev.message == "hello"


def test_mod_commands_only_from_mods():
    m = mapper()
    mod = [{"set_id": "moderator", "id": "1", "info": ""}]
    ev = m.map(CHAT, model(CHAT, chat_event("!skip", message_id="a", badges=mod)))
    assert isinstance(ev, ModCommand) and ev.command == "skip" and ev.persona is None
    ev = m.map(CHAT, model(CHAT, chat_event("!pause kai", message_id="b", badges=mod)))
    assert isinstance(ev, ModCommand) and (ev.command, ev.persona) == ("pause", "kai")
    assert m.map(CHAT, model(CHAT, chat_event("!skip", message_id="c", badges=[]))) is None


def test_cheer_in_chat_is_a_paid_message():
    ev = mapper().map(CHAT, model(CHAT, chat_event("Cheer100 hi", message_id="a", bits=100)))
    assert isinstance(ev, ChatMessage) and ev.bits == 100 and ev.paid
    assert mapper().map("channel.cheer", model("channel.cheer", fixture("channel.cheer"))) is None


def test_redemption_of_the_persona_reward():
    sub = "channel.channel_points_custom_reward_redemption.add"
    ev = mapper().map(sub, model(sub, fixture(sub)))
    assert isinstance(ev, Redemption)
    assert ev.msg_id == ev.redemption_id == "17fa2df1-ad76-4804-bfa5-a40ef63efe63"
    assert (ev.reward_title, ev.cost, ev.message) == ("Ask Mika", 100, "what do you dream about?")
    other = fixture(sub)
    other["reward"] = {**other["reward"], "title": "Hydrate"}
    assert mapper().map(sub, model(sub, other)) is None


def test_notices_subs_gifts_raids():
    m = mapper()
    raid = m.map("channel.raid", model("channel.raid", fixture("channel.raid"), "n-1"))
    assert isinstance(raid, Notice) and (raid.kind, raid.amount) == ("raid", 9001)
    assert raid.msg_id == "n-1"
    gift = m.map("channel.subscription.gift",
                 model("channel.subscription.gift", fixture("channel.subscription.gift")))
    assert isinstance(gift, Notice) and (gift.kind, gift.amount) == ("gift", 2)
    sub = m.map("channel.subscribe", model("channel.subscribe", fixture("channel.subscribe")))
    assert isinstance(sub, Notice) and sub.kind == "subscription"
    gifted = fixture("channel.subscribe", is_gift=True)
    assert m.map("channel.subscribe", model("channel.subscribe", gifted)) is None
    assert mapper(thank_notices=False).map(
        "channel.raid", model("channel.raid", fixture("channel.raid"))) is None
    assert m.map("channel.follow", object()) is None
