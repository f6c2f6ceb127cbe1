"""Benchmark of the avatar backends and the remote render pool: sprite and Wav2Lip frames per
second on the CPU (Wav2Lip with random weights, 96x96 face crop, 512x512 output, by batch
size), the per-job overhead of the RabbitMQ pool over the local pool, and how long a job takes
to finish elsewhere after its worker is killed.

Usage: ``python bench/avatar.py [--quick] [--no-rabbit]``. Prints a table and writes
``bench/results/avatar.json``. The RabbitMQ part starts a private broker (as the tests do) and
needs ``rabbitmq-server`` installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # the repo, not bench/

from avatar_engine.renderers.sprite import SpriteRenderer  # noqa: E402
from avatar_engine.renderers.spriteset import SpriteSet  # noqa: E402
from avatar_engine.renderers.wav2lip import Wav2LipNet, Wav2LipRenderer  # noqa: E402
from avatar_engine.types import Speech  # noqa: E402
from avatar_engine.workers.pool import LocalRenderPool  # noqa: E402
from avatar_engine.workers.rabbit import RabbitRenderPool  # noqa: E402
from avatar_engine.workers.worker import echo, sleep_then_echo  # noqa: E402

logger = logging.getLogger(__name__)


def speech(seconds: float, rate: int = 22050) -> Speech:
    """Speech-like audio: a voiced buzz with a syllable-rate envelope and some noise."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    env = np.clip(np.sin(2 * np.pi * 3.1 * t), 0, None)
    audio = 0.5 * env * np.sign(np.sin(2 * np.pi * 140 * t)) + 0.02 * rng.standard_normal(t.size)
    return Speech(text="bench", audio=audio.astype(np.float32), sample_rate=rate)


def first_starter(marks: Path, timeout: float = 30.0) -> int:
    """The pid of the worker that started the marked job (``sleep_then_echo``'s mark file)."""
    deadline = time.monotonic() + timeout
    while not (started := list(marks.iterdir())):
        if time.monotonic() > deadline:
            raise TimeoutError("no worker started the job")
        time.sleep(0.005)
    return int(started[0].name.split("-")[1])


def best_of(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_sprite(runs: int) -> float:
    sprites = SpriteSet.load(ROOT / "config" / "avatars" / "default")
    renderer = SpriteRenderer(sprites=sprites, fps=25, device="cpu")
    sp = speech(10.0)
    n = renderer.render(sp).shape[0]  # warm the atlas
    return n / best_of(lambda: renderer.render(sp), runs)


def bench_wav2lip(batch_sizes: list[int], seconds: float, runs: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="vstage-bench-w2l-"))
    torch.manual_seed(0)
    torch.save({"state_dict": Wav2LipNet().state_dict()}, folder / "w.pth")
    from PIL import Image

    picture = (np.random.default_rng(1).random((512, 512, 3)) * 255).astype(np.uint8)
    Image.fromarray(picture).save(folder / "avatar.png")
    sp = speech(seconds)
    out = {}
    for b in batch_sizes:
        r = Wav2LipRenderer(
            checkpoint=folder / "w.pth",
            avatar_image=folder / "avatar.png",
            face_box=(208, 200, 96, 96),
            device="cpu",
            batch_size=b,
        )
        n = r.render(sp).shape[0]  # warm-up
        out[str(b)] = round(n / best_of(lambda r=r: r.render(sp), runs), 1)
        print(f"  wav2lip batch {b:>3}: {out[str(b)]:>7.1f} frames/s", flush=True)
    return out


async def bench_rabbit(jobs: int) -> dict[str, float]:
    from tests.rabbit.broker import Broker, available
    from tests.rabbit.conftest import Worker

    if not available():
        raise RuntimeError("rabbitmq-server is not installed")
    root = Path(tempfile.mkdtemp(prefix="vstage-bench-rabbit-"))
    broker = Broker(root)
    await asyncio.to_thread(broker.start)
    workers: list[Worker] = []
    try:
        queue = "bench.render"
        workers = [Worker(broker.url, queue, root / f"w{i}.log") for i in range(2)]

        async def per_job(pool) -> float:
            for _ in range(20):  # warm-up
                await pool.run("bench", echo, b"x" * 64)
            times = []
            for _ in range(jobs):
                t0 = time.perf_counter()
                await pool.run("bench", echo, b"x" * 64)
                times.append(time.perf_counter() - t0)
            return statistics.median(times)

        async with LocalRenderPool(workers=1) as local:
            local_s = await per_job(local)
        async with RabbitRenderPool(url=broker.url, queue=queue) as pool:
            rabbit_s = await per_job(pool)

            # Redelivery: kill the worker that started a job; time until the job is done.
            marks = root / "marks"
            marks.mkdir()
            job = asyncio.create_task(pool.run("bench", sleep_then_echo, 1.0, "R", str(marks)))
            victim = await asyncio.to_thread(first_starter, marks)
            next(w for w in workers if w.pid == victim).kill()
            killed = time.perf_counter()
            await asyncio.wait_for(job, 60)
            redelivery_s = time.perf_counter() - killed
        return {
            "rabbitmq_overhead_ms": round(1e3 * (rabbit_s - local_s), 3),
            "rabbitmq_job_ms": round(1e3 * rabbit_s, 3),
            "local_job_ms": round(1e3 * local_s, 3),
            "redelivery_s": round(redelivery_s, 3),
            "redelivery_job_s": 1.0,
        }
    finally:
        for w in workers:
            w.stop()
        await asyncio.to_thread(broker.close)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, fewer batch sizes")
    parser.add_argument("--no-rabbit", action="store_true", help="skip the RabbitMQ part")
    args = parser.parse_args(argv)
    runs = 3 if args.quick else 5
    batch_sizes = [1, 16] if args.quick else [1, 4, 8, 16, 32]

    print(f"avatar backends on {torch.get_num_threads()} torch threads, median of {runs}")
    sprite_fps = round(bench_sprite(runs), 1)
    print(f"  sprite 512x512: {sprite_fps:>9.1f} frames/s", flush=True)
    wav2lip_fps = bench_wav2lip(batch_sizes, 2.0 if args.quick else 4.0, runs)
    result: dict = {
        "sprite_fps": sprite_fps,
        "wav2lip_fps": wav2lip_fps,
        "wav2lip_size": [512, 512],
        "wav2lip_face_box": [208, 200, 96, 96],
    }
    if not args.no_rabbit:
        rabbit = asyncio.run(bench_rabbit(200 if args.quick else 1000))
        result.update(rabbit)
        print(
            f"  rabbitmq: {rabbit['rabbitmq_job_ms']:.2f} ms/job vs local "
            f"{rabbit['local_job_ms']:.2f} ms -> overhead {rabbit['rabbitmq_overhead_ms']:.2f} ms"
        )
        print(f"  redelivery after a worker is killed: {rabbit['redelivery_s']:.2f} s")
    result.update(
        quick=args.quick,
        runs=runs,
        device="cpu",
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(),
        machine=platform.machine(),
    )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "avatar.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out / 'avatar.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
