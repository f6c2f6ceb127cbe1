"""Twitch EventSub notifications (as twitchio 3 models) turned into the orchestrator's typed
events: chat messages with their triggers (``!ask``, a mention, every message, ``!persona``),
mod commands, cheers, subscriptions, gifts, raids and channel-point redemptions.

Nothing here does I/O; :class:`EventMapper` is a pure function of the notification and the
personas' trigger settings, so it is tested with payloads shaped as in Twitch's reference.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bots.events import ChatMessage, Event, ModCommand, Notice, Redemption, Role, Viewer

logger = logging.getLogger(__name__)

PLATFORM = "twitch"
MOD_COMMANDS = frozenset({"skip", "pause", "resume", "clear"})
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


def _viewer(user: Any, roles: frozenset[Role] = frozenset()) -> Viewer:
    if user is None:  # anonymous gifts and cheers
        return Viewer(id="anonymous", name="Anonymous", roles=roles)
    return Viewer(id=str(user.id), name=user.display_name or user.name or str(user.id),
                  roles=roles)


def notification_id(payload: Any) -> str | None:
    """The EventSub ``metadata.message_id`` of a notification (the same on a redelivery)."""
    meta = getattr(payload, "_metadata", None)
    if isinstance(meta, Mapping):
        mid = meta.get("message_id")
        return str(mid) if mid else None
    return None


class EventMapper:
    """Turns one notification into an :class:`~bots.events.Event`, or None when nobody is
    addressed. ``triggers`` are in priority order: the default persona first."""

    def __init__(self, *, triggers: list[PersonaTrigger], thank_notices: bool = True) -> None:
        if not triggers:
            raise ValueError("at least one persona trigger is needed")
        self.triggers = triggers
        self.thank_notices = thank_notices
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

    def map(self, subscription_type: str, payload: Any) -> Event | None:
        """Map a twitchio EventSub model by its subscription type; unknown types give None."""
        handler = {
            "channel.chat.message": self.chat,
            "channel.channel_points_custom_reward_redemption.add": self.redemption,
            "channel.subscribe": self.subscribe,
            "channel.subscription.message": self.resubscribe,
            "channel.subscription.gift": self.gift,
            "channel.raid": self.raid,
            "channel.cheer": self.cheer,
        }.get(subscription_type)
        if handler is None:
            logger.info("twitch: ignoring notification of unhandled type %r", subscription_type)
            return None
        return handler(payload)

    # ------------------------------------------------------------------ chat

    def chat(self, msg: Any) -> Event | None:
        """``channel.chat.message``: a question for a persona, a mod command, or nothing."""
        text: str = (msg.text or "").strip()
        viewer = _viewer(msg.chatter, roles_from_badges(msg.badges))
        bits = msg.cheer.bits if msg.cheer is not None else 0
        common = {"viewer": viewer, "platform": PLATFORM, "msg_id": msg.id}
        if msg.channel_points_id:  # the redemption notification carries this one
            return None
        head, _, rest = text.partition(" ")
        command = head.casefold()
        if command.startswith("!") and command[1:] in MOD_COMMANDS:
            if not viewer.is_mod:
                return None
            target = self._by_key.get(rest.strip().casefold()) if rest.strip() else None
            return ModCommand(command=command[1:], persona=target, **common)  # type: ignore[arg-type]
        if command == "!persona":
            name, _, question = rest.strip().partition(" ")
            persona = self._by_key.get(name.casefold())
            if persona is None or not question.strip():
                return None
            return ChatMessage(message=question.strip(), persona=persona, bits=bits, **common)
        for t in self.triggers:
            question = self._triggered(t, text, command, rest)
            if question:
                return ChatMessage(message=question, persona=t.persona, bits=bits, **common)
        if bits > 0:  # a cheer is always answered, by the default persona
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

    def _notice(self, payload: Any, user: Any, kind: str, *, message: str = "",
                amount: int = 0) -> Event | None:
        if not self.thank_notices:
            return None
        mid = notification_id(payload)
        extra = {"msg_id": mid} if mid else {}
        return Notice(viewer=_viewer(user), platform=PLATFORM, kind=kind,  # type: ignore[arg-type]
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
