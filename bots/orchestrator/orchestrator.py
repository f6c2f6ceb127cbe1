"""The orchestrator: takes every event from every adapter, decides at once whether a persona
will answer it, and runs the replies.

Per persona it keeps a :class:`~bots.orchestrator.queue.PersonaQueue` (priority, aging,
fairness, cooldowns, overflow) behind a :class:`~bots.moderation.moderator.Moderator`, and one
consumer task that pops the next event and performs the reply through the pipeline. All
personas share one render pool, which schedules them fairly, and (by default) one stage
floor, so only one persona talks at a time. Every event is traced; every accepted event ends
in exactly one :class:`~bots.events.Outcome`, told to its adapter (spoken, refused with a
reason, interrupted or failed), so paid events are fulfilled or refunded, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bots.adapters.base import Adapter
from bots.events import Decision, Event, ModCommand, Outcome
from bots.moderation.audit import AuditLog
from bots.moderation.moderator import Moderator
from bots.orchestrator.pipeline import Reply, perform
from bots.orchestrator.queue import PersonaQueue
from bots.orchestrator.tracing import Tracer
from bots.personas.runtime import PersonaRuntime
from overlays.stage import Stage

logger = logging.getLogger(__name__)

Performer = Callable[..., Awaitable[Reply]]
_IDLE_POLL_S = 1.0  # how often an idle persona wakes to expire stale items


@dataclass(eq=False)
class _Persona:
    """The orchestrator's state for one persona."""

    runtime: PersonaRuntime
    queue: PersonaQueue
    moderator: Moderator
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    current: asyncio.Task | None = None
    current_event: Event | None = None
    interrupt_reason: str = "skipped by a moderator"


