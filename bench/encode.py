"""Benchmark of clip encoding: a 4 s 512x512 25 fps clip to WebM (VP9 alpha) and MP4 (H.264).

Times each part (colour conversion, audio resampling, each format alone) and both formats
sequential vs concurrent, prints a table and writes ``bench/results/encode.json``.

Usage: ``.venv/bin/python bench/encode.py [--quick]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

import avatar_engine.clips.encode as clip_encode
from avatar_engine.clips import encode_clip

logger = logging.getLogger(__name__)

RESULTS = Path(__file__).resolve().parent / "results" / "encode.json"
FPS = 25
SECONDS = 4.0
SIZE = 512
SAMPLE_RATE = 22050  # Piper's rate


def make_frames(*, n: int, size: int, seed: int = 0) -> np.ndarray:
    """A sprite-like avatar: smooth shading, soft alpha edge, bobbing head, talking mouth and
    blinking eyes over a transparent background (what the sprite renderer produces)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    grid = rng.random((17, 17)).astype(np.float32)
    gy, gx = yy / size * 16, xx / size * 16
    y0, x0 = gy.astype(int).clip(0, 15), gx.astype(int).clip(0, 15)
    fy, fx = gy - y0, gx - x0
    shade = (
        grid[y0, x0] * (1 - fx) * (1 - fy)
        + grid[y0, x0 + 1] * fx * (1 - fy)
        + grid[y0 + 1, x0] * (1 - fx) * fy
        + grid[y0 + 1, x0 + 1] * fx * fy
    )
    base = np.zeros((size, size, 4), np.uint8)
    base[..., 0] = np.clip(150 + 80 * shade + 20 * np.sin(xx / 9), 0, 255)
    base[..., 1] = np.clip(110 + 60 * shade, 0, 255)
    base[..., 2] = np.clip(90 + 100 * (1 - shade), 0, 255)
    frames = np.zeros((n, size, size, 4), np.uint8)
    for i in range(n):
        dy = round(3 * np.sin(i / 8))
        d = np.sqrt((xx - size / 2) ** 2 / 0.6 + (yy - size / 2 - dy) ** 2)
        alpha = np.clip((0.42 * size - d) * 255 / 2, 0, 255).astype(np.uint8)
        f = np.roll(base, dy, axis=0)
        f[..., 3] = alpha
        f[alpha == 0] = 0
        mouth_open = 5 + 15 * abs(np.sin(i / 2))
        mouth = ((xx - size / 2) / 40) ** 2 + ((yy - size * 0.65 - dy) / mouth_open) ** 2 < 1
        f[mouth, :3] = (120, 20, 30)
        for ex in (size * 0.4, size * 0.6):
            eye_h = 12 if i % 40 > 3 else 2
            eye = ((xx - ex) / 18) ** 2 + ((yy - size * 0.42 - dy) / eye_h) ** 2 < 1
            f[eye, :3] = (30, 30, 60)
        frames[i] = f
    return frames


def make_speech(*, seconds: float, sample_rate: int) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    voiced = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)  # syllable-like envelope
    return (0.3 * voiced * np.sin(2 * np.pi * 180 * t)).astype(np.float32)


