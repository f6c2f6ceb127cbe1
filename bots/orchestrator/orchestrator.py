"""The orchestrator: takes every event from every adapter, decides at once whether a persona
will answer it, and runs the replies.

Per persona it keeps a :class:`~bots.orchestrator.queue.PersonaQueue` (priority, aging,
fairness, cooldowns, overflow) behind a :class:`~bots.moderation.moderator.Moderator`, and one
consumer task that pops the next event and performs the reply through the pipeline. All
personas share one render pool, which schedules them fairly, and (by default) one stage
floor, so only one persona talks at a time. Every event is traced; every accepted event ends
in exactly one :class:`~bots.events.Outcome`, told to its adapter (spoken, refused with a
reason, interrupted or failed), so paid events are fulfilled or refunded, never lost.

What the show shows goes out as typed events on a :class:`~overlays.bus.StageBus` (chat shown,
each sentence performed, reply finished or cancelled, the transcript of both sides, show
degraded); publishing never waits for a stage, so no stage can hold back a reply or another
stage.

``!slower`` (and, to a teacher persona, "say that again slower") replays the persona's last
reply to that viewer at a slower rate, re-voiced from the same text without the LLM.

With long-term memory (a :class:`~bots.memory.service.MemoryService`), each reply to a viewer
recalls what the persona remembers about them and notes the turn afterwards, off the reply's
path; what is noted passes the persona's input rules again. Viewers' memory commands
(``!memory``, ``!forgetme``, ``!link``) are answered by :meth:`Orchestrator.memory_command`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from avatar_engine.types import Performance
from bots.adapters.base import Adapter
from bots.adapters.commands import MemoryRequest
from bots.events import (
    ChatMessage,
    Decision,
    Event,
    ModCommand,
    Notice,
    Outcome,
    Redemption,
    Utterance,
    Viewer,
)
from bots.memory.errors import MemoryStoreError
from bots.memory.service import InputFilter, Kept, MemoryService, ViewerMemory, ViewerRef
from bots.moderation.audit import AuditLog
from bots.moderation.moderator import Moderator
from bots.orchestrator.fairshare import FairShare
from bots.orchestrator.pipeline import Reply, perform
from bots.orchestrator.queue import PersonaQueue, QueuedItem
from bots.orchestrator.tracing import Tracer
from bots.personas.prompt import system_prompt
from bots.personas.runtime import PersonaRuntime
from bots.teacher.pace import slower
from bots.teacher.replay import wants_slower
from overlays.bus import StageBus
from overlays.stage import (
    ChatShown,
    Performed,
    ReplyCancelled,
    ReplyFinished,
    ShowDegraded,
    Stage,
    Transcript,
)
from vstage_core.tasks import cancel_and_wait, wait_event

logger = logging.getLogger(__name__)

Pipeline = Callable[..., Coroutine[Any, Any, Reply]]
"""The reply pipeline (:func:`~bots.orchestrator.pipeline.perform` or a fake of it)."""
_IDLE_POLL_S = 1.0  # how often an idle persona wakes to expire stale items


@dataclass(eq=False)
class _InFlight:
    """One reply of a persona between pop and the end of its playback.

    ``played`` resolves once this reply is off stage *and* every earlier reply of the persona
    is, so replies reach the stage in the order they were popped.
    """

    item: QueuedItem | None  # None: the persona's greeting
    played: asyncio.Future[None]
    task: asyncio.Task | None = None  # the pipeline (what a skip cancels)
    generated: bool = False  # the pipeline has finished; only playback is left
    on_stage: bool = False
    cut: asyncio.Event = field(default_factory=asyncio.Event)  # a skip during playback
    cancel_early: bool = False  # cancelled before its pipeline task existed
    started: float = field(default_factory=time.monotonic)
    # What a cancel means: "interrupt" (skip, barge-in), "restore" (back into the queue),
    # "refuse" (cleared or withdrawn: a refused outcome).
    cancel_as: str = "interrupt"
    reason: str = "skipped by a moderator"

    @property
    def event(self) -> Event | None:
        return self.item.event if self.item is not None else None


@dataclass(frozen=True, slots=True)
class _Said:
    """The last reply a persona finished for one viewer: what a slower replay says again."""

    text: str
    speed: float


@dataclass(eq=False)
class _Persona:
    """The orchestrator's state for one persona."""

    runtime: PersonaRuntime
    queue: PersonaQueue
    moderator: Moderator
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Replies popped and not yet played out, oldest (on stage) first.
    inflight: deque[_InFlight] = field(default_factory=deque)
    # Seconds per answer lately (EWMA), and when the last answer finished playing.
    service_s: float | None = None
    last_end: float = 0.0
    # The last reply to each viewer (``platform:viewer-id``), for "say that again slower".
    said: dict[str, _Said] = field(default_factory=dict)


