#!/usr/bin/env python
"""Benchmark of long-term memory in the show (issue #16): what memory costs a reply.

On the embedded default persona (real SmolLM2, Piper and the sprite renderer), the same
prompts are answered with and without memory in the same run, alternating which goes first;
the viewer has 25 facts of their own in a store that also holds 20,000 facts of 2,000 other
viewers (SQLite under a temporary state_dir, the default settings: recall waits at most
30 ms). Reported:

* ``first_clip_delta_s``: median time to the first clip with memory minus without
  (target <= 0.05 s). With memory the prompt also holds the recalled notes, so the model
  reads a few dozen tokens more: ``llm_first_token_delta_s`` says how much of the delta that
  is, ``recall_wait_ms_p50/p99`` what the reply waited for the database itself.
* ``extract_cost_s``: the note-taking per turn, off the reply's path (store the turn, rules
  extraction, moderation, summary, retention): median seconds from ``after_turn`` until it
  is stored; ``extract_llm_cost_s``: the same with ``extract: llm`` on the embedded model.

Prints a table and writes ``bench/results/memory_show.json``.

    .venv/bin/python bench/memory_show.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # the repo, not bench/ (whose file names may shadow modules)

from bots.app import load_personas  # noqa: E402
from bots.config import load_config  # noqa: E402
from bots.memory.service import MemoryService, ViewerRef  # noqa: E402
from bots.memory.settings import MemorySettings  # noqa: E402
from bots.memory.store import MemoryStore  # noqa: E402
from bots.orchestrator.pipeline import perform  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TARGET_FIRST_CLIP_DELTA_S = 0.05
VIEWER = ViewerRef(platform="twitch", viewer_id="4242", name="Ann")
PROMPTS = [
    "Do you remember what my cat is called?",
    "What game should I play tonight?",
    "Can you help me practise my Japanese a little?",
    "What tea would you recommend for a rainy evening?",
    "Tell me something nice about Lyon.",
    "How do you cheer yourself up after a long day?",
    "What should I cook for dinner this weekend?",
]
OWN_FACTS = [
    "They have a cat called Miso", "They live in Lyon", "They are learning Japanese",
    "They like cozy games", "Their favourite tea is jasmine", "They work at a bakery",
    "They don't like spiders", "They have a sister called Lena", "They like rainy evenings",
    "They are learning to cook ramen", *[f"They collected badge number {i}" for i in range(15)],
]
LINES = [  # what viewers say, for the note-taking cost
    "My name is Ann and I have a cat called Miso.", "I live in Lyon and I love jazz.",
    "I'm learning Japanese for my trip next year.", "What do you think about rainy days?",
    "My favourite game is Stardew Valley!", "Je m'appelle Luc et j'habite à Paris.",
    "Ich heiße Anna und ich lerne Französisch.", "I work at a bakery near the station.",
]


async def seed(store: MemoryStore, *, others: int, facts_each: int) -> None:
    """The viewer's own facts and many other viewers' facts (same persona)."""
    rng = random.Random(7)
    person = await store.person(VIEWER.platform, VIEWER.viewer_id, name=VIEWER.name)
    await store.remember("mika", person, OWN_FACTS, source="seed", platform="twitch")
    words = ["cat", "tea", "game", "Lyon", "Japanese", "ramen", "jazz", "rain", "dog"]
    for i in range(others):
        other = await store.person("twitch", f"v{i}", name=f"viewer{i}")
        facts = [f"They like {rng.choice(words)} number {j} and {rng.choice(words)}"
                 for j in range(facts_each)]
        await store.remember("mika", other, facts, source="seed", platform="twitch")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 prompts, 1 round, a smaller store")
    args = ap.parse_args()
    prompts = PROMPTS[:3] if args.quick else PROMPTS
    rounds = 1 if args.quick else 3
    others = 300 if args.quick else 2000

    load_before = os.getloadavg()[0]
    config = load_config(ROOT / "config")
    base = config.persona()
    # Temperature 0 and no short-term history: both ways get the same model and context,
    # except what memory adds.
    cfg = base.model_copy(update={"llm": base.llm.model_copy(
        update={"temperature": 0.0, "history_turns": 0})})
    config.personas[base.id] = cfg
    persona = (await load_personas(config, [base.id]))[base.id]
    rules_cfg = cfg.model_copy(update={"memory": cfg.memory.model_copy(
        update={"extract": "rules"})})
    llm_cfg = cfg.model_copy(update={"memory": cfg.memory.model_copy(
        update={"extract": "llm"})})

    with tempfile.TemporaryDirectory(prefix="vstage-memory-bench-") as tmp:
        service = await MemoryService.open(MemorySettings(), state_dir=Path(tmp))
        async with service:
            t = time.monotonic()
            await seed(service.store, others=others, facts_each=10)
            seed_s = time.monotonic() - t
            key = f"{VIEWER.platform}:{VIEWER.viewer_id}"

            async def reply(prompt: str, *, memory: bool) -> dict[str, float]:
                persona.conversations.clear()
                handle = service.viewer(rules_cfg, VIEWER, allowed=lambda _t: True) \
                    if memory else None
                r = await perform(persona, viewer=VIEWER.name, text=prompt, context_key=key,
                                  memory=handle)
                await service.drain()  # its notes are taken before the next reply starts
                marks = {k: r.trace.since_start(k) for k in
                         ("first_clip", "llm_first_token", "memory_recalled")}
                return {k: v for k, v in marks.items() if v is not None}

            await reply("warm up", memory=False)  # first-call costs out of the way
            await reply("warm up", memory=True)
            timeouts_before = service.counts["recall_timeout"]
            without: list[dict[str, float]] = []
            with_memory: list[dict[str, float]] = []
            for n in range(rounds):
                for i, prompt in enumerate(prompts):
                    order = (False, True) if (i + n) % 2 == 0 else (True, False)
                    for on in order:
                        (with_memory if on else without).append(await reply(prompt, memory=on))
            timeouts = service.counts["recall_timeout"] - timeouts_before

            async def note_cost(pcfg: Any, lines: list[str]) -> list[float]:
                costs = []
                for line in lines:
                    handle = service.viewer(pcfg, VIEWER, allowed=lambda _t: True,
                                            llm=persona.llm)
                    assert handle is not None
                    t = time.perf_counter()
                    handle.after_turn(line, "That sounds lovely!")
                    await service.drain()
                    costs.append(time.perf_counter() - t)
                return costs

            rules_costs = await note_cost(rules_cfg, LINES)
            llm_costs = await note_cost(llm_cfg, LINES[:3] if args.quick else LINES)
    await persona.aclose()

    def med(rows: list[dict[str, float]], k: str) -> float:
        return statistics.median(r[k] for r in rows)

    recall_ms = [r["memory_recalled"] * 1000 for r in with_memory]
    result = {
        "first_clip_without_s": round(med(without, "first_clip"), 3),
        "first_clip_with_s": round(med(with_memory, "first_clip"), 3),
        "first_clip_delta_s": round(med(with_memory, "first_clip") - med(without, "first_clip"),
                                    3),
        "llm_first_token_delta_s": round(med(with_memory, "llm_first_token")
                                         - med(without, "llm_first_token"), 3),
        "recall_wait_ms_p50": round(statistics.median(recall_ms), 2),
        "recall_wait_ms_p99": round(pct(recall_ms, 0.99), 2),
        "recall_timeouts": timeouts,
        "extract_cost_s": round(statistics.median(rules_costs), 4),
        "extract_cost_p99_s": round(pct(rules_costs, 0.99), 4),
        "extract_llm_cost_s": round(statistics.median(llm_costs), 3),
        "replies_each_way": len(without),
        "store_facts": len(OWN_FACTS) + others * 10,
        "seed_s": round(seed_s, 1),
        "quick": args.quick,
        "machine": f"{os.cpu_count()} cpus",
        "load_avg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    targets = {"first_clip_delta_s": TARGET_FIRST_CLIP_DELTA_S}
    print(f"\n{'metric':28} {'value':>10}  target")
    for k, v in result.items():
        mark = ""
        if k in targets:
            mark = f"<= {targets[k]}  {'ok' if v <= targets[k] else 'MISSED'}"
        print(f"{k:28} {v!s:>10}  {mark}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("memory_show-quick.json" if args.quick else "memory_show.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
