"""EventSub ``event`` objects as Twitch sends them, for the stand-in to notify: chat messages
(with cheermote fragments, as replies with Twitch's ``@parent`` prefix, from a shared chat),
deletions and clears, bans, chat notifications, Bits uses and redemptions.

Each builder follows a section of Twitch's EventSub reference
(https://dev.twitch.tv/docs/eventsub/eventsub-reference/), named in its docstring; fields are
all present, null where Twitch sends null.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

BROADCASTER = {"broadcaster_user_id": "1971641", "broadcaster_user_login": "mikachannel",
               "broadcaster_user_name": "MikaChannel"}
_CHEERMOTE = re.compile(r"(?i)\b([a-z]+?)(\d+)\b")
_CHEER_PREFIXES = {"cheer", "biblethump", "kappa", "pogchamp", "party"}


def user_id(login: str) -> str:
    return str(abs(hash(login)) % 10**8)


def user_fields(login: str, prefix: str) -> dict[str, str]:
    return {f"{prefix}_id": user_id(login), f"{prefix}_login": login.lower(),
            f"{prefix}_name": login}


def fragments(text: str) -> list[dict[str, Any]]:
    """Message fragments (Channel Chat Message Event, "message.fragments"): cheermotes such as
    ``Cheer100`` are fragments of type ``cheermote`` carrying prefix, bits and tier; a leading
    ``@name`` is a ``mention``; the rest is ``text``."""
    out: list[dict[str, Any]] = []

    def text_part(t: str) -> None:
        if t:
            out.append({"type": "text", "text": t, "cheermote": None, "emote": None,
                        "mention": None})

    pos = 0
    if text.startswith("@"):
        name = text[1:].split(" ", 1)[0]
        out.append({"type": "mention", "text": f"@{name}", "cheermote": None, "emote": None,
                    "mention": user_fields(name, "user")})
        pos = len(name) + 1
    for m in _CHEERMOTE.finditer(text, pos):
        if m.group(1).casefold() not in _CHEER_PREFIXES:
            continue
        text_part(text[pos:m.start()])
        bits = int(m.group(2))
        tier = max(t for t in (1, 100, 1000, 5000, 10000) if t <= bits)
        out.append({"type": "cheermote", "text": m.group(0), "emote": None, "mention": None,
                    "cheermote": {"prefix": m.group(1).lower(), "bits": bits, "tier": tier}})
        pos = m.end()
    text_part(text[pos:])
    return out


def chat_message(text: str, *, user: str = "viewer32", message_id: str | None = None,
                 badges: list[dict[str, str]] | None = None, bits: int | None = None,
                 message_type: str = "text", reply: dict[str, Any] | None = None,
                 source: dict[str, str] | None = None) -> dict[str, Any]:
    """Channel Chat Message Event (``channel.chat.message``). ``source``: the channel of a
    shared chat session the message was sent in (``source_broadcaster_user_*``)."""
    mid = message_id or str(uuid.uuid4())
    return {
        **BROADCASTER,
        "source_broadcaster_user_id": source["id"] if source else None,
        "source_broadcaster_user_login": source["login"] if source else None,
        "source_broadcaster_user_name": source["name"] if source else None,
        **user_fields(user, "chatter_user"),
        "message_id": mid,
        "source_message_id": str(uuid.uuid4()) if source else None,
        "is_source_only": False if source else None,
        "message": {"text": text, "fragments": fragments(text)},
        "color": "#00FF7F",
        "badges": badges if badges is not None else [],
        "source_badges": [] if source else None,
        "message_type": message_type,
        "cheer": {"bits": bits} if bits else None,
        "reply": reply,
        "channel_points_custom_reward_id": None,
        "channel_points_animation_id": None,
    }


def reply_to(parent: dict[str, Any], text: str, *, user: str = "viewer77",
             message_id: str | None = None, **kw: Any) -> dict[str, Any]:
    """A reply, as Twitch delivers it (Channel Chat Message Event, "reply"): the text starts
    with ``@`` and the parent's login, and ``reply`` names the parent and the thread."""
    reply = {
        "parent_message_id": parent["message_id"],
        "parent_message_body": parent["message"]["text"],
        "parent_user_id": parent["chatter_user_id"],
        "parent_user_name": parent["chatter_user_name"],
        "parent_user_login": parent["chatter_user_login"],
        "thread_message_id": (parent.get("reply") or {}).get("thread_message_id")
        or parent["message_id"],
        "thread_user_id": parent["chatter_user_id"],
        "thread_user_name": parent["chatter_user_name"],
        "thread_user_login": parent["chatter_user_login"],
    }
    return chat_message(f"@{parent['chatter_user_login']} {text}", user=user,
                        message_id=message_id, reply=reply, **kw)


def message_delete(message_id: str, *, user: str = "viewer32") -> dict[str, Any]:
    """Channel Chat Message Delete Event (``channel.chat.message_delete``)."""
    return {**BROADCASTER, **user_fields(user, "target_user"), "message_id": message_id}


def chat_clear() -> dict[str, Any]:
    """Channel Chat Clear Event (``channel.chat.clear``)."""
    return dict(BROADCASTER)


