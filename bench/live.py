#!/usr/bin/env python
"""Benchmark of the live stream as a viewer experiences it (issue #13).

The real studio app (``StudioApp``, the default config: SmolLM2 + Piper + the sprite avatar)
runs in a child process with each persona's live stream on, pinned with this process to two
cores. Headless Chromium opens two overlay pages side by side: one plays the persona's live
stream over WebRTC, the other is forced onto the clip player (``&mode=clips``). Each prompt goes
to ``POST /api/chat``; its send time is taken with ``time.time()`` and compared with wall-clock
times read in the pages (``performance.timeOrigin + now``, calibrated against Python's clock).

Per reply:

- ``first_frame_on_stage``: prompt sent -> first frame decoded in the live page whose mouth
  region differs from every idle picture (the page's own per-frame series, ``__live.series``);
- ``clip_first_play``: prompt sent -> first clip of that reply starts playing in the clip page
  (``vstage.players[p].played``);
- frame gaps: intervals between frames presented in the live page while the reply speaks,
  minus one frame interval, and frames skipped (RTP timestamps);
- A/V sync: the lag that maximises the cross-correlation of the page's audio RMS and its
  mouth-opening series (refined between frames by a parabola through the peak).

Then the app's CPU (``/proc/<pid>/stat``) while the persona idles with one viewer, and with
none; the VP8 encode path's CPU per speaking frame at 25 fps 512x512 (``streams_per_core``);
and OBS's gap between sentences from ``bench/stage.py`` when it measures one.

Prints a table (figure, value, target, pass/fail) and writes ``bench/results/live.json``.

    .venv/bin/python bench/live.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # the repo, not bench/ (whose file names may shadow modules)

import numpy as np  # noqa: E402

logger = logging.getLogger("bench.live")

RESULTS = ROOT / "bench" / "results" / "live.json"
STAGE_RESULTS = ROOT / "bench" / "results" / "stage.json"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "bench-live-token-0123456789abcdef"
READY = "bench-live: ready"
CORES = (0, 1)

# What the viewers ask, in order; --quick takes the first three. Short, everyday chat, so the
# replies are a sentence or three (SmolLM2 is capped at 96 tokens, 3 sentences).
PROMPTS = [
    "hi Mika! what are we playing tonight?",
    "what's your favourite snack while streaming?",
    "tell me a short pun about cats",
    "do you like rainy days or sunny days?",
    "what music do you listen to when you relax?",
    "any tips for a new streamer?",
    "what would you cook for dinner tonight?",
    "which game made you laugh the most?",
    "say something nice to chat please",
    "good night Mika, see you tomorrow!",
]
WARMUP_PROMPT = "hello Mika, are you there?"

# Targets from the issue. ("<=", x): the figure must be at most x; (">=", x): at least x.
TARGETS: dict[str, tuple[str, float]] = {
    "first_frame_on_stage_p50_s": ("<=", 0.6),
    "live_speedup": (">=", 1.5),
    "gap_ms_p95": ("<=", 40.0),
    "obs_gap_ms_p95": ("<=", 40.0),
    "av_sync_ms_p95": ("<=", 80.0),
    "stream_cpu_idle": ("<=", 0.15),
}
SHOWN = [
    "first_frame_on_stage_p50_s", "first_frame_on_stage_p95_s", "clip_first_play_p50_s",
    "clip_first_play_p95_s", "live_speedup", "first_audio_on_stage_p50_s",
    "first_performed_p50_s", "on_air_p50_s", "on_air_to_first_frame_p50_s", "lead_in_p50_s",
    "release_to_display_p50_s", "gap_ms_p95",
    "gap_ms_max", "frames_skipped", "obs_gap_ms_p95", "av_sync_ms_p95",
    "stream_cpu_idle", "stream_cpu_no_viewer", "app_cpu_in_replies_p50",
    "browser_cpu_in_replies_p50", "encode_ms_per_frame", "streams_per_core",
]


# ------------------------------------------------------------------ pure helpers (tested)


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) by linear interpolation; None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    pos = q / 100 * (len(ordered) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class IdleMouth:
    """What the mouth region looks like while the avatar idles: the band of its mean luma
    (breathing moves the figure by whole pixels, so the band is a few levels wide)."""

    low: float
    high: float
    rest: float  # the median: the closed mouth
    diff_max: float = math.inf  # the largest frame-to-frame change of the region when idle

    @classmethod
    def from_lumas(cls, lumas: Sequence[float],
                   diffs: Sequence[float] | None = None) -> IdleMouth:
        if not lumas:
            raise ValueError("no idle frames to learn the closed mouth from")
        diff_max = max(diffs) if diffs else math.inf
        return cls(min(lumas), max(lumas), float(statistics.median(lumas)), diff_max)

    def margin(self) -> float:
        # Lossy video makes the same picture differ by a level or so; a mouth shape changes
        # the region's mean by several.
        return max(1.5, 0.25 * (self.high - self.low))

    def speaking(self, luma: float, diff: float = 0.0) -> bool:
        """Whether a frame's mouth region is outside anything seen while idle: its mean
        luma beyond the idle band, or its change since the frame before larger than any
        idle change (breathing shifts whole pixels; a new mouth shape changes more)."""
        m = self.margin()
        return (luma < self.low - m or luma > self.high + m
                or diff > 1.5 * self.diff_max + 0.5)


def first_speaking(rows: Sequence[dict], idle: IdleMouth, *, after_wall: float) -> dict | None:
    """The first per-frame record (``__live.series`` row) after ``after_wall`` (page wall ms)
    whose mouth region differs from the idle avatar."""
    for row in rows:
        if row["wall"] > after_wall and idle.speaking(row["luma"], row.get("diff") or 0.0):
            return row
    return None


def first_loud(rows: Sequence[dict], *, after_wall: float, level: float = 0.02) -> dict | None:
    """The first record after ``after_wall`` whose audio RMS reaches ``level``."""
    for row in rows:
        if row["wall"] > after_wall and (row.get("rms") or 0.0) >= level:
            return row
    return None


def speaking_window(rows: Sequence[dict], idle: IdleMouth, *,
                    after_wall: float) -> tuple[int, int] | None:
    """Indices ``(first, last)`` of the first and last frame after ``after_wall`` where the
    mouth differs from idle (a reply's sentences and the pauses between them)."""
    hits = [i for i, r in enumerate(rows)
            if r["wall"] > after_wall and idle.speaking(r["luma"], r.get("diff") or 0.0)]
    return (hits[0], hits[-1]) if hits else None


def frame_gaps_ms(times_ms: Sequence[float], frame_ms: float) -> list[float]:
    """Each interval between consecutive presented frames beyond one frame interval (0 when a
    frame came on time or early)."""
    return [max(0.0, (b - a) - frame_ms) for a, b in zip(times_ms, times_ms[1:], strict=False)]


def frames_skipped(rtp: Sequence[int | None], fps: int, clock_hz: int = 90_000) -> int:
    """Source frames never presented, from consecutive RTP timestamps (video: 90 kHz)."""
    step = clock_hz / fps
    skipped = 0
    stamps = [r for r in rtp if r is not None]
    for a, b in zip(stamps, stamps[1:], strict=False):
        advanced = round(((b - a) % 2**32) / step)
        if advanced > 1:
            skipped += advanced - 1
    return skipped


def best_lag(a: Sequence[float], b: Sequence[float], *, max_lag: int) -> float:
    """The shift of ``b`` against ``a`` (in samples; positive: ``b`` comes later) that
    maximises their normalised cross-correlation, refined between samples by a parabola
    through the peak and its neighbours."""
    x = np.asarray(a, float)
    y = np.asarray(b, float)
    if len(x) != len(y) or len(x) < 3:
        raise ValueError("two series of the same length (3 or more) are needed")
    x = (x - x.mean()) / (x.std() or 1.0)
    y = (y - y.mean()) / (y.std() or 1.0)
    max_lag = min(max_lag, len(x) - 2)
    lags = range(-max_lag, max_lag + 1)
    corr = []
    for lag in lags:
        xs, ys = (x[: len(x) - lag], y[lag:]) if lag >= 0 else (x[-lag:], y[: len(y) + lag])
        corr.append(float(np.mean(xs * ys)))
    i = int(np.argmax(corr))
    if 0 < i < len(corr) - 1:
        c0, c1, c2 = corr[i - 1], corr[i], corr[i + 1]
        denom = c0 - 2 * c1 + c2
        if denom < 0:  # a real peak: the vertex of the parabola lies within half a sample
            return lags[i] + 0.5 * (c0 - c2) / denom
    return float(lags[i])


def cpu_share(cpu_s: float, wall_s: float) -> float:
    """CPU seconds per wall second (1.0: one core busy)."""
    return cpu_s / wall_s if wall_s > 0 else float("nan")


def streams_per_core(cpu_per_frame_s: float, fps: int) -> float:
    """How many streams of ``fps`` one core could encode at ``cpu_per_frame_s`` a frame."""
    return 1.0 / (cpu_per_frame_s * fps) if cpu_per_frame_s > 0 else float("inf")


def verdict(name: str, value: Any) -> str:
    """``pass``, ``FAIL``, ``n/a`` (no value) or ``-`` (no target) for a figure."""
    target = TARGETS.get(name)
    if target is None:
        return "-"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    op, limit = target
    ok = value <= limit if op == "<=" else value >= limit
    return "pass" if ok else "FAIL"


def table(result: dict[str, Any], names: Sequence[str] = SHOWN) -> str:
    """The figures as a text table: name, value, target, pass/fail."""
    lines = [f"{'figure':<28} {'value':>10}  {'target':<8} verdict"]
    for name in names:
        value = result.get(name)
        target = TARGETS.get(name)
        shown = "null" if value is None else (f"{value:.3f}" if isinstance(value, float)
                                              else str(value))
        lines.append(f"{name:<28} {shown:>10}  "
                     f"{(target[0] + ' ' + format(target[1], 'g')) if target else '':<8} "
                     f"{verdict(name, value)}")
    return "\n".join(lines)


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


# ------------------------------------------------------------------ the app (child process)


@dataclass(slots=True)
class _Wiring:
    """The live stream objects the child reports on (None where the app wired them itself
    and keeps them out of reach)."""

    streams: dict[str, Any] = field(default_factory=dict)
    rtc: Any = None
    wired_by: str = "bench"
    # When each sentence went on air (the stream released its first tick), wall clock.
    on_air: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=400))
    # (reply id, sentence) -> seconds of rest mouth at the sentence's start.
    lead_in: dict[tuple[str, int], float] = field(default_factory=dict)

    def watch(self) -> None:
        for stream in self.streams.values():
            stream.on_sentence(self._on_sentence)

    def _on_sentence(self, change: Any) -> None:
        if change.reply_id is not None:
            wall = time.time() - (time.monotonic() - change.at)
            self.on_air.append({"reply_id": change.reply_id, "sentence": change.sentence,
                                "index": change.index, "wall": wall,
                                "lead_in_s": self.lead_in.get((change.reply_id,
                                                               change.sentence))})


