"""One reply as a pipeline of concurrent stages, sentence by sentence:

    LLM stream -> sentence cutter -> TTS -> performer -> on_performance

Stages are tasks joined by small bounded queues, so sentence 1 is voiced and rendered while
the LLM still writes sentence 2. Cancelling :func:`perform` cancels every stage: nothing of
an interrupted reply reaches ``on_performance`` afterwards. The render stage is one call to
the persona's :class:`~avatar_engine.performer.Performer` (here or on RabbitMQ workers);
clip files are made downstream, by the stages that need them.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from avatar_engine.performer import Performer
from avatar_engine.types import Performance, Speech
from bots.brain.base import ChatTurn, RetryPolicy, stream_with_retry
from bots.brain.sentences import ReplyBudget, SentenceCutter, speakable, strip_label
from bots.personas.prompt import build_messages
from bots.personas.runtime import PersonaRuntime
from bots.teacher.format import TeacherStream
from bots.teacher.pace import level_speed, synthesize_at
from bots.teacher.prompt import build_teacher_messages
from vstage_core.errors import ProviderError

if TYPE_CHECKING:
    from bots.memory.service import ViewerMemory

logger = logging.getLogger(__name__)

PerformanceSink = Callable[[Performance], Awaitable[None]]
# Output moderation: a sentence's text in, the text to say (None: say nothing) out.
Screen = Callable[[str], str | None]


class _End(enum.Enum):
    END = enum.auto()


_END: Final = _End.END  # a stage's last item: nothing more follows


@dataclass
class ReplyTrace:
    """Monotonic timestamps of one reply's milestones (seconds), for logs and benchmarks."""

    started: float = field(default_factory=time.monotonic)
    marks: dict[str, float] = field(default_factory=dict)
    on_mark: Callable[[str], None] | None = None

    def mark(self, name: str) -> None:
        if name not in self.marks:
            self.marks[name] = time.monotonic()
            if self.on_mark is not None:
                self.on_mark(name)

    def since_start(self, name: str) -> float | None:
        t = self.marks.get(name)
        return None if t is None else t - self.started


@dataclass
class Reply:
    """What a finished reply said and performed (each sentence's speech and frames)."""

    reply_id: str
    text: str
    trace: ReplyTrace
    performances: list[Performance] = field(default_factory=list, repr=False)
    fell_back: bool = False
    # A teacher's notes for the transcript, never spoken (None: none).
    correction: str | None = None
    gloss: str | None = None
    speed: float = 1.0  # the rate it was voiced at (a factor on the voice's own pace)


