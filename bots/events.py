"""Typed events that platform adapters emit and the orchestrator consumes, and the outcome
the orchestrator reports back so an adapter can fulfil, refund or reply.

Every event carries a trace id (follow it through logs and ``/metrics``) and the monotonic
time it was received.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal


def new_trace_id() -> str:
    return uuid.uuid4().hex[:12]


class Role(StrEnum):
    """What a viewer is on the platform; drives priority and mod-only commands."""

    BROADCASTER = "broadcaster"
    MODERATOR = "moderator"
    VIP = "vip"
    SUBSCRIBER = "subscriber"


@dataclass(frozen=True, slots=True, kw_only=True)
class Viewer:
    """Someone in the audience. ``id`` is stable per platform; ``name`` is for display."""

    id: str
    name: str
    roles: frozenset[Role] = frozenset()

    @property
    def is_mod(self) -> bool:
        return bool(self.roles & {Role.BROADCASTER, Role.MODERATOR})


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Common fields of everything an adapter emits."""

    viewer: Viewer
    platform: str = "studio"
    persona: str | None = None  # the persona addressed; None: the default one
    msg_id: str = field(default_factory=new_trace_id)  # the platform's id, for dedupe/replies
    trace_id: str = field(default_factory=new_trace_id)
    received_at: float = field(default_factory=time.monotonic)
    message: str = ""  # what the viewer said or typed; "" when nothing (a follow, a command)

    @property
    def text(self) -> str:
        """What the viewer said: ``message`` (the orchestrator replaces it with the cleaned
        text once moderation allowed it)."""
        return self.message

    @property
    def paid(self) -> bool:
        """Paid events are never dropped silently: answered, or refused so they can be refunded."""
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessage(Event):
    """A viewer typed something. ``bits`` > 0 makes it a paid message (a cheer)."""

    message: str
    bits: int = 0

    @property
    def paid(self) -> bool:
        return self.bits > 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Redemption(Event):
    """A channel-point reward was redeemed; ``message`` is the viewer's input, if any."""

    reward_id: str
    reward_title: str
    redemption_id: str
    cost: int = 0

    @property
    def paid(self) -> bool:
        return True


NoticeKind = Literal["subscription", "resubscription", "gift", "raid", "follow"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice(Event):
    """A subscription, gift, raid or follow: the persona may thank them."""

    kind: NoticeKind
    amount: int = 0  # months, gifted subs, or raiders


@dataclass(frozen=True, slots=True, kw_only=True)
class Utterance(Event):
    """Someone spoke in a voice channel (already transcribed). ``language`` is the language
    of ``message``; ``detected_language`` / ``language_probability`` are what the speech
    recogniser heard (None when it cannot tell, e.g. an English-only model)."""

    message: str
    language: str = "en"
    duration_s: float = 0.0
    detected_language: str | None = None
    language_probability: float | None = None


ModCommandName = Literal["skip", "pause", "resume", "clear"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModCommand(Event):
    """A moderator's control command for a persona."""

    command: ModCommandName


@dataclass(frozen=True, slots=True)
class Outcome:
    """What finally happened to an accepted event, told back to its adapter.

    ``spoken``: answered on stage. ``refused``: not answered (reason says why; paid events are
    refunded). ``interrupted``: cut off by a skip or barge-in. ``failed``: an error.

    A spoken answer carries what was said (``reply_text``) and, from a teacher persona, the
    correction of the viewer's words and the gloss of the answer in the viewer's language:
    for the chat of the place the viewer talks from, never spoken.
    """

    event: Event
    status: Literal["spoken", "refused", "interrupted", "failed"]
    reason: str | None = None
    reply_text: str | None = None
    correction: str | None = None
    gloss: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The orchestrator's immediate answer to an event: queued, or rejected with a reason a
    viewer can read. Paid events that are rejected also get a ``refused`` :class:`Outcome`."""

    accepted: bool
    trace_id: str
    reason: str | None = None
