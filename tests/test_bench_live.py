"""The maths of ``bench/live.py`` on synthetic per-frame series: percentiles, the first speaking
frame against the idle mouth, frame gaps, skipped frames, the A/V lag, CPU figures, verdicts."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_live", ROOT / "bench" / "live.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    path = list(sys.path)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = path  # the bench points sys.path[0] at the repo; leave pytest's as it was
    return module


bench = _load_bench()
FPS = 25


def _rows(lumas, *, start_wall=1_000.0, frame_ms=40.0, rms=None):
    return [{"t": i * frame_ms, "wall": start_wall + i * frame_ms, "luma": float(v),
             "rms": 0.0 if rms is None else float(rms[i]), "rtp": i * 3600}
            for i, v in enumerate(lumas)]


def test_percentile_interpolates_and_handles_edges():
    assert bench.percentile([], 50) is None
    assert bench.percentile([3.0], 95) == 3.0
    assert bench.percentile([1, 2, 3, 4], 50) == 2.5
    assert bench.percentile(range(101), 95) == pytest.approx(95)
    assert bench.percentile([10, 0, 5], 100) == 10


def test_first_speaking_frame_is_the_first_mouth_outside_the_idle_band():
    # Idle: breathing moves the mouth region's luma between 100 and 102.
    idle = bench.IdleMouth.from_lumas([100, 101, 102, 101, 100])
    assert not idle.speaking(103)  # inside the margin: lossy noise, not a mouth
    assert idle.speaking(110) and idle.speaking(90)
    lumas = [101, 100, 102, 101, 112, 95, 101, 120, 101]
    rows = _rows(lumas)
    hit = bench.first_speaking(rows, idle, after_wall=rows[1]["wall"])
    assert hit is rows[4]
    # Only frames after the prompt count.
    assert bench.first_speaking(rows, idle, after_wall=rows[5]["wall"]) is rows[7]
    assert bench.speaking_window(rows, idle, after_wall=rows[0]["wall"]) == (4, 7)
    assert bench.first_speaking(_rows([101] * 20), idle, after_wall=0) is None
    with pytest.raises(ValueError):
        bench.IdleMouth.from_lumas([])


def test_first_loud_frame():
    rows = _rows([100] * 6, rms=[0, 0.001, 0.03, 0.0, 0.2, 0.1])
    assert bench.first_loud(rows, after_wall=0) is rows[2]
    assert bench.first_loud(rows, after_wall=rows[2]["wall"]) is rows[4]


def test_frame_gaps_count_only_what_exceeds_one_frame():
    times = [0, 40, 80, 160, 190, 230, 400]  # a late frame, an early one, a freeze
    gaps = bench.frame_gaps_ms(times, 40.0)
    assert gaps == [0, 0, 40, 0, 0, 130]
    assert bench.percentile(gaps, 50) == 0


def test_frames_skipped_from_rtp_timestamps():
    step = 90_000 // FPS
    rtp = [0, step, 2 * step, 5 * step, 6 * step, None, 7 * step]
    assert bench.frames_skipped(rtp, FPS) == 2
    # The 32-bit timestamp wraps around.
    wrap = [2**32 - step, 0, step]
    assert bench.frames_skipped(wrap, FPS) == 0


@pytest.mark.parametrize("shift", [-3, 0, 2, 5])
def test_best_lag_finds_the_shift_between_audio_and_mouth(shift):
    rng = np.random.default_rng(4)
    # Syllables of irregular lengths: one clear correlation peak.
    envelope = np.repeat(rng.random(30) > 0.5, rng.integers(2, 7, 30)).astype(float)
    rms = envelope + 0.05 * rng.random(len(envelope))
    mouth = np.roll(envelope, shift) * 12 + 0.5 * rng.random(len(envelope))
    assert bench.best_lag(rms, mouth, max_lag=8) == pytest.approx(shift, abs=0.5)


def test_best_lag_refines_between_frames():
    # A smooth bump sampled every frame, the mouth's 0.4 frame later than the sound's.
    x = np.arange(60.0)
    rms = np.exp(-((x - 25) / 4) ** 2)
    mouth = np.exp(-((x - 25.4) / 4) ** 2)
    lag = bench.best_lag(rms, mouth, max_lag=5)
    assert 0.2 < lag < 0.6
    with pytest.raises(ValueError):
        bench.best_lag([1, 2], [1, 2], max_lag=3)


def test_cpu_figures():
    assert bench.cpu_share(1.5, 10.0) == pytest.approx(0.15)
    assert math.isnan(bench.cpu_share(1.0, 0.0))
    # 4 ms of CPU a frame at 25 fps: a tenth of a core per stream, ten streams a core.
    assert bench.streams_per_core(0.004, 25) == pytest.approx(10.0)


def test_verdicts_and_table():
    assert bench.verdict("first_frame_on_stage_p50_s", 0.4) == "pass"
    assert bench.verdict("first_frame_on_stage_p50_s", 0.9) == "FAIL"
    assert bench.verdict("live_speedup", 2.0) == "pass"
    assert bench.verdict("live_speedup", 1.2) == "FAIL"
    assert bench.verdict("obs_gap_ms_p95", None) == "n/a"
    assert bench.verdict("streams_per_core", 12.0) == "-"
    text = bench.table({"first_frame_on_stage_p50_s": 0.5, "live_speedup": 1.1},
                       ["first_frame_on_stage_p50_s", "live_speedup", "obs_gap_ms_p95"])
    lines = text.splitlines()
    assert lines[1].split()[-1] == "pass" and "<= 0.6" in lines[1]
    assert lines[2].split()[-1] == "FAIL"
    assert "null" in lines[3] and lines[3].split()[-1] == "n/a"


def test_lead_in_counts_the_rest_mouth_before_the_first_sound():
    frames = np.zeros((8, 40, 40, 4), np.uint8)
    frames[..., :3] = 120
    frames[1, 0, 0, :3] = 255  # a change outside the mouth box does not count
    frames[3:, 20:30, 10:30, :3] = 20  # the mouth opens at frame 3
    assert bench.lead_in_frames(frames, (10, 20, 20, 10)) == 3
    assert bench.lead_in_frames(frames[:3], (10, 20, 20, 10)) == 3  # never opens


def test_a_mouth_shape_change_counts_even_inside_the_idle_luma_band():
    # Idle: the region changes by at most 1.0 a frame (breathing, codec noise).
    idle = bench.IdleMouth.from_lumas([100, 102, 101], [0.4, 1.0])
    assert not idle.speaking(101, 1.8)
    assert idle.speaking(101, 6.0)  # a new mouth shape of the same mean brightness
    rows = [dict(r, diff=d) for r, d in zip(_rows([101, 101, 101, 101]), [0.5, 0.9, 7.0, 0.2],
                                             strict=True)]
    assert bench.first_speaking(rows, idle, after_wall=0) is rows[2]
