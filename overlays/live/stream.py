"""One persona's live stream: a continuous audio+video timeline paced in real time.

A :class:`LiveStream` releases one :class:`LiveTick` (one video frame and exactly one frame of
audio) every ``1/fps`` seconds against a monotonic schedule. When nothing is said the ticks
carry the idle avatar (frames from the persona's performer, rendered ahead in small batches on
a thread) and silence; a pushed :class:`~avatar_engine.types.Performance` plays right after
what is already scheduled, frame by frame with its own audio, so audio and video stay locked
by construction. Consumers (the WebRTC encoder, OBS) :meth:`~LiveStream.subscribe`; with no
subscriber the stream stops producing (no CPU) and resumes on the next subscribe.

Streams of one persona's renderer can share its idle pictures (private conversations: many
streams, one avatar): given an :class:`~overlays.live.idle.IdleSource`, a stream draws and
hashes nothing itself; each idle tick shows the source's picture for the stream's own next
frame index (its own blinks and breathing), and the performer's clock follows what was shown.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from avatar_engine.performer.base import Performer
from avatar_engine.types import Performance
from vstage_core.errors import ConfigError
from vstage_core.tasks import cancel_and_wait

if TYPE_CHECKING:
    from overlays.live.idle import IdleSource

logger = logging.getLogger(__name__)

_WARN_EVERY_S = 10.0  # the most often a lagging stream says so
_CANCELLED_KEPT = 256  # reply ids remembered as cancelled (a late push of one is dropped)
_DRAW_AHEAD_S = 30  # shared idle: pictures drawn for this many seconds ahead at a time


@dataclass(frozen=True, slots=True, eq=False)
class LiveTick:
    """One frame of the stream and the audio that plays with it.

    Attributes:
        index: frame number since the stream started (consecutive, never skipped).
        pts_s: ``index / fps``: media time of this frame and of its audio's first sample.
        rgba: ``uint8`` ``[H, W, 4]``, straight alpha. Shared between subscribers: read only.
        audio: ``int16`` mono at :attr:`LiveStream.sample_rate`, exactly
            ``sample_rate // fps`` samples.
        reply_id: the reply being said; None when idle.
        sentence: the sentence's index in its reply; None when idle.
        text: the sentence being said (subtitles); None when idle.
        idle_key: when idle, identifies the picture (same key: same pixels), for caches.
        released: ``time.monotonic()`` when the tick was released.
    """

    index: int
    pts_s: float
    rgba: np.ndarray = field(repr=False)
    audio: np.ndarray = field(repr=False)
    reply_id: str | None
    sentence: int | None
    text: str | None
    idle_key: int | None
    released: float


@dataclass(frozen=True, slots=True)
class SentenceChange:
    """The stream starts carrying another sentence (``reply_id`` set) or goes idle
    (``reply_id`` None), from tick ``index`` on, released at ``at`` (``time.monotonic()``)."""

    persona: str
    reply_id: str | None
    sentence: int | None
    text: str | None
    index: int
    at: float


@dataclass(slots=True, eq=False)
class _Segment:
    """A pushed sentence, its audio at the stream's rate padded to its frames."""

    performance: Performance
    audio: np.ndarray  # int16, n_frames * samples_per_tick
    pushed: float = 0.0  # time.monotonic() of the push: it cannot have started before
    next: int = 0  # the next frame to play


@dataclass(frozen=True, slots=True, eq=False)
class _Content:
    """What a tick shows before it gets its index and release time."""

    rgba: np.ndarray
    audio: np.ndarray
    reply_id: str | None
    sentence: int | None
    text: str | None
    idle_key: int | None


