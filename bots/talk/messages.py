"""What a private conversation tells its page: typed messages, each sent as one JSON object
with a ``type`` field (``{"type": "heard", "turn": 1, "text": "...", "language": "en"}``).

They are frozen dataclasses so the session builds them with checked fields; :func:`to_json`
turns one into the plain dict the websocket sends. The same values make the transcript a
page that reloads gets again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Literal

__all__ = [
    "Answer",
    "Ended",
    "Heard",
    "Interrupted",
    "Notice",
    "NoticeLevel",
    "Refused",
    "Said",
    "StateChanged",
    "TalkMessage",
    "TalkState",
    "to_json",
]


class TalkState(StrEnum):
    """Where a conversation is, shown big on the page."""

    LISTENING = "listening"  # waiting for the learner
    HEARING = "hearing"  # the learner is talking (or their words are being transcribed)
    THINKING = "thinking"  # the persona is preparing its answer; nothing plays yet
    SPEAKING = "speaking"  # the answer plays
    ENDED = "ended"  # closed; nothing more happens


NoticeLevel = Literal["info", "warn", "error"]


@dataclass(frozen=True, slots=True)
class StateChanged:
    type: ClassVar[str] = "state"
    state: TalkState


@dataclass(frozen=True, slots=True)
class Heard:
    """The learner's words of turn ``turn`` (final; spoken and transcribed, or typed)."""

    type: ClassVar[str] = "heard"
    turn: int
    text: str
    language: str


@dataclass(frozen=True, slots=True)
class Said:
    """Sentence ``index`` of the answer to turn ``turn`` starts to play now."""

    type: ClassVar[str] = "said"
    turn: int
    index: int
    text: str


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer to turn ``turn`` has played out; a teacher's notes ride along."""

    type: ClassVar[str] = "answer"
    turn: int
    text: str
    correction: str | None = None
    gloss: str | None = None


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The answer to turn ``turn`` was cut (the learner talked over it, or typed)."""

    type: ClassVar[str] = "interrupted"
    turn: int


@dataclass(frozen=True, slots=True)
class Refused:
    """Not answered: moderation or the rate limit (``turn`` None when no turn was taken)."""

    type: ClassVar[str] = "refused"
    turn: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the learner should know that is not part of the conversation."""

    type: ClassVar[str] = "notice"
    level: NoticeLevel
    text: str


@dataclass(frozen=True, slots=True)
class Ended:
    """The conversation is over (``idle``, ``closed``, ``shutdown``, ...)."""

    type: ClassVar[str] = "ended"
    reason: str


TalkMessage = StateChanged | Heard | Said | Answer | Interrupted | Refused | Notice | Ended


def to_json(message: TalkMessage) -> dict[str, Any]:
    """The plain dict sent to the page: ``{"type": ..., **fields}``."""
    out: dict[str, Any] = {"type": message.type}
    for f in dataclasses.fields(message):
        value = getattr(message, f.name)
        out[f.name] = str(value) if isinstance(value, StrEnum) else value
    return out