def clear_user_messages(user: str) -> dict[str, Any]:
    """Channel Chat Clear User Messages Event (``channel.chat.clear_user_messages``): a
    timeout or ban removed the user's messages."""
    return {**BROADCASTER, **user_fields(user, "target_user")}


def ban(user: str, *, permanent: bool = True) -> dict[str, Any]:
    """Channel Ban Event (``channel.ban``); a timeout has ``ends_at`` and is not permanent."""
    return {**user_fields(user, "user"), **BROADCASTER, **user_fields("a_mod", "moderator_user"),
            "reason": "spam", "banned_at": "2024-05-01T12:00:00Z",
            "ends_at": None if permanent else "2024-05-01T12:10:00Z",
            "is_permanent": permanent}


_NOTICE_FIELDS = (
    "sub", "resub", "sub_gift", "community_sub_gift", "gift_paid_upgrade", "prime_paid_upgrade",
    "raid", "unraid", "pay_it_forward", "announcement", "bits_badge_tier", "charity_donation",
    "shared_chat_sub", "shared_chat_resub", "shared_chat_sub_gift",
    "shared_chat_community_sub_gift", "shared_chat_gift_paid_upgrade",
    "shared_chat_prime_paid_upgrade", "shared_chat_raid", "shared_chat_pay_it_forward",
    "shared_chat_announcement",
)


def chat_notification(notice_type: str, *, user: str = "viewer32", text: str = "",
                      anonymous: bool = False, **detail: Any) -> dict[str, Any]:
    """Channel Chat Notification Event (``channel.chat.notification``): one object per
    ``notice_type`` is set (``sub``, ``resub``, ``sub_gift``, ``community_sub_gift``, ``raid``,
    ...), every other is null. ``detail`` is that object's fields."""
    defaults: dict[str, dict[str, Any]] = {
        "sub": {"sub_tier": "1000", "is_prime": False, "duration_months": 1},
        "resub": {"cumulative_months": 10, "duration_months": 1, "streak_months": 3,
                  "sub_tier": "1000", "is_prime": False, "is_gift": False,
                  "gifter_is_anonymous": None, "gifter_user_id": None,
                  "gifter_user_name": None, "gifter_user_login": None},
        "sub_gift": {"duration_months": 1, "cumulative_total": 5, "sub_tier": "1000",
                     **user_fields("lucky", "recipient_user"), "community_gift_id": None},
        "community_sub_gift": {"id": str(uuid.uuid4()), "total": 5, "sub_tier": "1000",
                               "cumulative_total": 20},
        "raid": {**user_fields("raider", "user"), "viewer_count": 42,
                 "profile_image_url": "https://static-cdn.jtvnw.net/user-default-pictures.png"},
    }
    event: dict[str, Any] = {
        **BROADCASTER, **user_fields(user, "chatter_user"), "chatter_is_anonymous": anonymous,
        "color": "", "badges": [], "system_message": f"{user} did a {notice_type}",
        "message_id": str(uuid.uuid4()), "message": {"text": text, "fragments": fragments(text)},
        "notice_type": notice_type, "source_broadcaster_user_id": None,
        "source_broadcaster_user_login": None, "source_broadcaster_user_name": None,
        "source_message_id": None, "source_badges": None, "is_source_only": None,
        "watch_streak": None, "modiversary": None, "shared_chat_modiversary": None,
    }
    for name in _NOTICE_FIELDS:
        event[name] = None
    base = notice_type.removeprefix("shared_chat_")
    event[notice_type] = {**defaults.get(base, {}), **detail}
    return event


def bits_use(bits: int, *, user: str = "viewer32", use_type: str = "power_up",
             text: str | None = None, power_up: str = "message_effect") -> dict[str, Any]:
    """Channel Bits Use Event (``channel.bits.use``): Bits spent on a cheer or a Power-up
    (``power_up`` says which); ``message`` is null when no message came with them."""
    return {
        **user_fields(user, "user"), **BROADCASTER, "bits": bits, "type": use_type,
        "message": None if text is None else {"text": text, "fragments": fragments(text)},
        "power_up": None if use_type != "power_up" else {
            "type": power_up, "emote": None,
            "message_effect_id": "cosmic-abyss" if power_up == "message_effect" else None},
    }


def redemption(reward: dict[str, Any], *, user: str = "cooler_user", user_input: str = "",
               redemption_id: str | None = None) -> dict[str, Any]:
    """Channel Points Custom Reward Redemption Add Event: a reward that skips the request
    queue (``should_redemptions_skip_request_queue``) arrives ``fulfilled``."""
    skip = reward.get("should_redemptions_skip_request_queue", False)
    return {
        "id": redemption_id or str(uuid.uuid4()), **BROADCASTER, **user_fields(user, "user"),
        "user_input": user_input, "status": "fulfilled" if skip else "unfulfilled",
        "reward": {"id": reward["id"], "title": reward["title"], "cost": reward["cost"],
                   "prompt": reward.get("prompt", "")},
        "redeemed_at": "2024-05-01T12:00:00.17106713Z",
    }