class StageFloor:
    """Who may show clips now. Exclusive: one persona at a time, first come first served
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
        stages: where performances are shown (studio/overlays, OBS, ...).
        default_persona: who answers events that name no persona.
        adapters: platform adapters; each is bound to this orchestrator and gets the outcomes
            of its own events (matched by ``platform``).
        exclusive_stage: one persona on stage at a time.
        audit: the moderation audit log (JSONL), shared by all personas.
        performer: the reply pipeline (tests and benchmarks pass a fake).
        tracer: traces and metrics; a fresh one by default.
        clock: monotonic clock of the queues.
    """

    def __init__(
        self,
        *,
        personas: dict[str, PersonaRuntime],
        stages: Sequence[Stage] = (),
        default_persona: str,
        adapters: Sequence[Adapter] = (),
        exclusive_stage: bool = True,
        audit: AuditLog | None = None,
        performer: Performer = perform,
        tracer: Tracer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if default_persona not in personas:
            raise ValueError(f"default persona {default_persona!r} is not loaded")
        self.stages = list(stages)
        self.default_persona = default_persona
        self.adapters = {a.platform: a for a in adapters}
        self.tracer = tracer or Tracer()
        self.floor = StageFloor(exclusive=exclusive_stage)
        self._performer = performer
        self._personas = {
            pid: _Persona(
                runtime=rt,
                queue=PersonaQueue(settings=rt.config.queue, clock=clock),
                moderator=Moderator(settings=rt.config.moderation, audit=audit, persona=pid),
            )
            for pid, rt in personas.items()
        }
        self._tasks: set[asyncio.Task] = set()
        self._reports: set[asyncio.Task] = set()
        self.replies: list[Reply] = []  # recent, newest last
        self.healthy = True  # False after a failed reply or a fallback line, until one works
        for adapter in adapters:
            adapter.bind(self)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Orchestrator:
        for pid in self._personas:
            task = asyncio.create_task(self._serve(pid), name=f"persona:{pid}:consumer")
            self._tasks.add(task)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._reports:
            await asyncio.gather(*self._reports, return_exceptions=True)

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
        if hasattr(event, "message") and verdict.text != event.text:
            event = dataclasses.replace(event, message=verdict.text)  # the cleaned text
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
        """Interrupt the reply in flight; nothing more of it is shown. True if there was one."""
        slot = self._personas[pid]
        if slot.current is None or slot.current.done():
            return False
        slot.interrupt_reason = reason
        slot.current.cancel()
        return True

    def interrupt(self, persona: str | None, *, reason: str) -> bool:
        """An adapter cuts the persona's reply in flight (a voice barge-in)."""
        pid = persona or self.default_persona
        return pid in self._personas and self.skip(pid, reason=reason)

    def pause(self, pid: str) -> None:
        self._personas[pid].queue.pause()

    def resume(self, pid: str) -> None:
        slot = self._personas[pid]
        slot.queue.resume()
        slot.wake.set()

    def clear(self, pid: str, *, include_paid: bool = False) -> int:
        slot = self._personas[pid]
        outcomes = slot.queue.clear(include_paid=include_paid, reason="cleared by a moderator")
        for o in outcomes:
            self._finish(o.event, o)
        self.tracer.queue_length.labels(pid).set(len(slot.queue))
        return len(outcomes)

    def queue_snapshot(self, pid: str) -> list[dict[str, Any]]:
        return self._personas[pid].queue.snapshot()

    def queue_length(self, pid: str) -> int:
        return len(self._personas[pid].queue)

    # ------------------------------------------------------------------ consumers

    async def _serve(self, pid: str) -> None:
        slot = self._personas[pid]
        while True:
            for outcome in slot.queue.drain_expired():
                self._finish(outcome.event, outcome)
            wait = slot.queue.next_ready_in()
            if wait is None or wait > 0:
                slot.wake.clear()
                timeout = _IDLE_POLL_S if wait is None else min(wait, _IDLE_POLL_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(slot.wake.wait(), timeout)
                continue
            item = slot.queue.pop()
            self.tracer.queue_length.labels(pid).set(len(slot.queue))
            if item is None:
                continue
            self.tracer.mark(item.event.trace_id, "dequeued")
            try:
                await self._answer(slot, item.event)
            except asyncio.CancelledError:
                raise
            except Exception:  # the show goes on; the outcome was reported in _answer
                logger.exception("%s: unexpected failure answering %s", pid,
                                 item.event.trace_id)

    async def _answer(self, slot: _Persona, event: Event) -> None:
        pid = slot.runtime.id
        tid = event.trace_id
        viewer = slot.moderator.speakable_name(event.viewer)
        on_stage = False
        playback_end = 0.0

        async def on_clip(clip) -> None:
            nonlocal on_stage, playback_end
            if not on_stage:
                await self.floor.acquire(pid)  # wait our turn on stage
                on_stage = True
                self.tracer.mark(tid, "on_stage")
                await self._each_stage("show_chat", persona=pid, user=event.viewer.name,
                                       text=event.text)
            playback_end = max(playback_end, time.monotonic()) + clip.duration
            await self._each_stage("play_clip", persona=pid, clip=clip)

        def screen(text: str) -> str | None:
            verdict = slot.moderator.check_output(text, event=event)
            return verdict.text or text if verdict.allowed else None

        slot.current_event = event
        # The reply runs as a child task, so a skip cancels the reply and not this consumer.
        reply_task = asyncio.create_task(
            self._performer(
                slot.runtime, viewer=viewer, text=_prompt_text(event), on_clip=on_clip,
                reply_id=tid, screen=screen,
                marks=lambda stage: self.tracer.mark(tid, stage),
            ),
            name=f"persona:{pid}:reply:{tid}",
        )
        slot.current = reply_task
        outcome: Outcome
        reply = None
        try:
            reply = await reply_task
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if me is not None and me.cancelling():  # we are shutting down, not skipping
                reply_task.cancel()
                self._finish(event, Outcome(event, "interrupted", "shutting down"))
                raise
            await self._each_stage("reply_cancelled", persona=pid, reply_id=tid)
            outcome = Outcome(event, "interrupted", slot.interrupt_reason)
        except Exception as e:
            logger.exception("%s: reply to %s failed", pid, tid)
            self.tracer.errors.labels("reply").inc()
            if on_stage:
                await self._each_stage("reply_cancelled", persona=pid, reply_id=tid)
            outcome = Outcome(event, "failed", f"{type(e).__name__}: {e}"[:200])
        else:
            self.replies = [*self.replies[-49:], reply]
            await self._each_stage("reply_finished", persona=pid, reply_id=tid, text=reply.text)
            outcome = Outcome(event, "spoken", reply_text=reply.text)
            slot.queue.mark_answered(event)
        finally:
            slot.current = None
            slot.current_event = None
        self._finish(event, outcome)
        # The LLM down (fallback line) or the renderer failing: "be right back" on stages
        # that have such a scene, until a reply goes through again.
        await self._set_healthy(outcome.status != "failed" and not (
            outcome.status == "spoken" and getattr(reply, "fell_back", False)))
        if on_stage:
            # Hold the stage until the reply has played, then hand it on.
            try:
                if outcome.status == "spoken":
                    await asyncio.sleep(max(0.0, playback_end - time.monotonic()))
            finally:
                self.floor.release(pid)

    async def _set_healthy(self, healthy: bool) -> None:
        if healthy == self.healthy:
            return
        self.healthy = healthy
        logger.warning("show is %s", "back" if healthy else "degraded: be right back")
        for stage in self.stages:
            brb = getattr(stage, "be_right_back", None)
            if brb is not None:
                try:
                    await brb(not healthy)
                except Exception:
                    self.tracer.errors.labels("stage").inc()
                    logger.exception("stage %s.be_right_back failed", type(stage).__name__)

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

    async def _each_stage(self, method: str, **kwargs) -> None:
        for stage in self.stages:
            try:
                await getattr(stage, method)(**kwargs)
            except Exception:
                self.tracer.errors.labels("stage").inc()
                logger.exception("stage %s.%s failed", type(stage).__name__, method)


def _prompt_text(event: Event) -> str:
    """What the persona is asked to answer."""
    from bots.events import Notice, Redemption

    if isinstance(event, Redemption):
        ask = event.message or "(no message)"
        return f"[redeemed '{event.reward_title}'] {ask}"
    if isinstance(event, Notice):
        extra = f" ({event.amount})" if event.amount else ""
        note = f" They said: {event.message}" if event.message else ""
        return f"[{event.kind}{extra}] Thank them warmly.{note}"
    return event.text
