"""One private spoken conversation between a visitor of ``/talk`` and a persona.

A session hears the visitor's microphone (:class:`~bots.talk.ears.Ear`), takes turns (one
reply in flight), answers through the reply pipeline with a performer of its own (its own
frame clock) into a :class:`~overlays.live.stream.LiveStream` of its own, and tells its page
what happens as typed messages (:mod:`bots.talk.messages`). Nothing of it goes on the
show's stage bus, and its history is its own: the pipeline sees a private view of the
persona whose conversation memory (history and "what I last said" note) belongs to this
session alone, and is dropped when it ends.

Turn taking:

* a new utterance while the persona is THINKING (nothing played yet) merges into that turn:
  the reply is restarted with both texts, nothing is dropped; while the visitor talks during
  THINKING, the reply's first sentence is held back so nothing plays over them;
* speech that starts while SPEAKING is a barge-in: the reply is cut (pipeline cancelled,
  ``stream.cancel``) and the new utterance is answered;
* the echo guard ignores the microphone while the persona's own voice is loud, so its echo
  through the visitor's speakers never interrupts it.

The LLM is shared with every other conversation and the show through
:class:`~bots.orchestrator.fairshare.FairShare` (client ``talk:<id>``).

Long-term memory (:meth:`TalkSession.use_memory`): a page that brings a visitor id (a random
id its browser keeps) is a viewer of platform ``talk`` to the persona's long-term memory, so
a later conversation from the same browser recalls what they told it. Each turn's reply gets
that visitor's :class:`~bots.memory.service.ViewerMemory` (recall before, notes after, both
through the persona's input rules); :meth:`TalkSession.memory_command` answers the page's
"What do you remember?" and "Forget me".
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np

from avatar_engine.performer import Performer
from avatar_engine.types import Performance
from bots.events import ChatMessage, Event, Utterance, Viewer
from bots.memory.service import InputFilter, Kept, ViewerMemory, ViewerRef
from bots.moderation.moderator import Moderator
from bots.orchestrator.fairshare import FairShare
from bots.orchestrator.pipeline import Reply
from bots.personas.context import Conversations, Exchange
from bots.personas.runtime import PersonaRuntime
from bots.talk.ears import HeardSpeech, TalkHearing
from bots.talk.echo import EchoGuard
from bots.talk.messages import (
    Answer,
    Ended,
    Heard,
    Interrupted,
    Notice,
    NoticeLevel,
    Refused,
    Said,
    StateChanged,
    TalkMessage,
    TalkState,
    to_json,
)
from bots.talk.settings import TalkSettings
from overlays.live.stream import LiveStream, SentenceChange
from vstage_core.errors import VStageError
from vstage_core.tasks import cancel_and_wait, wait_event

if TYPE_CHECKING:
    from bots.memory.service import MemoryService

logger = logging.getLogger(__name__)

__all__ = ["MemoryCommand", "SessionEnded", "TalkSession", "TalkState", "TurnRecord"]

Pipeline = Callable[..., Coroutine[Any, Any, Reply]]
"""The reply pipeline (:func:`~bots.orchestrator.pipeline.perform` or a fake of it)."""

Mode = Literal["handsfree", "ptt"]
MemoryCommand = Literal["show", "forget"]
ClientState = Literal["mic-denied", "mic-muted", "no-audio"]
PLATFORM = "talk"
_TRANSCRIPT_KEPT = 400  # messages a reloaded page gets again
_QUEUE_MAX = 500  # messages waiting for a slow page before the oldest are dropped
_CLIENT_NOTICES: dict[str, tuple[NoticeLevel, str]] = {
    "mic-denied": ("warn", "The microphone is blocked: you can type instead."),
    "mic-muted": ("info", "Your microphone is muted."),
    "no-audio": ("warn", "No sound arrives from your microphone: check it, or type instead."),
}
_KEPT_CHARS: Final = 400  # characters of facts listed in one "what do you remember" answer
_VIEWER_ID_MAX: Final = 128
_MEMORY_DOWN: Final = "My memory is not available right now; please try again later."


class SessionEnded(VStageError):
    """The conversation is over; it takes no more input."""

    code = "ended"


@dataclass(slots=True)
class TurnRecord:
    """Timings of one turn (``time.monotonic()``), for logs and the benchmark.

    ``speech_end``: the visitor's speech ended (None: typed). ``heard_at``: the words were
    transcribed. ``first_push_at``: the first sentence was handed to the stream.
    ``first_played_at``: it started to play. ``answered_at``: the reply played out.
    """

    turn: int
    text: str
    typed: bool
    speech_end: float | None = None
    heard_at: float = 0.0
    merged: int = 0
    first_push_at: float | None = None
    first_played_at: float | None = None
    answered_at: float | None = None
    outcome: Literal["", "answered", "interrupted", "failed", "closed"] = ""


@dataclass(eq=False)
class _Turn:
    """The reply in flight."""

    n: int
    text: str
    reply_id: str
    record: TurnRecord
    task: asyncio.Task[None] | None = None
    played: bool = False  # a sentence went to the stream: a new utterance cuts, not merges
    pushed: int = 0
    play_end: float = 0.0  # when the pushed sentences end, played back to back from push
    started: set[int] = field(default_factory=set)  # sentences the stream started
    said: set[int] = field(default_factory=set)  # sentences the page was told of
    on_air: int | None = None  # the sentence of this reply playing now


class TalkSession:
    """A private conversation; made and owned by :class:`~bots.talk.hub.TalkHub`.

    Attributes:
        id: url-safe and unguessable; the session's name in its URLs.
        key: the secret of its URLs (compare with :func:`hmac.compare_digest`).
        persona: the persona talked to.
        language: the language the persona speaks and the visitor is heard in (a teacher's
            target language).
        stream: the session's own live stream (audio and avatar video for its page).
        state: where the conversation is (:class:`TalkState`).
        created_at, last_active: the hub's clock (monotonic); ``last_active`` moves when the
            visitor speaks, types or presses talk, and when an answer ends.
        records: timings of the latest turns.
    """

    def __init__(
        self, *, session_id: str, key: str, persona: PersonaRuntime, language: str,
        settings: TalkSettings, stream: LiveStream, performer: Performer,
        moderator: Moderator, hearing: TalkHearing, fair: FairShare, pipeline: Pipeline,
        clock: Callable[[], float] = time.monotonic,
        on_closed: Callable[[TalkSession], None] | None = None, viewer_name: str = "Guest",
    ) -> None:
        self.id = session_id
        self.key = key
        self.persona = persona
        self.language = language
        self.settings = settings
        self.stream = stream
        self.state = TalkState.LISTENING
        self.mode: Mode = "handsfree"
        self.talking = False
        self.client = f"{PLATFORM}:{session_id}"
        self.context_key = self.client
        self.created_at = self.last_active = clock()
        self.records: deque[TurnRecord] = deque(maxlen=100)
        self.end_reason: str | None = None
        # Counters (tests, metrics, the benchmark).
        self.turns = 0
        self.merges = 0
        self.interruptions = 0
        self.refusals = 0
        self.echo_frames = 0  # microphone frames ignored by the echo guard
        self._performer = performer
        self._moderator = moderator
        self._fair = fair
        self._pipeline = pipeline
        self._clock = clock
        self._on_closed = on_closed
        self._viewer = Viewer(id=self.client, name=viewer_name)
        self._view = _private_view(persona, max_sentences=settings.max_sentences,
                                   max_chars=settings.max_chars)
        self._echo = EchoGuard(threshold_dbfs=settings.echo_threshold_dbfs,
                               hang_s=settings.echo_hang_s)
        self._subscribers: list[asyncio.Queue[TalkMessage | None]] = []
        self._transcript: deque[TalkMessage] = deque(maxlen=_TRANSCRIPT_KEPT)
        self._turn: _Turn | None = None
        self._turn_no = 0
        self._attempts = 0
        self._turn_times: deque[float] = deque()
        self._playback_open = asyncio.Event()  # cleared: hold the reply (visitor talking)
        self._playback_open.set()
        self._sentence = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._unwatch = stream.on_sentence(self._on_sentence)
        self._ear = hearing.ear(self.id, language=language, listener=self)
        self._memory: MemoryService | None = None  # long-term memory, when attached
        self._who: ViewerRef | None = None  # the visitor as the memory knows them
        self._input_filter = InputFilter(moderator)

    # ------------------------------------------------------------------ what the page sees

    async def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        """The messages to the page, as JSON-able dicts. A new subscriber first gets the
        state and the transcript so far (a page reload); iteration ends after ``ended``."""
        backlog: list[TalkMessage] = [StateChanged(self.state), *self._transcript]
        if self._closed:
            yield to_json(backlog[0])
            for message in backlog[1:]:
                yield to_json(message)
            yield to_json(Ended(self.end_reason or "closed"))
            return
        queue: asyncio.Queue[TalkMessage | None] = asyncio.Queue()
        self._subscribers.append(queue)
        try:
            for message in backlog:
                yield to_json(message)
            while (message_or_end := await queue.get()) is not None:
                yield to_json(message_or_end)
        finally:
            if queue in self._subscribers:
                self._subscribers.remove(queue)

    @property
    def history(self) -> tuple[Exchange, ...]:
        """What the persona remembers of this conversation (the LLM's context)."""
        return self._view.conversations.history(self.context_key)

    @property
    def transcript(self) -> list[dict[str, Any]]:
        """The conversation so far, as a reloaded page gets it."""
        return [to_json(m) for m in self._transcript]

    @property
    def busy(self) -> bool:
        """Whether something is going on that an idle timeout must not cut: a reply in
        flight, or the visitor talking (or their words being transcribed)."""
        return self._turn is not None or self._ear.busy

    def idle_for(self, now: float | None = None) -> float:
        """Seconds since anything happened (0 while busy)."""
        if self.busy:
            return 0.0
        return max(0.0, (self._clock() if now is None else now) - self.last_active)

    # ------------------------------------------------------------------ input from the page

    def hear(self, pcm48: np.ndarray) -> None:
        """Microphone samples: mono ``int16`` at 48 kHz, any length (usually 10-20 ms), on
        the loop. Ignored while hold-to-talk is up, and while the persona's own voice is
        loud (the echo guard) unless the visitor is already talking."""
        if self._closed:
            return
        if not isinstance(pcm48, np.ndarray) or pcm48.dtype != np.int16 or pcm48.ndim != 1:
            raise ValueError(
                "hear() takes mono int16 samples at 48 kHz (a 1-D numpy int16 array), not "
                f"{type(pcm48).__name__} {getattr(pcm48, 'dtype', '')} "
                f"{getattr(pcm48, 'shape', '')}")
        if self.mode == "ptt" and not self.talking:
            return
        if self.settings.echo_guard and not self._ear.in_speech and self._echo.loud():
            self.echo_frames += 1
            return
        self._ear.feed(pcm48)

    def mic_ended(self) -> None:
        """The microphone track ended (the page closed or the mic was switched off): what
        was being said ends here."""
        self._ear.sender_stopped()

    async def say_text(self, text: str) -> None:
        """A typed turn (moderated and rate limited like a spoken one).

        Raises:
            SessionEnded: the conversation is over.
            TypeError: ``text`` is not a string.
        """
        if self._closed:
            raise SessionEnded(f"conversation {self.id} has ended")
        if not isinstance(text, str):
            raise TypeError(f"typed text must be a string, not {type(text).__name__}")
        self.last_active = self._clock()
        self._take_turn(text, language=self.language, typed=True, speech_end=None)

    def set_mode(self, mode: Mode) -> None:
        """Hands-free (the VAD decides turns) or hold-to-talk (only audio while pressed)."""
        if mode not in ("handsfree", "ptt"):
            raise ValueError(f"mode must be 'handsfree' or 'ptt', not {mode!r}")
        if mode == self.mode:
            return
        self.mode = mode
        self.talking = False
        if mode == "ptt":
            self._ear.sender_stopped()  # what was being said ends now

    def set_talking(self, down: bool) -> None:
        """Hold-to-talk pressed (``True``) or released. Pressing while the persona speaks
        cuts it: the visitor wants the floor."""
        if not isinstance(down, bool):
            raise TypeError(f"talking must be true or false, not {down!r}")
        if self._closed or down == self.talking:
            return
        self.talking = down
        self.last_active = self._clock()
        if down:
            turn = self._turn
            if turn is not None and turn.played:
                self._interrupt(turn)
                self._settle()
        else:
            self._ear.sender_stopped()  # released: the turn ends now

    def client_state(self, what: str) -> None:
        """The page reports a microphone problem: ``mic-denied``, ``mic-muted`` or
        ``no-audio``; told back as a notice (and logged)."""
        notice = _CLIENT_NOTICES.get(what)
        if notice is None:
            raise ValueError(f"unknown client state {what!r}: expected one of "
                             f"{', '.join(_CLIENT_NOTICES)}")
        logger.info("talk %s: page reports %s", self.id, what)
        if what in ("mic-muted", "mic-denied"):
            self._ear.sender_stopped()
        self._notify(*notice)

    async def close(self, reason: str) -> None:
        """End the conversation: the reply is cut, the page told (``ended``), the stream
        stopped, the hearing and the history forgotten. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.end_reason = reason
        turn, self._turn = self._turn, None
        tasks = list(self._tasks)
        if turn is not None:
            self.stream.cancel(turn.reply_id)
            turn.record.outcome = "closed"
            if turn.task is not None:
                tasks.append(turn.task)
        self._playback_open.set()
        self._ear.close()
        self._unwatch()
        self._set_state(TalkState.ENDED)
        self._emit(Ended(reason), keep=False)
        for queue in self._subscribers:
            queue.put_nowait(None)
        await cancel_and_wait(tasks)
        await self.stream.stop()
        self._view.conversations.clear()
        logger.info("talk %s: ended (%s) after %d turn(s)", self.id, reason, self.turns)
        if self._on_closed is not None:
            self._on_closed(self)

    # ------------------------------------------------------------------ long-term memory

    def use_memory(self, memory: MemoryService | None, viewer_id: str | None) -> None:
        """Give this conversation the app's long-term memory of viewers.

        Args:
            memory: the app's memory (None: there is none; the page is told so when it asks).
            viewer_id: who the visitor is to the memory (platform ``talk``): a pseudonym
                stable across their conversations (the routes pass a hash of the id the
                page keeps in its browser, never the raw id). None: the page brought no id
                (storage off, an old page), so nothing is remembered about them.

        Raises:
            ValueError: ``viewer_id`` is not a non-empty string of at most 128 characters.
        """
        if viewer_id is not None and (not isinstance(viewer_id, str) or not viewer_id
                                      or len(viewer_id) > _VIEWER_ID_MAX):
            raise ValueError(f"viewer_id must be a string of 1 to {_VIEWER_ID_MAX} "
                             f"characters, not {viewer_id!r:.60}")
        self._memory = memory
        self._who = (ViewerRef(PLATFORM, viewer_id, self._viewer.name)
                     if viewer_id is not None else None)

    @property
    def remembers(self) -> bool:
        """Whether this conversation's turns go to long-term memory (memory attached, a
        visitor id, memory on for the persona)."""
        return (self._memory is not None and self._who is not None
                and self.persona.config.memory.enabled)

    def _viewer_memory(self) -> ViewerMemory | None:
        """The visitor's memory for the next reply (None: nothing is remembered)."""
        memory, who = self._memory, self._who
        if memory is None or who is None:
            return None
        pid, fair = self.persona.id, self._fair
        allowed = self._input_filter.for_viewer(self._viewer, platform=PLATFORM, persona=pid)
        return memory.viewer(self.persona.config, who, allowed=allowed, llm=self.persona.llm,
                             gate=lambda: fair.turn(f"memory:{pid}"))

    async def memory_command(self, command: MemoryCommand) -> str:
        """Answer the page's memory controls with the text to show; never raises for a
        database failure (the visitor is told to try later).

        ``show``: what is kept about this visitor (every persona's notes). ``forget``: erase
        all of it, cut the reply in flight, and drop this conversation's history and
        transcript (a reload shows nothing of it again).

        Raises:
            ValueError: ``command`` is neither ``show`` nor ``forget``.
            SessionEnded: the conversation is over.
        """
        if command not in ("show", "forget"):
            raise ValueError(f"memory command must be 'show' or 'forget', not {command!r:.40}")
        if self._closed:
            raise SessionEnded(f"conversation {self.id} has ended")
        self.last_active = self._clock()
        name = self.persona.config.name
        memory, who = self._memory, self._who
        if command == "forget":
            self._forget_here()
        if memory is None:
            return ("Nothing about you is remembered here: this studio keeps no long-term "
                    "memory." if command == "show" else
                    "Done: this conversation is cleared. Nothing else was kept about you.")
        if who is None:
            note = ("This browser keeps no visitor id (its storage is off), so nothing is "
                    "remembered about you between conversations.")
            return note if command == "show" else f"Done: this conversation is cleared. {note}"
        try:
            if command == "forget":
                erased = await memory.forget(who)
                logger.info("talk %s: the visitor asked to be forgotten (%d rows erased)",
                            self.id, erased)
                return ("Done: I have forgotten everything about you." if erased else
                        "Done: I had nothing kept about you.")
            kept = await memory.kept(who, public=False)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a store failure is told, never a crash of the page's call
            logger.warning("talk %s: memory %s failed (%s: %s)", self.id, command,
                           type(e).__name__, e)
            return _MEMORY_DOWN
        enabled = self.persona.config.memory.enabled
        if not enabled and not kept.total:
            return f"{name} does not remember visitors: memory is off."
        if not kept.total:
            return "I don't keep anything about you."
        return _describe_kept(kept, name=name, off=not enabled)

    def _forget_here(self) -> None:
        """Drop what this conversation holds in RAM about the visitor: the reply in flight,
        the model's history of the conversation, the transcript a reload gets, the turn
        records (their words)."""
        turn = self._turn
        if turn is not None:
            self._interrupt(turn)
        self._view.conversations.clear()
        self._transcript.clear()
        self.records.clear()
        self._settle()

    # ------------------------------------------------------------------ hearing (EarListener)

    def speech_started(self) -> None:
        """The visitor started talking: a barge-in while the persona speaks; while it only
        thinks, its answer is held back until we know whether words follow."""
        if self._closed:
            return
        self.last_active = self._clock()
        turn = self._turn
        if turn is not None and turn.played:
            logger.info("talk %s: barge-in on turn %d", self.id, turn.n)
            self._interrupt(turn)
        elif turn is not None:
            self._playback_open.clear()
        self._set_state(TalkState.HEARING)

    def speech_dropped(self) -> None:
        """A sound too short to be speech: back to what was going on."""
        self._playback_open.set()
        self._settle()

    def speech_heard(self, heard: HeardSpeech) -> None:
        """A spoken turn, transcribed."""
        if self._closed:
            return
        if heard.error is not None and not heard.text:
            self._notify("error", "I could not make out what you said (speech recognition "
                                  "failed); please say it again or type it.")
        elif not heard.text:
            self._notify("info", "I heard no words.")
        if not heard.text:
            self._playback_open.set()
            self._settle()
            return
        self.last_active = self._clock()
        if heard.truncated:
            limit = f"{self.settings.max_turn_s:g} s"
            self._notify("warn", f"You spoke for more than {limit}: I answered the first "
                                 f"{limit}.")
        self._take_turn(heard.text, language=heard.language, typed=False,
                        speech_end=heard.speech_end)

    # ------------------------------------------------------------------ turns

    def _take_turn(self, text: str, *, language: str, typed: bool,
                   speech_end: float | None) -> None:
        current = self._turn
        merging = current is not None and not current.played
        if not merging:
            wait = self._rate_wait()
            if wait > 0:
                self.refusals += 1
                self._emit(Refused(None, f"too many turns: wait {math.ceil(wait)} s"))
                self._playback_open.set()
                self._settle()
                return
        event: Event
        if typed:
            event = ChatMessage(viewer=self._viewer, message=text, platform=PLATFORM,
                                persona=self.persona.id)
        else:
            event = Utterance(viewer=self._viewer, message=text, platform=PLATFORM,
                              persona=self.persona.id, language=language)
        verdict = self._moderator.check_input(event)
        clean = (verdict.text or text).strip() if verdict.allowed else text
        n = current.n if merging and current is not None else self._turn_no + 1
        self._turn_no = max(self._turn_no, n)
        if clean:
            self._emit(Heard(n, clean, language))
        if not verdict.allowed:
            self.refusals += 1
            self._emit(Refused(n, verdict.reason or "refused by moderation"))
            self._playback_open.set()
            self._settle()
            return
        record = TurnRecord(turn=n, text=clean, typed=typed, speech_end=speech_end,
                            heard_at=time.monotonic())
        if merging and current is not None:
            # Nothing played yet: answer both together.
            self.merges += 1
            self._abandon(current)
            record = dataclasses.replace(current.record, text=f"{current.text} {clean}",
                                         merged=current.record.merged + 1,
                                         speech_end=speech_end or current.record.speech_end,
                                         heard_at=record.heard_at)
            text = record.text
        else:
            if current is not None:
                self._interrupt(current)  # typed while the persona speaks
            self.turns += 1
            self._turn_times.append(self._clock())
            text = clean
        self._attempts += 1
        turn = _Turn(n=n, text=text, reply_id=f"{self.id}-{n}-{self._attempts}",
                     record=record)
        self._turn = turn
        if self._ear.forming:
            self._playback_open.clear()  # typed while talking: wait for what they say
        else:
            self._playback_open.set()
        turn.task = asyncio.create_task(self._answer(turn), name=f"talk:{self.id}:turn:{n}")
        self._settle()

    def _rate_wait(self) -> float:
        """Seconds until another turn is allowed (0: now)."""
        now = self._clock()
        times = self._turn_times
        while times and now - times[0] >= 60.0:
            times.popleft()
        if len(times) < self.settings.turns_per_minute:
            return 0.0
        return max(0.001, 60.0 - (now - times[0]))

    def _interrupt(self, turn: _Turn) -> None:
        """Cut the reply of ``turn``: nothing more of it plays."""
        self.interruptions += 1
        turn.record.outcome = "interrupted"
        self._abandon(turn)
        self.records.append(turn.record)
        self._emit(Interrupted(turn.n))

    def _abandon(self, turn: _Turn) -> None:
        if turn.task is not None:
            turn.task.cancel()
        self.stream.cancel(turn.reply_id)
        if self._turn is turn:
            self._turn = None
        self._playback_open.set()

    async def _answer(self, turn: _Turn) -> None:
        fair, client = self._fair, self.client
        extra: dict[str, Any] = {}
        if (memory := self._viewer_memory()) is not None:
            extra["memory"] = memory
        try:
            reply = await self._pipeline(
                self._view, viewer=self._viewer.name, text=turn.text,
                on_performance=lambda p: self._perform(turn, p), reply_id=turn.reply_id,
                screen=lambda text: self._screen(text, turn), context_key=self.context_key,
                performer=self._performer, gate=lambda: fair.turn(client), **extra)
            if reply.fell_back and self._turn is turn:
                self._notify("warn", f"{self.persona.config.name} could not think of an answer "
                                     "(the language model is not answering): said a stock line "
                                     "instead.")
            await self._play_out(turn)
        except asyncio.CancelledError:
            self.stream.cancel(turn.reply_id)
            raise
        except Exception as e:
            logger.exception("talk %s: reply to turn %d failed", self.id, turn.n)
            self.stream.cancel(turn.reply_id)
            if self._turn is turn:
                self._turn = None
                turn.record.outcome = "failed"
                self.records.append(turn.record)
                self._notify("error", f"The answer failed ({type(e).__name__}); please try "
                                      "again.")
                self._settle()
            return
        if self._turn is not turn:
            return
        self._turn = None
        turn.record.answered_at = time.monotonic()
        turn.record.outcome = "answered"
        self.records.append(turn.record)
        self.last_active = self._clock()
        self._emit(Answer(turn.n, reply.text, reply.correction, reply.gloss))
        self._settle()

    async def _perform(self, turn: _Turn, performance: Performance) -> None:
        """A sentence is ready: into the stream (held while the visitor talks over the
        persona's thinking; dropped once the turn is superseded)."""
        await self._playback_open.wait()
        if self._turn is not turn or self._closed:
            return
        now = time.monotonic()
        if not turn.played:
            turn.played = True
            turn.record.first_push_at = now
            self._settle()
        self._echo.track(performance)
        self.stream.push(performance)
        if self.stream.subscribers == 0:
            # Nobody watches the stream (a page without video): it plays to no one, so the
            # transcript follows the pushes instead.
            self._said(turn, performance.index, performance.text)
        turn.pushed += 1
        turn.play_end = max(turn.play_end, now) + performance.duration
        self._sentence.set()

    async def _play_out(self, turn: _Turn) -> None:
        """Until the reply's last sentence has played (the stream moved past it). A stream
        nobody watches plays nothing: then the time it would have taken counts."""
        if turn.pushed == 0:
            return
        last = turn.pushed - 1
        # However late the stream runs, a turn ends: at most this long after its sentences
        # would have finished played back to back.
        give_up = turn.play_end + max(2.0, 0.5 * (turn.play_end - turn.record.heard_at))
        while True:
            if last in turn.started and turn.on_air != last:
                return
            now = time.monotonic()
            if now >= give_up or (self.stream.subscribers == 0 and now >= turn.play_end):
                return
            self._sentence.clear()
            await wait_event(self._sentence, 0.1)

    def _on_sentence(self, change: SentenceChange) -> None:
        """The stream started another sentence or went idle (on the loop)."""
        self._echo.on_air(change)
        turn = self._turn
        if turn is not None:
            if change.reply_id == turn.reply_id and change.sentence is not None:
                turn.started.add(change.sentence)
                turn.on_air = change.sentence
                if turn.record.first_played_at is None:
                    turn.record.first_played_at = change.at
                self._said(turn, change.sentence, change.text or "")
            else:
                turn.on_air = None
        self._sentence.set()

    def _said(self, turn: _Turn, index: int, text: str) -> None:
        if index not in turn.said:
            turn.said.add(index)
            self._emit(Said(turn.n, index, text))

    def _screen(self, text: str, turn: _Turn) -> str | None:
        """Output moderation of one sentence (as the show's)."""
        event = Utterance(viewer=self._viewer, message=turn.text, platform=PLATFORM,
                          persona=self.persona.id)
        verdict = self._moderator.check_output(text, event=event)
        return (verdict.text or text) if verdict.allowed else None

    # ------------------------------------------------------------------ state and messages

    def _settle(self) -> None:
        """The state that follows from what is going on."""
        if self._closed:
            return
        turn = self._turn
        if self._ear.in_speech and not (turn is not None and turn.played):
            state = TalkState.HEARING
        elif turn is None:
            state = TalkState.LISTENING
        elif turn.played:
            state = TalkState.SPEAKING
        else:
            state = TalkState.THINKING
        self._set_state(state)

    def _set_state(self, state: TalkState) -> None:
        if state is not self.state:
            self.state = state
            self._emit(StateChanged(state), keep=False)

    def _notify(self, level: NoticeLevel, text: str) -> None:
        self._emit(Notice(level, text), keep=False)

    def _emit(self, message: TalkMessage, *, keep: bool = True) -> None:
        if keep:
            self._transcript.append(message)
        for queue in self._subscribers:
            if queue.qsize() >= _QUEUE_MAX:
                queue.get_nowait()  # a page that does not read loses the oldest
            queue.put_nowait(message)


