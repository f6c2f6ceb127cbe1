"""A persona's live stream served on its own, in its own process, for measuring what it costs:
the real sprite avatar, the LiveStream, the shared encoder and LiveRTC behind a tiny HTTP API.

    python -m tests.live.serve_live  ->  prints "PORT <n>", then serves:
    POST /offer {sdp, type} -> {sdp, type}; POST /say {seconds} -> {}; GET /stats -> {...}
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from pathlib import Path

import numpy as np
from aiohttp import web

from avatar_engine.performer import LocalPerformer
from avatar_engine.renderers.sprite import SpriteRenderer
from avatar_engine.renderers.spriteset import SpriteSet
from avatar_engine.types import PhonemeTiming, Speech
from overlays.live.stream import LiveStream
from overlays.live.webrtc import LiveRTC

REPO = Path(__file__).resolve().parents[2]


def speech(seconds: float, rate: int = 22050) -> Speech:
    """A buzz with syllables every 0.2 s: the mouth keeps moving."""
    n = int(seconds / 0.2)
    phonemes = tuple(PhonemeTiming("aoeiu."[i % 6], i * 0.2, (i + 1) * 0.2) for i in range(n))
    t = np.arange(round(seconds * rate)) / rate
    audio = (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
    return Speech(text="Measuring.", audio=audio, sample_rate=rate, phonemes=phonemes)


async def main() -> None:
    sprites = SpriteSet.load(REPO / "config" / "avatars" / "default")
    performer = LocalPerformer(persona="vee", renderer=SpriteRenderer(
        sprites=sprites, fps=25, device="cpu"))
    async with AsyncExitStack() as stack:
        stream = await stack.enter_async_context(LiveStream(persona="vee", performer=performer))
        rtc = await stack.enter_async_context(LiveRTC({"vee": stream}))
        core = rtc.encoders["vee"].core

        async def offer(request: web.Request) -> web.Response:
            body = await request.json()
            sdp, kind = await rtc.answer("vee", body["sdp"], body["type"])
            return web.json_response({"sdp": sdp, "type": kind})

        async def say(request: web.Request) -> web.Response:
            body = await request.json()
            perf = await performer.perform(speech(float(body["seconds"])), reply_id="m", index=0)
            stream.push(perf)
            return web.json_response({"frames": perf.n_frames})

        async def stats(request: web.Request) -> web.Response:
            return web.json_response({
                "cpu": time.process_time(), "wall": time.monotonic(), "ticks": stream.ticks,
                "encoded": core.encoded, "replayed": core.replayed, "encode_s": core.encode_s,
                "keyframes": core.keyframes, "connections": rtc.connections,
                "speech_frames": stream.speech_frames})

        app = web.Application()
        app.router.add_post("/offer", offer)
        app.router.add_post("/say", say)
        app.router.add_get("/stats", stats)
        runner = web.AppRunner(app)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"PORT {port}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
