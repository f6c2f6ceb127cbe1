#!/usr/bin/env python
"""Benchmark of idle private conversations (``/talk``, issue #15): what a session costs while
nobody speaks, with the persona's idle work shared between sessions and without.

N sessions (1, 5, 10, 20 by default) of the default persona are opened on a real
:class:`~bots.talk.hub.TalkHub` (the embedded persona: sprite avatar 512x512 at 25 fps), each
stream consumed as ``TalkRTC`` consumes it: a :class:`~overlays.live.encoder.SharedVideoEncoder`
per session with one viewer whose VP8 frames and Opus packets are drained as aiortc's tracks
read them (RTP, SRTP and ICE are not run). Nobody speaks. After a warm-up (idle pictures
drawn, idle packet caches filled) the process's CPU time is measured over ``--seconds``, and
split by thread (the event loop, the encoder threads, the idle cache threads, ``to_thread``
workers, native threads such as torch's).

Both ways run side by side in one process: ``shared`` (the hub's default: one
:class:`~overlays.live.idle.IdleSource` per persona renderer, one idle packet cache per
encoder settings, steady silence reused, replay-only ticks on the loop) and ``own``
(``TalkHub(share_idle=False)``: each session draws, hashes and encodes its own idle frames, as
before). Reported per way and N: process cores, cores per session, and cores per session on
top of the first (``(cores(N) - cores(1)) / (N - 1)``), ticks per session per second.

Prints a table and writes ``bench/results/talk_idle.json``.

    .venv/bin/python bench/talk_idle.py [--sessions 1,5,10,20] [--seconds 10] [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # the repo, not bench/ (whose file names may shadow modules)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from typing import Any  # noqa: E402

logger = logging.getLogger("bench.talk_idle")

RESULTS = ROOT / "bench" / "results" / "talk_idle.json"
_TICK_S = os.sysconf("SC_CLK_TCK")


def thread_cpu() -> dict[str, float]:
    """CPU seconds of every thread of this process so far, summed by thread kind."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = defaultdict(float)
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        comm = stat[stat.index("(") + 1: stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        seconds = (int(fields[11]) + int(fields[12])) / _TICK_S  # utime + stime
        out[_kind(names.get(int(task.name)), comm)] += seconds
    return dict(out)


def _kind(name: str | None, comm: str) -> str:
    if name is None:
        return "native"  # torch, onnxruntime, CTranslate2, llama.cpp
    if name == "MainThread":
        return "loop"
    if name.startswith("live-idle-cache"):
        return "idle-cache"
    if name.startswith("live-"):
        return "encoder"
    if name.startswith("asyncio"):
        return "to_thread"
    return "other"


async def _drain(viewer: Any) -> None:
    """Read a viewer's VP8 frames and Opus packets as aiortc's tracks would, until closed."""

    async def video() -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                await viewer.next_packet()

    async def audio() -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                await viewer.next_audio()

    async with asyncio.TaskGroup() as tg:
        tg.create_task(video(), name=f"bench:{viewer.name}:video")
        tg.create_task(audio(), name=f"bench:{viewer.name}:audio")


async def measure(persona: Any, hearing: tuple[Any, Any], *, shared: bool, n: int,
                  warm_s: float, seconds: float) -> dict[str, Any]:
    """Open ``n`` idle sessions with one viewer each; CPU over ``seconds`` after ``warm_s``."""
    from bots.hearing.settings import HearingSettings
    from bots.orchestrator.fairshare import FairShare
    from bots.talk.hub import TalkHub
    from bots.talk.settings import TalkSettings
    from overlays.live.encoder import SharedVideoEncoder
    from overlays.live.settings import LiveSettings

    live = LiveSettings()
    vad, stt = hearing
    async with contextlib.AsyncExitStack() as stack:
        # (An older checkout without the switch runs its one way: ``--ways own``.)
        switch = {"share_idle": shared} if shared or _has_switch() else {}
        hub = TalkHub(personas={persona.id: persona},
                      settings=TalkSettings(max_sessions=max(n, 1), idle_timeout_s=3600),
                      hearing=HearingSettings(), live=live, fair=FairShare(), vad=vad,
                      stt=stt, **switch)
        await stack.enter_async_context(hub)
        sessions, encoders, viewers, tasks = [], [], [], []
        for i in range(n):
            session = await hub.open(persona.id)
            encoder = SharedVideoEncoder(stream=session.stream, settings=live)
            await stack.enter_async_context(encoder)
            viewer = encoder.add_viewer(f"learner{i}")
            sessions.append(session)
            encoders.append(encoder)
            viewers.append(viewer)
            tasks.append(asyncio.create_task(_drain(viewer), name=f"bench:learner{i}:drain"))
        try:
            await asyncio.sleep(warm_s)
            ticks0 = [s.stream.ticks for s in sessions]
            sent0 = [v.video_sent for v in viewers]
            counts0 = _counters(encoders, sessions)
            threads0, cpu0, wall0 = thread_cpu(), time.process_time(), time.monotonic()
            await asyncio.sleep(seconds)
            threads1, cpu1, wall1 = thread_cpu(), time.process_time(), time.monotonic()
            counts = {k: v - counts0[k] for k, v in _counters(encoders, sessions).items()}
            ticks = [s.stream.ticks - t for s, t in zip(sessions, ticks0, strict=True)]
            sent = [v.video_sent - t for v, t in zip(viewers, sent0, strict=True)]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for s in list(hub.sessions):
                await hub.close(s, "bench")
        wall = wall1 - wall0
        cores = (cpu1 - cpu0) / wall
        split = {k: round((threads1.get(k, 0.0) - threads0.get(k, 0.0)) / wall, 3)
                 for k in sorted(set(threads0) | set(threads1))}
        return {
            "way": "shared" if shared else "own", "sessions": n, "wall_s": round(wall, 2),
            "cores": round(cores, 3), "cores_per_session": round(cores / max(n, 1), 4),
            "threads": split,
            "ticks_per_session_s_min": round(min(ticks, default=0) / wall, 2),
            "video_per_session_s_min": round(min(sent, default=0) / wall, 2),
            **counts,  # over the measured seconds
        }


def _has_switch() -> bool:
    import inspect

    from bots.talk.hub import TalkHub

    return "share_idle" in inspect.signature(TalkHub).parameters


def _counters(encoders: list[Any], sessions: list[Any]) -> dict[str, int]:
    """Work counters summed over the sessions (0 where an older checkout lacks one)."""

    def total(objs: list[Any], name: str) -> int:
        return sum(int(getattr(o, name, 0)) for o in objs)

    cores = [e.core for e in encoders]
    audio = [e.audio for e in encoders]
    return {"vp8_encoded": total(cores, "encoded"), "vp8_replayed": total(cores, "replayed"),
            "opus_encoded": total(audio, "encoded"), "opus_reused": total(audio, "reused"),
            "inline_ticks": total(encoders, "inline"),
            "idle_drawn_by_streams": total([s.stream for s in sessions], "idle_rendered"),
            "rebased": total([s.stream for s in sessions], "rebased")}


async def baseline(persona: Any, hearing: tuple[Any, Any], seconds: float) -> float:
    """Process cores with the hub up and no session (the event loop's own tick)."""
    from bots.hearing.settings import HearingSettings
    from bots.orchestrator.fairshare import FairShare
    from bots.talk.hub import TalkHub
    from bots.talk.settings import TalkSettings
    from overlays.live.settings import LiveSettings

    vad, stt = hearing
    async with TalkHub(personas={persona.id: persona}, settings=TalkSettings(),
                       hearing=HearingSettings(), live=LiveSettings(), fair=FairShare(),
                       vad=vad, stt=stt):
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        return (time.process_time() - cpu0) / (time.monotonic() - wall0)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from bots.app import load_personas
    from bots.config import load_config
    from bots.hearing.settings import HearingSettings
    from bots.hearing.stt import WhisperSTT
    from bots.hearing.vad import SileroVAD

    config = load_config(ROOT / "config")
    state = Path(tempfile.mkdtemp(prefix="talk-idle-"))
    config = config.model_copy(update={"app": config.app.model_copy(update={"state_dir": state})})
    pid = config.app.default_persona
    persona = (await load_personas(config, [pid]))[pid]
    hearing = (SileroVAD(), WhisperSTT(settings=HearingSettings()))
    try:
        base = await baseline(persona, hearing, min(args.seconds, 5))
        rows = []
        for n in args.sessions:
            for shared in (way == "shared" for way in args.ways):
                row = await measure(persona, hearing, shared=shared, n=n, warm_s=args.warm,
                                    seconds=args.seconds)
                rows.append(row)
                logger.info("%s", row)
    finally:
        await persona.aclose()
    one = {r["way"]: r["cores"] for r in rows if r["sessions"] == 1}
    for r in rows:
        n = r["sessions"]
        r["cores_per_session_over_first"] = (
            round((r["cores"] - one[r["way"]]) / (n - 1), 4) if n > 1 and r["way"] in one
            else None)
    return {
        "bench": "talk_idle", "persona": pid, "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg": os.getloadavg()},
        "seconds": args.seconds, "warm_s": args.warm, "baseline_cores": round(base, 3),
        "rows": rows,
    }