def _describe_kept(kept: Kept, *, name: str, off: bool) -> str:
    """The answer to "What do you remember?": the facts (as many as fit), what else is kept,
    and how to erase it."""
    shown: list[str] = []
    size = 0
    for fact in kept.facts:
        if shown and size + len(fact) > _KEPT_CHARS:
            break
        shown.append(f"'{fact}'")
        size += len(fact) + 4
    parts: list[str] = []
    if shown:
        more = len(kept.facts) - len(shown)
        parts.append("I remember: " + "; ".join(shown) + (f" (+{more} more)" if more else "")
                     + ".")
    if kept.elsewhere:
        parts.append(f"{kept.elsewhere} more note(s) from your other linked account(s).")
    if kept.summaries:
        parts.append("I also keep a short summary of what we talked about.")
    if off:
        parts.append(f"{name} itself does not remember visitors any more (memory is off).")
    parts.append("'Forget me' erases it all.")
    return " ".join(parts)


def _private_view(persona: PersonaRuntime, *, max_sentences: int | None = None,
                  max_chars: int | None = None) -> PersonaRuntime:
    """The persona with a conversation memory of its own: the same models, voice, renderer
    and pool, but history and stage note private to one session. (Remembering a private
    answer in the persona's own memory would put it in the show's stage note, which the
    public show's prompts carry.) ``max_sentences`` and ``max_chars`` cap its answers
    (``talk.max_sentences``, ``talk.max_chars``); the model stops writing there, so the
    shared model is free for the next conversation sooner."""
    view = copy.copy(persona)
    view.conversations = Conversations(turns=persona.config.llm.history_turns, max_viewers=1)
    llm = persona.config.llm
    caps: dict[str, int] = {}
    if max_sentences is not None and max_sentences < llm.max_sentences:
        caps["max_sentences"] = max_sentences
    if max_chars is not None and max_chars < llm.max_chars:
        caps["max_chars"] = max_chars
    if caps:
        view.config = persona.config.model_copy(update={"llm": llm.model_copy(update=caps)})
    return view