def lead_in_frames(frames: np.ndarray, box: Sequence[int], *, level: float = 4.0) -> int:
    """Frames at the start of a sentence whose mouth region still looks like its first frame
    (the rest mouth before the first sound): mean absolute change of that region."""
    x, y, w, h = box
    region = frames[:, y:y + h, x:x + w, :3].astype(np.int16)
    for i in range(1, len(region)):
        if float(np.abs(region[i] - region[0]).mean()) > level:
            return i
    return len(region)


async def _serve(config_dir: Path, stats_path: Path) -> None:
    """Child process: the studio app with each persona's live stream; writes the stream's
    counters to ``stats_path`` twice a second."""
    import bots.app as app_module
    from avatar_engine.renderers.spriteset import SpriteSet
    from bots.app import StudioApp
    from bots.config import load_config
    from overlays.live import webrtc as webrtc_module
    from overlays.live.settings import LiveSettings
    from overlays.live.stage import LiveStage
    from overlays.live.stream import LiveStream
    from overlays.live.webrtc import LiveRTC
    from overlays.stage import Performed, StageEvent

    loaded: dict[str, Any] = {}
    load_personas = app_module.load_personas

    async def recording_load(*args: Any, **kwargs: Any) -> dict[str, Any]:
        personas = await load_personas(*args, **kwargs)
        loaded.update(personas)
        return personas

    app_module.load_personas = recording_load  # type: ignore[assignment]
    wiring = _Wiring()
    boxes: dict[str, Any] = {}

    class LeadInStage(LiveStage):
        """The live stage, noting how long each sentence keeps its rest mouth before the
        first sound (to split the viewer's wait)."""

        async def handle(self, event: StageEvent) -> None:
            if isinstance(event, Performed):
                perf = event.performance
                box = boxes.get(perf.persona)
                if box is not None:
                    n = lead_in_frames(perf.frames, box)
                    wiring.lead_in[(perf.reply_id, perf.index)] = n / perf.fps
            await super().handle(event)

    class RecordedRTC(LiveRTC):
        """The app's WebRTC side, kept where the bench can read its encoders."""

        async def start(self) -> None:
            wiring.rtc = self
            await super().start()

    # The app builds these by name at start-up: hand it the instrumented ones.
    app_module.LiveStage = LeadInStage  # type: ignore[misc]
    webrtc_module.LiveRTC = RecordedRTC  # type: ignore[misc]
    cfg = load_config(config_dir)
    app = StudioApp(cfg)
    runner = asyncio.create_task(app.run(), name="bench:studio")
    ready = asyncio.create_task(app.ready.wait(), name="bench:studio:ready")
    await asyncio.wait({runner, ready}, return_when=asyncio.FIRST_COMPLETED)
    if runner.done():
        runner.result()
        return
    assert app.server is not None and app.bus is not None
    settings = getattr(cfg.app, "live", None) or LiveSettings()
    boxes.update({pid: p.renderer.sprites.mouth_box for pid, p in loaded.items()
                  if isinstance(getattr(p.renderer, "sprites", None), SpriteSet)})
    async with contextlib.AsyncExitStack() as stack:
        live_stages = [s for s in app.bus.stages if isinstance(s, LiveStage)]
        if live_stages:
            # bots/app.py wires the live stream itself: measure that.
            wiring.streams, wiring.wired_by = dict(live_stages[0].streams), "bots.app"
            if wiring.rtc is None:
                wiring.wired_by = "bots.app (its WebRTC side out of reach: no encoder stats)"
        else:
            # Not wired in bots/app.py yet: the same wiring from the public classes.
            for pid, persona in loaded.items():
                wiring.streams[pid] = await stack.enter_async_context(LiveStream(
                    persona=pid, performer=persona.performer, sample_rate=settings.sample_rate,
                    lead_frames=settings.lead_frames, idle_batch=settings.idle_batch,
                    max_late_s=settings.max_late_s))
            await stack.enter_async_context(RecordedRTC(wiring.streams, settings=settings))
            app.bus.add_stage(LeadInStage(wiring.streams))
            app.server.set_live(wiring.rtc.answer)
        wiring.watch()
        print(READY, json.dumps({"port": app.server.port, "wired_by": wiring.wired_by,
                                 "personas": list(loaded)}), flush=True)
        try:
            while not runner.done():
                _write_stats(stats_path, wiring)
                await asyncio.sleep(0.5)
            runner.result()
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)


