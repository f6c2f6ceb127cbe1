#!/usr/bin/env python
"""Benchmark of the orchestrator under a chat flood (issue #3).

Prints a table and writes bench/results/orchestrator.json:

- ingest_msgs_per_s, enqueue_p99_ms: 50k mixed events (chat, subs, cheers, redemptions, spam,
  duplicates, mod commands) into 10 personas through moderation and the queues, with the
  consumers running;
- loop_lag_p99_ms: event-loop lag measured by a ticker during that flood;
- rss_growth_mb: resident memory after the flood minus before;
- lost_accepted: accepted events that ended neither served nor explicitly refused (must be 0);
- fairness_ratio: 50 personas x 20 users sharing one slow render worker, max/min served;
- max_wait_s: longest wait of a plain chat line under a steady flood of higher-priority
  events, with aging on, next to the bound the queue documents.

The reply pipeline is simulated (no models): this measures the orchestrator itself.

    .venv/bin/python bench/orchestrator.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # the repo, not bench/ (whose file names may shadow modules)

import numpy as np  # noqa: E402

from avatar_engine.settings import ClipSettings  # noqa: E402
from avatar_engine.types import Performance, Speech  # noqa: E402
from avatar_engine.workers import LocalRenderPool  # noqa: E402
from bots.config import PersonaConfig  # noqa: E402
from bots.events import (  # noqa: E402
    ChatMessage,
    ModCommand,
    Notice,
    Outcome,
    Redemption,
    Role,
    Viewer,
)
from bots.moderation.audit import AuditLog  # noqa: E402
from bots.orchestrator.orchestrator import Orchestrator  # noqa: E402
from bots.orchestrator.pipeline import Reply, ReplyTrace  # noqa: E402
from bots.orchestrator.tracing import Tracer  # noqa: E402
from bots.personas.runtime import PersonaRuntime  # noqa: E402
from overlays.stage import StageEvent  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * 4096 / 2**20


def tiny_performance(persona: str, reply_id: str, index: int, text: str) -> Performance:
    """A sentence with no frames and no audio: the bench measures the orchestrator."""
    speech = Speech(text=text, audio=np.zeros(0, np.float32), sample_rate=16000)
    return Performance(persona=persona, reply_id=reply_id, index=index, speech=speech,
                       frames=np.zeros((0, 2, 2, 4), np.uint8), fps=25, start_frame=0)


class SimulatedPipeline:
    """Stands in for the LLM -> TTS -> render pipeline: ``clips`` sentences, each ``work_s``
    of blocking work in the shared render pool (or an async sleep without one)."""

    def __init__(self, *, clips: int = 1, work_s: float = 0.005, pool=None):
        self.clips, self.work_s, self.pool = clips, work_s, pool
        self.served: dict[str, int] = {}

    async def __call__(self, persona, *, viewer, text, on_performance, reply_id, screen=None,
                       marks=None, context_key=None, say=None):
        trace = ReplyTrace(on_mark=marks)
        for i in range(self.clips):
            if self.pool is not None:
                await self.pool.run(persona.id, time.sleep, self.work_s)
            else:
                await asyncio.sleep(self.work_s)
            trace.mark("first_clip")
            await on_performance(tiny_performance(persona.id, reply_id, i, text))
        self.served[persona.id] = self.served.get(persona.id, 0) + 1
        return Reply(reply_id=reply_id, text=text, trace=trace)


class CountingAdapter:
    platform = "bench"

    def __init__(self):
        self.outcomes: dict[str, Outcome] = {}
        self.duplicates = 0

    def bind(self, sink):
        pass

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None

    async def deliver(self, outcome: Outcome) -> None:
        if outcome.event.trace_id in self.outcomes:
            self.duplicates += 1
        self.outcomes[outcome.event.trace_id] = outcome


class NullStage:
    """Takes every event and does nothing with it (the bus still delivers each one)."""

    name = "null"
    wants: frozenset[type[StageEvent]] = frozenset(StageEvent.__args__)  # type: ignore[attr-defined]

    async def handle(self, event: StageEvent) -> None:
        return None


def make_persona(pid: str, tmp: Path, **queue) -> PersonaRuntime:
    cfg = PersonaConfig.model_validate(
        {"id": pid, "name": pid, "personality": "bench", "queue": queue})
    return PersonaRuntime(config=cfg, llm=None, tts=None, renderer=None,  # type: ignore[arg-type]
                          clips_dir=tmp, clip_settings=ClipSettings())


WORDS = ("hello what game is this today lol nice play can you sing a song about cats "
         "where are you from favourite food pizza please say hi to my friend").split()


def flood_events(n: int, personas: list[str], users: int, rng: random.Random):
    subs = frozenset({Role.SUBSCRIBER})
    mods = frozenset({Role.MODERATOR})
    for i in range(n):
        pid = personas[i % len(personas)]
        u = rng.randrange(users)
        r = rng.random()
        roles = mods if u < 3 else subs if u % 4 == 0 else frozenset()
        viewer = Viewer(id=f"u{u}", name=f"viewer{u}", roles=roles)
        text = " ".join(rng.choices(WORDS, k=rng.randint(3, 14)))
        if r < 0.70:
            yield ChatMessage(viewer=viewer, message=text, persona=pid, platform="bench")
        elif r < 0.78:
            yield ChatMessage(viewer=viewer, message="SPAM SPAM SPAM SPAM SPAM SPAM",
                              persona=pid, platform="bench")
        elif r < 0.84:
            yield ChatMessage(viewer=viewer, message="check https://spam.example.com",
                              persona=pid, platform="bench")
        elif r < 0.90:
            yield ChatMessage(viewer=viewer, message=text, bits=rng.choice((100, 500, 1000)),
                              persona=pid, platform="bench")
        elif r < 0.94:
            yield Redemption(viewer=viewer, reward_id="ask", reward_title="Ask", persona=pid,
                             redemption_id=f"r{i}", cost=500, message=text, platform="bench")
        elif r < 0.99:
            yield Notice(viewer=viewer, kind="subscription", amount=3, persona=pid,
                         platform="bench")
        else:
            yield ModCommand(viewer=Viewer(id="m", name="mod", roles=mods), command="skip",
                             persona=pid, platform="bench")


async def flood(n: int, tmp: Path) -> dict:
    rng = random.Random(7)
    ids = [f"p{i}" for i in range(10)]
    personas = {pid: make_persona(pid, tmp) for pid in ids}
    adapter = CountingAdapter()
    perf = SimulatedPipeline(work_s=0.002)
    events = list(flood_events(n, ids, users=2000, rng=rng))
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker():
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - t - 0.005)

    accepted: set[str] = set()
    paid_rejected: set[str] = set()
    latencies: list[float] = []
    before = rss_mb()
    async with AuditLog(tmp / "audit.jsonl") as audit, Orchestrator(
        personas=personas, stages=[NullStage()], default_persona="p0", adapters=[adapter],
        pipeline=perf, exclusive_stage=False, audit=audit,
    ) as orch:
        for ev in flood_events(500, ids, users=50, rng=random.Random(1)):  # warm up
            orch.submit(dataclasses.replace(ev, platform="warmup"))
        for pid in ids:
            orch.clear(pid, include_paid=True)
            orch.resume(pid)
        await asyncio.sleep(0.1)
        gc.collect()
        gc.freeze()  # as the app does after start-up: long-lived objects leave the GC's scans
        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0.02)
        t0 = time.perf_counter()
        for i, ev in enumerate(events):
            s = time.perf_counter()
            d = orch.submit(ev)
            latencies.append(time.perf_counter() - s)
            if d.accepted and not isinstance(ev, ModCommand):
                accepted.add(ev.trace_id)
            elif not d.accepted and ev.paid:
                paid_rejected.add(ev.trace_id)
            if i % 50 == 49:
                # Yield as a server does between socket reads (a websocket frame holds one
                # chat message; 50 is a generous burst per read).
                await asyncio.sleep(0)
        ingest_s = time.perf_counter() - t0
        stop.set()
        await tick
        after = rss_mb()
        for pid in ids:  # end of stream: answer nothing more, refuse the rest explicitly
            orch.resume(pid)
            orch.clear(pid, include_paid=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            if all(not orch._personas[p].inflight for p in ids):
                break
        await asyncio.sleep(0.2)
    ended = {tid for tid, o in adapter.outcomes.items()}
    lost = len(accepted - ended)
    paid_unreported = len(paid_rejected - ended)
    latencies.sort()
    lags.sort()
    return {
        "events": n,
        "ingest_msgs_per_s": round(n / ingest_s),
        "enqueue_p50_ms": round(statistics.median(latencies) * 1e3, 4),
        "enqueue_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1e3, 4),
        "loop_lag_p99_ms": round(lags[int(len(lags) * 0.99)] * 1e3, 2) if lags else None,
        "loop_lag_max_ms": round(lags[-1] * 1e3, 2) if lags else None,
        "lag_samples": len(lags),
        "rss_growth_mb": round(after - before, 1),
        "accepted": len(accepted),
        "served": sum(perf.served.values()),
        "lost_accepted": lost,
        "paid_rejected_without_refusal": paid_unreported,
        "duplicate_outcomes": adapter.duplicates,
        "audit_records": audit.written if audit else 0,
    }


async def fairness(seconds: float, tmp: Path) -> dict:
    ids = [f"f{i:02d}" for i in range(50)]
    personas = {pid: make_persona(pid, tmp, user_cooldown_s=0, duplicate_window_s=0,
                                  max_per_user=5) for pid in ids}
    async with LocalRenderPool(workers=1) as pool:
        perf = SimulatedPipeline(work_s=0.004, pool=pool)
        async with Orchestrator(personas=personas, stages=[NullStage()], default_persona="f00",
                                pipeline=perf, exclusive_stage=False) as orch:
            for pid in ids:
                for u in range(20):
                    orch.submit(ChatMessage(viewer=Viewer(id=f"{pid}u{u}", name=f"u{u}"),
                                            message=f"question {u} for {pid}", persona=pid,
                                            platform="bench"))
            await asyncio.sleep(seconds)
            served = [perf.served.get(pid, 0) for pid in ids]
    return {"fairness_personas": 50, "fairness_users_each": 20,
            "fairness_served_min": min(served), "fairness_served_max": max(served),
            "fairness_ratio": round(max(served) / max(1, min(served)), 3)}


async def aging(seconds: float, tmp: Path, *, rate: float) -> dict:
    """Plain chat lines against a steady stream of subscriber lines (a higher class) arriving
    1.5x faster than replies finish; returns the longest wait of a plain line."""
    reply_s = 0.05
    p = make_persona("a", tmp, aging_per_s=rate, user_cooldown_s=0, duplicate_window_s=0,
                     max_length=1000, stale_after_s=None)
    perf = SimulatedPipeline(work_s=reply_s)
    subs = frozenset({Role.SUBSCRIBER})
    plain: list[str] = []
    async with Orchestrator(personas={"a": p}, stages=[NullStage()], default_persona="a",
                            pipeline=perf, exclusive_stage=False,
                            tracer=Tracer(keep=100_000)) as orch:
        n = 0
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            n += 1
            orch.submit(ChatMessage(viewer=Viewer(id=f"s{n}", name="s", roles=subs),
                                    message=f"sub line {n}", persona="a", platform="x"))
            if n % 30 == 0:
                d = orch.submit(ChatMessage(viewer=Viewer(id=f"plain{n}", name="p"),
                                            message=f"plain line {n}", persona="a",
                                            platform="x"))
                plain.append(d.trace_id)
            await asyncio.sleep(reply_s / 1.5)
        # The flood stops; wait until every plain line has been answered.
        for _ in range(int(4 * seconds / 0.05)):  # bounded polling of the traces
            if all("dequeued" in orch.tracer.get(t).marks for t in plain):
                break
            await asyncio.sleep(0.05)
        waits = [orch.tracer.get(t).marks.get("dequeued", float("inf"))
                 - orch.tracer.get(t).marks["received"] for t in plain]
    qs = p.config.queue
    return {"max_wait_s": round(max(waits), 2), "plain_lines": len(plain),
            "bound_s": round(qs.max_wait_s(qs.chat_priority, reply_s=reply_s * 1.2), 1)}


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        result = await flood(20_000 if args.quick else 50_000, tmp_path)
        result |= await fairness(2.0, tmp_path)  # stop mid-way: about half served
        secs = 5.0 if args.quick else 10.0
        with_aging = await aging(secs, tmp_path, rate=5.0)
        without = await aging(secs, tmp_path, rate=0.0)
        result |= {"max_wait_s": with_aging["max_wait_s"],
                   "max_wait_no_aging_s": without["max_wait_s"],
                   "aging_plain_lines": with_aging["plain_lines"],
                   "aging_per_s": 5.0}
    targets = {"ingest_msgs_per_s": (">=", 20_000), "lost_accepted": ("<=", 0),
               "fairness_ratio": ("<=", 1.25), "loop_lag_p99_ms": ("<", 20)}
    print(f"\n{'metric':32} {'value':>12}  target")
    for k, v in result.items():
        mark = ""
        if k in targets:
            op, t = targets[k]
            ok = v >= t if op == ">=" else v <= t if op == "<=" else v < t
            mark = f"{op} {t}  {'ok' if ok else 'MISSED'}"
        print(f"{k:32} {v!s:>12}  {mark}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "orchestrator.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out / 'orchestrator.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