class LiveSubscription:
    """Ticks of one :class:`LiveStream` in order, for one consumer; ``async for tick in sub``.

    A consumer that lags behind loses its oldest ticks (counted in :attr:`dropped`), never
    holds the stream back. Iteration ends when the subscription or the stream is closed.
    """

    def __init__(self, stream: LiveStream, name: str, max_queue: int) -> None:
        self.stream = stream
        self.name = name
        self.max_queue = max(1, max_queue)
        self.dropped = 0
        self.received = 0
        self.closed = False
        self._items: deque[LiveTick] = deque()
        self._ready = asyncio.Event()

    def _put(self, tick: LiveTick) -> None:
        if len(self._items) >= self.max_queue:
            self._items.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 250 == 0:
                logger.warning("live %s: subscriber %s lags, %d ticks dropped so far",
                               self.stream.persona, self.name, self.dropped)
        self._items.append(tick)
        self.received += 1
        self._ready.set()

    @property
    def pending(self) -> int:
        """Ticks released but not yet taken: how far this consumer is behind."""
        return len(self._items)

    def __aiter__(self) -> LiveSubscription:
        return self

    async def __anext__(self) -> LiveTick:
        while not self._items:
            if self.closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def close(self) -> None:
        """Stop receiving (idempotent); the last subscriber leaving pauses the stream."""
        if self.closed:
            return
        self.closed = True
        self._items.clear()
        self._ready.set()
        self.stream._unsubscribe(self)


