"""Benchmark of the sprite renderer's compositing: frames per second for a 10 s clip at 512x512
with the default avatar, with the state cache warm and cold.

Usage: ``python bench/render.py [--quick] [--device auto|cpu|cuda]``. Prints a table and writes
``bench/results/render.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # the repo, not bench/

from avatar_engine.renderers.sprite import SpriteRenderer  # noqa: E402
from avatar_engine.renderers.spriteset import SpriteSet  # noqa: E402
from avatar_engine.types import PhonemeTiming, frame_count  # noqa: E402
from avatar_engine.visemes import mouth_track  # noqa: E402

logger = logging.getLogger(__name__)

CLIP_S = 10.0
PHONEMES = "a e i o u ə ɪ ʊ æ ɛ ɔ ɑ m b p f v l θ ð s z t d k ɡ n ŋ ɹ w j h ʃ".split()


def synthetic_phonemes(seconds: float, *, seed: int = 0) -> tuple[PhonemeTiming, ...]:
    """A speech-like phoneme timeline: words of 2-7 phonemes, stress marks, pauses."""
    rng = np.random.default_rng(seed)
    out, t = [PhonemeTiming("^", 0.0, 0.08)], 0.08
    while t < seconds - 0.3:
        for _ in range(int(rng.integers(2, 8))):
            if rng.random() < 0.2:
                out.append(PhonemeTiming("ˈ", t, t + 0.03))
                t += 0.03
            d = float(rng.uniform(0.03, 0.14))
            out.append(PhonemeTiming(str(rng.choice(PHONEMES)), t, t + d))
            t += d
        pause = "," if rng.random() < 0.15 else " "
        d = 0.2 if pause == "," else 0.05
        out.append(PhonemeTiming(pause, t, t + d))
        t += d
    out.append(PhonemeTiming("$", t, seconds))
    return tuple(out)


def timed(fn, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or mps (default cpu)")
    parser.add_argument("--fps", type=int, default=25)
    args = parser.parse_args(argv)
    runs = 3 if args.quick else 9

    sprites = SpriteSet.load(ROOT / "config" / "avatars" / "default")
    renderer = SpriteRenderer(sprites=sprites, fps=args.fps, device=args.device)
    phonemes = synthetic_phonemes(CLIP_S)
    n = frame_count(CLIP_S, args.fps)
    codes = mouth_track(phonemes, n_frames=n, fps=args.fps)
    start = 12_345  # somewhere mid-stream: blinks and breathing are in play

    renderer.render_codes(codes, start_frame=start)  # first touch of the atlas, allocator
    warm = timed(lambda: renderer.render_codes(codes, start_frame=start), runs)

    def cold() -> None:
        renderer.clear_cache()
        renderer.render_codes(codes, start_frame=start)

    cold_t = timed(cold, runs)
    track_t = timed(lambda: mouth_track(phonemes, n_frames=n, fps=args.fps), runs)
    states = len(np.unique(codes)) * len(np.unique(renderer.eye_states(start, n)))

    w, h = renderer.size
    result = {
        "render_fps": round(n / statistics.median(warm), 1),
        "render_fps_cold": round(n / statistics.median(cold_t), 1),
        "mouth_track_ms": round(1e3 * statistics.median(track_t), 3),
        "frames": n,
        "clip_s": CLIP_S,
        "fps": args.fps,
        "size": [w, h],
        "states_in_clip": int(states),
        "runs": runs,
        "device": str(renderer.device),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "thp_mem_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE", "0"),
        "machine": platform.machine(),
    }
    rows = [
        ("warm cache", statistics.median(warm)),
        ("cold cache", statistics.median(cold_t)),
    ]
    print(
        f"sprite renderer, {w}x{h}, {n} frames ({CLIP_S:g} s @ {args.fps} fps), "
        f"{result['device']}, {result['torch_threads']} threads, median of {runs}"
    )
    print(f"{'case':<12} {'ms/clip':>9} {'frames/s':>10}")
    for name, t in rows:
        print(f"{name:<12} {t * 1e3:>9.1f} {n / t:>10.0f}")
    print(f"{'mouth_track':<12} {result['mouth_track_ms']:>9.2f}")

    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "render.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out / 'render.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
