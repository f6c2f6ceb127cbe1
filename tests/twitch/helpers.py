"""Shared helpers of the Twitch tests: fixtures (Twitch reference payloads) and waiting."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(sub_type: str, **changes: Any) -> dict[str, Any]:
    data = json.loads((FIXTURES / f"{sub_type}.json").read_text())
    data = copy.deepcopy(data)
    data.update(changes)
    return data


def chat_event(text: str, *, message_id: str, badges: list | None = None,
               bits: int | None = None, user: str = "viewer32") -> dict[str, Any]:
    data = fixture("channel.chat.message", message_id=message_id)
    data["message"] = {"text": text, "fragments": [
        {"type": "text", "text": text, "cheermote": None, "emote": None, "mention": None}]}
    data["chatter_user_login"] = data["chatter_user_name"] = user
    data["chatter_user_id"] = str(abs(hash(user)) % 10**8)
    if badges is not None:
        data["badges"] = badges
    if bits is not None:
        data["cheer"] = {"bits": bits}
    return data


def model(sub_type: str, event: dict[str, Any], message_id: str = "m-1") -> Any:
    """The twitchio model of a notification, as twitchio builds it from the socket."""
    from twitchio.models.eventsub_ import create_event_instance

    raw = {"metadata": {"message_id": message_id, "message_type": "notification",
                        "message_timestamp": "2023-07-19T14:56:51.634234626Z",
                        "subscription_type": sub_type, "subscription_version": "1"},
           "payload": {"subscription": {"id": "s", "type": sub_type, "version": "1",
                                        "status": "enabled", "cost": 0, "condition": {},
                                        "transport": {"method": "websocket",
                                                      "session_id": "x"},
                                        "created_at": "2023-07-19T14:56:51.616329898Z"},
                       "event": event}}
    return create_event_instance(sub_type, raw, http=None)


async def until(cond, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
