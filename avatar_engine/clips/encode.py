"""Encode rendered RGBA frames and a sentence's audio into files a stage can play at once.

Two formats, written side by side (``<out_base>.webm`` and ``<out_base>.mp4``):

* **WebM**: VP9 ``yuva420p`` with its alpha plane, and Opus at 48 kHz. Chromium (and so OBS's
  browser source) shows it with a transparent background, so the avatar floats over a scene.
* **MP4**: H.264 ``yuv420p`` and AAC at 48 kHz with ``+faststart``. H.264 has no alpha, so the
  frames are composited over a solid background first: by default a chroma-key green that OBS's
  "Chroma Key" filter removes, for media sources that cannot play VP9 alpha.

Both files are tagged BT.709 limited range and their audio is padded with silence (or trimmed)
to exactly ``frames / fps`` seconds, so picture and sound end together. Encoding runs in C with
the GIL released, so the two formats are encoded concurrently in two threads. Files appear
atomically: each is written under a hidden temporary name and renamed when complete.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.format import VideoFormat

from avatar_engine.types import ClipFile
from vstage_core.errors import ProviderError

logger = logging.getLogger(__name__)

FORMATS = ("webm", "mp4")
"""Every format :func:`encode_clip` can write."""

DEFAULT_BACKGROUND = (0, 177, 64)
"""The usual chroma-key green, which the MP4 is composited over. Its hue is far from skin, hair
and most clothing, so OBS's Chroma Key filter (key colour "Green") removes it cleanly. It is
darker than pure (0, 255, 0), so soft edges blended with it show less bright green spill."""

AUDIO_RATE = 48_000
"""Sample rate of both audio tracks: Opus only runs at 48 kHz and browsers and OBS mix at it."""

_OPUS_FRAME = 960  # 20 ms at 48 kHz, libopus's default frame
_AAC_FRAME = 1024  # AAC-LC frame
_OPUS_BITRATE = 48_000  # mono speech
_AAC_BITRATE = 96_000  # mono speech, native AAC encoder is weaker than Opus
# libvpx realtime mode as fast as it goes, constant quality (crf with b=0): the alpha plane
# is encoded as a second VP9 stream with the same settings.
_VP9_OPTIONS = {"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "crf": "30", "b": "0"}
# Measured on sprite-like 512x512 frames: superfast + zerolatency (no lookahead, no B-frames)
# encodes ~30% faster than veryfast with the same size and PSNR; ultrafast is faster still but
# drops CABAC (files ~30% bigger).
_X264_OPTIONS = {"preset": "superfast", "tune": "zerolatency", "crf": "23"}
_ENCODER_THREADS = 1

# AVColorPrimaries / AVColorTransferCharacteristic / AVColorSpace / AVColorRange values.
_AVCOL_BT709 = 1
_AVCOL_RANGE_MPEG = 1


def encode_clip(
    *,
    frames: Any,
    audio: np.ndarray,
    sample_rate: int,
    fps: int,
    out_base: Path,
    formats: Sequence[str] = FORMATS,
    background: tuple[int, int, int] = DEFAULT_BACKGROUND,
    concurrent: bool = True,
) -> tuple[ClipFile, ...]:
    """Encode one clip (rendered frames plus its speech) into playable files.

    Blocking and CPU-bound (about 0.1 s per second of 512x512 video for both formats on two
    cores): call it from ``asyncio.to_thread`` or a worker, never on the event loop. Idle loops
    are encoded the same way with an all-zero (or empty) ``audio`` array.

    Args:
        frames: uint8 RGBA frames ``[N, H, W, 4]``, a numpy array or a torch tensor on any
            device (it is moved to the CPU). Straight (not premultiplied) alpha. Odd heights or
            widths are padded by one transparent row or column (yuv420p needs even sizes).
        audio: mono audio, a 1-D float array in [-1, 1] (Piper's float32 output). It is
            resampled to 48 kHz and padded with silence or trimmed to exactly ``N / fps``
            seconds; values outside [-1, 1] are clipped.
        sample_rate: sample rate of ``audio`` in Hz (22050 for Piper voices).
        fps: frames per second of ``frames``.
        out_base: path of the files without suffix; ``out_base.with_suffix(".webm")`` and
            ``.mp4`` are written (replaced if present). Missing folders are created.
        formats: which of ``"webm"`` and ``"mp4"`` to write, in the order returned.
        background: RGB colour the MP4 is composited over where frames are transparent.
        concurrent: encode the formats in parallel threads (default); ``False`` encodes one
            after the other, for single-core hosts and benchmarks.

    Returns:
        One :class:`ClipFile` per requested format, in the order of ``formats``.

    Raises:
        ValueError: ``frames``, ``audio`` or another argument has the wrong type, dtype, shape
            or value; the message says which.
        ProviderError: the encoder or the file system failed. No temporary file is left
            behind and, unless renaming the finished files itself failed, files of an earlier
            clip at the same paths are untouched.
    """
    fmts = _check_formats(formats)
    if isinstance(fps, bool) or not isinstance(fps, int) or fps <= 0:
        raise ValueError(f"fps must be a positive int, got {fps!r}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
    bg = _check_background(background)
    rgba = _frames_to_numpy(frames)
    mono = _check_audio(audio)
    n_frames = rgba.shape[0]

    t0 = time.perf_counter()
    samples = _resample_to_length(mono, sample_rate, round(n_frames * AUDIO_RATE / fps))
    t_audio = time.perf_counter() - t0

    out_base = Path(out_base)
    try:
        out_base.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ProviderError(f"cannot create clip folder {out_base.parent}: {e}") from e

    token = uuid.uuid4().hex[:8]
    jobs: list[_Job] = []
    for fmt in fmts:
        final = out_base.with_suffix(f".{fmt}")
        # Hidden and without the real suffix, so neither a web server nor a folder watcher
        # picks the file up before it is complete.
        tmp = final.with_name(f".{final.name}.{token}.part")
        kwargs: dict[str, Any] = {"path": tmp, "rgba": rgba, "samples": samples, "fps": fps}
        if fmt == "mp4":
            kwargs["background"] = bg
        jobs.append(_Job(fmt=fmt, final=final, tmp=tmp, writer=_WRITERS[fmt], kwargs=kwargs))

    try:
        if concurrent and len(jobs) > 1:
            # The first format is encoded here, the others in helper threads: libvpx, libx264,
            # swscale and the filter graph release the GIL, so the formats run in parallel.
            with ThreadPoolExecutor(len(jobs) - 1, thread_name_prefix="clip-encode") as pool:
                pending = [pool.submit(job.run) for job in jobs[1:]]
                outcomes = [jobs[0].run(), *(f.result() for f in pending)]
        else:
            outcomes = [job.run() for job in jobs]
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        for job in jobs:
            os.replace(job.tmp, job.final)
    except OSError as e:
        raise ProviderError(f"writing clip {out_base} failed: {e}") from e
    finally:
        for job in jobs:
            job.tmp.unlink(missing_ok=True)

    logger.debug(
        "encoded %s: %d frames %dx%d @%d fps, audio %.3f s, %s",
        out_base.name,
        n_frames,
        rgba.shape[2],
        rgba.shape[1],
        fps,
        t_audio,
        ", ".join(f"{job.fmt} {job.seconds:.3f} s" for job in jobs),
    )
    return tuple(ClipFile(format=job.fmt, path=job.final) for job in jobs)


# --------------------------------------------------------------------------- input checks


def _check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    if isinstance(formats, str):
        formats = (formats,)
    fmts = tuple(dict.fromkeys(formats))  # de-duplicated, order kept
    if not fmts:
        raise ValueError("formats is empty; ask for 'webm' and/or 'mp4'")
    unknown = [f for f in fmts if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown clip format(s) {unknown}; supported: {list(FORMATS)}")
    return fmts


def _check_background(background: tuple[int, int, int]) -> tuple[int, int, int]:
    try:
        r, g, b = (int(c) for c in background)
    except (TypeError, ValueError) as e:
        raise ValueError(f"background must be an (r, g, b) tuple, got {background!r}") from e
    if not all(0 <= c <= 255 for c in (r, g, b)):
        raise ValueError(f"background channels must be in 0..255, got {background!r}")
    return r, g, b


def _frames_to_numpy(frames: Any) -> np.ndarray:
    """Frames as a C-contiguous uint8 ``[N, H, W, 4]`` numpy array with even H and W."""
    if not isinstance(frames, np.ndarray):
        torch = sys.modules.get("torch")  # a tensor means torch is imported; never import it here
        if torch is None or not isinstance(frames, torch.Tensor):
            raise ValueError(
                f"frames must be a numpy array or torch tensor, got {type(frames).__name__}"
            )
        if frames.dtype != torch.uint8:
            raise ValueError(f"frames must have dtype uint8, got torch tensor of {frames.dtype}")
        frames = frames.detach().to("cpu").contiguous().numpy()
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must have dtype uint8, got {frames.dtype}")
    if frames.ndim != 4 or frames.shape[3] != 4:
        raise ValueError(f"frames must have shape [N, H, W, 4] (RGBA), got {list(frames.shape)}")
    n, h, w, _ = frames.shape
    if n == 0 or h == 0 or w == 0:
        raise ValueError(f"frames must not be empty, got shape {list(frames.shape)}")
    if h % 2 or w % 2:
        # 4:2:0 chroma needs even sizes; a transparent edge shows as background in the MP4.
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
    return np.ascontiguousarray(frames)


def _check_audio(audio: np.ndarray) -> np.ndarray:
    if not isinstance(audio, np.ndarray):
        raise ValueError(f"audio must be a numpy array, got {type(audio).__name__}")
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono, a 1-D array, got shape {list(audio.shape)}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"audio must be float in [-1, 1] (float32), got dtype {audio.dtype}")
    audio = np.nan_to_num(audio.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(audio, -1.0, 1.0)


# --------------------------------------------------------------------------- audio


def _resample_to_length(mono: np.ndarray, sample_rate: int, length: int) -> np.ndarray:
    """``mono`` at :data:`AUDIO_RATE`, padded with silence or trimmed to ``length`` samples."""
    if len(mono) and sample_rate != AUDIO_RATE:
        frame = av.AudioFrame.from_ndarray(mono[None, :], format="flt", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = 0
        frame.time_base = Fraction(1, sample_rate)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
        try:
            parts = [f.to_ndarray()[0] for f in resampler.resample(frame)]
            parts += [f.to_ndarray()[0] for f in resampler.resample(None)]
        except av.FFmpegError as e:
            raise ProviderError(f"resampling audio {sample_rate} -> {AUDIO_RATE} Hz: {e}") from e
        mono = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    out = np.zeros(length, np.float32)
    n = min(length, len(mono))
    out[:n] = mono[:n]
    return out


def _encode_audio(container: Any, stream: Any, samples: np.ndarray, chunk: int) -> None:
    for start in range(0, len(samples), chunk):
        frame = av.AudioFrame.from_ndarray(
            samples[None, start : start + chunk], format=stream.format.name, layout="mono"
        )
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        frame.time_base = Fraction(1, AUDIO_RATE)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


# --------------------------------------------------------------------------- video


def _add_video_stream(
    container: Any, codec: str, *, fps: int, width: int, height: int, pix_fmt: str, options: dict
) -> Any:
    stream = container.add_stream(codec, rate=fps, options=options)
    stream.width = width
    stream.height = height
    stream.pix_fmt = pix_fmt
    stream.time_base = Fraction(1, fps)
    cc = stream.codec_context
    # One encoder thread each: the two formats already fill two cores, and for 512x512
    # libvpx/libx264 gain little from more (measured in bench/encode.py).
    cc.thread_count = _ENCODER_THREADS
    cc.color_primaries = _AVCOL_BT709
    cc.color_trc = _AVCOL_BT709
    cc.colorspace = _AVCOL_BT709
    cc.color_range = _AVCOL_RANGE_MPEG
    return stream


def _write_webm(*, path: Path, rgba: np.ndarray, samples: np.ndarray, fps: int) -> None:
    n, h, w, _ = rgba.shape
    with av.open(str(path), "w", format="webm") as container:
        video = _add_video_stream(
            container,
            "libvpx-vp9",
            fps=fps,
            width=w,
            height=h,
            pix_fmt="yuva420p",
            options=dict(_VP9_OPTIONS),
        )
        audio = container.add_stream("libopus", rate=AUDIO_RATE, layout="mono")
        audio.bit_rate = _OPUS_BITRATE
        audio.format = "flt"
        for i in range(n):
            frame = av.VideoFrame.from_numpy_buffer(rgba[i], format="rgba")
            frame = frame.reformat(format="yuva420p", dst_colorspace="itu709", threads=1)
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        _encode_audio(container, audio, samples, _OPUS_FRAME)


def _write_mp4(
    *,
    path: Path,
    rgba: np.ndarray,
    samples: np.ndarray,
    fps: int,
    background: tuple[int, int, int],
) -> None:
    n, h, w, _ = rgba.shape
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        video = _add_video_stream(
            container,
            "libx264",
            fps=fps,
            width=w,
            height=h,
            pix_fmt="yuv420p",
            options=dict(_X264_OPTIONS),
        )
        audio = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        audio.bit_rate = _AAC_BITRATE
        audio.format = "fltp"
        composite = _Compositor(width=w, height=h, fps=fps, background=background)
        for i in range(n):
            frame = av.VideoFrame.from_numpy_buffer(rgba[i], format="rgba")
            frame.pts = i
            for out in composite.push(frame):
                container.mux(video.encode(out))
        for out in composite.push(None):
            container.mux(video.encode(out))
        container.mux(video.encode(None))
        _encode_audio(container, audio, samples, _AAC_FRAME)


class _Compositor:
    """Alpha-blends RGBA frames over a solid colour and converts them to BT.709 yuv420p.

    An FFmpeg filter graph (``color`` + ``overlay`` + ``scale``) does it in SIMD C with the GIL
    released: about 0.6 ms a 512x512 frame, five times faster than the same blend in numpy.
    """

    def __init__(
        self, *, width: int, height: int, fps: int, background: tuple[int, int, int]
    ) -> None:
        tb = Fraction(1, fps)
        r, g, b = background
        self._graph = graph = av.filter.Graph()
        graph.threads = 1
        self._src = graph.add_buffer(
            width=width, height=height, format=VideoFormat("rgba"), time_base=tb
        )
        colour = graph.add("color", f"c=0x{r:02x}{g:02x}{b:02x}:s={width}x{height}:r={fps}")
        # Blend in RGB (what a browser does over a coloured page), then convert once.
        overlay = graph.add("overlay", "format=rgb:shortest=1:eof_action=endall")
        scale = graph.add("scale", "out_color_matrix=bt709:out_range=tv")
        fmt = graph.add("format", "yuv420p")
        self._sink = graph.add("buffersink")
        colour.link_to(overlay, 0, 0)
        self._src.link_to(overlay, 0, 1)
        overlay.link_to(scale)
        scale.link_to(fmt)
        fmt.link_to(self._sink)
        graph.configure()

    def push(self, frame: Any) -> list[Any]:
        """Feed one frame (``None`` at the end) and return the frames ready so far."""
        self._src.push(frame)
        ready = []
        while True:
            try:
                ready.append(self._sink.pull())
            except (av.BlockingIOError, av.EOFError):
                return ready


# --------------------------------------------------------------------------- running jobs


@dataclass(slots=True)
class _Job:
    """One format of one clip: what to write, where, and how long it took."""

    fmt: str
    final: Path
    tmp: Path
    writer: Callable[..., None]
    kwargs: dict[str, Any]
    seconds: float = 0.0

    def run(self) -> Exception | None:
        """Write the temporary file; return the error instead of raising it, so every job
        finishes before any temporary file is cleaned up."""
        t = time.perf_counter()
        try:
            self.writer(**self.kwargs)
        except (av.FFmpegError, OSError) as e:
            err = ProviderError(f"encoding the {self.fmt} clip {self.final} failed: {e}")
            err.__cause__ = e
            return err
        except Exception as e:  # a bug: re-raised unchanged by encode_clip
            return e
        self.seconds = time.perf_counter() - t
        return None


_WRITERS: dict[str, Callable[..., None]] = {"webm": _write_webm, "mp4": _write_mp4}
