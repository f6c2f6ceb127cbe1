"""Benchmark of OBS showing the live stream, against a real OBS 29 (obs-websocket 5.1) headless.

``obs_gap_ms``: OBS records its program (MKV) while the persona's live stream
(:class:`~overlays.live.stream.LiveStream` -> :class:`~overlays.obs.live.ObsLiveOutput` ->
MPEG-TS over UDP -> one ``ffmpeg_source``) plays replies of three sentences back to back. Every
stream frame carries its own pattern (a binary counter on a colour that tells speech from
idle), so each new stream frame changes the picture; the gaps between changes of the avatar in
the recording, during speech, are what a viewer sees (25 fps stream: 40 ms when nothing is
lost; OBS's canvas runs at 50 fps so a late or lost frame shows as 60 ms or more). Also the
round trip of one request (``GetVersion``) and how long the driver takes to be ready again
(reconnected and set up) once a killed OBS is back up. Writes ``bench/results/stage.json``.
Targets: ``obs_gap_ms_p95`` <= 40 (one frame interval), reconnect <= 5 s.

Usage: ``.venv/bin/python bench/stage.py [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

import numpy as np  # noqa: E402

from avatar_engine.types import Performance, Speech  # noqa: E402
from overlays.live.stream import LiveStream  # noqa: E402
from overlays.obs.driver import ObsDriver  # noqa: E402
from overlays.obs.keying import KeyColour  # noqa: E402
from overlays.obs.live import ObsLiveOutput  # noqa: E402
from overlays.obs.settings import ObsSettings  # noqa: E402
from overlays.obs.stage import ObsStage  # noqa: E402
from overlays.stage import ReplyFinished  # noqa: E402
from tests.netutil import free_port  # noqa: E402
from tests.obs.conftest import free_udp_port  # noqa: E402
from tests.obs.headless import HeadlessObs  # noqa: E402

logger = logging.getLogger(__name__)

RESULTS = ROOT / "bench" / "results" / "stage.json"
PASSWORD = "bench-password-0000"
FPS = 25
SIZE = 256
CANVAS = (640, 360)
CANVAS_FPS = 50
BOX = (40, 40, 256, 256)
SPEECH_RGB = (200, 40, 40)
IDLE_RGB = (40, 40, 200)


def pattern(counter: int, rgb: tuple[int, int, int]) -> np.ndarray:
    """A frame: ``rgb`` with 8 blocks showing ``counter`` in binary (white = 1)."""
    frame = np.zeros((SIZE, SIZE, 4), np.uint8)
    frame[..., :3] = rgb
    frame[..., 3] = 255
    for bit in range(8):
        if counter >> bit & 1:
            frame[96:160, bit * 32:(bit + 1) * 32, :3] = 255
    return frame


class CounterPerformer:
    """A performer whose idle frames each look different (its clock in binary, on blue)."""

    fps = FPS
    size = (SIZE, SIZE)

    def __init__(self) -> None:
        self.clock = 0

    def idle_frames(self, n: int) -> np.ndarray:
        frames = np.stack([pattern(self.clock + i, IDLE_RGB) for i in range(n)])
        self.clock += n
        return frames


def sentence(reply: str, index: int, seconds: float, first: int) -> Performance:
    n = round(seconds * FPS)
    frames = np.stack([pattern(first + k, SPEECH_RGB) for k in range(n)])
    t = np.arange(int(n / FPS * 48000)) / 48000
    audio = (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return Performance(persona="bench", reply_id=reply, index=index,
                       speech=Speech(text=f"Sentence {index} of {reply}.", audio=audio,
                                     sample_rate=48000),
                       frames=frames, fps=FPS, start_frame=first)


def frame_gaps(path: Path) -> tuple[list[float], int, float]:
    """Gaps (ms) between changes of the avatar in a recording, while it shows speech; and the
    number of recorded frames looked at, and the rate OBS actually recorded at."""
    import av

    x, y, w, h = BOX
    changes: list[float] = []
    previous: np.ndarray | None = None
    frames = 0
    times: list[float] = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames += 1
            times.append(float(frame.time))
            rgb = frame.to_ndarray(format="rgb24")[y:y + h, x:x + w].astype(np.int16)
            speaking = rgb[8:40, 8:40, 0].mean() > 150 and rgb[8:40, 8:40, 2].mean() < 100
            if previous is not None and speaking:
                if np.abs(rgb - previous).mean() > 2:
                    changes.append(float(frame.time))
            elif not speaking and changes and changes[-1] is not None:
                changes.append(float("nan"))  # a reply ended: no gap across idle
            previous = rgb
    gaps = [(b - a) * 1000 for a, b in zip(changes, changes[1:], strict=False)
            if not (np.isnan(a) or np.isnan(b))]
    fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return gaps, frames, fps


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def run(quick: bool) -> dict:
    replies = 2 if quick else 6
    requests = 100 if quick else 500
    restarts = 1 if quick else 3
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(prefix="vstage-bench-stage-") as tmp_s:
        tmp = Path(tmp_s)
        obs = HeadlessObs(home=tmp / "home", port=free_port(), password=PASSWORD,
                          width=CANVAS[0], height=CANVAS[1], fps=CANVAS_FPS)
        t0 = time.monotonic()
        obs.start()
        first_start_s = time.monotonic() - t0
        settings = ObsSettings(enabled=True, port=obs.port, password=PASSWORD,
                               avatar_box=BOX, live_port_base=free_udp_port())
        key = KeyColour((0, 255, 0), 0.5)
        try:
            driver = ObsDriver(settings=settings)
            stream = LiveStream(persona="bench", performer=CounterPerformer())  # type: ignore[arg-type]
            async with driver, ObsStage(settings=settings, personas=["bench"], driver=driver,
                                        keys={"bench": key}) as stage, stream, \
                    ObsLiveOutput(stream=stream, url=settings.live_url(0), key_colour=key.rgb,
                                  on_air=stage.on_air) as output:
                assert await driver.wait_ready(15), "driver never got ready"

                # 1. Request round trip.
                rtts = []
                for _ in range(requests):
                    t = time.perf_counter()
                    await driver.call("GetVersion")
                    rtts.append((time.perf_counter() - t) * 1000)

                # 2. Frame gaps of OBS's source during replies, from OBS's own recording.
                await asyncio.sleep(2.0)  # OBS has opened the stream
                stats0 = await driver.call("GetStats")
                await driver.call("StartRecord")
                await asyncio.sleep(1.0)
                first = 0
                for r in range(replies):
                    seconds = [float(rng.uniform(1.0, 2.5)) for _ in range(3)]
                    for i, s in enumerate(seconds):
                        p = sentence(f"r{r}", i, s, first)
                        first += p.n_frames
                        stream.push(p)
                    while stream.speaking:  # noqa: ASYNC110 (the stream has no such event)
                        await asyncio.sleep(0.05)
                    await stage.handle(ReplyFinished(persona="bench", reply_id=f"r{r}",
                                                     text=""))
                    await asyncio.sleep(0.8)
                stats1 = await driver.call("GetStats")
                recorded = await driver.call("StopRecord")
                await asyncio.sleep(1.0)
                path = Path(recorded.get("outputPath") or
                            max(obs.recordings.glob("*.mkv"), key=lambda p: p.stat().st_mtime))
                gaps, frames, recorded_fps = await asyncio.to_thread(frame_gaps, path)
                obs_lagged = {k: stats1[k] - stats0[k] for k in
                              ("renderSkippedFrames", "outputSkippedFrames")}
                encode_ms = 1000 * output.encode_s / max(1, output.frames_sent)
                skipped = output.gaps

                # 3. OBS killed and started again: back up -> driver ready (setup included).
                reconnects = []
                for _ in range(restarts):
                    obs.kill()
                    lost_by = time.monotonic() + 10
                    while driver.ready:
                        assert time.monotonic() < lost_by, "driver did not notice OBS died"
                        await asyncio.sleep(0.01)
                    await asyncio.to_thread(obs.start)
                    up = time.monotonic()
                    assert await driver.wait_ready(30), "driver did not reconnect"
                    reconnects.append(time.monotonic() - up)
        finally:
            obs.stop()

    assert gaps, "no speech seen in OBS's recording"
    version = driver.obs_version, driver.ws_version
    return {
        "obs_gap_ms_p95": round(pct(gaps, 95), 1),
        "obs_gap_ms_p50": round(pct(gaps, 50), 1),
        "obs_gap_ms_max": round(max(gaps), 1),
        "obs_gaps": len(gaps),
        "obs_frames_over_one_interval": sum(g > 1000 / FPS + 1000 / CANVAS_FPS / 2
                                            for g in gaps),
        "recorded_frames": frames,
        "obs_recorded_fps": round(recorded_fps, 1),
        # Frames OBS itself failed to render or encode in time (its own load, not the stream).
        "obs_render_skipped": obs_lagged["renderSkippedFrames"],
        "obs_output_skipped": obs_lagged["outputSkippedFrames"],
        "stream_fps": FPS,
        "obs_canvas_fps": CANVAS_FPS,
        "live_encode_ms_per_frame": round(encode_ms, 2),
        "live_ticks_skipped": skipped,
        "obs_request_p50_ms": round(statistics.median(rtts), 3),
        "obs_request_p95_ms": round(pct(rtts, 95), 3),
        "obs_reconnect_s": round(max(reconnects), 3),
        "obs_reconnect_runs_s": [round(x, 3) for x in reconnects],
        "obs_first_start_s": round(first_start_s, 3),
        "mechanism": "live stream: LiveStream -> ObsLiveOutput (H.264+AAC MPEG-TS over UDP) "
                     "-> one ffmpeg_source; gaps between changes of the avatar in OBS's own "
                     "recording of the program during speech",
        "clip_swapping": "removed (measured before, from OBS media events: gap p50 22 ms, "
                         "p95 40.5 ms, max 64 ms; 100-270 ms single gaps under load)",
        "obs": f"OBS {version[0]}, obs-websocket {version[1]}, headless (Xvfb, llvmpipe)",
        "quick": quick,
        "load_avg_1min_after": round(__import__("os").getloadavg()[0], 2),
        "host": platform.node(),
        "python": platform.python_version(),
        "targets": {"obs_gap_ms_p95": 1000 / FPS, "obs_reconnect_s": 5},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer replies and restarts")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = asyncio.run(run(args.quick))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    ok = result["obs_gap_ms_p95"] <= 1000 / FPS + 1 and result["obs_reconnect_s"] <= 5
    print("targets met" if ok else "TARGETS MISSED")


if __name__ == "__main__":
    main()
