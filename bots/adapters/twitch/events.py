"""Twitch EventSub notifications (as twitchio 3 models) turned into the orchestrator's typed
events: chat messages with their triggers (``!ask``, a mention, every message, ``!persona``),
mod commands, cheers, Power-ups, subscriptions, gifts, raids and channel-point redemptions;
and Twitch's own moderation (deleted messages, cleared chat, timeouts and bans) turned into
withdrawals of what was queued (:class:`Withdrawal`).

Nothing here does I/O; :class:`EventMapper` is a function of the notification, the personas'
trigger settings and which subscriptions the adapter holds, so it is tested with payloads
shaped as in Twitch's reference.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from bots.adapters.commands import parse_mod_command
from bots.events import (
    ChatMessage,
    Event,
    ModCommand,
    Notice,
    NoticeKind,
    Redemption,
    Role,
    Viewer,
    new_trace_id,
)

logger = logging.getLogger(__name__)

PLATFORM = "twitch"
# channel.chat.message ``message_type`` of a message sent with a Power-up (paid with Bits)
POWER_UP_MESSAGES = frozenset({"power_ups_message_effect", "power_ups_gigantified_emote"})
# A Power-up chat message does not say how many Bits it cost (channel.bits.use does): when
# that subscription is missing it still counts as paid, at the lowest paid priority.
UNKNOWN_POWER_UP_BITS = 1
# channel.chat.notification ``notice_type`` -> the channel event that also reports it (with
# the broadcaster's token); the notice is used only when that subscription is not held.
NOTICE_SOURCES = {
    "sub": "channel.subscribe",
    "resub": "channel.subscription.message",
    "sub_gift": "channel.subscription.gift",
    "community_sub_gift": "channel.subscription.gift",
    "raid": "channel.raid",
}
_BADGE_ROLES = {
    "broadcaster": Role.BROADCASTER,
    "moderator": Role.MODERATOR,
    "lead_moderator": Role.MODERATOR,
    "vip": Role.VIP,
    "subscriber": Role.SUBSCRIBER,
    "founder": Role.SUBSCRIBER,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonaTrigger:
    """When one persona answers Twitch chat (built from its ``twitch:`` settings).

    Attributes:
        persona: the persona id.
        name: the persona's display name, matched by ``mention``.
        mode: ``prefix`` (``!ask ...``), ``mention`` (``@Mika ...`` or the name as a word) or
            ``all`` (every message).
        prefix: the command of ``prefix`` mode.
        reward_title: the channel-point reward answered by this persona, if any.
    """

    persona: str
    name: str
    mode: str = "prefix"
    prefix: str = "!ask"
    reward_title: str | None = None


def roles_from_badges(badges: Any) -> frozenset[Role]:
    """Map Twitch chat badges (``set_id``) to roles; unknown badges are ignored."""
    roles = set()
    for b in badges or ():
        role = _BADGE_ROLES.get(getattr(b, "set_id", None) or "")
        if role is not None:
            roles.add(role)
    return frozenset(roles)


def _viewer(user: Any, roles: frozenset[Role] = frozenset(), *, source: Any = None) -> Viewer:
    if user is None:  # anonymous gifts and cheers
        return Viewer(id="anonymous", name="Anonymous", roles=roles)
    name = user.display_name or user.name or str(user.id)
    if source is not None:  # shared chat: say which channel the viewer wrote in
        name = f"{name} (in {source.display_name or source.name or source.id}'s chat)"
    return Viewer(id=str(user.id), name=name, roles=roles)


def spoken_text(fragments: Any, text: str) -> str:
    """The message without its cheermotes (``Cheer100``): Twitch marks each one as a
    fragment of type ``cheermote``; the rest is joined and its spaces tidied."""
    if not fragments:
        return " ".join(text.split())
    return " ".join("".join(f.text or "" for f in fragments if f.type != "cheermote").split())


def strip_reply_prefix(text: str, reply: Any) -> str:
    """A reply's text starts with ``@parent-user`` (Twitch adds it); drop it so commands
    such as ``!ask`` are seen."""
    if reply is None:
        return text
    parent = reply.parent_user
    for name in {parent.name, parent.display_name} - {None, ""}:
        mention = f"@{name}"
        if text[:len(mention)].casefold() == mention.casefold() and (
                len(text) == len(mention) or text[len(mention)].isspace()):
            return text[len(mention):].lstrip()
    return text


@dataclass(frozen=True, slots=True, kw_only=True)
class Withdrawal:
    """Twitch took something back: a deleted message, a cleared chat, a viewer timed out or
    banned. The adapter withdraws the matching events from the orchestrator, wherever they
    are (queued, being prepared, on stage); paid ones are then refunded where Twitch allows.

    Attributes:
        reason: why, for the refused or interrupted outcome.
        msg_id: the deleted chat message.
        user_id: the viewer whose events go.
        chat: every chat message (a cleared chat).
    """

    reason: str
    msg_id: str | None = None
    user_id: str | None = None
    chat: bool = False

    def matches(self, event: Event) -> bool:
        if event.platform != PLATFORM:
            return False
        if self.msg_id is not None:
            return event.msg_id == self.msg_id
        if self.user_id is not None:
            return event.viewer.id == self.user_id
        return self.chat and isinstance(event, ChatMessage)


def notification_id(payload: Any) -> str | None:
    """The EventSub ``metadata.message_id`` of a notification (the same on a redelivery)."""
    meta = getattr(payload, "_metadata", None)
    if isinstance(meta, Mapping):
        mid = meta.get("message_id")
        return str(mid) if mid else None
    return None


class _Common(TypedDict):
    """What every event an address maps to shares."""

    viewer: Viewer
    platform: str
    msg_id: str


class _MsgId(TypedDict, total=False):
    msg_id: str


class EventMapper:
    """Turns one notification into an :class:`~bots.events.Event` (or a
    :class:`Withdrawal`), or None when nobody is addressed.

    Args:
        triggers: the personas' triggers in priority order, the default persona first.
        thank_notices: subs, gifts and raids become notices (thanks).
        shared_chat: answer messages from the other channels of a shared chat session (the
            viewer's name says which channel); False: ignore them.

    ``active`` is the set of subscription types the adapter holds: a notice or a Power-up
    that two subscriptions report is taken from one only.
    """

    def __init__(self, *, triggers: list[PersonaTrigger], thank_notices: bool = True,
                 shared_chat: bool = False) -> None:
        if not triggers:
            raise ValueError("at least one persona trigger is needed")
        self.triggers = triggers
        self.thank_notices = thank_notices
        self.shared_chat = shared_chat
        self.active: frozenset[str] = frozenset()
        self._by_key = {}
        for t in triggers:
            self._by_key[t.persona.casefold()] = t.persona
            self._by_key[t.name.casefold()] = t.persona
        self._rewards = {t.reward_title.casefold(): t.persona for t in triggers if t.reward_title}
        self._mentions = {
            t.persona: re.compile(rf"(?:^|[^\w@])@?{re.escape(t.name)}\b", re.IGNORECASE)
            for t in triggers
        }

    @property
    def default_persona(self) -> str:
        return self.triggers[0].persona

    def map(self, subscription_type: str, payload: Any) -> Event | Withdrawal | None:
        """Map a twitchio EventSub model by its subscription type; unknown types give None."""
        handler = {
            "channel.chat.message": self.chat,
            "channel.channel_points_custom_reward_redemption.add": self.redemption,
            "channel.subscribe": self.subscribe,
            "channel.subscription.message": self.resubscribe,
            "channel.subscription.gift": self.gift,
            "channel.raid": self.raid,
            "channel.cheer": self.cheer,
            "channel.bits.use": self.bits_use,
            "channel.chat.notification": self.chat_notification,
            "channel.chat.message_delete": self.message_deleted,
            "channel.chat.clear": self.chat_cleared,
            "channel.chat.clear_user_messages": self.user_cleared,
            "channel.ban": self.banned,
        }.get(subscription_type)
        if handler is None:
            logger.info("twitch: ignoring notification of unhandled type %r", subscription_type)
            return None
        return handler(payload)

    # ------------------------------------------------------------------ chat

    def chat(self, msg: Any) -> Event | None:
        """``channel.chat.message``: a question for a persona, a mod command, or nothing.

        The question is the text without its cheermotes and without the ``@parent-user``
        Twitch puts before a reply."""
        if msg.channel_points_id:  # the redemption notification carries this one
            return None
        source = msg.source_broadcaster
        if source is not None and source.id == msg.broadcaster.id:
            source = None
        if source is not None and not self.shared_chat:
            logger.debug("twitch: ignoring a shared-chat message from %s's channel", source.name)
            return None
        text = strip_reply_prefix(spoken_text(msg.fragments, msg.text or ""), msg.reply)
        viewer = _viewer(msg.chatter, roles_from_badges(msg.badges), source=source)
        bits = msg.cheer.bits if msg.cheer is not None else 0
        if msg.type in POWER_UP_MESSAGES:
            if "channel.bits.use" in self.active:
                return None  # answered from channel.bits.use, which says what it cost
            bits = max(bits, UNKNOWN_POWER_UP_BITS)
        return self._address(text, viewer, bits=bits, msg_id=msg.id, commands=True)

    def _address(self, text: str, viewer: Viewer, *, bits: int, msg_id: str,
                 commands: bool) -> Event | None:
        """Who ``text`` is for: a mod command, ``!persona``, a trigger, or (paid) the default
        persona."""
        common: _Common = {"viewer": viewer, "platform": PLATFORM, "msg_id": msg_id}
        head, _, rest = text.partition(" ")
        command = head.casefold()
        mod_command = parse_mod_command(text) if commands else None
        if mod_command is not None:
            if not viewer.is_mod:
                return None
            arg = mod_command.argument
            target = self._by_key.get(arg.casefold()) if arg else None
            return ModCommand(command=mod_command.command, persona=target, **common)
        if command == "!persona":
            name, _, question = rest.strip().partition(" ")
            persona = self._by_key.get(name.casefold())
            if persona is None or not question.strip():
                return None
            return ChatMessage(message=question.strip(), persona=persona, bits=bits, **common)
        for t in self.triggers:
            asked = self._triggered(t, text, command, rest)
            if asked:
                return ChatMessage(message=asked, persona=t.persona, bits=bits, **common)
        if bits > 0:  # paid is always answered, by the default persona
            if not text:
                logger.info("twitch: %s spent %d bits with no words; nothing to answer",
                            viewer.name, bits)
                return None
            return ChatMessage(message=text, persona=self.default_persona, bits=bits, **common)
        return None

    def _triggered(self, t: PersonaTrigger, text: str, command: str, rest: str) -> str | None:
        if t.mode == "all":
            return text
        if t.mode == "prefix":
            return rest.strip() if command == t.prefix.casefold() else None
        if t.mode == "mention" and self._mentions[t.persona].search(text):
            return text
        return None

    # ------------------------------------------------------------------ paid and notices

    def redemption(self, r: Any) -> Event | None:
        """A channel-point redemption of a reward one persona answers."""
        persona = self._rewards.get((r.reward.title or "").casefold())
        if persona is None:
            return None
        return Redemption(
            viewer=_viewer(r.user), platform=PLATFORM, persona=persona, msg_id=r.id,
            reward_id=r.reward.id, reward_title=r.reward.title, redemption_id=r.id,
            cost=int(r.reward.cost or 0), message=(r.user_input or "").strip(),
        )

    def cheer(self, c: Any) -> Event | None:
        """``channel.cheer`` repeats the cheer of a chat message, which is answered (as a
        reply) from ``channel.chat.message``; here it is only logged."""
        logger.info("twitch: %s cheered %d bits", getattr(c.user, "name", "anonymous"), c.bits)
        return None

    def bits_use(self, b: Any) -> Event | None:
        """``channel.bits.use``: Bits spent on a Power-up (with its message) are a paid
        question; a cheer is answered from its chat message instead (as a reply)."""
        if b.type == "cheer":
            return None
        text = spoken_text(b.fragments, b.text or "")
        mid = notification_id(b) or new_trace_id()
        return self._address(text, _viewer(b.user), bits=int(b.bits), msg_id=mid,
                             commands=False)

    def chat_notification(self, n: Any) -> Event | None:
        """``channel.chat.notification``: subs, resubs, gifts and raids as the chat shows
        them; used for a notice only when the matching channel event (which needs the
        broadcaster's token) is not subscribed, so nobody is thanked twice."""
        source = NOTICE_SOURCES.get(n.notice_type)
        if source is None or source in self.active:
            return None  # shared_chat_* (another channel's), announcements, ...
        user = None if n.anonymous else n.chatter
        if n.notice_type == "sub":
            return self._notice(n, user, "subscription", msg_id=n.id)
        if n.notice_type == "resub":
            return self._notice(n, user, "resubscription", message=n.text or "",
                                amount=n.resub.cumulative_months, msg_id=n.id)
        if n.notice_type == "sub_gift":
            if n.sub_gift.community_gift_id:  # one of a community gift: thanked for it once
                return None
            return self._notice(n, user, "gift", amount=1, msg_id=n.id)
        if n.notice_type == "community_sub_gift":
            return self._notice(n, user, "gift", amount=n.community_sub_gift.total,
                                msg_id=n.id)
        return self._notice(n, n.raid.user, "raid", amount=n.raid.viewer_count, msg_id=n.id)

    # ------------------------------------------------------------------ Twitch moderation

    def message_deleted(self, d: Any) -> Withdrawal:
        """``channel.chat.message_delete``: a moderator deleted one message."""
        return Withdrawal(msg_id=str(d.message_id), reason="the message was deleted on Twitch")

    def chat_cleared(self, _c: Any) -> Withdrawal:
        """``channel.chat.clear``: a moderator cleared the whole chat."""
        return Withdrawal(chat=True, reason="the chat was cleared on Twitch")

    def user_cleared(self, u: Any) -> Withdrawal:
        """``channel.chat.clear_user_messages``: a viewer was timed out or banned and their
        messages removed."""
        return Withdrawal(user_id=str(u.user.id),
                          reason="the viewer was timed out or banned on Twitch")

    def banned(self, b: Any) -> Withdrawal:
        """``channel.ban``: a viewer was banned or timed out (with the broadcaster's token)."""
        what = "banned" if b.permanent else "timed out"
        return Withdrawal(user_id=str(b.user.id), reason=f"the viewer was {what} on Twitch")

    def _notice(self, payload: Any, user: Any, kind: NoticeKind, *, message: str = "",
                amount: int = 0, msg_id: str | None = None) -> Event | None:
        if not self.thank_notices:
            return None
        mid = msg_id or notification_id(payload)
        extra: _MsgId = {"msg_id": mid} if mid else {}
        return Notice(viewer=_viewer(user), platform=PLATFORM, kind=kind,
                      message=message, amount=amount, persona=self.default_persona, **extra)

    def subscribe(self, s: Any) -> Event | None:
        if s.gift:  # the gifter is thanked once, from channel.subscription.gift
            return None
        return self._notice(s, s.user, "subscription")

    def resubscribe(self, s: Any) -> Event | None:
        return self._notice(s, s.user, "resubscription", message=s.text or "",
                            amount=s.cumulative_months)

    def gift(self, g: Any) -> Event | None:
        return self._notice(g, None if g.anonymous else g.user, "gift", amount=g.total)

    def raid(self, r: Any) -> Event | None:
        return self._notice(r, r.from_broadcaster, "raid", amount=r.viewer_count)
