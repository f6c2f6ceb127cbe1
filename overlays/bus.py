"""The stage bus: every stage takes its events from its own bounded queue in its own task.

The orchestrator (and the clip recorder) :meth:`StageBus.publish` typed
:data:`~overlays.stage.StageEvent` values; the bus hands each one to the stages whose
:attr:`~overlays.stage.Stage.wants` name its type, in publication order, one event at a time
per stage. Publishing never blocks and never raises, so a slow, hung or failing stage delays
neither another stage nor the reply that is being made.

:class:`~overlays.stage.ReplyCancelled` is a control event, as an interruption is in pipecat:
it drops what is still queued of that reply on every stage, jumps ahead of the rest of each
queue, interrupts a stage that is busy with that very reply, and anything of the reply
published afterwards is dropped at the door (the bus remembers the last cancelled replies).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from overlays.stage import ReplyCancelled, ShowDegraded, Stage, StageEvent
from vstage_core.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

__all__ = ["StageBus", "StageStats", "reply_key"]

ErrorHook = Callable[[str], None]
"""Called with the stage's name each time its ``handle`` raises (e.g. an error counter)."""

_CONTROL = (ReplyCancelled, ShowDegraded)  # never dropped while media events can be


def _tasks_of(lanes: Iterable[_Lane]) -> list[asyncio.Future[Any]]:
    return [t for lane in lanes for t in (lane.call, lane.task) if t is not None]


def reply_key(event: StageEvent) -> tuple[str, str] | None:
    """The (persona, reply id) an event belongs to; None for show-wide events."""
    if isinstance(event, ShowDegraded):
        return None
    return event.persona, event.reply_id


@dataclass(frozen=True, slots=True)
class StageStats:
    """What one stage's lane has done so far (for logs, the studio and tests)."""

    name: str
    queued: int  # waiting now
    handled: int  # handle() returned
    failed: int  # handle() raised
    dropped: int  # dropped because the queue was full
    purged: int  # dropped because their reply was cancelled (queued or interrupted)
    busy: bool  # in handle() now


@dataclass(eq=False)
class _Lane:
    """One stage's queue, task and counters."""

    stage: Stage
    size: int
    queue: deque[StageEvent] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    current: StageEvent | None = None  # the event handle() is working on
    call: asyncio.Task[None] | None = None  # that handle() call
    overflowing: bool = False  # in a drop episode (logged once)
    handled: int = 0
    failed: int = 0
    dropped: int = 0
    purged: int = 0

    def __post_init__(self) -> None:
        self.idle.set()

    @property
    def name(self) -> str:
        return self.stage.name


