"""LiveRTC over loopback with a second aiortc peer as the browser: video (colour | alpha side by
side) and audio arrive and decode, a viewer that disconnects mid-reply stops neither the
stream nor another viewer, a renegotiation makes a new connection."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from overlays.live.stage import LiveStage
from overlays.live.stream import LiveStream
from overlays.live.webrtc import LiveRTC
from overlays.stage import Performed
from tests.live.conftest import SIZE, FakePerformer, eventually, performance

W, H = SIZE


class Browser:
    """The page's side: a recvonly offer (video, then audio), decoded frames collected."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection()
        self.video: list = []
        self.audio: list = []
        self._readers: list[asyncio.Task] = []

    async def connect(self, rtc: LiveRTC, persona: str = "vee") -> None:
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")

        @self.pc.on("track")
        def on_track(track) -> None:
            sink = self.video if track.kind == "video" else self.audio
            self._readers.append(asyncio.create_task(self._read(track, sink),
                                                     name=f"test:read:{track.kind}"))

        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp, kind = await rtc.answer(persona, self.pc.localDescription.sdp,
                                     self.pc.localDescription.type)
        assert kind == "answer" and "VP8" in sdp
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))

    @staticmethod
    async def _read(track, sink: list) -> None:
        try:
            while True:
                sink.append(await track.recv())
        except Exception:
            return

    async def wait(self, video: int, audio: int = 0) -> None:
        await eventually(lambda: len(self.video) >= video and len(self.audio) >= audio, 20)

    async def close(self) -> None:
        await self.pc.close()
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


@pytest.fixture
async def live():
    performer = FakePerformer()
    async with AsyncExitStack() as stack:
        stream = await stack.enter_async_context(LiveStream(persona="vee", performer=performer))
        rtc = await stack.enter_async_context(LiveRTC({"vee": stream}))
        yield stream, rtc


async def test_a_peer_receives_packed_colour_and_alpha_video_and_the_audio(live):
    stream, rtc = live
    browser = Browser()
    await browser.connect(rtc)
    await browser.wait(video=10, audio=20)
    assert rtc.connections == 1 and stream.subscribers == 1
    frame = browser.video[-1].to_ndarray(format="rgb24")
    assert frame.shape == (H, 2 * W, 3)
    alpha = frame[:, W:, 0].astype(int)
    # Right half: the alpha as grey (255 in the square, 0 around it); left half: the colour.
    assert alpha[H // 2, W // 2] > 240 and alpha[2, 2] < 15
    assert 30 <= int(frame[H // 2, W // 2, 1]) <= 110  # the fake's grey square (40..100)
    a = browser.audio[-1]
    assert a.sample_rate == 48000 and a.samples == 960
    await browser.close()


async def test_speech_reaches_the_peer_and_a_disconnect_mid_reply_spares_the_rest(live):
    stream, rtc = live
    stage = LiveStage({"vee": stream})
    one, two = Browser(), Browser()
    await one.connect(rtc)
    await two.connect(rtc)
    await asyncio.gather(one.wait(video=5), two.wait(video=5))
    perf = performance(reply_id="r", seconds=2.0)  # red frames
    await stage.handle(Performed(perf))

    def red(frames) -> int:
        return sum(1 for f in frames
                   if f.to_ndarray(format="rgb24")[H // 2, W // 4 - 4, 0] > 150)

    await eventually(lambda: red(one.video) >= 5)
    await one.close()  # the page goes away mid-sentence
    before, ticks = len(two.video), stream.ticks
    await asyncio.sleep(1.5)
    assert stream.ticks - ticks >= 25  # the stream goes on
    assert len(two.video) - before >= 25  # and so does the other viewer
    # Most of the sentence reaches the remaining viewer (an encoder that falls behind on a
    # loaded machine skips a picture, never the audio).
    assert red(two.video) >= perf.n_frames // 2
    await eventually(lambda: rtc.connections == 1)
    # The page comes back (a reconnect is a new offer): a new connection, same stream.
    again = Browser()
    await again.connect(rtc)
    await again.wait(video=5)
    assert rtc.connections == 2 and stream.subscribers == 1  # one shared encoder
    await again.close()
    await two.close()


async def test_unknown_persona_is_a_key_error(live):
    _, rtc = live
    with pytest.raises(KeyError):
        await rtc.answer("nobody", "v=0", "offer")


async def test_no_viewer_no_work(live):
    stream, rtc = live
    await asyncio.sleep(0.3)
    assert stream.ticks == 0 and stream.subscribers == 0
    browser = Browser()
    await browser.connect(rtc)
    await browser.wait(video=3)
    await browser.close()
    await eventually(lambda: not rtc.connections and not stream.subscribers)
    ticks = stream.ticks
    await asyncio.sleep(0.3)
    assert stream.ticks - ticks <= 1


async def test_speech_starts_and_stops_at_the_peer_within_a_few_frames(live):
    """Push -> first speech frame decoded by the peer, and cancel -> last one: the stream,
    encoder and WebRTC add no backlog (timed by frames, generous against a busy machine)."""
    import time

    stream, rtc = live
    browser = Browser()
    await browser.connect(rtc)
    await browser.wait(video=10)
    arrivals: list[tuple[float, bool]] = []

    def is_red(frame) -> bool:
        return frame.to_ndarray(format="rgb24")[H // 2, W // 8, 0] > 150

    async def watch() -> None:
        seen = len(browser.video)
        while True:
            while len(browser.video) > seen:
                arrivals.append((time.monotonic(), is_red(browser.video[seen])))
                seen += 1
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch(), name="test:watch")
    await asyncio.sleep(0.3)
    pushed = time.monotonic()
    stream.push(performance(reply_id="long", seconds=10.0))
    await eventually(lambda: sum(red for _, red in arrivals) >= 25)
    cancelled = time.monotonic()
    stream.cancel("long")
    await asyncio.sleep(1.0)
    watcher.cancel()
    await browser.close()
    first = next(t for t, red in arrivals if red)
    last = max(t for t, red in arrivals if red)
    assert first - pushed < 0.3, first - pushed
    assert last - cancelled < 0.2, last - cancelled
    assert not any(red for t, red in arrivals if t > cancelled + 0.3)
