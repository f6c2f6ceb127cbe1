"""The orchestrator with fakes of our own pipeline/stage/adapter: order, interruption,
refusals and refunds, failures, fairness between personas, the stage floor, loop lag."""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest

from avatar_engine.workers import LocalRenderPool
from bots.events import ModCommand, Redemption, Role, Viewer
from bots.orchestrator.orchestrator import Orchestrator
from tests.orchestrator.fakes import FakeAdapter, FakePipeline, FakeStage, chat, persona

MOD = frozenset({Role.MODERATOR})
QUICK = {"queue": {"user_cooldown_s": 0, "duplicate_window_s": 0}}


async def until(cond, limit_s: float = 5.0) -> None:
    deadline = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


@pytest.fixture
def parts(tmp_path):
    stage, adapter = FakeStage(), FakeAdapter()
    personas = {"mika": persona("mika", tmp_path, **QUICK)}
    return stage, adapter, personas


async def test_paid_and_priority_events_are_served_first(parts):
    stage, adapter, personas = parts
    perf = FakePipeline(clips=1, work_s=0.05)
    async with Orchestrator(personas=personas, stages=[stage], default_persona="mika",
                            adapters=[adapter], pipeline=perf) as orch:
        orch.submit(chat("a", "first while idle"))
        await until(lambda: perf.started)
        orch.submit(chat("b", "plain chat"))
        orch.submit(chat("c", "sub chat", roles=frozenset({Role.SUBSCRIBER})))
        orch.submit(chat("d", "cheer", bits=500))
        orch.submit(Redemption(viewer=Viewer(id="e", name="e"), platform="test",
                               reward_id="r", reward_title="Ask Mika", redemption_id="x",
                               cost=100, message="redeemed question"))
        await until(lambda: len(adapter.outcomes) == 5)
    order = [t for _, t in perf.started]
    assert order[0] == "first while idle"
    assert set(order[1:3]) == {"cheer", "[redeemed 'Ask Mika'] redeemed question"}
    assert order[3:] == ["sub chat", "plain chat"]
    assert [o.status for o in adapter.outcomes] == ["spoken"] * 5, adapter.outcomes


async def test_skip_interrupts_and_nothing_of_the_reply_plays_later(parts):
    stage, adapter, personas = parts
    perf = FakePipeline(clips=20, work_s=0.05)
    async with Orchestrator(personas=personas, stages=[stage], default_persona="mika",
                            adapters=[adapter], pipeline=perf) as orch:
        d = orch.submit(chat("a", "long story"))
        await until(lambda: len(stage.clips()) >= 2)
        mod = Viewer(id="m", name="mod", roles=MOD)
        assert orch.submit(ModCommand(viewer=mod, command="skip", platform="test")).accepted
        await until(lambda: adapter.status_of(d.trace_id))
        shown = len(stage.clips())
        d2 = orch.submit(chat("b", "next one"))
        await until(lambda: adapter.status_of(d2.trace_id))
        await asyncio.sleep(0.3)
    assert adapter.status_of(d.trace_id) == ["interrupted"]
    first = [c for c in stage.clips() if c.reply_id == d.trace_id]
    assert len(first) == shown < 20  # nothing of the skipped reply after the skip
    assert any(x[1] == "cancelled" and x[3] == d.trace_id for x in stage.log)
    assert adapter.status_of(d2.trace_id) == ["spoken"]


async def test_mod_commands_need_a_mod_and_pause_resume_clear_work(parts):
    stage, adapter, personas = parts
    perf = FakePipeline(clips=1, work_s=0.01)
    async with Orchestrator(personas=personas, stages=[stage], default_persona="mika",
                            adapters=[adapter], pipeline=perf) as orch:
        d = orch.submit(ModCommand(viewer=Viewer(id="x", name="x"), command="pause",
                                   platform="test"))
        assert not d.accepted and "moderator" in d.reason
        mod = Viewer(id="m", name="mod", roles=MOD)
        orch.submit(ModCommand(viewer=mod, command="pause", platform="test"))
        held = [orch.submit(chat(f"u{i}", f"question {i}")) for i in range(3)]
        assert all(h.accepted for h in held)
        await asyncio.sleep(0.2)
        assert perf.started == [] and orch.queue_length("mika") == 3
        orch.submit(ModCommand(viewer=mod, command="clear", platform="test"))
        assert orch.queue_length("mika") == 0
        await until(lambda: len(adapter.outcomes) == 3)
        assert {o.status for o in adapter.outcomes} == {"refused"}
        orch.submit(ModCommand(viewer=mod, command="resume", platform="test"))
        d = orch.submit(chat("z", "after resume"))
        await until(lambda: adapter.status_of(d.trace_id) == ["spoken"])


