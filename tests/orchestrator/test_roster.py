"""Personas join and leave a running show (the dashboard), and moderators pick from the queue."""

from __future__ import annotations

import asyncio

import pytest

from bots.orchestrator.orchestrator import Orchestrator
from tests.orchestrator.fakes import FakeAdapter, FakePipeline, FakeStage, chat, persona
from tests.orchestrator.test_orchestrator import QUICK, until


async def test_a_persona_added_while_running_answers_and_a_removed_one_refuses(tmp_path):
    stage, adapter = FakeStage(), FakeAdapter()
    perf = FakePipeline(clips=1, work_s=0.01)
    personas = {"mika": persona("mika", tmp_path, **QUICK)}
    async with Orchestrator(personas=personas, stages=[stage], default_persona="mika",
                            adapters=[adapter], pipeline=perf, greet=False) as orch:
        assert not orch.submit(chat("a", "hi nova", persona="nova")).accepted
        orch.add_persona(persona("nova", tmp_path, **QUICK))
        d = orch.submit(chat("a", "hi nova", persona="nova"))
        assert d.accepted
        await until(lambda: adapter.status_of(d.trace_id) == ["spoken"])
        with pytest.raises(ValueError, match="already"):
            orch.add_persona(persona("nova", tmp_path, **QUICK))
        perf.work_s = 0.5  # the next answer is still being made when nova leaves
        waiting = [orch.submit(chat(u, f"question {u}", persona="nova")) for u in "bcd"]
        await until(lambda: perf.started and perf.started[-1][1] == "question b")
        runtime = await orch.remove_persona("nova")
        assert runtime.id == "nova" and "nova" not in orch.personas
        await until(lambda: all(adapter.status_of(w.trace_id) for w in waiting))
        assert {adapter.status_of(w.trace_id)[0] for w in waiting} == {"refused"}
        with pytest.raises(ValueError, match="default"):
            await orch.remove_persona("mika")
        d2 = orch.submit(chat("e", "still here?"))  # mika goes on
        await until(lambda: adapter.status_of(d2.trace_id) == ["spoken"])


async def test_promote_answers_the_picked_event_next_and_remove_refuses_it(tmp_path):
    stage, adapter = FakeStage(), FakeAdapter()
    perf = FakePipeline(clips=1, work_s=0.05)
    personas = {"mika": persona("mika", tmp_path, **QUICK)}
    async with Orchestrator(personas=personas, stages=[stage], default_persona="mika",
                            adapters=[adapter], pipeline=perf, greet=False,
                            lookahead=0) as orch:
        orch.pause("mika")
        ds = [orch.submit(chat(u, f"line {u}")) for u in "abcd"]
        rows = orch.queue_snapshot("mika")
        assert [r["user"] for r in rows] == ["a", "b", "c", "d"]
        assert orch.promote("mika", ds[2].trace_id)
        assert not orch.promote("mika", "no-such-id")
        assert [r["user"] for r in orch.queue_snapshot("mika")] == ["c", "a", "b", "d"]
        assert orch.remove("mika", ds[1].trace_id)
        assert orch.is_paused("mika")
        orch.resume("mika")
        await until(lambda: len(adapter.outcomes) == 4)
        await asyncio.sleep(0.05)
    assert [t for _, t in perf.started] == ["line c", "line a", "line d"]
    assert adapter.status_of(ds[1].trace_id) == ["refused"]


async def test_a_skip_while_the_reply_is_made_does_not_degrade_the_show(tmp_path):
    stage, adapter = FakeStage(), FakeAdapter()
    perf = FakePipeline(clips=1, work_s=0.5)
    personas = {"mika": persona("mika", tmp_path, **QUICK)}
    async with Orchestrator(personas=personas, stages=[stage], default_persona="mika",
                            adapters=[adapter], pipeline=perf, greet=False) as orch:
        d = orch.submit(chat("a", "a long question"))
        await until(lambda: perf.started)
        assert orch.skip("mika")
        await until(lambda: adapter.status_of(d.trace_id) == ["interrupted"])
        await asyncio.sleep(0.05)
        assert orch.healthy
    assert not any(x[1] == "degraded" for x in stage.log), stage.log
