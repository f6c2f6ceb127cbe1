"""One VP8 encoder per persona, shared by every WebRTC viewer of its live stream.

Each tick is encoded once, on a thread of its own, as one frame twice the avatar's width: the
left half its colour, the right half its alpha as grey (VP8 has no alpha; the page's WebGL
puts it back); its audio is encoded once too (Opus, 20 ms packets). The packets fan out to
every viewer (aiortc packs pre-encoded ``av.Packet`` objects as they are), so a viewer costs
only the packetising and encryption. Keyframes come every ``keyframe_s`` and when a viewer joins or
lagged (aiortc ignores picture-loss requests for pre-encoded packets, so the encoder decides).

Idle frames are cheap: the idle avatar shows few distinct pictures (breathing moves it by whole
pixels, blinks close the eyes), and the stream marks each with an ``idle_key``. The first time
a picture shows it is encoded live, and meanwhile, on a thread of its own, a second encoder (so
the live one's rate control is not disturbed) encodes it once as a keyframe followed by a chain
of "nothing changed" inter frames, one keyframe interval long. From then on that picture costs
no encoding: its keyframe is sent when the picture appears (or a keyframe is due) and the chain
while it stays. Replaying a chain sends exactly the packets the decoder would have got when it
was encoded, after a keyframe that resets it, so every decoder holds the right picture. After
anything was replayed the live encoder is out of step with the decoders, so its next (speech)
frame is a keyframe. Encoders whose streams share an idle source (the talk sessions of one
persona) share one :class:`IdlePacketCache`: each picture is encoded once for all of them, and
their ticks that are only replayed (cached picture, steady silence) are handled on the event
loop, not handed to the encoding thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from overlays.live.settings import LiveSettings
from overlays.live.stream import LiveStream, LiveTick
from vstage_core.errors import require
from vstage_core.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

# Alpha 0..255 as full-range grey coded in limited-range luma (16..235): what the browser's
# decoder turns back into 0..255 grey.
_ALPHA_TO_LUMA = np.round(16 + np.arange(256) * 219 / 255).astype(np.uint8)


@dataclass(frozen=True, slots=True, eq=False)
class EncodedTick:
    """One tick as the viewers get it: the VP8 frame (None if the encoder made none) and the
    tick's audio as Opus packets of 20 ms each, ``(first sample's offset in the tick, data)``."""

    index: int
    data: bytes | None = field(repr=False)
    keyframe: bool
    cached: bool  # replayed from the idle cache, not encoded now
    audio: tuple[tuple[int, bytes], ...] = field(repr=False)
    released: float  # when the stream released the tick (time.monotonic())


class _Node:
    """One encoded idle frame: a picture's keyframe, or a repeat in the chain after it."""

    __slots__ = ("data", "keyframe", "next")

    def __init__(self, data: bytes, keyframe: bool) -> None:
        self.data = data
        self.keyframe = keyframe
        self.next: _Node | None = None