async def test_moderated_cheer_is_refused_so_it_can_be_refunded(parts):
    stage, adapter, personas = parts
    async with Orchestrator(personas=personas, stages=[stage], default_persona="mika",
                            adapters=[adapter], pipeline=FakePipeline()) as orch:
        d = orch.submit(chat("a", "visit http://spam.example.com now", bits=100))
        assert not d.accepted
        await until(lambda: adapter.outcomes)
    assert adapter.status_of(d.trace_id) == ["refused"]
    assert adapter.outcomes[0].event.paid


async def test_output_check_keeps_blocked_text_off_stage(tmp_path):
    stage, adapter = FakeStage(), FakeAdapter()
    p = persona("mika", tmp_path, moderation={"output": {"words": ["part 1"]}}, **QUICK)
    async with Orchestrator(personas={"mika": p}, stages=[stage], default_persona="mika",
                            adapters=[adapter], pipeline=FakePipeline(clips=3)) as orch:
        d = orch.submit(chat("a", "hello"))
        await until(lambda: adapter.status_of(d.trace_id))
    assert [c.text for c in stage.clips()] == ["hello part 0", "hello part 2"]


async def test_failing_renderer_refuses_that_reply_and_the_queue_goes_on(parts):
    stage, adapter, personas = parts
    perf = FakePipeline(clips=1, fail_on="boom")
    async with Orchestrator(personas=personas, stages=[stage], default_persona="mika",
                            adapters=[adapter], pipeline=perf) as orch:
        bad = orch.submit(chat("a", "boom please", bits=50))
        good = orch.submit(chat("b", "fine question"))
        await until(lambda: adapter.status_of(good.trace_id))
    assert adapter.status_of(bad.trace_id) == ["failed"]  # paid: the adapter refunds
    assert adapter.status_of(good.trace_id) == ["spoken"]
    assert orch.tracer.get(bad.trace_id).status == "failed"


async def test_personas_share_one_render_worker_fairly(tmp_path):
    stage, adapter = FakeStage(), FakeAdapter()
    personas = {f"p{i}": persona(f"p{i}", tmp_path, **QUICK) for i in range(4)}
    async with LocalRenderPool(workers=1) as pool:
        perf = FakePipeline(clips=1, work_s=0.01, pool=pool)
        async with Orchestrator(personas=personas, stages=[stage], default_persona="p0",
                                adapters=[adapter], pipeline=perf,
                                exclusive_stage=False) as orch:
            for pid in personas:
                for u in range(10):
                    orch.submit(chat(f"{pid}-u{u}", f"q {u}", persona=pid))
            await until(lambda: len(perf.started) >= 20, limit_s=10)
            counts = [sum(1 for p, _ in perf.started[:20] if p == pid) for pid in personas]
    assert max(counts) - min(counts) <= 2, counts


async def test_exclusive_stage_one_persona_at_a_time(tmp_path):
    stage, adapter = FakeStage(), FakeAdapter()
    personas = {pid: persona(pid, tmp_path, **QUICK) for pid in ("a", "b")}
    perf = FakePipeline(clips=3, work_s=0.02, clip_s=0.05)
    async with Orchestrator(personas=personas, stages=[stage], default_persona="a",
                            adapters=[adapter], pipeline=perf) as orch:
        for pid in ("a", "b"):
            for u in range(2):
                orch.submit(chat(f"{pid}{u}", f"hi {u}", persona=pid))
        await until(lambda: len(adapter.outcomes) == 4, limit_s=10)
    # Between a persona's first clip and its reply's end, no other persona's clip shows.
    owner = None
    for _, kind, pid, _clip in stage.log:
        if kind == "chat":
            assert owner is None, stage.log
            owner = pid
        elif kind == "clip":
            assert pid == owner
        elif kind == "done":
            owner = None


async def test_slow_renderer_keeps_the_event_loop_responsive(tmp_path):
    """Rendering blocks for 200 ms per clip, in the pool's thread: the loop must not."""
    stage, adapter = FakeStage(), FakeAdapter()
    personas = {pid: persona(pid, tmp_path, **QUICK) for pid in ("a", "b")}
    lags: list[float] = []

    async def ticker():
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - t - 0.01)

    async with LocalRenderPool(workers=1) as pool:
        perf = FakePipeline(clips=2, work_s=0.2, pool=pool)
        async with Orchestrator(personas=personas, stages=[stage], default_persona="a",
                                adapters=[adapter], pipeline=perf) as orch:
            tick = asyncio.create_task(ticker())
            for i in range(2000):  # a flood while replies render
                orch.submit(chat(f"u{i}", f"message number {i}", persona="ab"[i % 2]))
                if i % 100 == 0:
                    await asyncio.sleep(0)
            await asyncio.sleep(1.5)
            tick.cancel()
    lags.sort()
    p99 = lags[int(len(lags) * 0.99)]
    assert len(lags) > 50 and p99 < 0.05, (p99, statistics.median(lags))