class LiveStream:
    """One persona's live audio+video timeline; ``async with``.

    Args:
        persona: the persona's id.
        performer: the persona's performer: ``fps``, ``size`` and ``idle_frames(n)``
            (blocking, called on a thread of this stream).
        sample_rate: audio rate of the ticks (48 kHz: WebRTC's Opus rate); must be a
            multiple of the performer's fps.
        lead_frames: ticks prepared ahead of their release; a pushed sentence shows within
            ``lead_frames + 1`` ticks.
        idle_batch: idle frames rendered per batch.
        max_late_s: when the schedule is this far behind (a stalled loop), the clock restarts
            from now instead of releasing a burst of ticks (indices stay consecutive).
        idle_source: idle pictures shared with other streams of the same renderer. The
            performer must take its idle frames from it (built on its
            :class:`~overlays.live.idle.SharedIdleRenderer`): idle frames are then taken
            on the event loop, one per tick, at the cost of a lookup.
    """

    def __init__(
        self, *, persona: str, performer: Performer, sample_rate: int = 48000,
        lead_frames: int = 1, idle_batch: int = 4, max_late_s: float = 0.5,
        idle_source: IdleSource | None = None,
    ) -> None:
        self.persona = persona
        self.performer = performer
        self.fps = int(performer.fps)
        self.size: tuple[int, int] = tuple(performer.size)  # type: ignore[assignment]
        self.sample_rate = sample_rate
        if sample_rate % self.fps:
            raise ConfigError(f"live stream of {persona}: {sample_rate} Hz audio does not split "
                              f"into {self.fps} fps frames")
        self.samples_per_tick = sample_rate // self.fps
        if idle_source is not None and (idle_source.fps != self.fps
                                        or tuple(idle_source.size) != self.size):
            raise ConfigError(f"live stream of {persona}: the shared idle pictures are "
                              f"{idle_source.size} at {idle_source.fps} fps, the performer's "
                              f"{self.size} at {self.fps} fps")
        self.idle_source = idle_source
        self.lead_frames = max(0, lead_frames)
        self.idle_batch = max(1, idle_batch)
        self.max_late_s = max_late_s
        # Counters, for tests, the benchmark and metrics.
        self.ticks = 0
        self.idle_rendered = 0  # idle frames drawn by this stream (not shared)
        self.idle_shared = 0  # idle frames taken from the shared source
        self.speech_frames = 0
        self.rebased = 0
        self._warned_at = -_WARN_EVERY_S
        self.dropped_pushes = 0
        self._silence = np.zeros(self.samples_per_tick, np.int16)
        self._subs: list[LiveSubscription] = []
        self._watchers: list[Callable[[SentenceChange], None]] = []
        self._schedule: deque[_Segment] = deque()
        self._prepared: deque[_Content] = deque()
        self._idle: deque[tuple[np.ndarray, int]] = deque()
        self._last_idle: tuple[np.ndarray, int] | None = None
        self._idle_at: int | None = None  # shared idle: the frame index shown next
        self._cancelled: deque[str] = deque(maxlen=_CANCELLED_KEPT)
        self._on_air: tuple[str | None, int | None] | None = None  # None: nothing yet
        self._paused_at: float | None = None
        self._wanted = asyncio.Event()  # set while someone subscribes
        self._need_idle = asyncio.Event()  # the pacer wants more idle frames
        self._idle_ready = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> LiveStream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._pace(), name=f"live:{self.persona}:pace"),
            asyncio.create_task(self._render_idle_ahead(), name=f"live:{self.persona}:idle"),
        ]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks)
        for sub in list(self._subs):
            sub.close()

    # --- what plays ---------------------------------------------------------------------------

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    @property
    def speaking(self) -> bool:
        """Whether a sentence is playing or scheduled."""
        return bool(self._schedule) or any(c.reply_id is not None for c in self._prepared)

    @property
    def frame_index(self) -> int:
        """The index the next released tick will have."""
        return self.ticks

    def push(self, performance: Performance) -> None:
        """Play ``performance`` right after what is already scheduled (at the next tick when
        idle). A performance of a cancelled reply is dropped."""
        if performance.reply_id in self._cancelled:
            self.dropped_pushes += 1
            logger.info("live %s: sentence %d of cancelled reply %s dropped", self.persona,
                        performance.index, performance.reply_id)
            return
        if performance.fps != self.fps or performance.frames.shape[1:3] != self.size[::-1]:
            raise ValueError(f"live {self.persona}: performance at {performance.fps} fps "
                             f"{performance.frames.shape[1:3]} does not fit the stream "
                             f"({self.fps} fps, {self.size})")
        audio = speech_to_ticks(performance, self.sample_rate, self.samples_per_tick)
        self._schedule.append(_Segment(performance, audio, time.monotonic()))

    def cancel(self, reply_id: str) -> None:
        """Nothing more of ``reply_id`` plays, from the next tick on (idle resumes)."""
        self._cancelled.append(reply_id)
        kept = [s for s in self._schedule if s.performance.reply_id != reply_id]
        if len(kept) != len(self._schedule):
            logger.info("live %s: reply %s cancelled", self.persona, reply_id)
        self._schedule = deque(kept)
        if any(c.reply_id == reply_id for c in self._prepared):
            # Prepared ticks of the reply become idle ones (prepared again from the idle
            # frames); the pacer refills what is missing.
            self._prepared = deque(c for c in self._prepared if c.reply_id != reply_id)

    def subscribe(self, name: str, *, max_queue: int = 8) -> LiveSubscription:
        """Receive every tick from the next one on; see :class:`LiveSubscription`."""
        sub = LiveSubscription(self, name, max_queue)
        self._subs.append(sub)
        self._wanted.set()
        return sub

    def on_sentence(self, callback: Callable[[SentenceChange], None]) -> Callable[[], None]:
        """Call ``callback`` (on the loop) whenever the stream starts carrying another
        sentence or goes idle; returns a function that stops it."""
        self._watchers.append(callback)

        def remove() -> None:
            if callback in self._watchers:
                self._watchers.remove(callback)

        return remove

    def _unsubscribe(self, sub: LiveSubscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        if not self._subs:
            self._wanted.clear()

    # --- pacing -------------------------------------------------------------------------------

    async def _pace(self) -> None:
        period = 1.0 / self.fps
        while True:
            await self._wanted.wait()
            logger.info("live %s: streaming (%d subscriber(s))", self.persona, len(self._subs))
            self._catch_up(time.monotonic())
            due = time.monotonic()
            while self._subs:
                while len(self._prepared) < self.lead_frames + 1:
                    content = self._next_content()
                    if content is None:  # the idle frames are not rendered yet
                        self._need_idle.set()
                        self._idle_ready.clear()
                        await self._idle_ready.wait()
                        continue
                    self._prepared.append(content)
                now = time.monotonic()
                if due > now:
                    await asyncio.sleep(due - now)
                elif now - due > self.max_late_s:
                    self.rebased += 1
                    if now - self._warned_at >= _WARN_EVERY_S:  # a starved loop: one line, not 100s
                        self._warned_at = now
                        logger.warning("live %s: %.0f ms behind schedule; clock restarted "
                                       "(%d times so far)", self.persona, (now - due) * 1000,
                                       self.rebased)
                    due = now
                if not self._prepared:  # a cancel emptied it while we slept
                    continue
                if not self._subs:
                    break
                self._release(self._prepared.popleft())
                due += period
                if self.idle_source is None and len(self._idle) < self.idle_batch:
                    self._need_idle.set()
            self._paused_at = time.monotonic()
            logger.info("live %s: no subscriber, paused", self.persona)

    def _catch_up(self, now: float) -> None:
        """After a pause (nobody watching), drop what would have played meanwhile: a viewer
        who comes later sees the show where it is now, not sentences said to nobody."""
        paused_at, self._paused_at = self._paused_at, None
        if paused_at is None or now - paused_at < 1.0 / self.fps:
            return
        if any(c.reply_id is not None for c in self._prepared):
            self._prepared.clear()
        playhead = paused_at
        while self._schedule:
            seg = self._schedule[0]
            start = max(playhead, seg.pushed)
            left = seg.performance.n_frames - seg.next
            if start + left / self.fps <= now:
                self._schedule.popleft()
                playhead = start + left / self.fps
                continue
            seg.next += max(0, int((now - start) * self.fps))
            break
        logger.info("live %s: resumed after %.1f s without subscribers", self.persona,
                    now - paused_at)

    def _next_content(self) -> _Content | None:
        while self._schedule:
            seg = self._schedule[0]
            perf = seg.performance
            if seg.next >= perf.n_frames:
                self._schedule.popleft()
                continue
            i = seg.next
            seg.next += 1
            spt = self.samples_per_tick
            self.speech_frames += 1
            self._idle_at = perf.start_frame + i + 1  # idle goes on from the speech's end
            return _Content(perf.frames[i], seg.audio[i * spt:(i + 1) * spt], perf.reply_id,
                            perf.index, perf.text, None)
        if self.idle_source is not None:
            return self._shared_idle(self.idle_source)
        if not self._idle:
            return None
        rgba, key = self._idle.popleft()
        return _Content(rgba, self._silence, None, None, None, key)

    def _shared_idle(self, source: IdleSource) -> _Content | None:
        """The next idle frame from the shared pictures (None: not drawn yet; the idle task
        draws it). The index follows what this stream showed last, so idle continues a
        sentence's blinks and breathing exactly; the performer's clock is moved up to it, so
        the next sentence starts after it (a sentence reserved earlier starts where it was
        reserved: idle frames may be shown meanwhile, as while it was being rendered)."""
        clock = self.performer.frame_clock
        at = clock if self._idle_at is None else self._idle_at
        got = source.frames_at(at)
        if got is None:
            self._need_idle.set()
            return None
        if at + 1 > clock:
            # Advance the clock past the frame shown (the performer's renderer takes it from
            # the same source: a lookup, no drawing).
            self.performer.idle_frames(at + 1 - clock)
        self._idle_at = at + 1
        self.idle_shared += 1
        rgba, key = got[0]
        return _Content(rgba, self._silence, None, None, None, key)

    def _release(self, c: _Content) -> None:
        index = self.ticks
        self.ticks += 1
        tick = LiveTick(index=index, pts_s=index / self.fps, rgba=c.rgba, audio=c.audio,
                        reply_id=c.reply_id, sentence=c.sentence, text=c.text,
                        idle_key=c.idle_key, released=time.monotonic())
        for sub in self._subs:
            sub._put(tick)
        now = (c.reply_id, c.sentence)
        if now != self._on_air:
            self._on_air = now
            change = SentenceChange(self.persona, c.reply_id, c.sentence, c.text, index,
                                    tick.released)
            for watcher in list(self._watchers):
                try:
                    watcher(change)
                except Exception:
                    logger.exception("live %s: sentence watcher failed", self.persona)

    # --- idle frames ---------------------------------------------------------------------------

    async def _render_idle_ahead(self) -> None:
        while True:
            await self._need_idle.wait()
            self._need_idle.clear()
            if self.idle_source is not None:
                await self._draw_shared(self.idle_source)
                continue
            if not self._subs or len(self._idle) >= self.idle_batch:
                continue
            try:
                batch = await asyncio.to_thread(self._render_idle, self.idle_batch)
            except Exception:
                # A failing renderer must not stop the stream: show the last picture again.
                logger.exception("live %s: idle frames failed", self.persona)
                last = self._last_idle
                if last is None:
                    await asyncio.sleep(0.2)
                    self._need_idle.set()
                    continue
                batch = [last] * self.idle_batch
            self._idle.extend(batch)
            self._idle_ready.set()

    async def _draw_shared(self, source: IdleSource) -> None:
        """Have the shared source draw the pictures of the next seconds of idle frames."""
        at = self.performer.frame_clock if self._idle_at is None else self._idle_at
        try:
            await asyncio.to_thread(source.prepare, at, _DRAW_AHEAD_S * self.fps)
        except Exception:
            # The pacer waits (shows nothing new) rather than stop; the next try may work.
            logger.exception("live %s: idle frames failed", self.persona)
            await asyncio.sleep(0.2)
        self._idle_ready.set()

    def _render_idle(self, n: int) -> list[tuple[np.ndarray, int]]:
        """Blocking (a thread): ``n`` idle frames with their keys. A frame equal to the one
        before it is the same array with the same key (most idle frames repeat)."""
        frames = self.performer.idle_frames(n)
        out = []
        last = self._last_idle
        for frame in frames:
            if last is not None and _same(frame, last[0]):
                out.append(last)
                continue
            frame = np.ascontiguousarray(frame)
            key = int.from_bytes(hashlib.blake2b(frame.data, digest_size=8).digest(), "little")
            last = (frame, key)
            out.append(last)
        self._last_idle = last
        self.idle_rendered += n
        return out


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two frames hold the same pixels (compared 8 bytes at a time)."""
    if a.shape != b.shape:
        return False
    if a.nbytes % 8 == 0 and a.flags.c_contiguous and b.flags.c_contiguous:
        return bool(np.array_equal(a.reshape(-1).view(np.uint64), b.reshape(-1).view(np.uint64)))
    return bool(np.array_equal(a, b))


def speech_to_ticks(performance: Performance, rate: int, samples_per_tick: int) -> np.ndarray:
    """The performance's audio as ``int16`` at ``rate``, cut or padded with silence to exactly
    ``n_frames * samples_per_tick`` samples (frame ``i`` plays with samples
    ``i * samples_per_tick ..``)."""
    speech = performance.speech
    audio = np.clip(np.asarray(speech.audio, np.float32).reshape(-1), -1.0, 1.0)
    if speech.sample_rate != rate and len(audio):
        audio = _resample(audio, speech.sample_rate, rate)
    pcm = np.round(audio * 32767.0).astype(np.int16)
    n = performance.n_frames * samples_per_tick
    out = np.zeros(n, np.int16)
    out[: min(n, len(pcm))] = pcm[:n]
    return out


def _resample(audio: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Band-limited resampling with FFmpeg's swresample (PyAV), float32 mono in and out."""
    import av

    frame = av.AudioFrame.from_ndarray(audio.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = src
    resampler = av.AudioResampler(format="flt", layout="mono", rate=dst)
    parts = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)
