"""The clip recorder on a real bus: real files (PyAV) when needed, ClipReady published for each,
nothing when not needed, nothing for a cancelled reply, and the loop stays free meanwhile."""

from __future__ import annotations

import asyncio

import av
import numpy as np

from avatar_engine.types import Performance, Speech
from overlays.bus import StageBus
from overlays.recorder import ClipRecorder
from overlays.stage import ClipReady, Performed, ReplyCancelled, StageEvent


def performance(reply_id: str, index: int, *, seconds: float = 0.4,
                persona: str = "mika") -> Performance:
    rate, fps = 16000, 25
    t = np.arange(int(seconds * rate), dtype=np.float32) / rate
    speech = Speech(text=f"sentence {index}", audio=0.2 * np.sin(2 * np.pi * 330 * t),
                    sample_rate=rate)
    n = round(seconds * fps)
    frames = np.zeros((n, 64, 64, 4), np.uint8)
    frames[:, 16:48, 16:48] = (200, 80, 40, 255)
    return Performance(persona=persona, reply_id=reply_id, index=index, speech=speech,
                       frames=frames, fps=fps, start_frame=0)


class Clips:
    """A stage that collects the ClipReady events the recorder publishes."""

    name = "clips"
    wants: frozenset[type[StageEvent]] = frozenset({ClipReady})

    def __init__(self) -> None:
        self.ready: list[ClipReady] = []

    async def handle(self, event: StageEvent) -> None:
        assert isinstance(event, ClipReady)
        self.ready.append(event)


async def test_encodes_files_and_publishes_clip_ready(tmp_path):
    clips = Clips()
    bus = StageBus([clips])
    recorder = ClipRecorder(folders={"mika": tmp_path}, formats=("mp4", "webm"),
                            publish=bus.publish)
    bus.add_stage(recorder)
    async with bus:
        for i in range(2):
            bus.publish(Performed(performance("r1", i)))
        bus.publish(Performed(performance("r9", 0, persona="stranger")))  # no folder: ignored
        async with asyncio.timeout(60):
            while len(clips.ready) < 2:
                await bus.wait_idle()
    got = [c.clip for c in clips.ready]
    assert [(c.reply_id, c.index, c.text) for c in got] == [
        ("r1", 0, "sentence 0"), ("r1", 1, "sentence 1")]
    mp4 = got[0].path("mp4")
    assert mp4 == tmp_path / "r1-00.mp4" and got[1].path("webm") == tmp_path / "r1-01.webm"
    with av.open(str(mp4)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == got[0].frames == 10 and abs(got[0].duration - 0.4) < 1e-9
    assert recorder.encoded == 2 and recorder.skipped == 1


async def test_encodes_nothing_when_nobody_needs_clips(tmp_path):
    wanted = [False]
    clips = Clips()
    bus = StageBus([clips])
    recorder = ClipRecorder(folders={"mika": tmp_path}, formats=("mp4",), publish=bus.publish,
                            needed=lambda: wanted[0])
    bus.add_stage(recorder)
    async with bus:
        bus.publish(Performed(performance("r1", 0)))
        async with asyncio.timeout(30):
            await bus.wait_idle()
        assert list(tmp_path.iterdir()) == [] and clips.ready == []
        wanted[0] = True  # a clip page connected
        bus.publish(Performed(performance("r1", 1)))
        async with asyncio.timeout(30):
            while not clips.ready:
                await bus.wait_idle()
    assert [p.name for p in tmp_path.iterdir()] == ["r1-01.mp4"]


async def test_a_cancelled_reply_is_not_encoded_and_no_clip_of_it_is_published(tmp_path):
    clips = Clips()
    bus = StageBus([clips])
    recorder = ClipRecorder(folders={"mika": tmp_path}, formats=("mp4",), publish=bus.publish)
    bus.add_stage(recorder)
    lags: list[float] = []
    async with bus:
        loop = asyncio.get_running_loop()
        for i in range(4):  # long sentences: the first is encoding when the cancel comes
            bus.publish(Performed(performance("r1", i, seconds=2.0)))
        t = loop.time()
        await asyncio.sleep(0.01)
        lags.append(loop.time() - t - 0.01)  # the loop is not held by the encoder
        bus.publish(ReplyCancelled(persona="mika", reply_id="r1"))
        bus.publish(Performed(performance("r2", 0)))
        async with asyncio.timeout(30):
            while not clips.ready:
                await bus.wait_idle()
    assert [c.clip.reply_id for c in clips.ready] == ["r2"]
    assert recorder.encoded == 1
    assert lags[0] < 0.5
