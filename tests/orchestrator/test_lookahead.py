"""No dead air: while a reply plays, the persona's next queued item is already being thought,
voiced and rendered, and goes on stage the moment the previous reply ends. Skip, clear, pause
and withdrawing an item cancel the prepared reply cleanly; nothing of it is ever shown."""

from __future__ import annotations

import asyncio
import time

import pytest

from bots.events import ModCommand, Role, Viewer
from bots.orchestrator.orchestrator import Orchestrator
from tests.orchestrator.fakes import FakeAdapter, FakePipeline, FakeStage, chat, persona

QUICK = {"queue": {"user_cooldown_s": 0, "duplicate_window_s": 0}}
MOD = Viewer(id="m", name="mod", roles=frozenset({Role.MODERATOR}))


async def until(cond, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def first_clip_at(stage: FakeStage, reply_id: str) -> float:
    return next(t for t, kind, _, c in stage.log if kind == "clip" and c.reply_id == reply_id)


async def gap_between_two_replies(tmp_path, lookahead: int) -> float:
    """Seconds of silence between reply 1's end of playback and reply 2's first clip."""
    stage, adapter = FakeStage(), FakeAdapter()
    perf = FakePipeline(clips=2, work_s=0.25, clip_s=0.4)
    personas = {"mika": persona("mika", tmp_path, **QUICK)}
    async with Orchestrator(personas=personas, stages=[stage], default_persona="mika",
                            adapters=[adapter], pipeline=perf, lookahead=lookahead) as orch:
        d1 = orch.submit(chat("a", "first"))
        d2 = orch.submit(chat("b", "second"))
        await until(lambda: len(adapter.outcomes) == 2)
    clips1 = [c for c in stage.clips() if c.reply_id == d1.trace_id]
    # Reply 1 plays from its first clip for the sum of its clips' durations.
    end1 = first_clip_at(stage, d1.trace_id) + sum(c.duration for c in clips1)
    return first_clip_at(stage, d2.trace_id) - end1


async def test_the_next_reply_is_ready_when_the_current_one_ends(tmp_path):
    without = await gap_between_two_replies(tmp_path, lookahead=0)
    with_lookahead = await gap_between_two_replies(tmp_path, lookahead=1)
    assert without >= 0.2, without  # it had to think and render the first clip first
    assert with_lookahead <= 0.08, with_lookahead  # it was waiting in the wings


@pytest.fixture
def parts(tmp_path):
    stage, adapter = FakeStage(), FakeAdapter()
    return stage, adapter, {"mika": persona("mika", tmp_path, **QUICK)}


async def test_skip_cuts_the_reply_on_stage_and_the_prepared_one_follows(parts):
    stage, adapter, personas = parts
    perf = FakePipeline(clips=3, work_s=0.05, clip_s=1.0)
    async with Orchestrator(personas=personas, stages=[stage], default_persona="mika",
                            adapters=[adapter], pipeline=perf) as orch:
        d1 = orch.submit(chat("a", "long one"))
        d2 = orch.submit(chat("b", "next one"))
        await until(lambda: len(perf.started) == 2)  # reply 2 is being prepared
        orch.submit(ModCommand(viewer=MOD, command="skip", platform="test"))
        await until(lambda: len(adapter.outcomes) == 2)
        await asyncio.sleep(0.2)
    assert adapter.status_of(d1.trace_id) == ["interrupted"]
    assert adapter.status_of(d2.trace_id) == ["spoken"]
    cut = next(i for i, x in enumerate(stage.log) if x[1] == "cancelled")
    assert all(x[3].reply_id != d1.trace_id for x in stage.log[cut:] if x[1] == "clip")
    assert len([c for c in stage.clips() if c.reply_id == d2.trace_id]) == 3


async def test_clear_cancels_the_prepared_reply_and_it_is_never_shown(parts):
    stage, adapter, personas = parts
    perf = FakePipeline(clips=2, work_s=0.05, clip_s=1.0)
    async with Orchestrator(personas=personas, stages=[stage], default_persona="mika",
                            adapters=[adapter], pipeline=perf) as orch:
        d1 = orch.submit(chat("a", "playing"))
        d2 = orch.submit(chat("b", "prepared"))
        await until(lambda: len(perf.started) == 2)
        orch.submit(ModCommand(viewer=MOD, command="clear", platform="test"))
        await until(lambda: len(adapter.outcomes) == 2, limit_s=5)
    assert adapter.status_of(d2.trace_id) == ["refused"]
    assert adapter.status_of(d1.trace_id) == ["spoken"]  # the reply on stage plays on
    assert not [c for c in stage.clips() if c.reply_id == d2.trace_id]
    assert not any(x[1] == "chat" and x[3] == "prepared" for x in stage.log)


async def test_pause_puts_the_prepared_item_back_and_resume_answers_it(parts):
    stage, adapter, personas = parts
    perf = FakePipeline(clips=2, work_s=0.05, clip_s=0.5)
    async with Orchestrator(personas=personas, stages=[stage], default_persona="mika",
                            adapters=[adapter], pipeline=perf) as orch:
        orch.submit(chat("a", "playing"))
        d2 = orch.submit(chat("b", "prepared"))
        await until(lambda: len(perf.started) == 2)
        orch.submit(ModCommand(viewer=MOD, command="pause", platform="test"))
        await asyncio.sleep(1.5)
        assert adapter.status_of(d2.trace_id) == []  # neither answered nor lost
        assert orch.queue_length("mika") == 1
        assert not [c for c in stage.clips() if c.reply_id == d2.trace_id]
        orch.submit(ModCommand(viewer=MOD, command="resume", platform="test"))
        await until(lambda: adapter.status_of(d2.trace_id) == ["spoken"])
    assert len([c for c in stage.clips() if c.reply_id == d2.trace_id]) == 2


async def test_a_withdrawn_item_is_dropped_wherever_it_is(parts):
    stage, adapter, personas = parts
    perf = FakePipeline(clips=2, work_s=0.05, clip_s=0.6)
    async with Orchestrator(personas=personas, stages=[stage], default_persona="mika",
                            adapters=[adapter], pipeline=perf) as orch:
        orch.submit(chat("a", "playing"))
        d2 = orch.submit(chat("b", "prepared"))
        d3 = orch.submit(chat("c", "queued"))
        await until(lambda: len(perf.started) == 2)
        gone = orch.withdraw("mika", lambda e: e.trace_id in (d2.trace_id, d3.trace_id),
                             reason="message deleted")
        assert gone == 2
        await until(lambda: len(adapter.outcomes) == 3)
    for d in (d2, d3):
        assert adapter.status_of(d.trace_id) == ["refused"]
        assert not [c for c in stage.clips() if c.reply_id == d.trace_id]