class StageFloor:
    """Who may perform now. Exclusive: one persona at a time, first come first served
    (asyncio.Lock wakes waiters in FIFO order). Not exclusive: everyone at once."""

    def __init__(self, *, exclusive: bool) -> None:
        self.exclusive = exclusive
        self._lock = asyncio.Lock()
        self.holder: str | None = None

    async def acquire(self, persona: str) -> None:
        if self.exclusive:
            await self._lock.acquire()
        self.holder = persona

    def release(self, persona: str) -> None:
        if self.holder == persona:
            self.holder = None
        if self.exclusive and self._lock.locked():
            self._lock.release()


class Orchestrator:
    """Owns the personas' queues and consumer tasks; use as ``async with``.

    Args:
        personas: the loaded personas, by id.
        bus: where the show goes (studio/overlays, live stream, OBS, Discord voice, clip
            recorder); its owner enters and leaves it.
        stages: instead of ``bus``: stages on a bus of the orchestrator's own, entered and
            left with it (tests, benchmarks).
        default_persona: who answers events that name no persona.
        adapters: platform adapters; each is bound to this orchestrator and gets the outcomes
            of its own events (matched by ``platform``).
        exclusive_stage: one persona on stage at a time.
        audit: the moderation audit log (JSONL), shared by all personas.
        pipeline: the reply pipeline (tests and benchmarks pass a fake).
        lookahead: replies a persona prepares (thinks, voices, renders) while one plays, so
            the next answer starts the moment the previous one ends; 0: only after.
        greet: say each persona's ``greeting`` when the show starts.
        tracer: traces and metrics; a fresh one by default.
        clock: monotonic clock of the queues.
        fair: turns on the shared LLM, taken by each persona's show (client
            ``show:<persona>``) and by the private conversations (``/talk``) alike; None: the
            show does not take turns.
        memory: long-term memory of the viewers (its owner enters and leaves it); None: the
            personas remember only the last turns, in RAM.
    """

    def __init__(
        self,
        *,
        personas: dict[str, PersonaRuntime],
        bus: StageBus | None = None,
        stages: Sequence[Stage] = (),
        default_persona: str,
        adapters: Sequence[Adapter] = (),
        exclusive_stage: bool = True,
        audit: AuditLog | None = None,
        pipeline: Pipeline = perform,
        lookahead: int = 1,
        greet: bool = True,
        tracer: Tracer | None = None,
        clock: Callable[[], float] = time.monotonic,
        fair: FairShare | None = None,
        memory: MemoryService | None = None,
    ) -> None:
        if default_persona not in personas:
            raise ValueError(f"default persona {default_persona!r} is not loaded")
        if bus is not None and stages:
            raise ValueError("give either a bus or stages, not both")
        self.default_persona = default_persona
        self.adapters = {a.platform: a for a in adapters}
        self.tracer = tracer or Tracer()
        self._own_bus = bus is None
        self.bus = bus if bus is not None else StageBus(stages, on_error=self.count_stage_error)
        self.floor = StageFloor(exclusive=exclusive_stage)
        self._pipeline = pipeline
        self.lookahead = max(0, lookahead)
        self._greet = greet
        self.fair = fair
        self.memory = memory
        self._filters: dict[str, InputFilter] = {}  # per persona: what may be remembered
        self._memory_asked: dict[tuple[str, str], float] = {}  # viewer -> last command
        self._audit = audit
        self._clock = clock
        self._personas = {pid: self._slot(rt) for pid, rt in personas.items()}
        self._consumers: dict[str, asyncio.Task] = {}
        self._tasks: set[asyncio.Task] = set()
        self._started = False
        self._reports: set[asyncio.Task] = set()
        self.healthy = True  # False after a failed reply or a fallback line, until one works
        for adapter in adapters:
            adapter.bind(self)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Orchestrator:
        if self._own_bus:
            await self.bus.__aenter__()
        self._started = True
        for pid in self._personas:
            self._start_consumer(pid)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._started = False
        await cancel_and_wait(list(self._tasks))
        self._tasks.clear()
        if self._reports:
            await asyncio.gather(*self._reports, return_exceptions=True)
        if self._own_bus:
            await self.bus.__aexit__(*exc)

    def _slot(self, rt: PersonaRuntime) -> _Persona:
        pid = rt.id
        return _Persona(
            runtime=rt,
            queue=PersonaQueue(settings=rt.config.queue, clock=self._clock),
            moderator=Moderator(
                settings=rt.config.moderation, audit=self._audit, persona=pid,
                instructions=(system_prompt(rt.config), rt.config.personality),
            ),
        )

    def _start_consumer(self, pid: str) -> None:
        task = asyncio.create_task(self._serve(pid), name=f"persona:{pid}:consumer")
        self._consumers[pid] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def personas(self) -> dict[str, PersonaRuntime]:
        """The personas on the show now, by id."""
        return {pid: slot.runtime for pid, slot in self._personas.items()}

    def add_persona(self, runtime: PersonaRuntime, *, greet: bool = False) -> None:
        """Put a newly loaded persona on the show, without a restart (the dashboard).

        Raises:
            ValueError: a persona with this id is already on the show.
        """
        if runtime.id in self._personas:
            raise ValueError(f"persona {runtime.id!r} is already on the show")
        self._personas[runtime.id] = self._slot(runtime)
        if self._started:
            if greet and runtime.config.greeting:
                self._start(self._personas[runtime.id], None, say=runtime.config.greeting)
            self._start_consumer(runtime.id)

    async def remove_persona(self, pid: str, *, reason: str = "persona removed") -> PersonaRuntime:
        """Take a persona off the show: what waits is refused, a reply in flight is cut.
        Returns its runtime (the caller closes it, or puts an edited one back with
        :meth:`add_persona`).

        Raises:
            KeyError: no such persona; ValueError: it is the default persona.
        """
        if pid == self.default_persona:
            raise ValueError(f"{pid!r} is the default persona; choose another default first")
        slot = self._personas[pid]
        for o in slot.queue.clear(include_paid=True, reason=reason):
            self._finish(o.event, o)
        for r in list(slot.inflight):
            self._cancel(r, "refuse", reason)
        consumer = self._consumers.pop(pid, None)
        runners = [r.task for r in slot.inflight if r.task is not None]
        del self._personas[pid]
        await cancel_and_wait([t for t in (consumer, *runners) if t is not None])
        self.floor.release(pid)
        return slot.runtime

    def promote(self, pid: str, trace_id: str) -> bool:
        """Answer the queued event ``trace_id`` next (a moderator's pick)."""
        slot = self._personas[pid]
        moved = slot.queue.promote(trace_id)
        if moved:
            slot.wake.set()
        return moved

    def remove(self, pid: str, trace_id: str, *, reason: str = "removed by a moderator") -> bool:
        """Take one event back (queued: refused; being answered: cut)."""
        return self.withdraw(pid, lambda e: e.trace_id == trace_id, reason=reason) > 0

    def is_paused(self, pid: str) -> bool:
        return self._personas[pid].queue.paused

    def count_stage_error(self, stage: str) -> None:
        """The bus's error hook: a stage's ``handle`` raised (counted as ``errors{stage}``)."""
        self.tracer.errors.labels("stage").inc()

    # ------------------------------------------------------------------ intake

    def submit(self, event: Event) -> Decision:
        """Accept or reject ``event`` at once; never blocks, never raises for bad input."""
        pid = event.persona or self.default_persona
        slot = self._personas.get(pid)
        trace = self.tracer.start(
            trace_id=event.trace_id, persona=pid, platform=event.platform,
            kind=type(event).__name__, user=event.viewer.name, text=event.text,
            received_at=event.received_at,
        )
        if slot is None:
            return self._reject(event, trace, f"unknown persona {pid!r}")
        verdict = slot.moderator.check_input(event)
        if not verdict.allowed:
            return self._reject(event, trace, verdict.reason or "refused by moderation")
        if isinstance(event, ModCommand):
            self.tracer.decide(trace, accepted=True)
            self._command(pid, event.command, by=event.viewer.name)
            self.tracer.finish(event.trace_id, "done")
            return Decision(True, event.trace_id)
        if verdict.text != event.text:
            event = dataclasses.replace(event, message=verdict.text)  # the cleaned text
        if self._is_replay(slot, event) and _context_key(event) not in slot.said:
            return self._reject(event, trace, "nothing to say again yet")
        event = dataclasses.replace(event, persona=pid) if event.persona != pid else event
        admission = slot.queue.offer(event)
        for outcome in admission.evicted:
            self._finish(outcome.event, outcome)
        if not admission.accepted:
            return self._reject(event, trace, admission.reason or "not queued",
                                refund=admission.code != "redelivered")
        self.tracer.decide(trace, accepted=True)
        self.tracer.queue_length.labels(pid).set(len(slot.queue))
        slot.wake.set()
        return Decision(True, event.trace_id)

    def _reject(self, event: Event, trace, reason: str, *, refund: bool = True) -> Decision:
        self.tracer.decide(trace, accepted=False, reason=reason)
        if event.paid and refund:  # a paid event is never dropped silently
            self._report(Outcome(event, "refused", reason))
        return Decision(False, event.trace_id, reason)

    # ------------------------------------------------------------------ mod controls

    def _command(self, pid: str, command: str, *, by: str) -> None:
        logger.info("%s: !%s by %s", pid, command, by)
        if command == "skip":
            self.skip(pid)
        elif command == "pause":
            self.pause(pid)
        elif command == "resume":
            self.resume(pid)
        elif command == "clear":
            self.clear(pid)

    def skip(self, pid: str, *, reason: str = "skipped by a moderator") -> bool:
        """Interrupt the reply on stage (or, if none is, the one being prepared); nothing more
        of it is shown, and a prepared next reply takes the stage. True if there was one."""
        slot = self._personas[pid]
        target = next((r for r in slot.inflight if r.on_stage), None)
        if target is None:
            target = next((r for r in slot.inflight if r.item is not None), None)
        return target is not None and self._cancel(target, "interrupt", reason)

    def interrupt(self, persona: str | None, *, reason: str) -> bool:
        """An adapter cuts the persona's reply in flight (a voice barge-in)."""
        pid = persona or self.default_persona
        return pid in self._personas and self.skip(pid, reason=reason)

    def pause(self, pid: str) -> None:
        """Stop answering; the reply on stage finishes, prepared ones go back to the queue."""
        slot = self._personas[pid]
        slot.queue.pause()
        for r in self._prepared(slot):
            self._cancel(r, "restore", "paused")

    def resume(self, pid: str) -> None:
        slot = self._personas[pid]
        slot.queue.resume()
        slot.wake.set()

    def clear(self, pid: str, *, include_paid: bool = False) -> int:
        """Drop what waits (prepared replies included); paid items stay unless
        ``include_paid``. Returns how many were dropped."""
        slot = self._personas[pid]
        reason = "cleared by a moderator"
        outcomes = slot.queue.clear(include_paid=include_paid, reason=reason)
        for o in outcomes:
            self._finish(o.event, o)
        dropped = len(outcomes)
        for r in self._prepared(slot):
            paid = r.event is not None and r.event.paid
            if paid and not include_paid:
                self._cancel(r, "restore", reason)
            else:
                dropped += self._cancel(r, "refuse", reason)
        self.tracer.queue_length.labels(pid).set(len(slot.queue))
        return dropped

    def withdraw(
        self, persona: str | None, match: Callable[[Event], bool], *, reason: str
    ) -> int:
        """Take back events ``match`` accepts, wherever they are: queued (refused), being
        prepared or on stage (cut). For deleted messages, cleared chat and banned viewers.

        Args:
            persona: whose events; None: every persona's.
            match: which events (e.g. by ``msg_id`` or viewer id).
            reason: the refused/interrupted outcome's reason.

        Returns:
            How many events were taken back.
        """
        pids = list(self._personas) if persona is None else [persona]
        count = 0
        for pid in pids:
            slot = self._personas.get(pid)
            if slot is None:
                continue
            items = slot.queue.withdraw(match)
            for item in items:
                self._finish(item.event, Outcome(item.event, "refused", reason))
            count += len(items)
            for r in list(slot.inflight):
                if r.event is not None and match(r.event):
                    count += self._cancel(r, "refuse", reason)
            self.tracer.queue_length.labels(pid).set(len(slot.queue))
        return count

    def queue_snapshot(self, pid: str) -> list[dict[str, Any]]:
        return self._personas[pid].queue.snapshot()

    def queue_length(self, pid: str) -> int:
        return len(self._personas[pid].queue)

    @staticmethod
    def _is_replay(slot: _Persona, event: Event) -> bool:
        """``!slower`` to any persona, or "say that again slower" to a teacher."""
        return isinstance(event, ChatMessage | Utterance) and wants_slower(
            event.text, spoken_phrases=slot.runtime.config.teacher is not None)

    @staticmethod
    def _prepared(slot: _Persona) -> list[_InFlight]:
        """Replies being prepared ahead that have not reached the stage."""
        return [r for r in slot.inflight if not r.on_stage and r.item is not None]

    @staticmethod
    def _cancel(r: _InFlight, how: str, reason: str) -> bool:
        if r.task is None and not r.generated:  # popped, its runner not started yet
            r.cancel_as, r.reason, r.cancel_early = how, reason, True
            return True
        if r.task is not None and not r.task.done():
            r.cancel_as, r.reason = how, reason
            r.task.cancel()
            return True
        if r.on_stage and r.generated and not r.cut.is_set():
            r.reason = reason  # fully generated and playing: cut the playback
            r.cut.set()
            return True
        return False

    # ------------------------------------------------------------------ consumers

    async def _serve(self, pid: str) -> None:
        slot = self._personas[pid]
        greeting = slot.runtime.config.greeting
        if self._greet and greeting:
            self._start(slot, None, say=greeting)
        while True:
            for outcome in slot.queue.drain_expired():
                self._finish(outcome.event, outcome)
            # Bounded look-ahead: a next reply is prepared only once every reply in flight
            # has finished generating (it is playing), and at most `lookahead` wait to play.
            busy = any(not r.generated for r in slot.inflight)
            wait = None if busy or len(slot.inflight) > self.lookahead else (
                slot.queue.next_ready_in())
            if wait is None or wait > 0:
                slot.wake.clear()
                timeout = _IDLE_POLL_S if wait is None else min(wait, _IDLE_POLL_S)
                await wait_event(slot.wake, timeout)
                continue
            item = slot.queue.pop()
            self.tracer.queue_length.labels(pid).set(len(slot.queue))
            if item is None:
                continue
            self.tracer.mark(item.event.trace_id, "dequeued")
            self._start(slot, item)

    def _start(self, slot: _Persona, item: QueuedItem | None, *, say: str | None = None) -> None:
        """Begin a reply; it reaches the stage after the replies already in flight."""
        after = slot.inflight[-1].played if slot.inflight else None
        r = _InFlight(item=item, played=asyncio.get_running_loop().create_future())
        slot.inflight.append(r)
        name = item.event.trace_id if item is not None else "greeting"
        task = asyncio.create_task(self._run(slot, r, after, say=say),
                                   name=f"persona:{slot.runtime.id}:answer:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(
        self, slot: _Persona, r: _InFlight, after: asyncio.Future | None, *, say: str | None
    ) -> None:
        try:
            await self._answer(slot, r, after, say=say)
        except asyncio.CancelledError:
            raise
        except Exception:  # the show goes on; the outcome was reported in _answer
            logger.exception("%s: unexpected failure answering", slot.runtime.id)
        finally:
            _resolve_after(r.played, after)
            if r in slot.inflight:
                slot.inflight.remove(r)
            slot.wake.set()

    async def _answer(
        self, slot: _Persona, r: _InFlight, after: asyncio.Future | None, *, say: str | None
    ) -> None:
        pid = slot.runtime.id
        event = r.event
        tid = event.trace_id if event is not None else f"greeting-{id(r):x}"
        playback_end = 0.0

        async def on_performance(performance: Performance) -> None:
            nonlocal playback_end
            if not r.on_stage:
                if after is not None:
                    await asyncio.shield(after)  # the persona's previous reply has played
                await self.floor.acquire(pid)  # wait our turn on stage
                r.on_stage = True
                if event is not None:
                    self.tracer.mark(tid, "on_stage")
                    self.bus.publish(ChatShown(persona=pid, user=event.viewer.name,
                                               text=event.text, reply_id=tid))
            # The stages play a performance as it comes, one after another: the reply holds
            # the stage until the last one has played.
            playback_end = max(playback_end, time.monotonic()) + performance.duration
            self.bus.publish(Performed(performance))

        def screen(text: str) -> str | None:
            verdict = slot.moderator.check_output(text, event=event)
            return verdict.text or text if verdict.allowed else None

        replay: _Said | None = None
        if event is None:  # the greeting: the persona's own line, no LLM, no outcome
            viewer, text, key = "", "", None
        else:
            viewer = slot.moderator.speakable_name(event.viewer)
            text, key = _prompt_text(event), _context_key(event)
            if self._is_replay(slot, event):
                replay = slot.said.get(key)
        # The reply runs as a child task, so a skip cancels the reply and not this runner.
        kwargs: dict[str, Any] = {"say": say} if say is not None else {"context_key": key}
        if replay is not None:
            # "Say that again slower": the same words re-voiced slower; no LLM call.
            kwargs = {"say": replay.text, "speed": slower(replay.speed)}
        if self.fair is not None and "say" not in kwargs:
            fair, client = self.fair, f"show:{pid}"
            kwargs["gate"] = lambda: fair.turn(client)
        if event is not None and "say" not in kwargs:
            memory = self._viewer_memory(slot, event)
            if memory is not None:
                kwargs["memory"] = memory
        r.task = asyncio.create_task(
            self._pipeline(
                slot.runtime, viewer=viewer, text=text, on_performance=on_performance,
                reply_id=tid,
                screen=screen, marks=(lambda stage: self.tracer.mark(tid, stage))
                if event is not None else None, **kwargs,
            ),
            name=f"persona:{pid}:reply:{tid}",
        )
        if r.cancel_early:
            r.task.cancel()  # withdrawn or paused between pop and now: it never runs
        outcome: Outcome | None = None
        reply = None
        try:
            reply = await r.task
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if me is not None and me.cancelling():  # we are shutting down, not skipping
                r.task.cancel()
                if event is not None:
                    self._finish(event, Outcome(event, "interrupted", "shutting down"))
                raise
            if r.on_stage:
                self.bus.publish(ReplyCancelled(persona=pid, reply_id=tid))
            if event is not None and r.cancel_as == "restore" and not r.on_stage:
                assert r.item is not None
                slot.queue.restore(r.item)  # prepared ahead, never shown: answer it later
                self.tracer.queue_length.labels(pid).set(len(slot.queue))
            elif event is not None:
                status: Literal["refused", "interrupted"] = (
                    "refused" if r.cancel_as == "refuse" else "interrupted"
                )
                outcome = Outcome(event, status, r.reason)
        except Exception as e:
            logger.exception("%s: reply to %s failed", pid, tid)
            self.tracer.errors.labels("reply").inc()
            if r.on_stage:
                self.bus.publish(ReplyCancelled(persona=pid, reply_id=tid))
            if event is not None:
                outcome = Outcome(event, "failed", f"{type(e).__name__}: {e}"[:200])
        else:
            if r.on_stage:
                self.bus.publish(ReplyFinished(persona=pid, reply_id=tid, text=reply.text))
                if event is not None:
                    self._transcribe(slot, event, tid, reply, replay=replay is not None)
            if event is not None and key is not None and reply.text and not reply.fell_back:
                slot.said[key] = _Said(reply.text, reply.speed)
        finally:
            r.generated = True
            slot.wake.set()  # the consumer may prepare the next reply now
        # The LLM down (fallback line) or the renderer failing: "be right back" on stages
        # that have such a scene, until a reply goes through again.
        # A skip or a withdrawal says nothing about the show's health.
        if event is not None and (reply is not None or (
                outcome is not None and outcome.status == "failed")):
            self._set_healthy(reply is not None and not reply.fell_back)
        if outcome is not None and event is not None:
            self._finish(event, outcome)  # failed or cancelled before it had played
        if r.on_stage:
            # Hold the stage until the reply has played (or a skip cuts it), then hand it on.
            try:
                if reply is not None:
                    left = playback_end - time.monotonic()
                    await wait_event(r.cut, max(0.0, left))
                    if r.cut.is_set():
                        self.bus.publish(ReplyCancelled(persona=pid, reply_id=tid))
            except asyncio.CancelledError:
                if event is not None and reply is not None:
                    self._finish(event, Outcome(event, "interrupted", "shutting down"))
                raise
            finally:
                self.floor.release(pid)
        if event is not None and reply is not None:
            if r.cut.is_set():
                self._finish(event, Outcome(event, "interrupted", r.reason))
            else:
                self._finish(event, Outcome(event, "spoken", reply_text=reply.text,
                                            correction=reply.correction, gloss=reply.gloss))
                slot.queue.mark_answered(event)
                self._measure_service(slot, r)

    # ------------------------------------------------------------------ memory

    def _viewer_memory(self, slot: _Persona, event: Event) -> ViewerMemory | None:
        """This viewer's long-term memory for the reply (None: memory is off, or the event
        is no conversation: a follow, a sub without words)."""
        if self.memory is None or not isinstance(event, ChatMessage | Utterance | Redemption):
            return None
        if not event.message.strip():
            return None
        pid = slot.runtime.id
        check = self._filters.get(pid)
        if check is None or check.moderator is not slot.moderator:
            check = self._filters[pid] = InputFilter(slot.moderator)
        gate = None
        if self.fair is not None:
            fair, client = self.fair, f"memory:{pid}"
            gate = lambda: fair.turn(client)  # noqa: E731
        return self.memory.viewer(
            slot.runtime.config, ViewerRef.of(event.platform, event.viewer),
            allowed=check.for_viewer(event.viewer, platform=event.platform, persona=pid),
            llm=slot.runtime.llm, gate=gate)

    async def memory_command(self, request: MemoryRequest) -> str:
        """Answer a viewer's memory command (``!memory``, ``!forgetme``, ``!link``; Discord's
        ``/memory``, ``/forget``, ``/link``) with the text to post back; "" when nothing is
        to be posted (the same viewer asked again within a few seconds). Never raises for a
        database failure: the viewer is told to try later."""
        who = ViewerRef.of(request.platform, request.viewer)
        now = time.monotonic()
        last = self._memory_asked.get(who.key)
        if last is not None and now - last < _MEMORY_COOLDOWN_S:
            return ""
        if len(self._memory_asked) > 10_000:
            self._memory_asked.clear()
        self._memory_asked[who.key] = now
        slot = self._personas.get(request.persona or self.default_persona)
        if slot is None:
            slot = self._personas[self.default_persona]
        cfg = slot.runtime.config
        forget = "/forget" if request.platform == "discord" else "!forgetme"
        if self.memory is None:
            return "Nothing is remembered about viewers on this stream."
        if not who.remembered:
            return "Nothing can be remembered for an anonymous viewer."
        try:
            if request.command == "forget":
                erased = await self.memory.forget(who)
                key = _context_key(request.platform, request.viewer)
                for s in self._personas.values():
                    s.runtime.forget(key)
                    s.said.pop(key, None)
                logger.info("memory: a %s viewer asked to be forgotten (%d rows erased)",
                            request.platform, erased)
                return ("Done: I have forgotten everything about you." if erased else
                        "Done: I had nothing kept about you.")
            if request.command == "link":
                return await self._link(request, who)
            kept = await self.memory.kept(who, public=request.public)
        except MemoryStoreError as e:
            logger.warning("memory: %s for a %s viewer failed: %s", request.command,
                           request.platform, e)
            return "My memory is not available right now; please try again later."
        if not cfg.memory.enabled and not kept.total:
            return f"{cfg.name} does not remember viewers: memory is off."
        if not kept.total:
            return "I don't keep anything about you."
        return _describe_kept(kept, forget=forget, off=not cfg.memory.enabled, name=cfg.name)

    async def _link(self, request: MemoryRequest, who: ViewerRef) -> str:
        assert self.memory is not None
        if request.argument:
            if await self.memory.redeem(request.argument, who):
                return "Linked: both of your accounts are one person to me now."
            return "That code is unknown, used or expired; ask for a new one with /link."
        if request.public:
            # A code shown in a public chat could be typed by anyone watching, who would
            # then share this viewer's memories: codes are only handed out privately.
            return ("Use /link on Discord (only you see the answer) and type the code here "
                    "as !link CODE.")
        code = await self.memory.link_code(who)
        return (f"Your link code is {code} (valid 10 minutes, once). From your other account "
                f"type !link {code} in Twitch chat, or /link {code} on Discord.")

    def _transcribe(
        self, slot: _Persona, event: Event, tid: str, reply: Reply, *, replay: bool
    ) -> None:
        """Both sides of the exchange, for chat logs and text channels."""
        cfg = slot.runtime.config
        self.bus.publish(Transcript(
            persona=cfg.id, reply_id=tid, user=event.viewer.name, said=event.text,
            answer=reply.text, correction=reply.correction, gloss=reply.gloss,
            language=cfg.teacher.target_language if cfg.teacher else cfg.language,
            platform=event.platform, replay=replay,
        ))

    @staticmethod
    def _measure_service(slot: _Persona, r: _InFlight) -> None:
        """How long an answer takes from the queue's point of view (pop or the previous end,
        whichever is later, to the end of playback); the queue sizes itself by it."""
        end = time.monotonic()
        took = end - max(r.started, slot.last_end)
        slot.last_end = end
        slot.service_s = took if slot.service_s is None else 0.7 * slot.service_s + 0.3 * took
        slot.queue.set_service_time(slot.service_s)

    def _set_healthy(self, healthy: bool) -> None:
        if healthy == self.healthy:
            return
        self.healthy = healthy
        logger.warning("show is %s", "back" if healthy else "degraded: be right back")
        self.bus.publish(ShowDegraded(on=not healthy))

    def _finish(self, event: Event, outcome: Outcome) -> None:
        """The final word on an accepted event: trace it and tell its adapter."""
        self.tracer.finish(event.trace_id, outcome.status, outcome.reason)
        self._report(outcome)

    # ------------------------------------------------------------------ reporting

    def _report(self, outcome: Outcome) -> None:
        """Tell the event's adapter what became of it (off the caller's path)."""
        adapter = self.adapters.get(outcome.event.platform)
        if adapter is None:
            return
        task = asyncio.get_running_loop().create_task(
            self._deliver(adapter, outcome), name=f"report:{outcome.event.trace_id}")
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def _deliver(self, adapter: Adapter, outcome: Outcome) -> None:
        try:
            await adapter.deliver(outcome)
        except Exception:
            self.tracer.errors.labels("adapter").inc()
            logger.exception("%s adapter failed to deliver %s", adapter.platform,
                             outcome.event.trace_id)


