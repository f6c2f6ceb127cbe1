"""Tests of clip encoding: real PyAV encoders and decoders on small synthetic clips.

Every file is decoded back and checked for what a browser or OBS relies on: codecs, pixel
format, frame count, audio and video ending together, alpha in the WebM and the key colour in
the MP4.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from avatar_engine.clips import AUDIO_RATE, DEFAULT_BACKGROUND, encode_clip
from avatar_engine.clips import encode as encode_module
from avatar_engine.types import ClipFile
from vstage_core.errors import ProviderError

FPS = 25
N = 30  # 1.2 s
H, W = 64, 96
SR = 22050
OPAQUE = (200, 60, 40)
TONE_START = 0.2  # seconds of silence before the tone
SPEECH = 0.9  # seconds of audio given, shorter than the 1.2 s of frames


def make_frames(n: int = N, h: int = H, w: int = W) -> np.ndarray:
    """Left half transparent (its RGB is magenta, which must not show), right half opaque,
    with a small square moving across the opaque half so the encoder has motion to code."""
    frames = np.zeros((n, h, w, 4), np.uint8)
    frames[:, :, : w // 2] = (255, 0, 255, 0)
    frames[:, :, w // 2 :] = (*OPAQUE, 255)
    for i in range(n):
        x = w // 2 + 4 + (i % (w // 2 - 12))
        frames[i, 8:16, x : x + 8, :3] = (20, 20, 220)
    return frames


def make_speech(seconds: float = SPEECH, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    audio = 0.5 * np.sin(2 * np.pi * 440 * t)
    audio[t < TONE_START] = 0.0
    return audio.astype(np.float32)


GOOD = {
    "frames": make_frames(n=2),
    "audio": make_speech(0.1),
    "sample_rate": SR,
    "fps": FPS,
}


@dataclass
class Probe:
    """What a player sees in a file."""

    video_codec: str
    audio_codec: str
    pix_fmt: str
    metadata: dict[str, str]
    container_duration: float
    video_end: float
    audio_end: float
    frames: list[np.ndarray]  # decoded RGBA (WebM, with alpha) or RGB (MP4)
    audio: np.ndarray  # decoded samples, first channel
    audio_rate: int
    first_audio_time: float


def probe(path: Path) -> Probe:
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        ends = {v.index: 0.0, a.index: 0.0}
        packets = []
        for p in c.demux(v, a):
            if p.size:
                packets.append(p)
                end = float((p.pts + p.duration) * p.time_base)
                ends[p.stream.index] = max(ends[p.stream.index], end)
        webm = c.format.name.startswith("matroska")
        # PyAV's default VP9 decoder drops alpha; libvpx-vp9 decodes the alpha side data.
        vdec = av.CodecContext.create("libvpx-vp9", "r") if webm else v.codec_context
        frames, chunks, first = [], [], None
        for p in packets:
            if p.stream.index == v.index:
                for f in vdec.decode(p):
                    frames.append(f.to_ndarray(format="rgba" if webm else "rgb24"))
            else:
                for f in a.codec_context.decode(p):
                    if first is None:
                        first = float(f.pts * f.time_base)
                    chunks.append(f.to_ndarray()[0])
        for f in vdec.decode(None):
            frames.append(f.to_ndarray(format="rgba" if webm else "rgb24"))
        for f in a.codec_context.decode(None):
            chunks.append(f.to_ndarray()[0])
        return Probe(
            video_codec=v.codec_context.name,
            audio_codec=a.codec_context.name,
            pix_fmt=v.codec_context.pix_fmt,
            metadata=dict(v.metadata),
            container_duration=c.duration / 1e6,
            video_end=ends[v.index],
            audio_end=ends[a.index],
            frames=frames,
            audio=np.concatenate(chunks),
            audio_rate=a.codec_context.sample_rate,
            first_audio_time=first if first is not None else 0.0,
        )


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[tuple[ClipFile, ...], Path]:
    out = tmp_path_factory.mktemp("clips") / "sub" / "reply-1-0"
    files = encode_clip(
        frames=make_frames(), audio=make_speech(), sample_rate=SR, fps=FPS, out_base=out
    )
    return files, out


@pytest.fixture(scope="module")
def webm(clip) -> Probe:
    return probe(clip[1].with_suffix(".webm"))


@pytest.fixture(scope="module")
def mp4(clip) -> Probe:
    return probe(clip[1].with_suffix(".mp4"))


def test_writes_both_files_in_order(clip) -> None:
    files, out = clip
    assert [f.format for f in files] == ["webm", "mp4"]
    assert [f.path for f in files] == [out.with_suffix(".webm"), out.with_suffix(".mp4")]
    assert all(f.path.stat().st_size > 0 for f in files)
    assert sorted(p.name for p in out.parent.iterdir()) == ["reply-1-0.mp4", "reply-1-0.webm"]


def test_codecs_and_pixel_formats(webm: Probe, mp4: Probe) -> None:
    assert (webm.video_codec, webm.audio_codec) == ("vp9", "opus")
    assert (mp4.video_codec, mp4.audio_codec) == ("h264", "aac")
    assert mp4.pix_fmt == "yuv420p"
    assert webm.metadata.get("alpha_mode") == "1"
    assert webm.audio_rate == mp4.audio_rate == AUDIO_RATE == 48_000


def test_webm_decodes_with_alpha_plane(clip) -> None:
    path = clip[1].with_suffix(".webm")
    with av.open(str(path)) as c:
        dec = av.CodecContext.create("libvpx-vp9", "r")
        packet = next(p for p in c.demux(video=0) if p.size)
        assert dec.decode(packet)[0].format.name == "yuva420p"


@pytest.mark.parametrize("name", ["webm", "mp4"])
def test_every_frame_is_encoded(name: str, request: pytest.FixtureRequest) -> None:
    p: Probe = request.getfixturevalue(name)
    assert len(p.frames) == N
    assert p.frames[0].shape[:2] == (H, W)


@pytest.mark.parametrize("name", ["webm", "mp4"])
def test_audio_and_video_end_together(name: str, request: pytest.FixtureRequest) -> None:
    p: Probe = request.getfixturevalue(name)
    duration, frame = N / FPS, 1 / FPS
    assert p.video_end == pytest.approx(duration, abs=1e-6)
    assert abs(p.audio_end - duration) < frame
    assert abs(p.container_duration - duration) < frame
    # What actually decodes, priming removed, encoder padding at most a fraction of a frame.
    assert p.first_audio_time == pytest.approx(0.0, abs=1e-3)
    assert abs(len(p.audio) - duration * AUDIO_RATE) < frame * AUDIO_RATE


@pytest.mark.parametrize("name", ["webm", "mp4"])
def test_speech_is_in_place_and_padded_with_silence(
    name: str, request: pytest.FixtureRequest
) -> None:
    p: Probe = request.getfixturevalue(name)
    loud = np.flatnonzero(np.abs(p.audio) > 0.1)
    # Onset at TONE_START: encoder delay (Opus pre-skip, AAC priming) was compensated.
    assert loud[0] / AUDIO_RATE == pytest.approx(TONE_START, abs=0.005)
    assert loud[-1] / AUDIO_RATE == pytest.approx(SPEECH, abs=0.01)
    assert np.max(np.abs(p.audio[loud[-1] + AUDIO_RATE // 50 :])) < 0.02  # silence after
    rms = np.sqrt(np.mean(p.audio[loud[0] : loud[-1]] ** 2))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.1)


def test_webm_keeps_transparency(webm: Probe) -> None:
    src = make_frames()
    for frame, original in zip(webm.frames, src, strict=True):
        alpha = frame[..., 3].astype(int)
        transparent = original[..., 3] == 0
        assert alpha[transparent].max() <= 16
        assert alpha[~transparent].min() >= 240
    # Colour survives away from edges and the moving square.
    patch = webm.frames[0][40:60, W // 2 + 8 : W - 4, :3].reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(patch, OPAQUE, atol=6)


def test_mp4_shows_background_where_transparent(mp4: Probe) -> None:
    frame = mp4.frames[0].astype(float)
    bg = frame[8:56, 4 : W // 2 - 8].reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(bg, DEFAULT_BACKGROUND, atol=6)
    fg = frame[40:60, W // 2 + 8 : W - 4].reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(fg, OPAQUE, atol=6)


def test_custom_background_and_partial_alpha(tmp_path: Path) -> None:
    frames = np.zeros((2, 16, 16, 4), np.uint8)
    frames[..., :3] = (255, 255, 255)
    frames[..., 3] = 128  # half-transparent white over blue
    (f,) = encode_clip(
        frames=frames,
        audio=np.zeros(0, np.float32),
        sample_rate=SR,
        fps=FPS,
        out_base=tmp_path / "half",
        formats=("mp4",),
        background=(0, 0, 255),
    )
    assert f.format == "mp4" and not (tmp_path / "half.webm").exists()
    rgb = probe(f.path).frames[0][4:12, 4:12].reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(rgb, (128, 128, 255), atol=6)


def test_torch_tensor_input(tmp_path: Path) -> None:
    frames = torch.from_numpy(make_frames(n=10))[::2]  # not contiguous
    assert not frames.is_contiguous()
    files = encode_clip(
        frames=frames, audio=make_speech(0.1), sample_rate=SR, fps=FPS, out_base=tmp_path / "t"
    )
    for f in files:
        p = probe(f.path)
        assert len(p.frames) == 5
    assert probe(files[0].path).frames[0][..., 3].max() >= 240


def test_idle_loop_with_silent_audio_sequential(tmp_path: Path) -> None:
    """An idle loop is just a clip with silent (here all-zero) audio."""
    frames = make_frames(n=50)
    files = encode_clip(
        frames=frames,
        audio=np.zeros(2 * SR, np.float32),
        sample_rate=SR,
        fps=FPS,
        out_base=tmp_path / "idle",
        concurrent=False,
    )
    for f in files:
        p = probe(f.path)
        assert len(p.frames) == 50
        assert abs(len(p.audio) - 2 * AUDIO_RATE) < AUDIO_RATE / FPS
        assert np.max(np.abs(p.audio)) < 1e-3


def test_long_audio_is_trimmed_and_odd_sizes_padded(tmp_path: Path) -> None:
    frames = make_frames(n=10, h=33, w=47)
    files = encode_clip(
        frames=frames,
        audio=make_speech(2.0, sr=16000),
        sample_rate=16000,
        fps=30,
        out_base=tmp_path / "odd",
    )
    for f in files:
        p = probe(f.path)
        assert len(p.frames) == 10
        assert p.frames[0].shape[:2] == (34, 48)
        assert abs(len(p.audio) / AUDIO_RATE - 10 / 30) < 1 / 30
        assert abs(p.container_duration - 10 / 30) < 1 / 30


def test_replaces_existing_files_atomically(tmp_path: Path) -> None:
    out = tmp_path / "clip"
    out.with_suffix(".webm").write_bytes(b"old")
    encode_clip(
        frames=make_frames(n=3), audio=make_speech(0.1), sample_rate=SR, fps=FPS, out_base=out
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "clip.webm"]
    assert out.with_suffix(".webm").read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # EBML header


def test_encoder_failure_raises_provider_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(encode_module._VP9_OPTIONS, "deadline", "not-a-deadline")
    out = tmp_path / "clip"
    out.with_suffix(".webm").write_bytes(b"old webm")
    for concurrent in (True, False):
        with pytest.raises(ProviderError, match="webm") as info:
            encode_clip(
                frames=make_frames(n=3),
                audio=make_speech(0.1),
                sample_rate=SR,
                fps=FPS,
                out_base=out,
                concurrent=concurrent,
            )
        assert isinstance(info.value.__cause__, av.FFmpegError)
        # The MP4 encoded fine but is not published without its WebM; no temp file remains.
        assert [p.name for p in tmp_path.iterdir()] == ["clip.webm"]
        assert out.with_suffix(".webm").read_bytes() == b"old webm"


def test_unwritable_folder_raises_provider_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ProviderError):
        encode_clip(**GOOD, out_base=tmp_path / "file" / "clip")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"frames": make_frames(n=2).astype(np.float32)}, "dtype uint8"),
        ({"frames": torch.zeros(2, 8, 8, 4)}, "dtype uint8"),
        ({"frames": make_frames(n=2)[..., :3]}, r"\[N, H, W, 4\]"),
        ({"frames": make_frames(n=2)[0]}, r"\[N, H, W, 4\]"),
        ({"frames": np.zeros((0, 8, 8, 4), np.uint8)}, "empty"),
        ({"frames": [[0]]}, "numpy array or torch tensor"),
        ({"audio": (make_speech(0.1) * 32767).astype(np.int16)}, "float"),
        ({"audio": np.zeros((2, 100), np.float32)}, "mono"),
        ({"audio": [0.0, 0.1]}, "audio must be a numpy array"),
        ({"sample_rate": 0}, "sample_rate"),
        ({"fps": 0}, "fps"),
        ({"fps": 25.0}, "fps"),
        ({"formats": ("webm", "gif")}, "gif"),
        ({"formats": ()}, "formats"),
        ({"background": (0, 300, 0)}, "background"),
        ({"background": "green"}, "background"),
    ],
)
def test_bad_input_raises_value_error(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_clip(**{**GOOD, **change}, out_base=tmp_path / "bad")
    assert list(tmp_path.iterdir()) == []