def table(result: dict[str, Any]) -> str:
    head = (f"{'way':<7}{'N':>4}{'cores':>8}{'/session':>10}{'/extra':>9}{'ticks/s':>9}"
            f"{'loop':>7}{'enc':>7}{'cache':>7}{'thread':>8}{'native':>8}{'vp8 enc':>9}"
            f"{'opus enc':>10}")
    lines = [f"baseline (hub, no session): {result['baseline_cores']} cores", head]
    for r in result["rows"]:
        t = r["threads"]
        extra = r["cores_per_session_over_first"]
        lines.append(
            f"{r['way']:<7}{r['sessions']:>4}{r['cores']:>8.3f}{r['cores_per_session']:>10.4f}"
            f"{'-' if extra is None else f'{extra:.4f}':>9}{r['ticks_per_session_s_min']:>9.1f}"
            f"{t.get('loop', 0):>7.3f}{t.get('encoder', 0):>7.3f}{t.get('idle-cache', 0):>7.3f}"
            f"{t.get('to_thread', 0):>8.3f}{t.get('native', 0):>8.3f}{r['vp8_encoded']:>9}"
            f"{r['opus_encoded']:>10}")
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--sessions", default="1,5,10,20",
                   help="comma-separated session counts (default 1,5,10,20)")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    p.add_argument("--warm", type=float, default=6.0,
                   help="seconds before measuring (pictures drawn, caches filled)")
    p.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    p.add_argument("--quick", action="store_true", help="1 and 5 sessions, 5 s each")
    p.add_argument("--ways", default="own,shared",
                   help="own (each session its own idle work), shared, or both (default)")
    args = p.parse_args(argv)
    args.sessions = [int(x) for x in args.sessions.split(",") if x.strip()]
    args.ways = [w.strip() for w in args.ways.split(",") if w.strip()]
    if not args.ways or set(args.ways) - {"own", "shared"}:
        p.error("--ways: own, shared or own,shared")
    if args.quick:
        args.sessions, args.seconds, args.warm = [1, 5], 5.0, 4.0
    if not args.sessions or min(args.sessions) < 1:
        p.error("--sessions: positive counts, e.g. 1,5,10")
    return args


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    arguments = parse()
    outcome = asyncio.run(main(arguments))
    print(table(outcome))
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(outcome, indent=2))
    print(f"wrote {arguments.out}")
