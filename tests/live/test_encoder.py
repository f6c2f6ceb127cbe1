"""The shared VP8 encoder on the real sprite avatar: colour and alpha packed side by side
survive the codec, and replaying encoded idle runs from the cache leaves every decoder with
the right picture (speech in between included) while encoding only a few idle frames."""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
import pytest

from avatar_engine.performer import LocalPerformer
from avatar_engine.renderers.sprite import SpriteRenderer
from avatar_engine.renderers.spriteset import SpriteSet
from avatar_engine.types import PhonemeTiming, Speech
from overlays.live.encoder import Vp8Core, pack_yuv
from overlays.live.settings import LiveSettings
from overlays.live.stream import LiveStream, LiveTick

REPO = Path(__file__).resolve().parents[2]
FPS = 25


@pytest.fixture(scope="module")
def performer() -> LocalPerformer:
    sprites = SpriteSet.load(REPO / "config" / "avatars" / "default")
    return LocalPerformer(persona="vee", renderer=SpriteRenderer(sprites=sprites, fps=FPS,
                                                                 device="cpu"))


def _decoded(decoder, data: bytes) -> np.ndarray:
    frames = decoder.decode(av.Packet(data))
    assert len(frames) == 1
    return frames[0].to_ndarray(format="rgb24")


def _error(decoded: np.ndarray, rgba: np.ndarray) -> tuple[float, float]:
    """Mean absolute error of the colour (where opaque) and of the alpha half."""
    w = rgba.shape[1]
    opaque = rgba[..., 3] == 255
    colour = np.abs(decoded[:, :w].astype(int) - rgba[..., :3])[opaque].mean()
    alpha = np.abs(decoded[:, w:, 0].astype(int) - rgba[..., 3]).mean()
    return float(colour), float(alpha)


def test_colour_and_alpha_side_by_side_survive_the_conversion(performer):
    rgba = performer.idle_frames(1)[0]
    h, w = rgba.shape[:2]
    back = pack_yuv(rgba).reformat(format="rgb24").to_ndarray()
    assert back.shape == (h, 2 * w, 3)
    colour, alpha = _error(back, rgba)
    assert colour < 3 and alpha < 1.5
    assert back[:, w:, 0][rgba[..., 3] == 0].max() <= 2  # clear stays clear
    assert back[:, w:, 0][rgba[..., 3] == 255].min() >= 253  # opaque stays opaque


def _ticks(stream: LiveStream, performer: LocalPerformer, n_idle: int, start: int):
    out = []
    for rgba, key in stream._render_idle(n_idle):
        out.append(LiveTick(index=start + len(out), pts_s=0, rgba=rgba, audio=np.zeros(1920,
                            np.int16), reply_id=None, sentence=None, text=None, idle_key=key,
                            released=0))
    return out


def test_replayed_idle_runs_decode_to_the_right_pictures_around_speech(performer):
    stream = LiveStream(persona="vee", performer=performer)
    core = Vp8Core(size=performer.size, fps=FPS, settings=LiveSettings(keyframe_s=1.0))
    rate = 22050
    speech = Speech(text="Hello.", audio=0.2 * np.random.default_rng(1).standard_normal(
        rate).astype(np.float32), sample_rate=rate,
        phonemes=tuple(PhonemeTiming(p, i * 0.2, (i + 1) * 0.2) for i, p in enumerate("aoeia")))
    said = performer.renderer.render(speech, start_frame=0).numpy()
    ticks = _ticks(stream, performer, 300, 0)  # 12 s idle: breathing, several blinks
    speaking = [LiveTick(index=0, pts_s=0, rgba=f, audio=np.zeros(1920, np.int16),
                         reply_id="r", sentence=0, text="Hello.", idle_key=None, released=0)
                for f in said]
    timeline = ticks[:150] + speaking + ticks[150:] + _ticks(stream, performer, 200, 0)
    decoder = av.CodecContext.create("libvpx", "r")
    late = av.CodecContext.create("libvpx", "r")  # a viewer that joins mid-way
    worst = (0.0, 0.0)
    replayed_idle = encoded_idle = 0
    t0 = time.thread_time()
    for i, tick in enumerate(timeline):
        data, keyframe, cached = core.encode(tick, want_key=(i == 350))
        core.settle()  # (ticks come faster than real time here: let the cache keep up)
        assert data is not None
        got = _decoded(decoder, data)
        if i % 2 == 0 or tick.idle_key is None:  # (every other idle frame: a busy machine)
            colour, alpha = _error(got, tick.rgba)
            worst = (max(worst[0], colour), max(worst[1], alpha))
        if i >= 350:
            if i == 350:
                assert keyframe  # a new viewer gets a keyframe at once
            assert np.array_equal(_decoded(late, data), got)
        if tick.idle_key is not None and i >= 300:
            replayed_idle += cached
            encoded_idle += not cached
    spent = time.thread_time() - t0
    assert worst[0] < 8 and worst[1] < 4, worst
    # After the first seconds almost every idle frame is replayed, not encoded.
    assert replayed_idle >= 0.8 * (replayed_idle + encoded_idle), (replayed_idle, encoded_idle)
    print(f"\nidle replayed {replayed_idle}, encoded {encoded_idle}; "
          f"{core.encoded} frames encoded in {core.encode_s * 1000 / core.encoded:.1f} ms each; "
          f"{len(timeline)} ticks took {spent:.2f} s CPU; {core.keyframes} keyframes, "
          f"{core.nodes} cached packets")


def test_without_the_cache_every_frame_is_encoded(performer):
    stream = LiveStream(persona="vee", performer=performer)
    core = Vp8Core(size=performer.size, fps=FPS, settings=LiveSettings(idle_cache_packets=0))
    for tick in _ticks(stream, performer, 30, 0):
        _, _, cached = core.encode(tick, want_key=False)
        assert not cached
    assert core.encoded == 30 and core.keyframes == 2  # keyframe_s: one a second