def time_cases(cases: dict[str, Callable[[], object]], *, repeats: int) -> dict[str, dict]:
    """Median and best seconds of each case over ``repeats`` rounds, after one warm-up each.

    Rounds run every case in turn, so load from other processes hits all cases alike.
    """
    for fn in cases.values():
        fn()
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            t = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - t)
    return {
        name: {"median_s": statistics.median(r), "min_s": min(r), "runs_s": r}
        for name, r in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (about 8 s)")
    args = parser.parse_args()
    repeats = 2 if args.quick else 7

    n = round(SECONDS * FPS)
    frames = make_frames(n=n, size=SIZE)
    speech = make_speech(seconds=SECONDS - 0.3, sample_rate=SAMPLE_RATE)
    samples = clip_encode._resample_to_length(speech, SAMPLE_RATE, round(n * 48_000 / FPS))

    def convert_webm() -> None:
        for f in frames:
            frame = av.VideoFrame.from_numpy_buffer(f, format="rgba")
            frame.reformat(format="yuva420p", dst_colorspace="itu709", threads=1)

    def convert_mp4() -> None:
        comp = clip_encode._Compositor(width=SIZE, height=SIZE, fps=FPS, background=(0, 177, 64))
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_numpy_buffer(f, format="rgba")
            frame.pts = i
            comp.push(frame)
        comp.push(None)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "clip"

        def encode(formats: tuple[str, ...], concurrent: bool) -> Callable[[], object]:
            return lambda: encode_clip(
                frames=frames,
                audio=speech,
                sample_rate=SAMPLE_RATE,
                fps=FPS,
                out_base=out,
                formats=formats,
                concurrent=concurrent,
            )

        load_before = os.getloadavg()[0]
        results = time_cases(
            {
                "audio resample 22.05->48 kHz + pad": lambda: clip_encode._resample_to_length(
                    speech, SAMPLE_RATE, len(samples)
                ),
                "webm colour conversion (rgba->yuva420p)": convert_webm,
                "mp4 composite + conversion (->yuv420p)": convert_mp4,
                "webm alone (VP9 alpha + Opus)": encode(("webm",), False),
                "mp4 alone (H.264 + AAC)": encode(("mp4",), False),
                "both, sequential": encode(("webm", "mp4"), False),
                "both, concurrent": encode(("webm", "mp4"), True),
            },
            repeats=repeats,
        )
        load_after = os.getloadavg()[0]
        encode(("webm", "mp4"), True)()
        sizes = {fmt: out.with_suffix(f".{fmt}").stat().st_size for fmt in ("webm", "mp4")}

    # Median: typical on this host right now. Best: the uncontended figure, which is what to
    # compare when other processes share the CPUs (see the load average printed below).
    rtf = {
        mode: {
            "median": SECONDS / results[f"both, {mode}"]["median_s"],
            "best": SECONDS / results[f"both, {mode}"]["min_s"],
        }
        for mode in ("sequential", "concurrent")
    }
    print(f"clip: {n} frames {SIZE}x{SIZE} @ {FPS} fps ({SECONDS:.1f} s), {os.cpu_count()} CPUs")
    print(f"{'step':44s} {'median ms':>10s} {'min ms':>8s}")
    for name, r in results.items():
        print(f"{name:44s} {r['median_s'] * 1e3:10.1f} {r['min_s'] * 1e3:8.1f}")
    for mode, r in rtf.items():
        print(f"encode real-time factor, {mode}: {r['median']:.1f}x median, {r['best']:.1f}x best")
    print(f"load average (1 min) before/after: {load_before:.2f}/{load_after:.2f}")
    print(f"file sizes: webm {sizes['webm'] / 1e3:.0f} kB, mp4 {sizes['mp4'] / 1e3:.0f} kB")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "clip": {"frames": n, "width": SIZE, "height": SIZE, "fps": FPS, "seconds": SECONDS},
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "pyav": av.__version__,
        },
        "load_average_1min": {"before": load_before, "after": load_after},
        "quick": args.quick,
        "repeats": repeats,
        "seconds": results,
        "encode_seconds_per_format": {
            "webm": results["webm alone (VP9 alpha + Opus)"]["median_s"],
            "mp4": results["mp4 alone (H.264 + AAC)"]["median_s"],
        },
        "both_formats_seconds": {
            "sequential": results["both, sequential"]["median_s"],
            "concurrent": results["both, concurrent"]["median_s"],
        },
        "encode_real_time_factor": rtf,
        "file_bytes": sizes,
        "settings": {
            "vp9": clip_encode._VP9_OPTIONS,
            "x264": clip_encode._X264_OPTIONS,
            "encoder_threads": clip_encode._ENCODER_THREADS,
        },
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