async def test_traces_and_metrics(parts):
    stage, adapter, personas = parts
    async with Orchestrator(personas=personas, stages=[stage], default_persona="mika",
                            adapters=[adapter], pipeline=FakePipeline()) as orch:
        ok = orch.submit(chat("a", "hello there"))
        bad = orch.submit(chat("b", "   "))
        await until(lambda: adapter.status_of(ok.trace_id))
        body, ctype = orch.tracer.exposition()
    t = orch.tracer.get(ok.trace_id)
    assert {"received", "accepted", "dequeued", "first_clip", "on_stage", "done"} <= set(t.marks)
    assert t.status == "spoken"
    rejected = orch.tracer.get(bad.trace_id)
    assert rejected.status == "rejected" and "empty" in rejected.reason
    text = body.decode()
    assert 'vstage_events_total{decision="accepted",kind="ChatMessage",persona="mika"} 1.0' in text
    assert "vstage_stage_seconds_bucket" in text and ctype.startswith("text/plain")
    recent = orch.tracer.recent(5)
    assert recent[0]["trace_id"] in (ok.trace_id, bad.trace_id)


async def test_failures_put_stages_on_be_right_back_until_a_reply_works(parts):
    stage, adapter, personas = parts
    perf = FakePipeline(clips=1, fail_on="boom")
    async with Orchestrator(personas=personas, stages=[stage], default_persona="mika",
                            adapters=[adapter], pipeline=perf) as orch:
        orch.submit(chat("a", "boom"))
        orch.submit(chat("b", "boom again"))
        ok = orch.submit(chat("c", "fine"))
        await until(lambda: adapter.status_of(ok.trace_id))
        await asyncio.sleep(0.05)
    # On at the first failure, off after the next good reply.
    assert [x[3] for x in stage.log if x[1] == "degraded"] == [True, False]


async def test_skip_nothing_more_of_the_reply_reaches_any_stage(parts):
    """End to end: !skip while a reply is on stage and one stage lags far behind. The bus
    drops what is queued of the reply everywhere; nothing of it reaches any stage after its
    cancel, and the next reply plays on every stage."""
    fast, adapter, personas = parts
    slow = SlowStage("slow")  # stuck in its first event until the gate opens
    perf = FakePipeline(clips=30, work_s=0.02)
    async with Orchestrator(personas=personas, stages=[fast, slow], default_persona="mika",
                            adapters=[adapter], pipeline=perf) as orch:
        d = orch.submit(chat("a", "long story"))
        await until(lambda: len(fast.clips()) >= 5)
        mod = Viewer(id="m", name="mod", roles=MOD)
        orch.submit(ModCommand(viewer=mod, command="skip", platform="test"))
        await until(lambda: adapter.status_of(d.trace_id))
        slow.gate.set()
        d2 = orch.submit(chat("b", "next one"))
        await until(lambda: adapter.status_of(d2.trace_id))
        async with asyncio.timeout(10):
            await orch.bus.wait_idle()
    assert adapter.status_of(d.trace_id) == ["interrupted"]
    for stage in (fast, slow):
        kinds = [(x[1], x[3] if x[1] in ("cancelled", "done") else getattr(x[3], "reply_id",
                  None)) for x in stage.log]
        cut = kinds.index(("cancelled", d.trace_id))
        assert not [k for k in kinds[cut + 1:] if k[1] == d.trace_id], (stage.name, kinds)
        assert ("done", d2.trace_id) in kinds[cut:]
        assert ("done", d.trace_id) not in kinds
    # The slow stage was still on the reply's first event: the cancel interrupted it and
    # dropped every sentence queued for it, which the fast stage had shown already.
    assert not [c for c in slow.clips() if c.reply_id == d.trace_id]
    assert len([c for c in fast.clips() if c.reply_id == d.trace_id]) >= 5


async def test_a_hung_stage_does_not_hold_back_the_show(parts):
    """A stage that never returns from handle(): the other stage gets every reply, in order,
    and the replies are spoken, while the hung stage is still on its first event."""
    stage, adapter, personas = parts
    hung = SlowStage("hung")  # its gate never opens
    perf = FakePipeline(clips=2, work_s=0.01)
    async with Orchestrator(personas=personas, stages=[hung, stage], default_persona="mika",
                            adapters=[adapter], pipeline=perf) as orch:
        ds = [orch.submit(chat(f"u{i}", f"question {i}")) for i in range(3)]
        await until(lambda: len(adapter.outcomes) == 3)
        async with asyncio.timeout(5):
            await orch.bus.wait_idle([stage.name])
        assert len(hung.log) == 1  # still inside handle() of reply 1's first event
    assert [o.status for o in adapter.outcomes] == ["spoken"] * 3
    done = [x[3] for x in stage.log if x[1] == "done"]
    assert done == [d.trace_id for d in ds]


class SlowStage(FakeStage):
    """A stage whose handle() hangs until :attr:`gate` is set."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.gate = asyncio.Event()

    async def handle(self, event) -> None:
        await super().handle(event)
        await self.gate.wait()
