"""The stage bus: each stage in its own lane. A hung or raising stage delays nobody, a cancel
jumps every queue and nothing of the cancelled reply reaches a stage afterwards, a full queue
drops the oldest events with one log line. Timed by the order of events, not by the clock."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest

from avatar_engine.types import Performance, Speech
from overlays.bus import StageBus
from overlays.stage import (
    ChatShown,
    Performed,
    ReplyCancelled,
    ReplyFinished,
    ShowDegraded,
    StageEvent,
)

ALL: frozenset[type[StageEvent]] = frozenset(
    {ChatShown, Performed, ReplyFinished, ReplyCancelled, ShowDegraded})


def performed(reply_id: str, index: int, persona: str = "mika") -> Performed:
    speech = Speech(text=f"{reply_id} sentence {index}", audio=np.zeros(160, np.float32),
                    sample_rate=16000)
    frames = np.zeros((1, 2, 2, 4), np.uint8)
    return Performed(Performance(persona=persona, reply_id=reply_id, index=index, speech=speech,
                                 frames=frames, fps=25, start_frame=0))


def label(event: StageEvent) -> str:
    if isinstance(event, Performed):
        return f"{event.reply_id}:{event.performance.index}"
    if isinstance(event, ReplyFinished):
        return f"{event.reply_id}:done"
    if isinstance(event, ReplyCancelled):
        return f"{event.reply_id}:cancelled"
    if isinstance(event, ChatShown):
        return f"{event.reply_id}:chat"
    return f"degraded:{event.on}" if isinstance(event, ShowDegraded) else "?"


class Recorder:
    """A stage that records what it got into a log shared by all stages (global order)."""

    def __init__(self, name: str, log: list[tuple[str, str]], *,
                 wants: frozenset[type[StageEvent]] = ALL) -> None:
        self.name, self.log, self.wants = name, log, wants
        self.got: list[str] = []
        self.gate: asyncio.Event | None = None  # set: handle() waits for it (a hung stage)
        self.fail_on: str | None = None
        self.entered = asyncio.Event()

    async def handle(self, event: StageEvent) -> None:
        self.log.append((self.name, label(event)))
        self.got.append(label(event))
        self.entered.set()
        if self.fail_on is not None and self.fail_on in label(event):
            raise RuntimeError("stage exploded")
        if self.gate is not None:
            await self.gate.wait()


def reply(bus: StageBus, rid: str, sentences: int = 2) -> None:
    bus.publish(ChatShown(persona="mika", user="ann", text="hi", reply_id=rid))
    for i in range(sentences):
        bus.publish(performed(rid, i))
    bus.publish(ReplyFinished(persona="mika", reply_id=rid, text="..."))


async def settle(bus: StageBus, *names: str) -> None:
    async with asyncio.timeout(5):
        await bus.wait_idle(names or None)


async def test_a_hung_stage_delays_neither_the_other_stages_nor_the_next_reply():
    log: list[tuple[str, str]] = []
    hung, fast = Recorder("hung", log), Recorder("fast", log)
    hung.gate = asyncio.Event()  # never set: handle() of its first event never returns
    async with StageBus([hung, fast]) as bus:
        reply(bus, "r1")
        reply(bus, "r2")
        await settle(bus, "fast")
        assert fast.got == ["r1:chat", "r1:0", "r1:1", "r1:done",
                            "r2:chat", "r2:0", "r2:1", "r2:done"]
        # The hung stage is still on reply 1's first event: it never got reply 1's second
        # event, while the fast stage had all of reply 2 already.
        assert hung.got == ["r1:chat"]
        assert [s.queued for s in bus.stats() if s.name == "hung"] == [7]
        hung.gate.set()  # it recovers: everything comes, in order
        await settle(bus)
    assert hung.got == fast.got
    assert log.index(("fast", "r2:done")) < log.index(("hung", "r1:0"))


async def test_a_raising_stage_does_not_stop_the_others_or_itself(caplog):
    log: list[tuple[str, str]] = []
    bad, good = Recorder("bad", log), Recorder("good", log)
    bad.fail_on = ":0"
    errors: list[str] = []
    with caplog.at_level(logging.ERROR, logger="overlays.bus"):
        async with StageBus([bad, good], on_error=errors.append) as bus:
            reply(bus, "r1")
            reply(bus, "r2")
            await settle(bus)
    assert good.got == bad.got and len(good.got) == 8  # it raised twice and went on
    assert errors == ["bad", "bad"]
    lines = [r.getMessage() for r in caplog.records if r.name == "overlays.bus"]
    assert len(lines) == 2 and all("bad" in x and "Performed" in x for x in lines), lines
    assert [s.failed for s in bus.stats()] == [2, 0]


async def test_events_go_only_to_stages_that_want_them():
    log: list[tuple[str, str]] = []
    voice = Recorder("voice", log, wants=frozenset({Performed, ReplyFinished}))
    chat = Recorder("chat", log, wants=frozenset({ChatShown}))
    async with StageBus([voice, chat]) as bus:
        reply(bus, "r1")
        bus.publish(ShowDegraded(on=True))
        await settle(bus)
    assert voice.got == ["r1:0", "r1:1", "r1:done"]
    assert chat.got == ["r1:chat"]


async def test_a_cancel_jumps_the_queue_and_nothing_of_the_reply_follows():
    log: list[tuple[str, str]] = []
    slow, fast = Recorder("slow", log), Recorder("fast", log)
    other = Recorder("quiet", log, wants=frozenset({Performed}))  # does not want cancels
    slow.gate = asyncio.Event()
    async with StageBus([slow, fast, other]) as bus:
        bus.publish(performed("r0", 0))  # the slow stage is stuck on this one
        async with asyncio.timeout(5):
            await slow.entered.wait()
        bus.publish(ShowDegraded(on=True))
        reply(bus, "r1", sentences=5)
        reply(bus, "r2", sentences=1)
        bus.publish(ReplyCancelled(persona="mika", reply_id="r1"))
        # Late events of the cancelled reply (a pipeline that had not stopped yet).
        bus.publish(performed("r1", 5))
        bus.publish(ReplyFinished(persona="mika", reply_id="r1", text=""))
        bus.publish(ReplyCancelled(persona="mika", reply_id="r1"))
        slow.gate.set()
        await settle(bus)
    # The slow stage: r0, then the cancel before everything that was queued, then the rest
    # without any of r1.
    assert slow.got == ["r0:0", "r1:cancelled", "degraded:True", "r2:chat", "r2:0", "r2:done"]
    # The fast stage had seen r1 before the cancel; nothing of r1 after it.
    after = fast.got[fast.got.index("r1:cancelled") + 1:]
    assert not [x for x in after if x.startswith("r1:")], fast.got
    assert fast.got.count("r1:cancelled") == 1
    # A stage that does not take cancels still loses the reply's queued events.
    assert "r1:1" not in other.got[1:] and "r2:0" in other.got
    assert not [x for x in other.got if x.startswith("r1:")]


async def test_a_cancel_interrupts_a_stage_busy_with_that_reply():
    log: list[tuple[str, str]] = []
    stuck = Recorder("stuck", log)
    stuck.gate = asyncio.Event()  # never set
    async with StageBus([stuck]) as bus:
        bus.publish(performed("r1", 0))
        async with asyncio.timeout(5):
            await stuck.entered.wait()
        bus.publish(performed("r1", 1))
        bus.publish(ReplyCancelled(persona="mika", reply_id="r1"))
        stuck.gate = None  # later events go through at once
        reply(bus, "r2", sentences=1)
        await settle(bus)
    assert stuck.got == ["r1:0", "r1:cancelled", "r2:chat", "r2:0", "r2:done"]
    assert bus.stats()[0].purged == 2  # r1:1 queued, r1:0 interrupted


async def test_a_full_queue_drops_the_oldest_and_logs_one_line(caplog):
    log: list[tuple[str, str]] = []
    hung = Recorder("hung", log)
    hung.gate = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="overlays.bus"):
        async with StageBus([hung], queue_size=4) as bus:
            bus.publish(performed("r0", 0))
            async with asyncio.timeout(5):
                await hung.entered.wait()
            bus.publish(ShowDegraded(on=True))  # a control event: kept while media can go
            for i in range(20):
                bus.publish(performed("r1", i))  # publish never blocks
            assert bus.stats()[0].dropped == 17
            hung.gate.set()
            await settle(bus)
    assert hung.got == ["r0:0", "degraded:True", "r1:17", "r1:18", "r1:19"]
    lines = [r.getMessage() for r in caplog.records if r.name == "overlays.bus"]
    assert len(lines) == 1 and "hung" in lines[0], lines


async def test_stages_can_come_and_go_while_running():
    log: list[tuple[str, str]] = []
    first, late = Recorder("first", log), Recorder("late", log)
    async with StageBus([first]) as bus:
        reply(bus, "r1", sentences=1)
        await settle(bus)
        bus.add_stage(late)
        with pytest.raises(ValueError):
            bus.add_stage(Recorder("late", log))
        reply(bus, "r2", sentences=1)
        await settle(bus)
        await bus.remove_stage("first")
        reply(bus, "r3", sentences=1)
        await settle(bus)
    assert late.got == ["r2:chat", "r2:0", "r2:done", "r3:chat", "r3:0", "r3:done"]
    assert first.got[-1] == "r2:done"


async def test_named_tasks_and_a_clean_shutdown_with_a_hung_stage():
    log: list[tuple[str, str]] = []
    hung = Recorder("hung", log)
    hung.gate = asyncio.Event()
    async with StageBus([hung]) as bus:
        bus.publish(performed("r1", 0))
        async with asyncio.timeout(5):
            await hung.entered.wait()
        names = {t.get_name() for t in asyncio.all_tasks()}
        assert "stage:hung" in names
    names = {t.get_name() for t in asyncio.all_tasks()}
    assert not [n for n in names if n.startswith("stage:")]
    bus.publish(performed("r2", 0))  # after close: dropped, no error
