"""The persona's live stream as OBS reads it: MPEG-TS over UDP on loopback, one per persona.

:class:`ObsLiveOutput` subscribes to the persona's
:class:`~overlays.live.stream.LiveStream` and muxes every tick into MPEG-TS (H.264 video, AAC
audio) sent to ``udp://127.0.0.1:PORT``, where the persona's ``ffmpeg_source`` in OBS listens
(see :mod:`overlays.obs.setup`). H.264 has no alpha: each frame is the avatar composited over
its key colour (:mod:`overlays.obs.keying`), which OBS's chroma key removes again.

Video and audio timestamps both come from the tick index (a tick is one frame and exactly one
frame of audio), so they stay locked by construction. Encoding runs on a thread of its own,
never on the event loop. UDP needs no receiver: with OBS closed, slow or restarting the packets
are simply lost and the stream goes on; OBS picks it up again at the next keyframe (one a
second). The output also reports which sentence is on air, tick by tick, for the subtitles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

import numpy as np

from vstage_core.errors import require
from vstage_core.tasks import cancel_and_wait

from .keying import RGB

logger = logging.getLogger(__name__)

_AUDIO_RATE = 48000
_OPAQUE32 = np.uint32(0xFF000000)  # alpha 255 in the top byte of a little-endian RGBA word


class Tick(Protocol):
    """One frame of a live stream and its audio (``overlays.live.stream.LiveTick``)."""

    @property
    def index(self) -> int: ...
    @property
    def rgba(self) -> np.ndarray: ...
    @property
    def audio(self) -> np.ndarray: ...
    @property
    def reply_id(self) -> str | None: ...
    @property
    def sentence(self) -> int | None: ...
    @property
    def text(self) -> str | None: ...
    @property
    def idle_key(self) -> int | None: ...


class Subscription(Protocol):
    """What ``LiveStream.subscribe`` returns: ticks in order until closed."""

    def __aiter__(self) -> AsyncIterator[Any]: ...
    def close(self) -> None: ...


class TickSource(Protocol):
    """The part of ``overlays.live.stream.LiveStream`` this output uses."""

    @property
    def persona(self) -> str: ...
    @property
    def fps(self) -> int: ...
    @property
    def size(self) -> tuple[int, int]: ...
    @property
    def sample_rate(self) -> int: ...
    def subscribe(self, name: str, *, max_queue: int = 8) -> Any: ...


@dataclass(frozen=True, slots=True)
class OnAir:
    """What the live stream to OBS carries from now on: a sentence (``reply_id`` set) or the
    idle avatar (``reply_id`` None). Reported when it changes, as the first frame of it is
    sent to OBS."""

    persona: str
    reply_id: str | None
    sentence: int | None
    text: str | None
    at: float  # time.monotonic() when its first frame went out


def live_url(port: int, host: str = "127.0.0.1") -> str:
    """The UDP URL of a persona's stream (sender and OBS use the same one).

    ``pkt_size=1316`` is seven 188-byte TS packets: one datagram never needs IP fragments.
    """
    return f"udp://{host}:{port}?pkt_size=1316"


class ObsLiveOutput:
    """One persona's live stream, sent to OBS as MPEG-TS over UDP; ``async with``.

    Args:
        stream: the persona's ``LiveStream`` (anything with its ``persona``, ``fps``, ``size``,
            ``sample_rate`` and ``subscribe``).
        url: where to send (:func:`live_url`; ``ObsSettings.live_url(index)``).
        key_colour: RGB the avatar is composited over (:func:`~overlays.obs.keying.
            pick_key_colour`; the same one ``setup_obs`` keys out).
        on_air: called on the loop whenever the stream starts carrying another sentence or
            goes idle (``ObsStage.on_air`` drives the subtitles and scenes with it).
        keyframe_s: seconds between keyframes: how long OBS waits for a picture after it
            (re)opens the stream.
    """

    def __init__(
        self, *, stream: TickSource, url: str, key_colour: RGB,
        on_air: Callable[[OnAir], None] | None = None, keyframe_s: float = 1.0,
    ) -> None:
        self.stream = stream
        self.url = url
        self.key_colour = key_colour
        self.on_air = on_air
        self.keyframe_s = keyframe_s
        self.persona = stream.persona
        self.frames_sent = 0
        self.encode_s = 0.0  # total time spent encoding and sending (thread CPU, roughly)
        self.gaps = 0  # ticks the subscription skipped (this output lagged)
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._muxer: _Muxer | None = None
        self._now: tuple[str | None, int | None] | None = None

    async def __aenter__(self) -> ObsLiveOutput:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._task is not None:
            return
        require("av", extra="obs")
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"obs-live-{self.persona}")
        self._task = asyncio.create_task(self._run(), name=f"obs:{self.persona}:live")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        await cancel_and_wait([task])
        executor, self._executor = self._executor, None
        muxer, self._muxer = self._muxer, None
        if executor is not None:
            if muxer is not None:
                # Closing writes the trailer; on the encode thread, after any frame in flight.
                with contextlib.suppress(Exception):
                    await asyncio.get_running_loop().run_in_executor(executor, muxer.close)
            executor.shutdown(wait=False)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._executor is not None
        self._muxer = _Muxer(url=self.url, fps=self.stream.fps, size=self.stream.size,
                             sample_rate=self.stream.sample_rate, key=self.key_colour,
                             keyframe_s=self.keyframe_s)
        await loop.run_in_executor(self._executor, self._muxer.open)
        logger.info("OBS live stream of %s: %s (key colour %s)", self.persona, self.url,
                    self.key_colour)
        sub = self.stream.subscribe("obs")
        try:
            async for tick in sub:
                t0 = time.perf_counter()
                try:
                    skipped = await loop.run_in_executor(self._executor, self._muxer.write, tick)
                except Exception:
                    # A frame that fails to encode is lost; the next one is tried afresh.
                    logger.exception("OBS live stream of %s: frame %d failed", self.persona,
                                     tick.index)
                    continue
                self.encode_s += time.perf_counter() - t0
                self.gaps += skipped
                self.frames_sent += 1
                self._report(tick)
        finally:
            sub.close()

    def _report(self, tick: Any) -> None:
        now = (tick.reply_id, tick.sentence)
        if now == self._now:
            return
        self._now = now
        if self.on_air is None:
            return
        on_air = OnAir(self.persona, tick.reply_id, tick.sentence,
                       tick.text if tick.reply_id is not None else None, time.monotonic())
        try:
            self.on_air(on_air)
        except Exception:
            logger.exception("OBS live stream of %s: on_air hook failed", self.persona)


class _Muxer:
    """PyAV's MPEG-TS muxer on UDP with an H.264 and an AAC stream; used from one thread."""

    def __init__(self, *, url: str, fps: int, size: tuple[int, int], sample_rate: int,
                 key: RGB, keyframe_s: float) -> None:
        self.url = url
        self.fps = fps
        self.width, self.height = size
        self.sample_rate = sample_rate
        self.key = np.array(key, np.uint16)
        r, g, b = key
        # The key as one little-endian RGBA word (numpy views the frame's bytes R, G, B, A).
        self.key32 = np.uint32(0xFF000000 | (b << 16) | (g << 8) | r)
        self.keyframe_s = keyframe_s
        self.container: Any = None
        self.video: Any = None
        self.audio: Any = None
        self.first: int | None = None
        # Timestamps start where the monotonic clock is (modulo a day), not at 0: an app that
        # restarts while OBS keeps reading continues with later timestamps, never earlier ones
        # that OBS's player would wait for.
        self.base = round((time.monotonic() % 86400) * fps)
        self.last: int | None = None
        self.samples = 0
        self._idle: tuple[int, Any] | None = None  # the last idle frame, composited

    def open(self) -> None:
        import av

        # No mux delay and a flush per packet: OBS gets each frame as soon as it is encoded.
        self.container = av.open(self.url, "w", format="mpegts",
                                 options={"max_delay": "0", "flush_packets": "1"})
        gop = max(1, round(self.fps * self.keyframe_s))
        video = self.container.add_stream("libx264", rate=self.fps, options={
            "preset": "ultrafast", "tune": "zerolatency", "g": str(gop),
            "keyint_min": str(gop), "sc_threshold": "0", "crf": "18",
            "x264-params": "repeat-headers=1",  # every keyframe can start a decoder
        })
        video.width, video.height = self.width, self.height
        video.pix_fmt = "yuv420p"
        video.time_base = Fraction(1, self.fps)
        # Say which colours these are (BT.709, limited range), and convert with that matrix:
        # untagged, OBS guessed another matrix for a 512-pixel frame and the avatar's colours
        # came out shifted by up to 14 levels.
        cc = video.codec_context
        cc.colorspace = cc.color_primaries = cc.color_trc = 1  # AVCOL_*_BT709
        cc.color_range = 1  # AVCOL_RANGE_MPEG
        audio = self.container.add_stream("aac", rate=_AUDIO_RATE, layout="mono")
        audio.time_base = Fraction(1, _AUDIO_RATE)
        self.video, self.audio = video, audio

    def write(self, tick: Any) -> int:
        """Encode and send one tick; returns how many ticks were missing before it."""
        import av

        if self.first is None:
            self.first = tick.index
        skipped = 0 if self.last is None else max(0, tick.index - self.last - 1)
        self.last = tick.index
        frame = self._video_frame(tick)
        frame.pts = self.base + tick.index - self.first
        packets = list(self.video.encode(frame))
        # Audio: a frame's worth per tick; ticks this output missed are filled with silence
        # so audio keeps its place against the video.
        per_tick = self.sample_rate // self.fps
        audio = np.asarray(tick.audio, np.int16).reshape(-1)
        if skipped:
            audio = np.concatenate([np.zeros(skipped * per_tick, np.int16), audio])
        if self.sample_rate != _AUDIO_RATE:
            raise ValueError(f"the live stream's audio must be {_AUDIO_RATE} Hz")
        aframe = av.AudioFrame.from_ndarray(audio.reshape(1, -1), format="s16", layout="mono")
        aframe.sample_rate = _AUDIO_RATE
        aframe.pts = (self.base + tick.index - self.first + 1) * per_tick - len(audio)
        aframe.time_base = Fraction(1, _AUDIO_RATE)
        packets += self.audio.encode(aframe)
        for packet in packets:
            self.container.mux(packet)
        return skipped

    def _video_frame(self, tick: Any) -> Any:
        import av

        key = tick.idle_key
        if key is not None and self._idle is not None and self._idle[0] == key:
            rgb = self._idle[1]  # the same idle picture as last tick: composite it once
        else:
            rgb = self._composite(np.asarray(tick.rgba))
            if key is not None:
                self._idle = (key, rgb)
        from av.video.reformatter import ColorRange, Colorspace

        return av.VideoFrame.from_ndarray(rgb, format="rgba").reformat(
            format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG)

    def _composite(self, rgba: np.ndarray) -> np.ndarray:
        """Straight alpha over the key colour: ``rgb * a + key * (1 - a)``, rounded; RGBA out
        (alpha 255; the encoder's colour conversion drops it).

        Avatar art is mostly fully opaque or fully clear, so pixels are handled as whole
        32-bit words and only the anti-aliased edges are blended channel by channel: a
        whole-frame blend in numpy took ~10 ms per 512x512 frame on a busy core, this ~1 ms.
        """
        h, w = rgba.shape[:2]
        px = np.ascontiguousarray(rgba).view(np.uint32).reshape(h, w)
        out = np.where(px >= _OPAQUE32, px, self.key32)
        edge = np.flatnonzero(((px >> 24) > 0) & (px < _OPAQUE32))
        rgb = out.view(np.uint8).reshape(h * w, 4)
        if len(edge):
            src = rgba.reshape(h * w, 4)[edge]
            a = src[:, 3:4].astype(np.uint16)
            rgb[edge, :3] = (src[:, :3] * a + self.key * (255 - a) + 127) // 255
        return out.view(np.uint8).reshape(h, w, 4)

    def close(self) -> None:
        if self.container is None:
            return
        container, self.container = self.container, None
        with contextlib.suppress(Exception):
            for packet in self.video.encode(None):
                container.mux(packet)
            for packet in self.audio.encode(None):
                container.mux(packet)
        container.close()