async def perform(
    persona: PersonaRuntime,
    *,
    viewer: str,
    text: str,
    on_performance: PerformanceSink | None = None,
    retry: RetryPolicy | None = None,
    reply_id: str | None = None,
    screen: Screen | None = None,
    marks: Callable[[str], None] | None = None,
    context_key: str | None = None,
    say: str | None = None,
    speed: float | None = None,
    performer: Performer | None = None,
    gate: Callable[[], AbstractAsyncContextManager[object]] | None = None,
    memory: ViewerMemory | None = None,
) -> Reply:
    """Answer ``text`` from ``viewer`` as ``persona``, handing each sentence's
    :class:`~avatar_engine.types.Performance` to ``on_performance`` as soon as it is rendered,
    in order.

    Args:
        retry: LLM retries; by default 3 attempts, the first token due within the
            persona's ``llm.timeout_s``.
        screen: output moderation, applied to every sentence before it is voiced; a sentence
            it refuses is never spoken.
        marks: called with each milestone's name as it happens (for the orchestrator's trace).
        context_key: whose conversation this is (``platform:viewer-id``); the prompt holds
            only this viewer's own past turns. Default: ``local:<viewer>``.
        say: speak this text as it is instead of asking the LLM (a greeting, a replay); it
            is not screened and not remembered.
        speed: the speaking rate, a factor on the voice's own pace; by default a teacher's
            level's (:func:`~bots.teacher.pace.level_speed`), 1.0 for other personas.
        performer: who renders the sentences; by default the persona's own (the public
            show's frame clock). A private conversation passes its own, so its frames never
            take a place on the show's clock.
        gate: entered around the LLM call (not around a ``say``): a turn on a shared model
            (:meth:`~bots.orchestrator.fairshare.FairShare.turn`), so many conversations take
            turns on it fairly.
        memory: this viewer's long-term memory (None: none). Before the LLM is asked, what
            it recalls for ``text`` goes into the prompt (and, when the persona has none of
            their turns in RAM, their last turns from the store); recall waits a few ms at
            most. After a spoken turn the turn is handed to it to be noted, off this path.

    A teacher persona (``persona.config.teacher``) is prompted with its teaching
    instructions, and its model's correction and gloss lines are parsed out of the stream
    (:class:`~bots.teacher.format.TeacherStream`) into ``Reply.correction`` and
    ``Reply.gloss``: shown, never spoken.
    """
    teacher = persona.config.teacher
    reply = Reply(reply_id=reply_id or uuid.uuid4().hex[:10], text="",
                  trace=ReplyTrace(on_mark=marks),
                  speed=level_speed(teacher) if speed is None else speed)
    trace = reply.trace
    pieces: asyncio.Queue[str | _End] = asyncio.Queue(maxsize=4)
    speeches: asyncio.Queue[Speech | _End] = asyncio.Queue(maxsize=2)
    spoken: list[str] = []
    counter = itertools.count()
    first_performed = asyncio.Event()
    key = context_key or f"local:{viewer}"
    screened_out = False  # a sentence was refused: this turn never enters any context

    async def prompt() -> list[ChatTurn]:
        """The messages for the LLM: instructions, this viewer's turns and what is
        remembered about them."""
        note = persona.conversations.stage_note if persona.config.llm.stage_note else None
        history = persona.conversations.history(key)
        memories: tuple[str, ...] = ()
        if memory is not None:
            recalled = await memory.recall(text, with_history=not history)
            trace.mark("memory_recalled")
            if not history and persona.conversations.restore(key, recalled.history):
                history = persona.conversations.history(key)  # back after a restart
            memories = recalled.notes
        if teacher is not None:
            return build_teacher_messages(persona.config, teacher, history, viewer, text,
                                          stage_note=note, memories=memories)
        return build_messages(persona.config, history, viewer, text, stage_note=note,
                              memories=memories)

    async def think() -> None:
        cfg = persona.config.llm
        cutter = SentenceCutter(language=persona.config.language)
        budget = ReplyBudget(max_pieces=cfg.max_sentences, max_chars=cfg.max_chars)
        # A teacher's answer is told apart from its notes as it streams; other personas'
        # text all goes to the cutter.
        notes = TeacherStream() if teacher is not None else None
        labels = (persona.config.name, viewer)

        async def emit(raw: str, *, screened: bool = True) -> None:
            nonlocal screened_out
            piece: str | None = speakable(strip_label(raw, names=labels))
            if piece and screened and screen is not None:
                piece = screen(piece)  # blocked text is never spoken
                screened_out = screened_out or piece is None
            if piece and (piece := budget.admit(piece)):
                spoken.append(piece)
                trace.mark("llm_first_sentence")
                await pieces.put(piece)

        def take_notes(parsed: TeacherStream) -> None:
            """The teacher's notes, screened like speech (they are shown in chat)."""
            assert teacher is not None
            parsed.flush()  # closes a note the stream ended in (a no-op once flushed)
            if teacher.correction != "off":
                reply.correction = _screened(parsed.correction, screen)
            reply.gloss = _screened(parsed.gloss, screen)

        if say is not None:
            for raw in [*cutter.push(say), cutter.flush()]:
                if raw:
                    await emit(raw, screened=False)
            trace.mark("llm_done")
            await pieces.put(_END)
            return
        messages = await prompt()

        async def generate() -> None:
            stream = stream_with_retry(persona.llm, messages, policy=policy)
            try:
                async for delta in stream:
                    trace.mark("llm_first_token")
                    if notes is not None:
                        delta = notes.push(delta)
                        if budget.exhausted:
                            continue  # the answer is full; a gloss may still follow it
                    for raw in cutter.push(delta):
                        await emit(raw)
                    if spoken and not first_performed.is_set() and gate is None:
                        # The first sentence is the only latency viewers feel: stop reading
                        # (a local model pauses with us) until it is out. Later sentences
                        # only need to be ready before the one before them ends. Not on a
                        # shared turn (gate): pausing would hold the model from every other
                        # conversation while this one voices and renders.
                        await first_performed.wait()
                    if budget.exhausted and notes is None:
                        break
            finally:
                await stream.aclose()

        policy = retry or RetryPolicy(first_token_timeout_s=cfg.timeout_s)
        try:
            # A turn on the shared model (fair between conversations), held while it writes.
            async with gate() if gate is not None else nullcontext():
                trace.mark("llm_turn")
                await generate()
            if notes is not None:
                tail = notes.flush()  # what was held back as a possible tag
                if not budget.exhausted:
                    for raw in cutter.push(tail):
                        await emit(raw)
            if not budget.exhausted and (rest := cutter.flush()):
                await emit(rest)
        except ProviderError as e:
            if spoken:
                logger.warning("%s: LLM failed mid-reply (%s); ending the reply", persona.id, e)
            else:
                logger.error("%s: LLM failed (%s); saying the fallback line", persona.id, e)
                reply.fell_back = True
                await emit(persona.config.fallback_line, screened=False)
        if notes is not None:
            take_notes(notes)
        if not spoken:  # the model said nothing usable (or only what moderation blocked)
            reply.fell_back = True
            await emit(persona.config.fallback_line, screened=False)
        trace.mark("llm_done")
        await pieces.put(_END)

    async def voice() -> None:
        voiced = 0
        while (piece := await pieces.get()) is not _END:
            if voiced == 1:
                # Only the first sentence's latency is felt; later ones just need to be ready
                # before the one before them has finished playing. Let the first one have
                # the CPU instead of voicing sentence 2 beside it.
                await first_performed.wait()
            speech = await asyncio.to_thread(synthesize_at, persona.tts, piece, reply.speed,
                                           base=persona.config.voice.speed)
            voiced += 1
            trace.mark("tts_first_audio")
            await speeches.put(speech)
        await speeches.put(_END)

    async def render() -> None:
        while (speech := await speeches.get()) is not _END:
            performance = await (performer or persona.performer).perform(
                speech, reply_id=reply.reply_id, index=next(counter))
            trace.mark("first_clip")  # the name benchmarks read: the first sentence is ready
            first_performed.set()
            reply.performances.append(performance)
            if on_performance is not None:
                await on_performance(performance)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(think(), name=f"persona:{persona.id}:llm")
        tg.create_task(voice(), name=f"persona:{persona.id}:tts")
        tg.create_task(render(), name=f"persona:{persona.id}:render")
    reply.text = " ".join(spoken)
    trace.mark("done")
    if say is None and not reply.fell_back and not screened_out:
        persona.remember(key, text, reply.text, viewer=viewer)
        if memory is not None:
            memory.after_turn(text, reply.text)  # noted in the background
    return reply



def _screened(note: str | None, screen: Screen | None) -> str | None:
    """A transcript note through output moderation (None: refused or empty)."""
    if not note or screen is None:
        return note or None
    return screen(note)
