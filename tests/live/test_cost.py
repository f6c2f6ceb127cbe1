"""What one persona's live stream costs, measured in its own process (real sprite avatar,
512x512 at 25 fps, one WebRTC viewer in this process): CPU share idling and speaking, encode
time per speaking frame, streams per core. Figures go to test-artifacts/live-cost.json."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription

from tests.live.conftest import eventually

REPO = Path(__file__).resolve().parents[2]


async def test_idle_stream_with_one_viewer_costs_little_cpu(artifacts):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.live.serve_live", cwd=REPO, stdout=asyncio.subprocess.PIPE)
    pc = RTCPeerConnection()
    frames: list = []
    readers: list[asyncio.Task] = []
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        base = f"http://127.0.0.1:{int(line.split()[1])}"
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")

        async def read(track) -> None:
            try:
                while True:
                    frame = await track.recv()
                    if track.kind == "video":
                        frames.append(frame)
            except Exception:
                return

        pc.on("track", lambda track: readers.append(
            asyncio.create_task(read(track), name=f"test:{track.kind}")))
        await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/offer", json={
                    "sdp": pc.localDescription.sdp, "type": pc.localDescription.type}) as r:
                answer = await r.json()
            await pc.setRemoteDescription(RTCSessionDescription(**answer))
            await eventually(lambda: len(frames) >= 25, 30)

            async def stats() -> dict:
                async with http.get(f"{base}/stats") as r:
                    return await r.json()

            await asyncio.sleep(6)  # the idle cache fills (a breathing period and more)
            a = await stats()
            await asyncio.sleep(8)
            b = await stats()
            async with http.post(f"{base}/say", json={"seconds": 6}) as r:
                said = (await r.json())["frames"]
            c = await stats()
            await asyncio.sleep(4)
            d = await stats()
    finally:
        await pc.close()
        for task in readers:
            task.cancel()
        proc.terminate()
        await proc.wait()
    idle_share = (b["cpu"] - a["cpu"]) / (b["wall"] - a["wall"])
    speak_share = (d["cpu"] - c["cpu"]) / (d["wall"] - c["wall"])
    speak_encoded = d["encoded"] - c["encoded"]
    figures = {
        "stream_cpu_idle": round(idle_share, 3),
        "stream_cpu_speaking": round(speak_share, 3),
        "encode_ms_per_speaking_frame": round(
            (d["encode_s"] - c["encode_s"]) * 1000 / max(1, speak_encoded), 2),
        "idle_frames_replayed_share": round(
            (b["replayed"] - a["replayed"]) / max(1, b["ticks"] - a["ticks"]), 3),
        "streams_per_core_idle": round(1 / max(idle_share, 1e-3), 1),
        "streams_per_core_speaking": round(1 / max(speak_share, 1e-3), 1),
        "ticks_per_s": round((b["ticks"] - a["ticks"]) / (b["wall"] - a["wall"]), 2),
        "sentence_frames": said,
    }
    (artifacts / "live-cost.json").write_text(json.dumps(figures, indent=2))
    print("\n", json.dumps(figures))
    assert 23 <= figures["ticks_per_s"] <= 27
    assert figures["idle_frames_replayed_share"] >= 0.8
    # The 0.15-core target is the benchmark's (bench/live.py), not a timed test's: here idle
    # must cost clearly less than speaking, because idle pictures are replayed, not encoded.
    assert idle_share <= 0.7 * figures["stream_cpu_speaking"], figures
    assert speak_encoded >= 0.5 * 4 * 25  # speech is encoded live