class StageBus:
    """Delivers stage events to every stage through its own bounded queue; ``async with``.

    Args:
        stages: the stages (unique names); more can be added with :meth:`add_stage`.
        queue_size: events a stage may have waiting; beyond it the oldest media events of
            that stage are dropped (a stage that is that far behind shows stale things).
        on_error: called with the stage name whenever a stage's ``handle`` raises.
        remember: how many cancelled replies are remembered, so their late events are dropped.

    Call :meth:`publish` from the event loop's thread.
    """

    def __init__(self, stages: Iterable[Stage] = (), *, queue_size: int = 256,
                 on_error: ErrorHook | None = None, remember: int = 1024) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.queue_size = queue_size
        self._on_error = on_error
        self._remember = remember
        self._lanes: dict[str, _Lane] = {}
        self._cancelled: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._running = False
        self._closed = False
        for stage in stages:
            self.add_stage(stage)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> StageBus:
        self._running, self._closed = True, False
        for lane in self._lanes.values():
            self._start(lane)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._running, self._closed = False, True
        lanes = list(self._lanes.values())
        await cancel_and_wait(_tasks_of(lanes))
        for lane in lanes:
            lane.task = lane.call = lane.current = None

    def _start(self, lane: _Lane) -> None:
        if lane.task is None:
            lane.task = asyncio.create_task(self._serve(lane), name=f"stage:{lane.name}")

    # ------------------------------------------------------------------ stages

    @property
    def stages(self) -> list[Stage]:
        return [lane.stage for lane in self._lanes.values()]

    def add_stage(self, stage: Stage) -> None:
        """Start delivering to ``stage`` (events published from now on)."""
        if stage.name in self._lanes:
            raise ValueError(f"a stage named {stage.name!r} is already on the bus")
        lane = _Lane(stage=stage, size=self.queue_size)
        self._lanes[stage.name] = lane
        if self._running:
            self._start(lane)

    async def remove_stage(self, name: str) -> None:
        """Stop delivering to the stage ``name``; what it had queued is dropped."""
        lane = self._lanes.pop(name, None)
        if lane is not None:
            await cancel_and_wait(_tasks_of([lane]))

    def stats(self) -> list[StageStats]:
        return [StageStats(name=lane.name, queued=len(lane.queue), handled=lane.handled,
                           failed=lane.failed, dropped=lane.dropped, purged=lane.purged,
                           busy=lane.current is not None)
                for lane in self._lanes.values()]

    async def wait_idle(self, names: Iterable[str] | None = None) -> None:
        """Wait until the stages (all by default) have handled everything queued for them.
        A hung stage never gets there: wrap this in ``asyncio.timeout``."""
        wanted = self._lanes.keys() if names is None else names
        for name in list(wanted):
            lane = self._lanes.get(name)
            while lane is not None and not lane.idle.is_set():
                await lane.idle.wait()

    def cancelled(self, persona: str, reply_id: str) -> bool:
        """True if that reply was cancelled (and is still remembered)."""
        return (persona, reply_id) in self._cancelled

    # ------------------------------------------------------------------ publishing

    def publish(self, event: StageEvent) -> None:
        """Hand ``event`` to every stage that wants it. Never blocks, never raises."""
        try:
            self._publish(event)
        except Exception:  # a bug here must not reach the reply that published
            logger.exception("stage bus: publishing %s failed", type(event).__name__)

    def _publish(self, event: StageEvent) -> None:
        if self._closed:
            return
        key = reply_key(event)
        if key is not None and key in self._cancelled:
            return  # a late event of a cancelled reply (or the same cancel again)
        if isinstance(event, ReplyCancelled):
            self._cancel(event, key)
            return
        for lane in self._lanes.values():
            if type(event) in lane.stage.wants:
                self._enqueue(lane, event)

    def _cancel(self, event: ReplyCancelled, key: tuple[str, str] | None) -> None:
        assert key is not None
        self._cancelled[key] = None
        while len(self._cancelled) > self._remember:
            self._cancelled.popitem(last=False)
        for lane in self._lanes.values():
            kept = [e for e in lane.queue if reply_key(e) != key]
            lane.purged += len(lane.queue) - len(kept)
            lane.queue = deque(kept)
            if type(event) in lane.stage.wants:
                # Ahead of everything but earlier cancels: they are as urgent and came first.
                at = next((i for i, e in enumerate(lane.queue)
                           if not isinstance(e, ReplyCancelled)), len(lane.queue))
                lane.queue.insert(at, event)
                self._wake(lane)
            current = lane.current
            if current is not None and reply_key(current) == key and lane.call is not None:
                lane.call.cancel()  # the stage is busy with this very reply: stop it
            if not lane.queue and current is None:
                lane.idle.set()

    def _enqueue(self, lane: _Lane, event: StageEvent) -> None:
        if len(lane.queue) >= lane.size:
            victim: StageEvent = next(
                (e for e in lane.queue if not isinstance(e, _CONTROL)), lane.queue[0])
            lane.queue.remove(victim)
            lane.dropped += 1
            if not lane.overflowing:  # once per episode: until the stage has caught up
                lane.overflowing = True
                logger.warning(
                    "stage %s is %d events behind (slow or hung in %s): dropping its oldest "
                    "events until it catches up", lane.name, lane.size,
                    type(lane.current).__name__ if lane.current is not None else "nothing")
        lane.queue.append(event)
        self._wake(lane)

    @staticmethod
    def _wake(lane: _Lane) -> None:
        lane.idle.clear()
        lane.ready.set()

    # ------------------------------------------------------------------ delivery

    async def _serve(self, lane: _Lane) -> None:
        """The stage's task: its events, one at a time, in order (cancels first)."""
        while True:
            if not lane.queue:
                if lane.overflowing:
                    lane.overflowing = False
                    logger.debug("stage %s caught up (%d events dropped so far)", lane.name,
                                 lane.dropped)
                lane.idle.set()
                lane.ready.clear()
                await lane.ready.wait()
                continue
            event = lane.queue.popleft()
            lane.current = event
            # Its own task, so a cancel of this reply can stop it without stopping the lane.
            lane.call = asyncio.create_task(self._handle(lane, event),
                                            name=f"stage:{lane.name}:{type(event).__name__}")
            try:
                await asyncio.wait([lane.call])
            except asyncio.CancelledError:
                lane.call.cancel()
                raise
            finally:
                lane.current = None
                if lane.call.done() and lane.call.cancelled():
                    lane.purged += 1
                lane.call = None

    async def _handle(self, lane: _Lane, event: StageEvent) -> None:
        try:
            await lane.stage.handle(event)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the show goes on: one line, counted
            lane.failed += 1
            logger.error("stage %s failed on %s: %s: %s", lane.name, type(event).__name__,
                         type(e).__name__, e, exc_info=logger.isEnabledFor(logging.DEBUG))
            if self._on_error is not None:
                try:
                    self._on_error(lane.name)
                except Exception:
                    logger.exception("stage bus: the error hook failed")
        else:
            lane.handled += 1
