"""Audio and video of a viewer stay in sync by construction: a click at a known speech frame,
decoded from the viewer's Opus packets, sits at that frame's video time (both timed from the
tick index), also when the viewer joined late."""

from __future__ import annotations

import asyncio

import av
import numpy as np

from overlays.live.encoder import SharedVideoEncoder
from overlays.live.stream import LiveStream
from tests.live.conftest import FPS, FakePerformer, performance

CLICK_FRAME = 17


async def _collect(viewer, seconds: float) -> tuple[list, list]:
    video, audio = [], []

    async def pull(get, sink) -> None:
        while True:
            sink.append(await get())

    tasks = [asyncio.create_task(pull(viewer.next_packet, video), name="test:video"),
             asyncio.create_task(pull(viewer.next_audio, audio), name="test:audio")]
    await asyncio.sleep(seconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return video, audio


async def test_a_click_is_heard_at_its_frames_video_time():
    performer = FakePerformer()
    async with LiveStream(persona="vee", performer=performer) as stream, \
            SharedVideoEncoder(stream=stream) as encoder:
        probe = stream.subscribe("probe", max_queue=1000)
        early = encoder.add_viewer("early")
        await asyncio.sleep(0.5)
        late = encoder.add_viewer("late")  # joins mid-stream: its times start at its keyframe
        perf = performance(reply_id="click", seconds=1.2, click_frame=CLICK_FRAME)
        stream.push(perf)
        (ev, ea), (lv, la) = await asyncio.gather(_collect(early, 2.0), _collect(late, 2.0))
        ticks = []
        while probe.pending:
            ticks.append(await probe.__anext__())
        probe.close()
        early.close()
        late.close()
    click_tick = next(t.index for t in ticks
                      if t.reply_id == "click" and int(t.rgba[0, 0, 1]) == CLICK_FRAME)
    for viewer, video, audio in ((early, ev, ea), (late, lv, la)):
        assert viewer.first_index is not None
        # The video packet of the click's tick has pts = its tick index from the viewer's first.
        pts = [p.pts for p in video]
        assert click_tick - viewer.first_index in pts
        video_time = (click_tick - viewer.first_index) / FPS
        # Decode the audio packets in order, placing each at its pts: where is the click?
        decoder = av.CodecContext.create("libopus", "r")
        decoder.sample_rate = 48000
        loudest, at = 0.0, None
        for packet in audio:
            for frame in decoder.decode(packet):
                pcm = frame.to_ndarray().reshape(frame.samples, -1)[:, 0].astype(np.float32)
                if len(pcm) and np.abs(pcm).max() > loudest:
                    loudest = float(np.abs(pcm).max())
                    at = (packet.pts + int(np.abs(pcm).argmax())) / 48000
        assert at is not None and loudest > 0.2
        # Within one frame (Opus adds 6.5 ms of look-ahead; the click is 0.4 ms into its frame).
        assert abs(at - video_time) < 1 / FPS, (at, video_time)


async def test_nothing_piles_up_before_or_while_a_connection_does_not_send():
    """A viewer whose connection is not sending yet (DTLS still coming up) queues nothing, and
    one that stops taking audio keeps at most a bounded backlog: a burst of old media would make
    the browser buffer it all, and every later word would come that much late."""
    async with LiveStream(persona="vee", performer=FakePerformer()) as stream, \
            SharedVideoEncoder(stream=stream) as encoder:
        viewer = encoder.add_viewer("slow")
        await asyncio.sleep(0.5)
        assert stream.ticks >= 5 and viewer.queued == (0, 0)
        packet = await asyncio.wait_for(viewer.next_packet(), 5)  # the connection sends now
        assert packet.pts == 0 and viewer.first_index is not None
        await asyncio.sleep(0.6)  # nobody takes the audio
        assert viewer.queued[1] <= viewer.AUDIO_QUEUE
        viewer.close()