def _write_stats(path: Path, wiring: _Wiring) -> None:
    streams = {pid: {"ticks": s.ticks, "speech_frames": s.speech_frames,
                     "idle_rendered": s.idle_rendered, "rebased": s.rebased,
                     "subscribers": s.subscribers} for pid, s in wiring.streams.items()}
    encoders = {}
    if wiring.rtc is not None:
        for pid, enc in wiring.rtc.encoders.items():
            core = enc.core
            encoders[pid] = {"viewers": enc.viewers, "encoded": core.encoded,
                             "replayed": core.replayed, "keyframes": core.keyframes,
                             "encode_s": round(core.encode_s, 4)}
    stats = {"at": time.time(), "wired_by": wiring.wired_by, "streams": streams,
             "encoders": encoders,
             "connections": wiring.rtc.connections if wiring.rtc is not None else None,
             "on_air": list(wiring.on_air)}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(stats))
    tmp.replace(path)


# ------------------------------------------------------------------ the bench (parent)


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, grandchildren, ...)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cpu_of(pids: Iterable[int]) -> float:
    """CPU seconds of the processes still alive among ``pids``."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += proc_cpu_s(pid)
    return total


def pin_cores() -> list[int]:
    """Pin this process (and what it starts) to two cores, as the issue asks."""
    available = sorted(os.sched_getaffinity(0))
    wanted = [c for c in CORES if c in available] or available[:2]
    os.sched_setaffinity(0, wanted)
    return wanted


class App:
    """The studio app in a child process (``bench/live.py --serve``)."""

    def __init__(self, tmp: Path, port: int) -> None:
        self.tmp = tmp
        self.port = port
        self.config = tmp / "config"
        shutil.copytree(ROOT / "config", self.config)
        app_yaml = self.config / "vstage.yaml"
        app_yaml.write_text(app_yaml.read_text().replace("state_dir: var",
                                                         f"state_dir: {tmp / 'var'}"))
        self.stats_path = tmp / "stats.json"
        self.log_path = tmp / "app.log"
        self.proc: subprocess.Popen | None = None
        self.info: dict[str, Any] = {}

    def start(self, timeout: float = 300) -> None:
        env = {**os.environ, "VSTAGE_STUDIO__TOKEN": TOKEN,
               "VSTAGE_STUDIO__PORT": str(self.port)}
        log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", str(self.config),
             str(self.stats_path)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_path.read_text()
            line = next((ln for ln in text.splitlines() if ln.startswith(READY)), None)
            if line is not None:
                self.info = json.loads(line[len(READY):])
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the app did not start:\n{text[-3000:]}")
            time.sleep(0.2)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, page: str, **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in {"token": TOKEN, **params}.items())
        return f"{self.base}/{page}?{query}"

    def cpu_s(self) -> float:
        assert self.proc is not None
        return proc_cpu_s(self.proc.pid)

    def browser_cpu_s(self) -> float:
        """CPU seconds of the browser (every process this bench started but the app)."""
        assert self.proc is not None
        return cpu_of(p for p in descendants(os.getpid()) if p != self.proc.pid)

    def stats(self) -> dict[str, Any]:
        try:
            return json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return {}

    def chat(self, text: str, persona: str, user: str) -> str:
        """Send a viewer's line; returns its trace id (the reply's id)."""
        body = json.dumps({"text": text, "user": user, "persona": persona,
                           "role": "subscriber"}).encode()
        req = urllib.request.Request(self.url("api/chat"), data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())["trace_id"]
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"chat line {text!r} refused ({e.code}): "
                               f"{e.read().decode(errors='replace')[:300]}") from e

    def traces(self, n: int = 100) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.url("api/traces", n=str(n)), timeout=30) as resp:
            return json.loads(resp.read())["traces"]

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass(slots=True)
class ReplyFigures:
    """What one reply measured (seconds from the prompt; None: not seen)."""

    prompt: str
    reply_id: str
    first_frame_s: float | None = None
    first_audio_s: float | None = None
    clip_first_play_s: float | None = None
    sentences: int = 0
    gaps_ms: list[float] = field(default_factory=list)
    skipped: int = 0
    av_lag_ms: float | None = None
    speaking_frames: int = 0
    stages: dict[str, float] = field(default_factory=dict)
    on_air_s: float | None = None  # the stream released the reply's first tick
    lead_in_s: float | None = None  # the first sentence's rest mouth before its first sound
    performed_s: float | None = None  # the first sentence performed (trace first_clip)
    app_cpu: float | None = None  # CPU share of the app while the reply was made and played
    browser_cpu: float | None = None  # of the browser (both pages)
    note: str | None = None


def _page_offset_ms(page) -> float:
    """Page wall clock minus Python's ``time.time()``, in ms (midpoint of a round trip)."""
    best = None
    for _ in range(5):
        t0 = time.time() * 1000
        wall = page.evaluate("() => performance.timeOrigin + performance.now()")
        t1 = time.time() * 1000
        est = (wall - (t0 + t1) / 2, t1 - t0)
        if best is None or est[1] < best[1]:
            best = est
    assert best is not None
    return best[0]


