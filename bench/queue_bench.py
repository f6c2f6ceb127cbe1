#!/usr/bin/env python
"""Benchmark of the per-persona reply queue (issue #3): how fast a chat flood is admitted.

Offers a stream of mixed events (chat from all roles, cheers, redemptions, notices, voice,
copy-pasta), arriving at a simulated 20,000/s, into 10 persona queues: with the default
settings and a consumer popping (so the flood runs through eviction, caps and duplicate
checks), with no consumer (a queue full of paid items refuses fast), and into deep queues
(every offer takes the accepting path, text normalisation included). Then times pops from a
deep queue and measures the memory of a full one. No moderation here: the orchestrator bench
adds it. Prints a table and writes ``bench/results/queue.json``.

Usage: ``.venv/bin/python bench/queue_bench.py [--quick]``
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import platform
import random
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # the repo, not bench/

from bots.events import (  # noqa: E402
    ChatMessage,
    Event,
    Notice,
    Redemption,
    Role,
    Utterance,
    Viewer,
)
from bots.orchestrator.queue import PersonaQueue  # noqa: E402
from bots.orchestrator.settings import QueueSettings  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "queue.json"
PERSONAS = [f"p{i}" for i in range(10)]
WORDS = (
    "hi hello mika play game song sing tonight what why how favourite food music stream "
    "chat raid love cute lol gg pog wow nice tell me about your day please"
).split()
PASTAS = ["POGGERS POGGERS", "first!!!", "gg ez", "mika sing a song pls", "hiiii mika"]


def make_viewers(rng: random.Random, n: int) -> list[Viewer]:
    viewers = []
    for i in range(n):
        r = rng.random()
        if r < 0.01:
            roles = frozenset({Role.MODERATOR})
        elif r < 0.03:
            roles = frozenset({Role.VIP})
        elif r < 0.25:
            roles = frozenset({Role.SUBSCRIBER})
        else:
            roles = frozenset()
        viewers.append(Viewer(id=f"u{i}", name=f"viewer{i}", roles=roles))
    return viewers


def make_events(n: int, *, seed: int = 7) -> list[Event]:
    """A chat flood: mostly plain chat, some paid, some voice, some copy-pasta."""
    rng = random.Random(seed)
    viewers = make_viewers(rng, 5000)
    events: list[Event] = []
    for i in range(n):
        viewer = rng.choice(viewers)
        persona = rng.choice(PERSONAS)
        text = " ".join(rng.choices(WORDS, k=rng.randint(2, 12))) + f" {i}"
        r = rng.random()
        if r < 0.05:
            event: Event = ChatMessage(viewer=viewer, persona=persona, message=rng.choice(PASTAS))
        elif r < 0.13:
            bits = rng.choice([1, 100, 100, 500, 1000, 5000])
            event = ChatMessage(viewer=viewer, persona=persona, message=text, bits=bits)
        elif r < 0.17:
            event = Redemption(
                viewer=viewer,
                persona=persona,
                reward_id="ask",
                reward_title="Ask Mika",
                redemption_id=f"r{i}",
                cost=500,
                message=text,
            )
        elif r < 0.20:
            event = Notice(viewer=viewer, persona=persona, kind="subscription", amount=3)
        elif r < 0.30:
            event = Utterance(viewer=viewer, persona=persona, message=text)
        else:
            event = ChatMessage(viewer=viewer, persona=persona, message=text)
        events.append(event)
    return events


class StreamClock:
    """Simulated arrival time: the flood arrives at ``rate`` events/s whatever the CPU does, so
    duplicate windows and staleness behave as in a live chat at that rate."""

    def __init__(self, rate: float) -> None:
        self.now = 0.0
        self.step = 1.0 / rate

    def __call__(self) -> float:
        return self.now


def bench_offers(events: list[Event], settings: QueueSettings, *, pop_every: int = 0) -> dict:
    """Offer every event to its persona's queue, timing the whole run and each offer.

    Args:
        pop_every: a queue pops one item after every ``pop_every`` offers to it (0: never).
    """
    clock = StreamClock(20_000)
    queues = {p: PersonaQueue(settings=settings, clock=clock) for p in PERSONAS}
    since_pop = dict.fromkeys(PERSONAS, 0)
    offer_ns = []
    codes: dict[str, int] = {}
    evicted = popped = 0
    gc.collect()
    perf = time.perf_counter_ns
    start = time.perf_counter()
    for event in events:
        clock.now += clock.step
        q = queues[event.persona]
        t0 = perf()
        adm = q.offer(event)
        offer_ns.append(perf() - t0)
        code = adm.code or "accepted"
        codes[code] = codes.get(code, 0) + 1
        evicted += len(adm.evicted)
        if pop_every:
            since_pop[event.persona] += 1
            if since_pop[event.persona] >= pop_every:
                since_pop[event.persona] = 0
                if (item := q.pop()) is not None:
                    q.mark_answered(item.event)
                    popped += 1
    elapsed = time.perf_counter() - start
    offer_ns.sort()
    return {
        "events": len(events),
        "offers_per_s": len(events) / elapsed,
        "offer_p50_us": offer_ns[len(offer_ns) // 2] / 1000,
        "offer_p99_us": offer_ns[int(len(offer_ns) * 0.99)] / 1000,
        "outcomes": dict(sorted(codes.items())),
        "evicted": evicted,
        "popped": popped,
        "queued_at_end": sum(len(q) for q in queues.values()),
    }


def deep_settings(n: int, *, duplicate_window_s: float = 0.0) -> QueueSettings:
    """A queue that never fills and caps no one: every offer takes the accepting path."""
    return QueueSettings(
        max_length=n, max_per_user=n, duplicate_window_s=duplicate_window_s, stale_after_s=None
    )


def bench_pops(events: list[Event], depth: int) -> dict:
    """Fill one queue ``depth`` deep, then pop it empty."""
    q = PersonaQueue(settings=deep_settings(depth))
    for event in events[:depth]:
        q.offer(event)
    n = len(q)
    gc.collect()
    start = time.perf_counter()
    popped = 0
    while q.pop() is not None:
        popped += 1
    elapsed = time.perf_counter() - start
    assert popped == n
    return {"depth": n, "pops_per_s": popped / elapsed}


def bench_memory(events: list[Event], settings: QueueSettings) -> dict:
    """tracemalloc peak of filling one queue (the events themselves excluded: made before)."""
    gc.collect()
    tracemalloc.start()
    q = PersonaQueue(settings=settings)
    accepted = sum(q.offer(e).accepted for e in events)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    n = len(q)
    return {
        "offered": len(events),
        "accepted": accepted,
        "queued": n,
        "peak_kib": peak / 1024,
        "bytes_per_queued_item": peak / max(1, n),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer events, for CI")
    args = parser.parse_args()
    # A flood with no consumer refuses paid overflow by the hundred; each is logged as a warning.
    logging.getLogger("bots.orchestrator.queue").setLevel(logging.ERROR)
    n_events = 10_000 if args.quick else 50_000
    depth = 5_000 if args.quick else 20_000

    events = make_events(n_events)
    repeats = 1 if args.quick else 3

    def best(**kw) -> dict:  # best of N: the least disturbed run
        return max(
            (bench_offers(events, **kw) for _ in range(repeats)), key=lambda r: r["offers_per_s"]
        )

    offers = best(settings=QueueSettings(), pop_every=50)
    no_consumer = best(settings=QueueSettings())
    accept_all = best(settings=deep_settings(n_events, duplicate_window_s=30.0))
    pops = bench_pops(make_events(depth, seed=11), depth)
    default = QueueSettings()
    mem_full = bench_memory(make_events(500, seed=3), default)
    mem_deep = bench_memory(make_events(depth, seed=5), deep_settings(depth))

    rows = [
        ("offers/s, defaults, 1 pop per 50 offers", f"{offers['offers_per_s']:,.0f}"),
        ("  offer p50 / p99 (µs)", f"{offers['offer_p50_us']:.1f} / {offers['offer_p99_us']:.1f}"),
        ("offers/s, defaults, no consumer", f"{no_consumer['offers_per_s']:,.0f}"),
        (
            "  offer p50 / p99 (µs)",
            f"{no_consumer['offer_p50_us']:.1f} / {no_consumer['offer_p99_us']:.1f}",
        ),
        ("offers/s, deep queues (all checks, no eviction)", f"{accept_all['offers_per_s']:,.0f}"),
        (
            "  offer p50 / p99 (µs)",
            f"{accept_all['offer_p50_us']:.1f} / {accept_all['offer_p99_us']:.1f} "
            f"({accept_all['queued_at_end']:,} queued)",
        ),
        (f"pops/s from {pops['depth']:,} deep", f"{pops['pops_per_s']:,.0f}"),
        (
            f"memory, full default queue ({mem_full['queued']} items)",
            f"{mem_full['peak_kib']:.0f} KiB peak",
        ),
        (
            f"memory, {mem_deep['queued']:,}-item queue",
            f"{mem_deep['peak_kib'] / 1024:.1f} MiB peak, "
            f"{mem_deep['bytes_per_queued_item']:.0f} B/item",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    print(
        f"queue bench: {n_events:,} mixed events, {len(PERSONAS)} personas, "
        f"python {platform.python_version()}"
    )
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    print(
        f"  admission codes (defaults, consumer): {offers['outcomes']}, "
        f"evicted {offers['evicted']}, popped {offers['popped']}"
    )

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "events": n_events,
        "personas": len(PERSONAS),
        "quick": args.quick,
        "offers_per_s": round(offers["offers_per_s"]),
        "offer_p50_us": round(offers["offer_p50_us"], 2),
        "offer_p99_us": round(offers["offer_p99_us"], 2),
        "admission_codes": offers["outcomes"],
        "evicted": offers["evicted"],
        "popped": offers["popped"],
        "offers_per_s_no_consumer": round(no_consumer["offers_per_s"]),
        "offer_p99_us_no_consumer": round(no_consumer["offer_p99_us"], 2),
        "offers_per_s_deep": round(accept_all["offers_per_s"]),
        "offer_p50_us_deep": round(accept_all["offer_p50_us"], 2),
        "offer_p99_us_deep": round(accept_all["offer_p99_us"], 2),
        "pop_depth": pops["depth"],
        "pops_per_s": round(pops["pops_per_s"]),
        "full_queue_items": mem_full["queued"],
        "full_queue_peak_kib": round(mem_full["peak_kib"], 1),
        "deep_queue_items": mem_deep["queued"],
        "deep_queue_bytes_per_item": round(mem_deep["bytes_per_queued_item"]),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
