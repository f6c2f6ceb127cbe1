#!/usr/bin/env python
"""Micro-benchmark of moderation (issue #3): microseconds per message through the input rules.

Times a realistic mix of chat (mostly fine, some links, blocked words, caps and repetition
spam, emoji, right-to-left text) through: the first gate alone (``clean_viewer_text``), the
input rules (``check_input``), the :class:`Moderator` writing every decision to an audit
log (the background writer included, flushed before the clock stops), and the output check
on reply sentences. Prints a table and writes bench/results/moderation.json.

    .venv/bin/python bench/moderation.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # the repo, not bench/

from bots.events import ChatMessage, Role, Viewer  # noqa: E402
from bots.moderation.audit import AuditLog  # noqa: E402
from bots.moderation.errors import InputRejected  # noqa: E402
from bots.moderation.input import clean_viewer_text  # noqa: E402
from bots.moderation.matchers import compile_moderation  # noqa: E402
from bots.moderation.moderator import Moderator  # noqa: E402
from bots.moderation.output import check_output  # noqa: E402
from bots.moderation.rules import check_input  # noqa: E402
from bots.moderation.settings import ModerationSettings  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "moderation.json"

# Roughly what a busy chat looks like: short and medium lines, a few bad ones.
CHAT = [
    "Hi Mika! What game should we play tonight, and why?",
    "lol",
    "GG",
    "hahaha that is so funny mika",
    "what is your favourite snack?",
    "can you say hi to my sister, she is watching too",
    "😂😂😂",
    "that boss fight was insane",
    "POG",
    "first time here, love the vibe",
    "are you going to play minecraft later?",
    "mika sing a song please",
    "how old are you?",
    "what's the weather like where you live",
    "❤️❤️ best streamer",
    "مرحبا ميكا كيف حالك؟",
    "こんにちは！",
    "I just got home from work, what did I miss?",
    "do you like cats or dogs more",
    "!!! hype !!!",
    "can we get 100 followers today",
    "tell me a joke",
    "who made your model?",
    "good night chat, see you tomorrow",
    "Mika what do you think about pineapple on pizza",
    # the ones moderation refuses
    "follow me at example.com",
    "what the fuck",
    "WHAT IS UP CHAT HOW IS EVERYONE",
    "lolololololol",
    "s h i t",
]
REPLIES = [
    "Hi there! I think we should play something cozy tonight.",
    "My favourite snack is strawberry mochi, obviously.",
    "Thanks for stopping by, it means a lot!",
    "Cats, definitely cats. Sorry dog people.",
    "You can reach me at mika@example.com anytime!",
    "Check out example dot com for more.",
]


def make_events() -> list[ChatMessage]:
    viewers = [
        Viewer(id=str(i), name=f"viewer{i}", roles=frozenset({Role.SUBSCRIBER} if i % 4 else ()))
        for i in range(50)
    ]
    return [
        ChatMessage(viewer=viewers[i % len(viewers)], message=text, platform="twitch")
        for i, text in enumerate(CHAT * 4)
    ]


def time_cases(cases: dict[str, Callable[[], int]], *, repeats: int) -> dict[str, dict]:
    """Best and median microseconds per item of each case; rounds interleave the cases so
    load from other processes hits them alike. Each case returns how many items it did."""
    for fn in cases.values():
        fn()
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            t = time.perf_counter()
            n = fn()
            runs[name].append((time.perf_counter() - t) / n * 1e6)
    return {
        name: {
            "median_us": statistics.median(r),
            "best_us": min(r),
            "per_second_best": 1e6 / min(r),
        }
        for name, r in runs.items()
    }


def run_benchmark(*, quick: bool = False, out: Path | None = RESULTS) -> dict:
    """Run the benchmark, print a table, and write the report to ``out`` (None: nowhere).

    Returns:
        The report as written.
    """
    repeats, loops = (3, 20) if quick else (9, 200)
    settings = ModerationSettings()
    compiled = compile_moderation(settings)
    events = make_events()
    texts = [e.message for e in events]
    allowed = sum(check_input(e, compiled).allowed for e in events)

    def first_gate() -> int:
        for _ in range(loops):
            for text in texts:
                try:
                    clean_viewer_text(text, max_chars=settings.max_chars)
                except InputRejected:  # refusals are part of the mix
                    pass
        return loops * len(texts)

    def rules() -> int:
        for _ in range(loops):
            for event in events:
                check_input(event, compiled)
        return loops * len(events)

    def output() -> int:
        for _ in range(loops):
            for reply in REPLIES:
                check_output(reply, compiled)
        return loops * len(REPLIES)

    with tempfile.TemporaryDirectory() as tmp:
        audit_path = Path(tmp) / "audit.jsonl"

        def audited(every: int) -> Callable[[], int]:
            def run() -> int:
                log = AuditLog(audit_path)
                log.start()
                moderator = Moderator(
                    settings=ModerationSettings(audit_allow_every=every), audit=log
                )
                for _ in range(loops):
                    for event in events:
                        moderator.check_input(event)
                log.close()  # the writing counts too
                return loops * len(events)

            return run

        load_before = os.getloadavg()[0]
        results = time_cases(
            {
                "first gate only (clean_viewer_text)": first_gate,
                "check_input (all input rules)": rules,
                "Moderator + audit log, every decision": audited(1),
                "Moderator + audit log, 1 in 10 allows": audited(10),
                "check_output (per reply sentence)": output,
            },
            repeats=repeats,
        )
        load_after = os.getloadavg()[0]
        audit_bytes = audit_path.stat().st_size

    print(
        f"{len(events)} messages ({allowed} allowed), {loops} loops x {repeats} rounds, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'case':42s} {'median µs':>10s} {'best µs':>8s} {'best msg/s':>11s}")
    for name, r in results.items():
        print(
            f"{name:42s} {r['median_us']:10.2f} {r['best_us']:8.2f} {r['per_second_best']:11,.0f}"
        )
    print(f"load average (1 min) before/after: {load_before:.2f}/{load_after:.2f}")

    report = {
        "messages": len(events),
        "allowed": allowed,
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
        },
        "load_average_1min": {"before": load_before, "after": load_after},
        "quick": quick,
        "repeats": repeats,
        "loops": loops,
        "microseconds_per_message": results,
        "audit_bytes_last_run": audit_bytes,
    }
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {out}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (about a second)")
    args = parser.parse_args()
    run_benchmark(quick=args.quick)


if __name__ == "__main__":
    main()
