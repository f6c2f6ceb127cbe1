"""Benchmark of the avatar backends and the remote render pool: sprite and Wav2Lip frames per
second on the CPU (Wav2Lip with random weights, 96x96 face crop, 512x512 output, by batch
size), the per-job overhead of the RabbitMQ pool over the local pool, and how long a job takes
to finish elsewhere after its worker is killed.

The RabbitMQ figure is for the real path: a sentence voiced by Piper and the default sprite set,
performed by a ``LocalPerformer`` on the local pool and by a ``RemotePerformer`` (the
``render_frames`` job on two ``vstage worker`` processes, frames sent back packed) alternately in
the same run. ``rabbitmq_overhead_ms`` is how much more a sentence costs remotely outside the
render itself (each path's wall time minus the render seconds measured where it ran; packing
and unpacking the frames count as remote overhead), so the render's own noise on a busy
machine does not drown the difference; the plain wall times and the bytes each way are
reported beside it, with the packing and unpacking times (unpacking also the copying way, for
comparison with the page-sharing default) and the machine's load average.

Usage: ``python bench/avatar.py [--quick] [--no-rabbit | --rabbit-only] [--pairs N]``. Prints
a table and writes ``bench/results/avatar.json``. The RabbitMQ part starts a private broker (as
the tests do) and needs ``rabbitmq-server`` installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import pickle
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

from avatar_engine.performer import LocalPerformer, RemotePerformer  # noqa: E402
from avatar_engine.performer.codec import unpack_frames  # noqa: E402
from avatar_engine.renderers.base import Renderer  # noqa: E402
from avatar_engine.renderers.sprite import SpriteRenderer  # noqa: E402
from avatar_engine.renderers.spriteset import SpriteSet  # noqa: E402
from avatar_engine.renderers.wav2lip import Wav2LipNet, Wav2LipRenderer  # noqa: E402
from avatar_engine.settings import AvatarSettings  # noqa: E402
from avatar_engine.types import Speech  # noqa: E402
from avatar_engine.workers.jobs import (  # noqa: E402
    avatar_payload,
    cached_renderer,
    render_frames,
)
from avatar_engine.workers.pool import LocalRenderPool  # noqa: E402
from avatar_engine.workers.rabbit import RabbitRenderPool  # noqa: E402
from avatar_engine.workers.worker import echo, sleep_then_echo  # noqa: E402
from vstage_core.errors import MissingDependency, ProviderError  # noqa: E402

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


def bench_speech() -> tuple[Speech, str]:
    """One real sentence voiced by Piper (the embedded voice), or, without Piper, Piper-like
    speech: 22050 Hz with a phoneme timeline of the same pace."""
    text = "Thanks for the follow, it really means a lot to me and the whole chat tonight."
    try:
        from avatar_engine.settings import VoiceSettings
        from avatar_engine.voice.piper import PiperTTS

        return PiperTTS(settings=VoiceSettings()).synthesize(text), "piper"
    except (MissingDependency, ProviderError) as e:
        logger.warning("no Piper voice (%s): Piper-like synthetic speech instead", e)
    from bench.render import synthetic_phonemes

    sp = speech(3.7)
    return Speech(text, sp.audio, sp.sample_rate, synthetic_phonemes(3.7)), "synthetic"


class TimedRenderer:
    """The local renderer, noting the seconds its last ``render`` took (the local path's own
    work, to subtract from its wall time as the worker's ``render_s`` is from the remote one)."""

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer
        self.fps, self.size, self.device = renderer.fps, renderer.size, renderer.device
        self.last_s = 0.0

    def render(self, sp: Speech, *, start_frame: int = 0) -> torch.Tensor:
        t0 = time.perf_counter()
        frames = self.renderer.render(sp, start_frame=start_frame)
        self.last_s = time.perf_counter() - t0
        return frames

    def idle(self, n_frames: int, *, start_frame: int = 0) -> torch.Tensor:
        return self.renderer.idle(n_frames, start_frame=start_frame)


async def bench_render_jobs(local: LocalRenderPool, pool: RabbitRenderPool, pairs: int
                            ) -> dict[str, float | int | str]:
    """One sentence performed through the local pool and through RabbitMQ, alternately.

    Both paths are timed the way the pipeline feels them: ``performer.perform`` until the
    :class:`~avatar_engine.types.Performance` (frames on the CPU here) is in hand. Each
    path's *overhead* is its wall time minus the seconds spent rendering (measured where that
    happens; packing and unpacking count as overhead), which removes the render's own noise from the
    comparison.
    """
    sp, source = bench_speech()
    avatar = AvatarSettings(sprites=ROOT / "config" / "avatars" / "default", device="cpu")
    payload = avatar_payload(avatar)
    renderer = TimedRenderer(cached_renderer(avatar))
    here = LocalPerformer(persona="bench", renderer=renderer, pool=local)
    there = RemotePerformer(persona="bench", renderer=renderer, avatar=avatar, pool=pool)
    walls: dict[str, list[float]] = {"local": [], "rabbit": []}
    overheads: dict[str, list[float]] = {"local": [], "rabbit": []}
    packs: list[float] = []

    async def run_local(i: int) -> tuple[float, float]:
        t0 = time.perf_counter()
        await here.perform(sp, reply_id="local", index=i)
        return time.perf_counter() - t0, renderer.last_s

    async def run_rabbit(i: int) -> tuple[float, float]:
        work, pack = there.render_s, there.pack_s
        t0 = time.perf_counter()
        await there.perform(sp, reply_id="remote", index=i)
        packs.append(there.pack_s - pack)
        return time.perf_counter() - t0, there.render_s - work

    for i in range(2):  # warm-up: the worker loads its renderer, both sides warm their caches
        await run_local(i)
        await run_rabbit(i)
    for i in range(pairs):
        order = (("local", run_local), ("rabbit", run_rabbit))
        for name, fn in order if i % 2 == 0 else order[::-1]:
            wall, work = await fn(i)
            walls[name].append(wall)
            overheads[name].append(wall - work)
    med = {k: statistics.median(v) for k, v in walls.items()}
    over = {k: statistics.median(v) for k, v in overheads.items()}
    answer = await asyncio.to_thread(render_frames, payload, sp, 0)  # what a worker sends back
    unpacks: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(5):
        for shared in unpacks:  # pages mapped where they repeat (the default), or copied
            t0 = time.perf_counter()
            unpack_frames(answer.frames, share_pages=shared)
            unpacks[shared].append(time.perf_counter() - t0)
    return {
        "rabbitmq_overhead_ms": round(1e3 * (over["rabbit"] - over["local"]), 2),
        "render_job_local_overhead_ms": round(1e3 * over["local"], 2),
        "render_job_rabbit_overhead_ms": round(1e3 * over["rabbit"], 2),
        "render_job_local_ms": round(1e3 * med["local"], 1),
        "render_job_rabbit_ms": round(1e3 * med["rabbit"], 1),
        "render_job_wall_diff_ms": round(1e3 * (med["rabbit"] - med["local"]), 1),
        "render_job": "render_frames",
        "render_job_pairs": pairs,
        "render_job_speech": source,
        "render_job_speech_s": round(sp.duration, 2),
        "render_job_frames": answer.n_frames,
        "render_job_request_bytes": len(pickle.dumps(
            (payload, sp, 0), protocol=pickle.HIGHEST_PROTOCOL)),
        "render_job_result_bytes": len(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)),
        "render_job_raw_frame_bytes": answer.frames.raw_bytes,
        "render_job_local_bytes": 0,  # the local path hands the array over in memory
        "render_job_pack_ms": round(1e3 * statistics.median(packs), 1),
        "render_job_unpack_ms": round(1e3 * statistics.median(unpacks[True]), 1),
        "render_job_unpack_copying_ms": round(1e3 * statistics.median(unpacks[False]), 1),
        "render_job_packed_bytes": answer.frames.packed_bytes,
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


async def bench_rabbit(jobs: int, pairs: int) -> dict[str, float | int | str]:
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
        # `vstage worker` processes: they serve render_frames (and the built-in echo jobs).
        workers = [Worker(broker.url, queue, root / f"w{i}.log", cli=True) for i in range(2)]

        async def per_job(pool) -> float:
            for _ in range(20):  # warm-up
                await pool.run("bench", echo, b"x" * 64)
            times = []
            for _ in range(jobs):
                t0 = time.perf_counter()
                await pool.run("bench", echo, b"x" * 64)
                times.append(time.perf_counter() - t0)
            return statistics.median(times)

        async with (
            LocalRenderPool(workers=1) as local,
            RabbitRenderPool(url=broker.url, queue=queue) as pool,
        ):
            out = await bench_render_jobs(local, pool, pairs)
            local_s = await per_job(local)
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
        out.update(
            echo_overhead_ms=round(1e3 * (rabbit_s - local_s), 3),
            echo_rabbitmq_ms=round(1e3 * rabbit_s, 3),
            echo_local_ms=round(1e3 * local_s, 3),
            redelivery_s=round(redelivery_s, 3),
            redelivery_job_s=1.0,
        )
        return out
    finally:
        for w in workers:
            w.stop()
        await asyncio.to_thread(broker.close)


def print_rabbit(r: dict) -> None:
    """The RabbitMQ figures as a table."""
    print(f"  render_frames, {r['render_job_speech']} sentence of {r['render_job_speech_s']} s "
          f"({r['render_job_frames']} frames, {r['render_job_raw_frame_bytes'] / 1e6:.1f} MB "
          f"raw), median of {r['render_job_pairs']} pairs:")
    print(f"    {'path':<10}{'wall ms':>10}{'overhead ms':>14}{'kB up':>10}{'kB back':>10}")
    print(f"    {'local':<10}{r['render_job_local_ms']:>10.1f}"
          f"{r['render_job_local_overhead_ms']:>14.2f}{0:>10}{0:>10}")
    print(f"    {'rabbitmq':<10}{r['render_job_rabbit_ms']:>10.1f}"
          f"{r['render_job_rabbit_overhead_ms']:>14.2f}"
          f"{r['render_job_request_bytes'] / 1e3:>10.0f}"
          f"{r['render_job_result_bytes'] / 1e3:>10.0f}")
    print(f"    of which packing {r['render_job_pack_ms']:.1f} ms on the worker "
          f"({r['render_job_packed_bytes'] / 1e3:.0f} kB), unpacking "
          f"{r['render_job_unpack_ms']:.1f} ms here ({r['render_job_unpack_copying_ms']:.1f} "
          "copying every page)")
    print(f"    rabbitmq_overhead_ms (remote - local, outside the render): "
          f"{r['rabbitmq_overhead_ms']:.2f}   (wall difference {r['render_job_wall_diff_ms']:.1f})")
    print(f"  echo job: rabbitmq {r['echo_rabbitmq_ms']:.2f} ms vs local "
          f"{r['echo_local_ms']:.2f} ms -> {r['echo_overhead_ms']:.2f} ms")
    print(f"  redelivery after a worker is killed: {r['redelivery_s']:.2f} s")
    print(f"  load average (1, 5, 15 min) at the end: {r['load_average']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, fewer batch sizes")
    parser.add_argument("--no-rabbit", action="store_true", help="skip the RabbitMQ part")
    parser.add_argument("--rabbit-only", action="store_true", help="only the RabbitMQ part")
    parser.add_argument("--pairs", type=int, default=None,
                        help="real render jobs per path (default 10, 20 without --quick)")
    args = parser.parse_args(argv)
    if args.pairs is None:
        args.pairs = 10 if args.quick else 20
    runs = 3 if args.quick else 5
    batch_sizes = [1, 16] if args.quick else [1, 4, 8, 16, 32]

    out = ROOT / "bench" / "results"
    result: dict = {}
    if args.rabbit_only and (out / "avatar.json").exists():  # keep the other figures
        result = json.loads((out / "avatar.json").read_text(encoding="utf-8"))
    else:
        print(f"avatar backends on {torch.get_num_threads()} torch threads, median of {runs}")
        sprite_fps = round(bench_sprite(runs), 1)
        print(f"  sprite 512x512: {sprite_fps:>9.1f} frames/s", flush=True)
        wav2lip_fps = bench_wav2lip(batch_sizes, 2.0 if args.quick else 4.0, runs)
        result = {
            "sprite_fps": sprite_fps,
            "wav2lip_fps": wav2lip_fps,
            "wav2lip_size": [512, 512],
            "wav2lip_face_box": [208, 200, 96, 96],
        }
    if not args.no_rabbit:
        print("rabbitmq render pool vs the local pool (same run, alternating)", flush=True)
        rabbit = asyncio.run(bench_rabbit(200 if args.quick else 1000, args.pairs))
        result.update(rabbit)
        print_rabbit(rabbit)
    result.update(
        quick=args.quick,
        runs=runs,
        device="cpu",
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(),
        machine=platform.machine(),
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "avatar.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out / 'avatar.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