def _resolve_after(played: asyncio.Future, after: asyncio.Future | None) -> None:
    """Resolve ``played`` once ``after`` (the previous reply's) has resolved too."""
    if played.done():
        return
    if after is None or after.done():
        played.set_result(None)
    else:

        def resolve(_: asyncio.Future) -> None:
            if not played.done():
                played.set_result(None)

        after.add_done_callback(resolve)


def _context_key(event: Event | str, viewer: Viewer | None = None) -> str:
    """Whose conversation an event belongs to: ``platform:viewer-id`` (of an event, or of a
    platform and a viewer)."""
    if isinstance(event, str):
        assert viewer is not None
        return f"{event}:{viewer.id}"
    return f"{event.platform}:{event.viewer.id}"


_MEMORY_COOLDOWN_S = 3.0  # a viewer's memory commands are answered at most this often
_KEPT_CHARS = 300  # facts shown in one !memory answer


def _describe_kept(kept: Kept, *, forget: str, off: bool, name: str) -> str:
    """The answer to ``!memory``: the facts (as many as fit), what else is kept, the way out."""
    shown: list[str] = []
    size = 0
    for fact in kept.facts:
        if size + len(fact) > _KEPT_CHARS and shown:
            break
        shown.append(f"'{fact}'")
        size += len(fact) + 4
    parts = []
    if shown:
        parts.append("I remember: " + "; ".join(shown))
        if len(shown) < len(kept.facts):
            parts[-1] += f" (+{len(kept.facts) - len(shown)} more)"
        parts[-1] += "."
    if kept.elsewhere:
        parts.append(f"{kept.elsewhere} more from your other linked account(s): ask there to "
                     "see them.")
    if kept.summaries:
        parts.append("I also keep a short summary of what we talked about.")
    if off:
        parts.append(f"{name} itself does not remember viewers (memory is off).")
    parts.append(f"{forget} erases it all.")
    return " ".join(parts)


def _prompt_text(event: Event) -> str:
    """What the persona is asked to answer."""

    if isinstance(event, Redemption):
        ask = event.message or "(no message)"
        return f"[redeemed '{event.reward_title}'] {ask}"
    if isinstance(event, Notice):
        extra = f" ({event.amount})" if event.amount else ""
        note = f" They said: {event.message}" if event.message else ""
        return f"[{event.kind}{extra}] Thank them warmly.{note}"
    return event.text