def pack_yuv(rgba: np.ndarray) -> Any:
    """The tick's picture as a ``yuv420p`` ``av.VideoFrame`` of width ``2 * W``: colour on the
    left (straight, not premultiplied), alpha as grey on the right (chroma neutral)."""
    import av

    h, w = rgba.shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"live frames need even sizes, got {w}x{h}")
    colour = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgba), format="rgba")
    col = colour.reformat(format="yuv420p").to_ndarray()  # [H * 3 / 2, W]
    out = np.empty((h * 3 // 2, 2 * w), np.uint8)
    y = out[:h]
    y[:, :w] = col[:h]
    y[:, w:] = _ALPHA_TO_LUMA[rgba[..., 3]]
    chroma = out[h:].reshape(-1)
    n = (h // 2) * w  # one chroma plane of the packed frame: [H / 2, W]
    for plane, src in ((chroma[:n], col[h: h + h // 4]), (chroma[n:], col[h + h // 4:])):
        p = plane.reshape(h // 2, w)
        p[:, : w // 2] = src.reshape(h // 2, w // 2)
        p[:, w // 2:] = 128
    return av.VideoFrame.from_ndarray(out, format="yuv420p")


class IdlePacketCache:
    """Encoded idle pictures: per picture (``idle_key``) its keyframe and the chain of
    "nothing changed" frames after it, one keyframe interval long. Thread-safe.

    A chain decodes to its picture in any decoder once its keyframe has reset it, so one
    cache serves every encoder with the same size, rate and settings: the talk sessions of a
    persona share one (see :meth:`for_stream`), and each picture is encoded once for all of
    them, on this cache's own thread (a second encoder, so no live encoder's rate control is
    disturbed).

    Args:
        size: the avatar's ``(width, height)``.
        fps: frame rate.
        settings: bitrate, speed, keyframe interval, cache size (``idle_cache_packets``).
    """

    def __init__(self, *, size: tuple[int, int], fps: int, settings: LiveSettings) -> None:
        self.size = size
        self.fps = fps
        self.settings = settings
        self.gop = max(1, round(settings.keyframe_s * fps))
        self.roots: dict[int, _Node] = {}  # idle key -> the picture's keyframe and chain
        self.nodes = 0
        self.filled = 0  # pictures encoded into the cache
        self.fill_s = 0.0  # thread CPU time spent filling it
        self._codec: Any = None
        self._filling: set[int] = set()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False

    @staticmethod
    def for_stream(stream: LiveStream, settings: LiveSettings) -> IdlePacketCache | None:
        """The cache every encoder of ``stream``'s idle source shares for ``settings``; None
        when the stream has no shared idle source (its encoder keeps a cache of its own)."""
        source = stream.idle_source
        if source is None or settings.idle_cache_packets <= 0:
            return None
        key = ("vp8", stream.size, stream.fps, settings.bitrate, settings.cpu_used,
               settings.keyframe_s, settings.idle_cache_packets)
        return source.shared(key, lambda: IdlePacketCache(size=stream.size, fps=stream.fps,
                                                          settings=settings))

    def get(self, key: int) -> _Node | None:
        """The picture's keyframe (its chain follows), or None when not cached yet."""
        with self._lock:
            return self.roots.get(key)

    def request(self, key: int, rgba: np.ndarray) -> None:
        """Have picture ``key`` encoded into the cache on the cache's thread, unless it is
        cached or being encoded already."""
        with self._lock:
            if self._closed or key in self.roots or key in self._filling:
                return
            self._filling.add(key)
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="live-idle-cache")
            pool = self._pool
        pool.submit(self._fill, key, rgba)

    def settle(self) -> None:
        """Wait until every picture asked for is cached (tests, benchmarks)."""
        with self._lock:
            pool = self._pool
        if pool is not None:
            pool.submit(lambda: None).result()

    def close(self) -> None:
        """Stop the filling thread (idempotent); what is cached stays usable."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _open(self) -> Any:
        return open_vp8(self.size, self.fps, self.settings)

    def _fill(self, key: int, rgba: np.ndarray) -> None:
        """The cache thread: encode a new idle picture, its keyframe and ``gop - 1`` repeats
        after it."""
        import av

        t0 = time.thread_time()
        try:
            if self._codec is None:
                self._codec = self._open()
            frame = pack_yuv(rgba)
            root: _Node | None = None
            last: _Node | None = None
            for i in range(self.gop):
                frame.pts = self.filled * self.gop + i
                frame.pict_type = (av.video.frame.PictureType.I if i == 0
                                   else av.video.frame.PictureType.NONE)
                packets = list(self._codec.encode(frame))
                if not packets:
                    break
                node = _Node(b"".join(bytes(p) for p in packets), bool(packets[0].is_keyframe))
                if last is None:
                    root = node
                else:
                    last.next = node
                last = node
            self.filled += 1
        except Exception:
            logger.exception("live: encoding an idle picture for the cache failed")
            root = None
        finally:
            self.fill_s += time.thread_time() - t0
        with self._lock:
            self._filling.discard(key)
            if root is None or not root.keyframe:
                logger.error("live: the idle encoder made no keyframe; picture not cached")
                return
            if self.nodes + self.gop > self.settings.idle_cache_packets:
                self.roots.clear()  # rarely: an avatar with many idle pictures starts afresh
                self.nodes = 0
            self.roots[key] = root
            self.nodes += self.gop


def open_vp8(size: tuple[int, int], fps: int, settings: LiveSettings) -> Any:
    """A VP8 encoder for frames ``2 * width`` wide, real time, one packet per frame."""
    av = require("av")
    w, h = size
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height = 2 * w, h
    codec.pix_fmt = "yuv420p"
    codec.time_base = Fraction(1, fps)
    codec.framerate = Fraction(fps, 1)
    codec.bit_rate = settings.bitrate
    codec.gop_size = 1_000_000  # keyframes are asked for, frame by frame
    codec.thread_count = 1  # one core per persona at most; the others stream too
    codec.options = {
        "deadline": "realtime",
        "cpu-used": str(settings.cpu_used),
        "lag-in-frames": "0",  # one packet out per frame in: no latency
        "auto-alt-ref": "0",
        "error-resilient": "1",
    }
    return codec


class Vp8Core:
    """The encoder itself and its idle cache; blocking, used from one thread at a time.

    Args:
        size: the avatar's ``(width, height)`` (frames are ``2 * width`` wide).
        fps: frame rate.
        settings: bitrate, speed, keyframe interval, cache size.
        cache: an idle packet cache shared with other encoders (same size, rate and
            settings); None: one of its own, closed with this core.
    """

    def __init__(self, *, size: tuple[int, int], fps: int, settings: LiveSettings,
                 cache: IdlePacketCache | None = None) -> None:
        self.size = size
        self.fps = fps
        self.settings = settings
        self.gop = max(1, round(settings.keyframe_s * fps))
        if cache is not None and (cache.size != size or cache.fps != fps
                                  or cache.gop != self.gop):
            raise ValueError(f"idle cache for {cache.size} at {cache.fps} fps (gop "
                             f"{cache.gop}) does not fit an encoder for {size} at {fps} fps")
        self.cache = cache or IdlePacketCache(size=size, fps=fps, settings=settings)
        self._owns_cache = cache is None
        self.codec: Any = None
        self.pts = 0
        self.since_key = -1  # frames since the last keyframe sent; -1: nothing sent yet
        self.synced = False  # the live encoder's references are what the decoders hold
        self.cur: _Node | None = None  # the cached node last sent
        self.cur_key: int | None = None  # its picture
        # Counters.
        self.encoded = 0
        self.replayed = 0
        self.keyframes = 0
        self.encode_s = 0.0  # thread CPU time spent converting and encoding live frames

    @property
    def shares_cache(self) -> bool:
        """Whether the idle cache is shared with other encoders."""
        return not self._owns_cache

    @property
    def nodes(self) -> int:
        """Encoded idle frames in the cache."""
        return self.cache.nodes

    @property
    def filled(self) -> int:
        """Idle pictures encoded into the cache (by any encoder sharing it)."""
        return self.cache.filled

    @property
    def fill_s(self) -> float:
        """Thread CPU time spent filling the cache (by any encoder sharing it)."""
        return self.cache.fill_s

    def _open(self) -> Any:
        return open_vp8(self.size, self.fps, self.settings)

    def replays(self, tick: LiveTick, want_key: bool) -> bool:
        """Whether :meth:`encode` would replay ``tick`` from the cache (no encoding: cheap
        enough for the event loop)."""
        key = tick.idle_key if self.settings.idle_cache_packets > 0 else None
        if key is None:
            return False
        if (not want_key and self.cur is not None and self.cur_key == key
                and self.cur.next is not None):
            return True
        return self.cache.get(key) is not None

    def encode(self, tick: LiveTick, want_key: bool) -> tuple[bytes | None, bool, bool]:
        """Encode (or replay) ``tick``; returns ``(data, keyframe, cached)``."""
        key = tick.idle_key if self.settings.idle_cache_packets > 0 else None
        if key is None:  # speech: always encoded now
            self.cur = self.cur_key = None
            boundary = want_key or self.since_key < 0 or self.since_key + 1 >= self.gop
            return self._live(tick, force_key=boundary or not self.synced)
        if (not want_key and self.cur is not None and self.cur_key == key
                and self.cur.next is not None):
            return self._replay(self.cur.next)  # the same picture again
        # Another picture, the chain's end (a keyframe is due) or a new viewer: its keyframe.
        root = self.cache.get(key)
        if root is not None:
            self.cur_key = key
            return self._replay(root)
        # A picture not cached yet: encoded now (one frame), cached on the side meanwhile, so
        # this tick is not held up by a whole chain's encoding.
        self.cache.request(key, tick.rgba)
        self.cur = self.cur_key = None
        boundary = want_key or self.since_key < 0 or self.since_key + 1 >= self.gop
        return self._live(tick, force_key=boundary or not self.synced)

    def settle(self) -> None:
        """Wait until every idle picture being cached is (tests, benchmarks)."""
        self.cache.settle()

    def close(self) -> None:
        """Stop the cache filling thread if the cache is this core's own (idempotent)."""
        if self._owns_cache:
            self.cache.close()

    def _replay(self, node: _Node) -> tuple[bytes | None, bool, bool]:
        self.cur = node
        self.synced = False  # the live encoder did not see this: its next frame is a keyframe
        self.replayed += 1
        self._sent(node.keyframe)
        return node.data, node.keyframe, True

    def _live(self, tick: LiveTick, *, force_key: bool) -> tuple[bytes | None, bool, bool]:
        import av

        t0 = time.thread_time()
        if self.codec is None:
            self.codec = self._open()
        frame = pack_yuv(tick.rgba)
        frame.pts = self.pts
        self.pts += 1
        if force_key:
            frame.pict_type = av.video.frame.PictureType.I
        packets = list(self.codec.encode(frame))
        self.encode_s += time.thread_time() - t0
        self.encoded += 1
        if not packets:
            return None, False, False
        data = b"".join(bytes(p) for p in packets)
        keyframe = bool(packets[0].is_keyframe)
        self.synced = True
        self._sent(keyframe)
        return data, keyframe, False

    def _sent(self, keyframe: bool) -> None:
        if keyframe:
            self.keyframes += 1
            self.since_key = 0
        else:
            self.since_key += 1


class OpusCore:
    """The persona's audio encoder: each tick's samples in, 20 ms Opus packets out, timed from
    the tick; blocking, used from one thread at a time.

    Silence costs no encoding once it is steady: fed zeros, the encoder settles on one packet
    it repeats byte for byte; after ``SETTLED`` such repeats that packet is sent for every
    silent 20 ms without encoding (the encoder's state is the one it would have had, and the
    decoder gets the same bytes), until sound comes back.

    Args:
        sample_rate: 48000 (Opus and WebRTC's rate).
        bitrate: bits per second.
    """

    FRAME = 960  # 20 ms at 48 kHz: aiortc sends one packet per RTP packet
    SETTLED = 4  # identical packets for silence before the packet is reused

    def __init__(self, *, sample_rate: int = 48000, bitrate: int = 64000) -> None:
        self.sample_rate = sample_rate
        self.bitrate = bitrate
        self.codec: Any = None
        self._pending = np.zeros(0, np.int16)  # samples not yet a whole packet
        self._pending_at = 0  # stream sample index of _pending[0]
        self._silent: bytes | None = None  # the last packet encoded from silence
        self._silent_repeats = 0  # how many times in a row silence gave exactly that packet
        self.encode_s = 0.0
        self.encoded = 0  # packets encoded
        self.reused = 0  # silent packets sent without encoding

    def reuses(self, index: int, samples_per_tick: int, audio: np.ndarray) -> bool:
        """Whether :meth:`encode` would send only reused silent packets for this tick (no
        encoding: cheap enough for the event loop)."""
        return (self._silent_repeats >= self.SETTLED and not np.any(audio)
                and not np.any(self._pending)
                and (len(self._pending) == 0
                     or self._pending_at + len(self._pending) == index * samples_per_tick))

    def encode(self, index: int, samples_per_tick: int,
               audio: np.ndarray) -> tuple[tuple[int, bytes], ...]:
        """Encode tick ``index``'s audio; returns ``(offset from the tick's first sample,
        packet)`` for each whole 20 ms ready (a tick of 30 fps holds 1.67 packets: the rest
        waits for the next tick)."""
        import av

        t0 = time.thread_time()
        if self.codec is None:
            codec = require("av").CodecContext.create("libopus", "w")
            codec.sample_rate = self.sample_rate
            codec.layout = "mono"
            codec.format = "s16"
            codec.bit_rate = self.bitrate
            codec.options = {"application": "audio"}
            self.codec = codec
        start = index * samples_per_tick
        if len(self._pending) == 0 or self._pending_at + len(self._pending) != start:
            # A missed tick: the packets restart here (the decoder conceals the hole).
            self._pending, self._pending_at = np.zeros(0, np.int16), start
        samples = np.concatenate([self._pending, np.asarray(audio, np.int16).reshape(-1)])
        out = []
        n = self.FRAME
        whole = len(samples) // n * n
        for at in range(0, whole, n):
            chunk = samples[at: at + n]
            silent = not np.any(chunk)
            if silent and self._silent is not None and self._silent_repeats >= self.SETTLED:
                out.append((self._pending_at + at - start, self._silent))
                self.reused += 1
                continue
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16",
                                               layout="mono")
            frame.sample_rate = self.sample_rate
            frame.pts = self._pending_at + at
            for packet in self.codec.encode(frame):
                data = bytes(packet)
                out.append((self._pending_at + at - start, data))
                self.encoded += 1
                if not silent:
                    self._silent, self._silent_repeats = None, 0
                elif data == self._silent:
                    self._silent_repeats += 1
                else:
                    self._silent, self._silent_repeats = data, 0
        self._pending_at += whole
        self._pending = samples[whole:]
        self.encode_s += time.thread_time() - t0
        return tuple(out)


class LiveViewer:
    """What one WebRTC connection receives from its persona's encoder: VP8 packets and 20 ms
    audio frames, both timed from the same tick index. Starts at a keyframe.

    Made by :meth:`SharedVideoEncoder.add_viewer`; :meth:`close` when the connection ends.
    """

    AUDIO_QUEUE = 6  # 120 ms of Opus packets queued at most

    def __init__(self, encoder: SharedVideoEncoder, name: str, max_queue: int) -> None:
        self.encoder = encoder
        self.name = name
        self.fps = encoder.stream.fps
        self.sample_rate = encoder.stream.sample_rate
        self.samples_per_tick = encoder.stream.samples_per_tick
        self.max_queue = max_queue
        self.closed = False
        self.sending = False  # the connection asked for its first packet
        self.waiting_key = True
        self.first_index: int | None = None
        self.last_index: int | None = None
        self.video_sent = 0
        self.audio_sent = 0  # packets
        self.lagged = 0
        self._video: deque[EncodedTick] = deque()
        self._audio: deque[tuple[int, bytes]] = deque()  # (pts in samples, Opus packet)
        self._video_ready = asyncio.Event()
        self._audio_ready = asyncio.Event()

    @property
    def queued(self) -> tuple[int, int]:
        """``(video frames, audio packets)`` waiting to be sent."""
        return len(self._video), len(self._audio)

    def _start_sending(self) -> None:
        if not self.sending:
            self.sending = True
            self.encoder.request_keyframe()

    def _put(self, enc: EncodedTick) -> None:
        if self.closed or not self.sending:
            # Nothing is queued before the connection sends (DTLS not up yet): a backlog
            # handed over in one burst would make the browser buffer all of it, for good.
            return
        if self.first_index is None:  # the viewer starts at a keyframe, audio with it
            if enc.data is None or not enc.keyframe:
                return
            self.first_index = enc.index
            self.waiting_key = False
        self.last_index = enc.index
        # Audio and video times both count from this viewer's first tick: in sync, and a
        # missed tick leaves a hole in both, not a shift.
        base = (enc.index - self.first_index) * self.samples_per_tick
        for offset, packet in enc.audio:
            if len(self._audio) >= self.AUDIO_QUEUE:  # not taken: keep the latency bounded
                self._audio.popleft()
            self._audio.append((base + offset, packet))
        if enc.audio:
            self._audio_ready.set()
        if enc.data is None:
            return
        if self.waiting_key and not enc.keyframe:
            return
        self.waiting_key = False
        if len(self._video) >= self.max_queue:
            # The connection does not keep up: drop what is queued, restart at a keyframe.
            self._video.clear()
            self.lagged += 1
            self.waiting_key = True
            self.encoder.request_keyframe()
            return
        self._video.append(enc)
        self._video_ready.set()

    async def next_packet(self) -> Any:
        """The next VP8 frame as an ``av.Packet`` (pts in ticks from this viewer's first).

        Raises:
            ConnectionError: the viewer was closed.
        """
        import av

        self._start_sending()
        while not self._video:
            if self.closed:
                raise ConnectionError("viewer closed")
            self._video_ready.clear()
            await self._video_ready.wait()
        enc = self._video.popleft()
        packet = av.Packet(enc.data)
        packet.pts = enc.index - (self.first_index or 0)
        packet.time_base = Fraction(1, self.fps)
        self.video_sent += 1
        return packet

    async def next_audio(self) -> Any:
        """The next 20 ms of audio as an Opus ``av.Packet`` (pts in samples at 48 kHz from this
        viewer's first tick).

        Raises:
            ConnectionError: the viewer was closed.
        """
        import av

        self._start_sending()
        while not self._audio:
            if self.closed:
                raise ConnectionError("viewer closed")
            self._audio_ready.clear()
            await self._audio_ready.wait()
        pts, data = self._audio.popleft()
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = Fraction(1, self.sample_rate)
        self.audio_sent += 1
        return packet

    def close(self) -> None:
        """Stop (idempotent); the encoder stops working when its last viewer left."""
        if self.closed:
            return
        self.closed = True
        self._video.clear()
        self._audio.clear()
        self._video_ready.set()
        self._audio_ready.set()
        self.encoder._remove(self)


class SharedVideoEncoder:
    """Encodes one persona's live stream once for all its viewers; ``async with``.

    Subscribes to the stream only while it has viewers (no viewer: no ticks, no encoding).

    Args:
        stream: the persona's live stream.
        settings: bitrate, speed, keyframe interval, idle cache, viewer queue.
    """

    def __init__(self, *, stream: LiveStream, settings: LiveSettings | None = None) -> None:
        self.stream = stream
        self.settings = settings or LiveSettings()
        # A stream with a shared idle source (a talk session) shares the idle packets too.
        self.core = Vp8Core(size=stream.size, fps=stream.fps, settings=self.settings,
                            cache=IdlePacketCache.for_stream(stream, self.settings))
        self.audio = OpusCore(sample_rate=stream.sample_rate)
        self._viewers: list[LiveViewer] = []
        self._wanted = asyncio.Event()
        self._want_key = True
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.ticks = 0
        self.skipped = 0  # ticks whose picture was skipped to catch up
        self.inline = 0  # ticks replayed on the loop (cached picture, silence): no thread hop

    async def __aenter__(self) -> SharedVideoEncoder:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._task is not None:
            return
        require("av")
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"live-{self.stream.persona}")
        self._task = asyncio.create_task(self._run(), name=f"live:{self.stream.persona}:encode")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait([task])
        for viewer in list(self._viewers):
            viewer.close()
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)
        self.core.close()

    @property
    def viewers(self) -> int:
        return len(self._viewers)

    def add_viewer(self, name: str) -> LiveViewer:
        """A new viewer; it gets packets from the next keyframe (asked for now)."""
        viewer = LiveViewer(self, name, self.settings.viewer_queue)
        self._viewers.append(viewer)
        self.request_keyframe()
        self._wanted.set()
        return viewer

    def request_keyframe(self) -> None:
        self._want_key = True

    def _remove(self, viewer: LiveViewer) -> None:
        if viewer in self._viewers:
            self._viewers.remove(viewer)
        if not self._viewers:
            self._wanted.clear()

    def _encode(self, tick: LiveTick, want_key: bool, video: bool) -> EncodedTick:
        """Blocking (the encoder's thread): one tick's audio, and its video if asked."""
        data, keyframe, cached = (self.core.encode(tick, want_key) if video
                                  else (None, False, False))
        audio = self.audio.encode(tick.index, self.stream.samples_per_tick, tick.audio)
        return EncodedTick(tick.index, data, keyframe, cached, audio, tick.released)

    def _cheap(self, tick: LiveTick, want_key: bool, video: bool) -> bool:
        """Whether this tick is replayed only (cached picture, reused silence) by an encoder
        sharing its idle cache. (Only those: with many encoders of their own, the replays on
        the loop measured slower in bench/talk_idle.py, own way, than on their threads.)"""
        return (self.core.shares_cache
                and (not video or self.core.replays(tick, want_key))
                and self.audio.reuses(tick.index, self.stream.samples_per_tick, tick.audio))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        persona = self.stream.persona
        while True:
            await self._wanted.wait()
            # A long queue: audio is never lost; video catches up by skipping frames.
            sub = self.stream.subscribe("webrtc", max_queue=5 * self.stream.fps)
            try:
                async for tick in sub:
                    if not self._viewers:
                        break
                    # Behind (the thread was slower than real time): this tick's picture is
                    # skipped so the next one is on time; latency never builds up. Its audio
                    # is still encoded (cheap; a hole would be heard).
                    video = sub.pending == 0
                    if not video:
                        self.skipped += 1
                    want_key = self._want_key and video
                    if want_key:
                        self._want_key = False
                    try:
                        if self._cheap(tick, want_key, video):
                            # Nothing to encode: a hop to the thread would cost more than this.
                            self.inline += 1
                            enc = self._encode(tick, want_key, video)
                        else:
                            enc = await loop.run_in_executor(self._executor, self._encode,
                                                             tick, want_key, video)
                    except Exception:
                        # A tick that fails to encode is lost; the next one starts afresh.
                        logger.exception("live %s: frame %d failed to encode", persona,
                                         tick.index)
                        self.core.synced = False
                        self._want_key = True
                        continue
                    self.ticks += 1
                    for viewer in list(self._viewers):
                        viewer._put(enc)
            finally:
                sub.close()