def _marks(page, reply_id: str) -> list[dict]:
    return page.evaluate("(id) => __live.marks.filter((m) => m.reply_id === id)", reply_id)


def _played(page, persona: str, reply_id: str) -> list[dict]:
    return page.evaluate(
        "([p, id]) => (window.vstage.players && vstage.players[p] ? vstage.players[p].played"
        " : []).filter((c) => c.reply_id === id)", [persona, reply_id])


def _wait(check: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return False


def _open_pages(browser, app: App, persona: str, mouth_box: list[int], size: tuple[int, int]):
    live = browser.new_page(viewport={"width": size[0], "height": size[1]})
    clips = browser.new_page(viewport={"width": size[0], "height": size[1]})
    live.goto(app.url("overlay", persona=persona, probe="1"))
    clips.goto(app.url("overlay", persona=persona, mode="clips"))
    live.wait_for_function(f"() => window.__live && __live.framesDrawn('{persona}') > 10",
                           timeout=60_000)
    live.evaluate(f"(box) => __live.setProbe('{persona}', box)", mouth_box)
    clips.wait_for_function(
        f"() => window.vstage && vstage.players && vstage.players['{persona}']"
        f" && !vstage.players['{persona}'].idle.paused", timeout=60_000)  # the idle loop plays
    return live, clips


def _measure_reply(live, clips, app: App, persona: str, prompt: str, idle: IdleMouth, *,
                   fps: int, user: str, timeout: float = 90.0) -> ReplyFigures:
    live_off, clip_off = _page_offset_ms(live), _page_offset_ms(clips)
    clip_origin = clips.evaluate("() => performance.timeOrigin")
    since_t = live.evaluate("() => __live.now()")
    cpu0, bcpu0, t0 = app.cpu_s(), app.browser_cpu_s(), time.monotonic()
    sent = time.time() * 1000
    reply_id = app.chat(prompt, persona, user)
    fig = ReplyFigures(prompt=prompt, reply_id=reply_id)

    def finished() -> bool:
        return any(m["type"] in ("reply_done", "reply_cancelled")
                   for m in _marks(live, reply_id))

    if not _wait(finished, timeout):
        fig.note = "no reply_done within the timeout"
        return fig
    marks = _marks(live, reply_id)
    if any(m["type"] == "reply_cancelled" for m in marks):
        fig.note = "reply cancelled"
    performed = [m for m in marks if m["type"] == "performed"]
    fig.sentences = len(performed)

    # The clip page: every clip of the reply played to its end (clips lag the live stream).
    def clips_done() -> bool:
        wanted = {m["index"] for m in _marks(clips, reply_id) if m["type"] == "clip"}
        played = _played(clips, persona, reply_id)
        return (len(wanted) >= fig.sentences and all(
            any(p["index"] == i and p.get("ended") for p in played) for i in wanted))

    if not _wait(clips_done, timeout):
        fig.note = (fig.note or "") + " clip page did not finish the reply"
    time.sleep(0.8)  # the live page's last frames and audio (it played the reply first)
    wall_s = time.monotonic() - t0
    fig.app_cpu = cpu_share(app.cpu_s() - cpu0, wall_s)
    fig.browser_cpu = cpu_share(app.browser_cpu_s() - bcpu0, wall_s)
    on_air = sorted((a["wall"], a.get("lead_in_s")) for a in app.stats().get("on_air", [])
                    if a["reply_id"] == reply_id)
    if on_air:
        fig.on_air_s = on_air[0][0] - sent / 1000
        fig.lead_in_s = on_air[0][1]

    played = _played(clips, persona, reply_id)
    if played:
        first = min(p["at"] for p in played)
        fig.clip_first_play_s = (clip_origin + first - clip_off - sent) / 1000

    rows = live.evaluate(f"(since) => __live.series('{persona}', since)", since_t)
    after = sent + live_off
    hit = first_speaking(rows, idle, after_wall=after)
    if hit is not None:
        fig.first_frame_s = (hit["wall"] - live_off - sent) / 1000
    loud = first_loud(rows, after_wall=after)
    if loud is not None:
        fig.first_audio_s = (loud["wall"] - live_off - sent) / 1000
    window = speaking_window(rows, idle, after_wall=after)
    if window is not None:
        a, b = window
        span = rows[a: b + 1]
        fig.speaking_frames = len(span)
        fig.gaps_ms = frame_gaps_ms([r["t"] for r in span], 1000 / fps)
        fig.skipped = frames_skipped([r.get("rtp") for r in span], fps)
        # A/V sync over the reply plus half a second each side (onset and end included).
        pad = round(fps / 2)
        sync = rows[max(0, a - pad): b + 1 + pad]
        rms = [r.get("rms") or 0.0 for r in sync]
        opening = [abs(r["luma"] - idle.rest) for r in sync]
        if len(sync) >= 10 and np.std(rms) > 0 and np.std(opening) > 0:
            frame_ms = float(np.median(np.diff([r["t"] for r in sync])))
            fig.av_lag_ms = best_lag(rms, opening, max_lag=8) * frame_ms
    return fig


def _idle_mouth(live, persona: str, seconds: float) -> IdleMouth:
    """The mouth region's luma band over ``seconds`` of idle (longer than one breath)."""
    # The persona greets the show when it starts: learn only from a stretch with no voice
    # in it (a mouth moving with the greeting is not the idle avatar).
    deadline = time.monotonic() + 60.0
    rows: list[dict] = []
    while time.monotonic() < deadline:
        since = live.evaluate("() => __live.now()")
        time.sleep(seconds)
        rows = live.evaluate(f"(since) => __live.series('{persona}', since)", since)
        if rows and all((r.get("rms") or 0.0) < 0.005 for r in rows):
            break
    return IdleMouth.from_lumas([r["luma"] for r in rows], [r["diff"] for r in rows[1:]])


def _cpu_window(app: App, seconds: float) -> float:
    c0, t0 = app.cpu_s(), time.monotonic()
    time.sleep(seconds)
    return cpu_share(app.cpu_s() - c0, time.monotonic() - t0)


def encode_path_cpu(frames: np.ndarray, audio: np.ndarray, *, fps: int,
                    sample_rate: int = 48000) -> dict[str, float]:
    """CPU per speaking frame of the stream's encode path, on this thread: packing colour and
    alpha side by side, VP8 (the live encoder with the app's settings, every frame encoded
    now as speech is) and Opus for that frame's audio (aiortc's encoder, one viewer)."""
    import av
    from aiortc.codecs.opus import OpusEncoder

    from overlays.live.encoder import Vp8Core
    from overlays.live.settings import LiveSettings
    from overlays.live.stream import LiveTick

    h, w = frames.shape[1:3]
    core = Vp8Core(size=(w, h), fps=fps, settings=LiveSettings())
    opus = OpusEncoder()
    spt = sample_rate // fps
    ticks = [LiveTick(index=i, pts_s=i / fps, rgba=frames[i], audio=audio[i * spt:(i + 1) * spt],
                      reply_id="r", sentence=0, text="", idle_key=None, released=0.0)
             for i in range(len(frames))]
    core.encode(ticks[0], True)  # open the codec outside the timing
    t0 = time.thread_time()
    video_s = 0.0
    audio_pts = 0
    for tick in ticks[1:]:
        v0 = time.thread_time()
        core.encode(tick, False)
        video_s += time.thread_time() - v0
        for k in range(0, spt, 960):  # 20 ms Opus frames
            frame = av.AudioFrame.from_ndarray(tick.audio[k:k + 960].reshape(1, -1),
                                               format="s16", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = audio_pts
            audio_pts += 960
            opus.encode(frame)
    total = time.thread_time() - t0
    n = len(ticks) - 1
    return {"per_frame_s": total / n, "video_per_frame_s": video_s / n, "frames": n}


def _speaking_frames(config_dir: Path, persona_id: str, seconds: float) -> tuple[np.ndarray,
                                                                                 np.ndarray, int]:
    """Real speaking frames and 48 kHz audio of the persona (Piper + the sprite avatar)."""
    from avatar_engine.performer import LocalPerformer
    from avatar_engine.renderers.sprite import SpriteRenderer
    from avatar_engine.renderers.spriteset import SpriteSet
    from avatar_engine.voice.piper import PiperTTS
    from bots.config import load_config
    from overlays.live.stream import speech_to_ticks

    cfg = load_config(config_dir)
    persona = cfg.persona(persona_id)
    tts = PiperTTS(settings=persona.voice)
    sprites = SpriteSet.load(config_dir / "avatars" / "default")
    renderer = SpriteRenderer(sprites=sprites, fps=persona.avatar.fps, device="cpu")
    performer = LocalPerformer(persona=persona_id, renderer=renderer)
    text = ("Hello chat, thanks for dropping by tonight! We are going to play something cozy, "
            "eat a few snacks and talk about whatever you like.")
    frames, audio = [], []
    fps = performer.fps
    total = 0.0
    while total < seconds:
        speech = tts.synthesize(text)
        perf = asyncio.run(performer.perform(speech, reply_id="enc", index=len(frames)))
        frames.append(perf.frames)
        audio.append(speech_to_ticks(perf, 48000, 48000 // fps))
        total += perf.duration
    return np.concatenate(frames), np.concatenate(audio), fps


def obs_gap() -> tuple[float | None, str | None]:
    """OBS's gap between sentences from ``bench/stage.py`` (run here), or why there is none."""
    source = (ROOT / "bench" / "stage.py").read_text()
    if "obs_gap_ms_p95" not in source:
        return None, "bench/stage.py does not measure obs_gap_ms_p95 (the live OBS source) yet"
    if shutil.which("obs") is None:
        return None, "OBS is not installed here"
    try:
        done = subprocess.run([sys.executable, str(ROOT / "bench" / "stage.py"), "--quick"],
                              cwd=ROOT, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return None, "bench/stage.py --quick ran over 600 s"
    if done.returncode != 0:
        return None, f"bench/stage.py failed: {done.stderr.strip()[-300:]}"
    value = json.loads(STAGE_RESULTS.read_text()).get("obs_gap_ms_p95")
    return value, None if value is not None else "bench/stage.py wrote no obs_gap_ms_p95"


def run(quick: bool, *, with_obs: bool) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from avatar_engine.renderers.spriteset import SpriteSet
    from tests.netutil import free_port

    cores = pin_cores()
    load_before = os.getloadavg()
    prompts = PROMPTS[:3] if quick else PROMPTS
    idle_window = 10.0 if quick else 30.0
    persona = "mika"
    sprites = SpriteSet.load(ROOT / "config" / "avatars" / "default")
    mouth_box = list(sprites.mouth_box)
    size = tuple(sprites.size)
    replies: list[ReplyFigures] = []
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="vstage-bench-live-") as tmp_s:
        tmp = Path(tmp_s)
        app = App(tmp, free_port())
        t0 = time.monotonic()
        app.start()
        result["app_start_s"] = round(time.monotonic() - t0, 2)
        result["wired_by"] = app.info.get("wired_by")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=CHROMIUM,
                    args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update",
                          "--disable-sync", "--autoplay-policy=no-user-gesture-required"])
                live, clips = _open_pages(browser, app, persona, mouth_box, size)
                fps = 25
                idle = _idle_mouth(live, persona, 5.0)  # longer than one breath (4.5 s)
                result["idle_mouth_luma"] = [round(idle.low, 2), round(idle.high, 2)]
                result["idle_mouth_diff_max"] = round(idle.diff_max, 2)
                warm = _measure_reply(live, clips, app, persona, WARMUP_PROMPT, idle, fps=fps,
                                      user="viewer_warmup")
                logger.info("warm-up reply: %s", warm)
                for i, prompt in enumerate(prompts):
                    time.sleep(1.0)  # idle between replies, as a show has
                    # One viewer a line: a viewer's cooldown is not what is measured here.
                    fig = _measure_reply(live, clips, app, persona, prompt, idle, fps=fps,
                                         user=f"viewer_{i + 1:02d}")
                    logger.info("reply: %s", fig)
                    print(f"  reply {len(replies) + 1}/{len(prompts)}: first frame "
                          f"{fig.first_frame_s}, clip {fig.clip_first_play_s}, "
                          f"{fig.sentences} sentence(s) {fig.note or ''}", flush=True)
                    replies.append(fig)
                traces = {t["trace_id"]: t for t in app.traces(200)}
                for fig in replies:
                    trace = traces.get(fig.reply_id, {})
                    fig.stages = trace.get("stages", {})
                    if "first_clip" in fig.stages:
                        # Trace times count from its arrival; the POST took a few ms.
                        fig.performed_s = fig.stages["first_clip"]
                live_stats = app.stats()
                # CPU of the app while the persona idles: one live viewer, then none.
                clips.close()
                time.sleep(3.0)
                result["stream_cpu_idle"] = _r(_cpu_window(app, idle_window))
                result["idle_viewers"] = app.stats().get("connections")
                live.close()
                _wait(lambda: app.stats().get("connections") == 0, 30)
                time.sleep(3.0)
                result["stream_cpu_no_viewer"] = _r(_cpu_window(app, idle_window))
                result["no_viewer_connections"] = app.stats().get("connections")
                browser.close()
        finally:
            app.stop()
        result["app_log_errors"] = [ln for ln in app.log_path.read_text().splitlines()
                                    if "Traceback" in ln or " ERROR " in ln][:10]

        # The encode path alone, with the app stopped (its CPU is not shared now).
        frames, audio, fps = _speaking_frames(app.config, persona, 4.0 if quick else 10.0)
        enc = encode_path_cpu(frames, audio, fps=fps)

    result["loadavg_1m"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    obs_value, obs_reason = obs_gap() if with_obs else (None, "skipped (--no-obs)")
    return _figures(result, replies, live_stats, enc, fps, obs_value, obs_reason, quick, cores,
                    frames.shape)


def _figures(result: dict[str, Any], replies: list[ReplyFigures], live_stats: dict[str, Any],
             enc: dict[str, float], fps: int, obs_value: float | None,
             obs_reason: str | None, quick: bool, cores: list[int],
             frame_shape: tuple[int, ...]) -> dict[str, Any]:
    live_s = [f.first_frame_s for f in replies if f.first_frame_s is not None]
    audio_s = [f.first_audio_s for f in replies if f.first_audio_s is not None]
    clip_s = [f.clip_first_play_s for f in replies if f.clip_first_play_s is not None]
    gaps = [g for f in replies for g in f.gaps_ms]
    lags = [abs(f.av_lag_ms) for f in replies if f.av_lag_ms is not None]
    live_p50, clip_p50 = percentile(live_s, 50), percentile(clip_s, 50)
    stage_names = ("dequeued", "llm_first_token", "llm_first_sentence", "tts_first_audio",
                   "first_clip", "on_stage", "llm_done", "done")
    stages = {name: _r(percentile([f.stages[name] for f in replies if name in f.stages], 50))
              for name in stage_names}
    encoders = live_stats.get("encoders", {})
    in_app = [e["encode_s"] / e["encoded"] for e in encoders.values() if e.get("encoded")]
    figures = {
        "first_frame_on_stage_p50_s": _r(live_p50),
        "first_frame_on_stage_p95_s": _r(percentile(live_s, 95)),
        "clip_first_play_p50_s": _r(clip_p50),
        "clip_first_play_p95_s": _r(percentile(clip_s, 95)),
        "live_speedup": _r(clip_p50 / live_p50) if live_p50 and clip_p50 else None,
        "first_audio_on_stage_p50_s": _r(percentile(audio_s, 50)),
        "first_performed_p50_s": _r(percentile(
            [f.performed_s for f in replies if f.performed_s is not None], 50)),
        "on_air_p50_s": _r(percentile([f.on_air_s for f in replies if f.on_air_s is not None],
                                      50)),
        "on_air_to_first_frame_p50_s": _r(percentile(
            [f.first_frame_s - f.on_air_s for f in replies
             if f.first_frame_s is not None and f.on_air_s is not None], 50)),
        "lead_in_p50_s": _r(percentile(
            [f.lead_in_s for f in replies if f.lead_in_s is not None], 50)),
        "release_to_display_p50_s": _r(percentile(
            [f.first_frame_s - f.on_air_s - f.lead_in_s for f in replies
             if f.first_frame_s is not None and f.on_air_s is not None
             and f.lead_in_s is not None], 50)),
        "app_cpu_in_replies_p50": _r(percentile(
            [f.app_cpu for f in replies if f.app_cpu is not None], 50)),
        "browser_cpu_in_replies_p50": _r(percentile(
            [f.browser_cpu for f in replies if f.browser_cpu is not None], 50)),
        "gap_ms_p95": _r(percentile(gaps, 95), 1),
        "gap_ms_p50": _r(percentile(gaps, 50), 1),
        "gap_ms_max": _r(max(gaps), 1) if gaps else None,
        "frames_skipped": sum(f.skipped for f in replies),
        "speaking_frames": sum(f.speaking_frames for f in replies),
        "obs_gap_ms_p95": obs_value,
        "obs_gap_reason": obs_reason,
        "av_sync_ms_p95": _r(percentile(lags, 95), 1),
        "av_sync_ms_p50": _r(percentile(lags, 50), 1),
        "encode_ms_per_frame": _r(enc["per_frame_s"] * 1000, 2),
        "encode_video_ms_per_frame": _r(enc["video_per_frame_s"] * 1000, 2),
        "encode_ms_per_live_frame_in_app": _r(statistics.mean(in_app) * 1000, 2)
        if in_app else None,
        "streams_per_core": _r(streams_per_core(enc["per_frame_s"], fps), 1),
        "encode_frame_size": f"{frame_shape[2]}x{frame_shape[1]} at {fps} fps",
        "replies": len(replies),
        "replies_measured": len(live_s),
        "trace_p50_s": stages,
        "per_reply": [asdict(f) | {"gaps_ms": None, "gap_ms_max": _r(max(f.gaps_ms), 1)
                                   if f.gaps_ms else None} for f in replies],
        "live_stats": live_stats,
        **result,
        "quick": quick,
        "cores": cores,
        "host": platform.node(),
        "python": platform.python_version(),
        "targets": {k: f"{op} {v:g}" for k, (op, v) in TARGETS.items()},
    }
    figures["verdicts"] = {k: verdict(k, figures.get(k)) for k in TARGETS}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 prompts, short idle windows")
    parser.add_argument("--no-obs", action="store_true", help="skip OBS's gap (bench/stage.py)")
    parser.add_argument("--serve", nargs=2, metavar=("CONFIG", "STATS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.serve:
        asyncio.run(_serve(Path(args.serve[0]), Path(args.serve[1])))
        return
    result = run(args.quick, with_obs=not args.no_obs)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print("trace p50 (s from received):", result["trace_p50_s"])
    missed = [k for k, v in result["verdicts"].items() if v == "FAIL"]
    print("targets met" if not missed else f"TARGETS MISSED: {', '.join(missed)}")
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
