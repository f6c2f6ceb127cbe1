"""What flows to the stages, and what a stage is.

The orchestrator publishes typed :data:`StageEvent` values on the
:class:`~overlays.bus.StageBus`; each stage (studio page and overlays, the live stream, OBS,
Discord voice, the clip recorder) says which event types it takes in :attr:`Stage.wants` and
receives them, in order, from its own bounded queue in its own task. A slow or dead stage never
delays another stage or the reply. :class:`ReplyCancelled` jumps every queue and drops what is
still queued of that reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from avatar_engine.types import Clip, Performance


@dataclass(frozen=True, slots=True)
class ChatShown:
    """A viewer's line the persona is about to answer (shown in chat overlays)."""

    persona: str
    user: str
    text: str
    reply_id: str


@dataclass(frozen=True, slots=True, eq=False)
class Performed:
    """One sentence of a reply, voiced and rendered: audio and frames, in reply order."""

    performance: Performance

    @property
    def persona(self) -> str:
        return self.performance.persona

    @property
    def reply_id(self) -> str:
        return self.performance.reply_id


@dataclass(frozen=True, slots=True)
class ClipReady:
    """One sentence encoded to files (WebM/MP4): for the clip player fallback and recordings."""

    persona: str
    clip: Clip

    @property
    def reply_id(self) -> str:
        return self.clip.reply_id


@dataclass(frozen=True, slots=True)
class ReplyFinished:
    """Every sentence of the reply has been published."""

    persona: str
    reply_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ReplyCancelled:
    """Nothing more of this reply may play, anywhere (a skip, a barge-in, a withdrawal)."""

    persona: str
    reply_id: str


@dataclass(frozen=True, slots=True)
class Transcript:
    """Both sides of one exchange, for chat logs and text channels: what the viewer said and
    what the persona answered (its spoken text), with a teacher's correction of the viewer's
    words and gloss of the answer in the viewer's language, which are shown, never spoken.

    Published once the answer has been performed in full (after :class:`ReplyFinished`).

    Attributes:
        user: the viewer's display name.
        said: the viewer's line as the persona answered it (after moderation's cleaning).
        answer: what the persona said (every sentence spoken, in order).
        correction: a teacher's correction of ``said`` (None: none).
        gloss: a teacher's translation of ``answer`` into the learner's language (None: none).
        language: the language ``answer`` is in (the persona's).
        platform: where the viewer talks from ("studio", "discord", "twitch").
        replay: the answer is a slower replay of an earlier one (``said`` asked for it).
    """

    persona: str
    reply_id: str
    user: str
    said: str
    answer: str
    correction: str | None = None
    gloss: str | None = None
    language: str = "en"
    platform: str = ""
    replay: bool = False


@dataclass(frozen=True, slots=True)
class ShowDegraded:
    """The show is degraded (LLM or renderer failing: "be right back") or back (``on=False``)."""

    on: bool


StageEvent = (
    ChatShown | Performed | ClipReady | ReplyFinished | ReplyCancelled | ShowDegraded | Transcript
)
"""Everything a stage can be handed."""


@runtime_checkable
class Stage(Protocol):
    """Something that shows the show: studio page, overlays, live stream, OBS, Discord voice.

    Attributes:
        name: for logs and task names ("studio", "obs", "discord", "live").
        wants: the event types this stage takes; the bus hands it nothing else.
            :class:`ReplyCancelled` is delivered only if listed here too.
    """

    name: str
    wants: frozenset[type[StageEvent]]

    async def handle(self, event: StageEvent) -> None:
        """Act on one event. Called from the stage's own task, one event at a time, in
        publication order (a cancellation first). May take as long as the stage needs
        (it only delays this stage); exceptions are logged and counted, never stop the show."""
        ...
