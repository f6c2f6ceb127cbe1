"""Idle pictures shared between the live streams of one persona renderer (the talk sessions):
the shared frames are exactly the renderer's, each picture is drawn once for every stream,
each stream keeps its own clock (speech continues it, idle resumes after it), the encoded
idle packets are shared between encoders, and steady silence is not re-encoded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from avatar_engine.performer import LocalPerformer
from avatar_engine.renderers.sprite import SpriteRenderer
from avatar_engine.renderers.spriteset import SpriteSet
from avatar_engine.types import PhonemeTiming, Speech
from overlays.live.encoder import IdlePacketCache, OpusCore, SharedVideoEncoder, Vp8Core
from overlays.live.idle import IdleSource, SharedIdleRenderer
from overlays.live.settings import LiveSettings
from overlays.live.stream import LiveStream, LiveTick
from tests.live.conftest import eventually

REPO = Path(__file__).resolve().parents[2]
FPS = 25


class CountingSprites(SpriteRenderer):
    """The real sprite renderer, counting the idle frames it draws."""

    idle_calls = 0
    idle_drawn = 0

    def idle(self, n_frames: int, *, start_frame: int = 0) -> torch.Tensor:
        self.idle_calls += 1
        self.idle_drawn += n_frames
        return super().idle(n_frames, start_frame=start_frame)


@pytest.fixture(scope="module")
def sprites() -> SpriteSet:
    return SpriteSet.load(REPO / "config" / "avatars" / "default")


@pytest.fixture
def renderer(sprites: SpriteSet) -> CountingSprites:
    return CountingSprites(sprites=sprites, fps=FPS, device="cpu")


def _speech(seconds: float = 0.8) -> Speech:
    rate = 22050
    audio = 0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * rate)) / rate)
    step = seconds / 4
    return Speech(text="Hello there.", audio=audio.astype(np.float32), sample_rate=rate,
                  phonemes=tuple(PhonemeTiming(p, i * step, (i + 1) * step)
                                 for i, p in enumerate("aoei")))


def test_shared_frames_are_exactly_the_renderers(renderer: CountingSprites) -> None:
    source = IdleSource(renderer)
    rng = np.random.default_rng(3)
    for start in [0, 97, *rng.integers(0, 200_000, 6).tolist()]:
        n = 60
        want = renderer.idle(n, start_frame=start).numpy()
        got = source.idle(n, start)
        assert np.array_equal(got, want), start
        frames = source.frames_at(start, n)
        assert frames is not None
        # Same key <=> same pixels; a repeated picture is the very same array.
        for (a, ka), (b, kb) in zip(frames, frames[1:], strict=False):
            assert (ka == kb) == bool(np.array_equal(a, b))
            assert (a is b) == (ka == kb)
    # The avatar shows 3 eye states x 4 breathing lifts at most.
    assert source.pictures <= 12 and source.drawn == source.pictures


def test_a_source_needs_a_renderer_that_tells_idle_pictures_apart() -> None:
    class Plain:
        size, fps, device = (8, 8), 25, torch.device("cpu")

        def render(self, speech: Speech, *, start_frame: int = 0) -> torch.Tensor:
            raise NotImplementedError

        def idle(self, n_frames: int, *, start_frame: int = 0) -> torch.Tensor:
            return torch.zeros((n_frames, 8, 8, 4), dtype=torch.uint8)

    assert IdleSource.for_renderer(Plain()) is None  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cannot tell its idle pictures apart"):
        IdleSource(Plain())  # type: ignore[arg-type]


def _session(source: IdleSource, name: str) -> tuple[LocalPerformer, LiveStream]:
    performer = LocalPerformer(persona=name, renderer=SharedIdleRenderer(source))
    return performer, LiveStream(persona=name, performer=performer, idle_source=source)


async def _take(sub, n: int) -> list[LiveTick]:
    out = []
    async for tick in sub:
        out.append(tick)
        if len(out) == n:
            break
    return out


async def test_streams_of_one_renderer_draw_each_idle_picture_once(
        renderer: CountingSprites) -> None:
    source = IdleSource(renderer)
    sessions = [_session(source, f"talk:{i}") for i in range(3)]
    renderer.idle_calls = renderer.idle_drawn = 0
    # Different clocks, as sessions opened at different times have.
    for (performer, _), skip in zip(sessions, (0, 31, 1234), strict=True):
        performer.idle_frames(skip)
    starts = [p.frame_clock for p, _ in sessions]
    for _, stream in sessions:
        await stream.start()
    try:
        subs = [stream.subscribe("test", max_queue=200) for _, stream in sessions]
        got = await asyncio.gather(*(_take(sub, 50) for sub in subs))
    finally:
        for _, stream in sessions:
            await stream.stop()
    for (performer, stream), ticks, start in zip(sessions, got, starts, strict=True):
        assert [t.index for t in ticks] == list(range(50))
        want = renderer.render_codes(np.full(50, 0, np.int8), start_frame=start)  # mouth X
        assert all(np.array_equal(t.rgba, w) for t, w in zip(ticks, want.numpy(), strict=True))
        assert all(t.idle_key is not None and t.reply_id is None for t in ticks)
        # The performer's clock follows what was shown (a few ticks were prepared ahead).
        assert start + 50 <= performer.frame_clock <= start + 50 + stream.lead_frames + 2
        assert stream.idle_rendered == 0 and stream.idle_shared >= 50
    # 1415 idle frames taken, each distinct picture drawn once (not per stream or frame).
    assert renderer.idle_drawn == source.drawn <= 12


async def test_speech_continues_the_sessions_clock_and_idle_resumes_after_it(
        renderer: CountingSprites) -> None:
    source = IdleSource(renderer)
    performer, stream = _session(source, "talk:a")
    other_performer, other = _session(source, "talk:b")
    async with stream, other:
        sub = stream.subscribe("test", max_queue=500)
        other_sub = other.subscribe("test", max_queue=500)
        before = await _take(sub, 10)
        performance = await performer.perform(_speech(), reply_id="r1", index=0)
        stream.push(performance)
        rest: list[LiveTick] = []
        idle_after = 0
        async for tick in sub:
            rest.append(tick)
            said_so_far = sum(t.reply_id == "r1" for t in rest)
            idle_after += said_so_far == performance.n_frames and tick.reply_id is None
            if idle_after == 10 or len(rest) > 500:
                break
        await _take(other_sub, 20)
    ticks = before + rest
    assert [t.index for t in ticks] == list(range(len(ticks)))  # consecutive, none skipped
    said = [t for t in ticks if t.reply_id == "r1"]
    assert len(said) == performance.n_frames
    assert all(np.array_equal(t.rgba, f) for t, f in zip(said, performance.frames, strict=True))
    # The speech was rendered on the session's own clock, from where its idle had got to.
    assert performance.start_frame >= 10
    # Idle resumes from the frame after the speech's last: blinks and breathing go on.
    after = [t for t in ticks if t.index > said[-1].index]
    assert after and all(t.reply_id is None for t in after)
    end = performance.start_frame + performance.n_frames
    want = renderer.render_codes(np.zeros(len(after), np.int8), start_frame=end).numpy()
    assert all(np.array_equal(t.rgba, w) for t, w in zip(after, want, strict=True))
    assert performer.frame_clock >= end + len(after)
    # The other session only idled, on its own clock: one frame per tick shown.
    assert other.speech_frames == 0
    assert other.ticks <= other_performer.frame_clock <= other.ticks + other.lead_frames + 2


def _tick(index: int, rgba: np.ndarray, key: int) -> LiveTick:
    return LiveTick(index=index, pts_s=index / FPS, rgba=rgba, audio=np.zeros(1920, np.int16),
                    reply_id=None, sentence=None, text=None, idle_key=key, released=0.0)


def test_encoders_sharing_a_cache_encode_each_picture_once(renderer: CountingSprites) -> None:
    source = IdleSource(renderer)
    settings = LiveSettings(keyframe_s=1.0)
    cache = IdlePacketCache(size=source.size, fps=FPS, settings=settings)
    first = Vp8Core(size=source.size, fps=FPS, settings=settings, cache=cache)
    second = Vp8Core(size=source.size, fps=FPS, settings=settings, cache=cache)
    seen: list[tuple[np.ndarray, int]] = []
    source.prepare(0, 600)
    frames = source.frames_at(0, 600)
    assert frames is not None
    for i, (rgba, key) in enumerate(frames[:300]):
        first.encode(_tick(i, rgba, key), want_key=(i == 0))
        cache.settle()
        seen.append((rgba, key))
    pictures = len({k for _, k in seen})
    assert cache.filled == pictures
    # The second encoder shows other indices (its own clock) of the same pictures: all of
    # it is replayed from the shared cache, decoded right from its first frame.
    decoder = av.CodecContext.create("libvpx", "r")
    shown = [(rgba, key) for rgba, key in frames[300:] if key in {k for _, k in seen}]
    worst = 0.0
    for i, (rgba, key) in enumerate(shown):
        data, keyframe, cached = second.encode(_tick(i, rgba, key), want_key=(i == 0))
        assert cached and data is not None
        out = decoder.decode(av.Packet(data))[0].to_ndarray(format="rgb24")
        w = rgba.shape[1]
        opaque = rgba[..., 3] == 255
        worst = max(worst, float(np.abs(out[:, :w].astype(int) - rgba[..., :3])[opaque].mean()))
    assert second.encoded == 0 and second.replayed == len(shown) > 200
    assert cache.filled == pictures  # nothing encoded twice
    assert worst < 8, worst
    cache.close()


async def test_encoders_of_streams_sharing_a_source_share_one_cache(
        renderer: CountingSprites) -> None:
    source = IdleSource(renderer)
    settings = LiveSettings()
    (_, a), (_, b) = _session(source, "talk:a"), _session(source, "talk:b")
    _, plain = _session(source, "talk:c")
    plain.idle_source = None  # (a stream of its own: its encoder keeps its own cache)
    async with a, b, SharedVideoEncoder(stream=a, settings=settings) as ea, \
            SharedVideoEncoder(stream=b, settings=settings) as eb:
        assert ea.core.cache is eb.core.cache
        assert SharedVideoEncoder(stream=plain, settings=settings).core.cache is not ea.core.cache
        # Every picture of the next minutes encoded into the shared cache once, up front.
        await asyncio.to_thread(source.prepare, 0, 25 * 60 * 5)
        pictures = {key: rgba for rgba, key in source.drawn_pictures()}
        for key, rgba in pictures.items():
            ea.core.cache.request(key, rgba)
        await asyncio.to_thread(ea.core.cache.settle)
        va, vb = ea.add_viewer("a"), eb.add_viewer("b")
        got = {"a": 0, "b": 0}

        async def drain(name: str, viewer) -> None:
            while True:
                await viewer.next_packet()
                got[name] += 1

        async def audio(viewer) -> None:
            while True:
                await viewer.next_audio()

        tasks = [asyncio.create_task(drain("a", va)), asyncio.create_task(drain("b", vb)),
                 asyncio.create_task(audio(va)), asyncio.create_task(audio(vb))]
        try:
            await eventually(lambda: got["a"] >= 100 and got["b"] >= 100, 30)
            filled = ea.core.cache.filled
            replayed = ea.core.replayed + eb.core.replayed
            encoded = ea.core.encoded + eb.core.encoded
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    assert filled == len(pictures) == source.pictures <= 12
    # Neither session encodes an idle frame: both replay the one cache.
    assert encoded == 0 and replayed >= 200, (replayed, encoded)
    # Steady idle ticks (a cached picture, steady silence) never leave the loop.
    assert ea.inline > 0 and eb.inline > 0
    assert ea.audio.reused > 0 and eb.audio.reused > 0


def test_steady_silence_is_reused_and_sound_after_it_decodes() -> None:
    core = OpusCore()
    spt = 1920
    packets: list[bytes] = []
    for i in range(100):  # 4 s of silence
        packets += [p for _, p in core.encode(i, spt, np.zeros(spt, np.int16))]
    assert core.reused >= 150 and core.encoded <= 50, (core.reused, core.encoded)
    assert core.reuses(100, spt, np.zeros(spt, np.int16))
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(25 * spt) / 48000)).astype(np.int16)
    assert not core.reuses(100, spt, tone[:spt])
    for i in range(25):  # 1 s of a tone
        packets += [p for _, p in core.encode(100 + i, spt, tone[i * spt:(i + 1) * spt])]
    assert len(packets) == 250  # 20 ms each: nothing lost, nothing extra
    decoder = av.CodecContext.create("libopus", "r")
    decoder.sample_rate, decoder.layout = 48000, "mono"
    pcm = []
    for data in packets:
        for frame in decoder.decode(av.Packet(data)):
            pcm.append(frame.to_ndarray().reshape(-1))
    out = np.concatenate(pcm).astype(np.float64)
    if out.dtype.kind == "f" or np.abs(out).max() <= 1.0:
        out *= 32767
    silent, sound = out[: 100 * spt], out[110 * spt: 125 * spt]
    assert np.abs(silent).max() < 50
    assert np.sqrt(np.mean(sound ** 2)) > 3000  # the tone is heard after the silence
    # Back to silence: it settles again and is reused again.
    reused = core.reused
    for i in range(50):
        core.encode(125 + i, spt, np.zeros(spt, np.int16))
    assert core.reused > reused


def test_stream_refuses_a_source_of_another_size(renderer: CountingSprites,
                                                 sprites: SpriteSet) -> None:
    from vstage_core.errors import ConfigError

    source = IdleSource(CountingSprites(sprites=sprites, fps=30, device="cpu"))
    performer = LocalPerformer(persona="x", renderer=renderer)
    with pytest.raises(ConfigError, match="shared idle pictures"):
        LiveStream(persona="x", performer=performer, idle_source=source)

