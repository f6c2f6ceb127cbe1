"""The hearing pipeline for a voice channel: per-speaker segmenters fed from any thread,
transcription in a worker pool off the event loop, :class:`~bots.events.Utterance` out.

``feed`` is called by the voice receiver's thread with each speaker's 20 ms PCM frames; cheap
work (resampling, Silero VAD: ~1% of a core per speaker) happens right there, whisper runs in
the listener's own executor, and results come back on the event loop. A watch on the loop
hears a speaker whose packets stopped (Discord clients stop sending when people stop
talking) as silent, so their early transcription starts and their turn ends on time.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Self

from bots.events import Utterance, Viewer
from bots.hearing.segmenter import Segment, SpeechSegmenter
from bots.hearing.settings import HearingSettings
from bots.hearing.stt import Transcript, WhisperSTT
from bots.hearing.vad import SileroVAD
from vstage_core.tasks import cancel_and_wait

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Heard:
    """One transcribed utterance with the audio facts behind it (for transcripts, metrics)."""

    utterance: Utterance
    segment: Segment
    transcript: Transcript
    stt_started_at: float = 0.0  # clock time its transcription started (early: in the pause)


OnHeard = Callable[[Heard], Awaitable[None] | None]
OnSpeechStart = Callable[[Viewer], None]


class _Speaker:
    __slots__ = ("viewer", "segmenter", "lock")

    def __init__(self, viewer: Viewer, segmenter: SpeechSegmenter) -> None:
        self.viewer = viewer
        self.segmenter = segmenter
        self.lock = threading.Lock()


class Listener:
    """Hears everyone in one voice channel. Use as ``async with``.

    Args:
        settings: VAD and whisper settings.
        on_heard: called on the loop with each transcribed utterance (may be async).
        on_speech_start: called on the loop when someone starts talking (barge-in).
        platform: the ``platform`` of the events made.
        language: the language expected (the persona's), changeable at any time; it picks
            the whisper model (``tiny.en`` for English, multilingual otherwise) and is the
            hint whisper transcribes in.
        ignore_ids: speakers never transcribed (the bot itself).
        vad, stt: preloaded models to share between listeners (loaded here otherwise).
        clock: monotonic clock.
    """

    def __init__(self, *, settings: HearingSettings, on_heard: OnHeard,
                 on_speech_start: OnSpeechStart | None = None, platform: str = "discord",
                 language: str = "en", persona: str | None = None,
                 ignore_ids: set[str] | None = None, vad: SileroVAD | None = None,
                 stt: WhisperSTT | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.language = language
        self.persona = persona
        self.platform = platform
        self.ignore_ids = set(ignore_ids or ())
        self.speaking = False  # set while the persona's own voice plays
        self._on_heard = on_heard
        self._on_speech_start = on_speech_start
        self._vad = vad
        self._stt = stt
        self._clock = clock
        self._speakers: dict[str, _Speaker] = {}
        self._speakers_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[Viewer, Segment, str]] = asyncio.Queue()
        self._executor: ThreadPoolExecutor | None = None
        self._tasks: set[asyncio.Task] = set()
        # Transcriptions started early from previews, by (speaker id, preview key), with the
        # clock time each started.
        self._early: dict[tuple[str, int], tuple[asyncio.Future, float]] = {}
        self.dropped_frames = 0
        self.failures = 0
        self.reused = 0  # final segments whose early transcription was used

    async def __aenter__(self) -> Self:
        if self._loop is not None:
            return self
        self._loop = asyncio.get_running_loop()
        if self._vad is None:
            self._vad = await asyncio.to_thread(SileroVAD)
        if self._stt is None:
            # The expected language's model now: a missing one fails the start, not the
            # first utterance. Another language's model loads when it is first needed.
            self._stt = await asyncio.to_thread(WhisperSTT, settings=self.settings,
                                                languages=(self.language,))
        self._executor = ThreadPoolExecutor(self.settings.workers, thread_name_prefix="stt")
        for i in range(self.settings.workers):
            self._own(self._transcriber(), f"hearing:{self.platform}:stt:{i}")
        self._own(self._pause_watch(), f"hearing:{self.platform}:pauses")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await cancel_and_wait(list(self._tasks))
        self._tasks.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._loop = None

    def _own(self, coro, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ intake (any thread)

    def feed(self, viewer: Viewer, pcm: bytes) -> None:
        """One speaker's Discord PCM (48 kHz stereo s16, usually one 20 ms frame). Thread-safe;
        never raises (a bad frame is counted and dropped)."""
        if viewer.id in self.ignore_ids or self._loop is None:
            return
        if self.speaking and self.settings.ignore_while_speaking:
            return
        speaker = self._speaker(viewer)
        try:
            with speaker.lock:
                was_speaking = speaker.segmenter.in_speech
                segments = speaker.segmenter.feed_pcm(pcm)
                started = not was_speaking and (speaker.segmenter.in_speech or bool(segments))
        except Exception:
            self.dropped_frames += 1
            logger.exception("hearing: bad frame from %s dropped", viewer.name)
            return
        if started and self._on_speech_start is not None:
            self._loop.call_soon_threadsafe(self._speech_started, viewer)
        if segments:
            self._loop.call_soon_threadsafe(self._dispatch, viewer, segments, self.language)

    def stopped_sending(self, viewer: Viewer) -> None:
        """The speaker's client announced the end of its transmission (the first of Discord's
        five silence frames): their pause is heard from now on, without waiting for
        ``packet_gap_s``, and what of it has passed is heard at once (here, not at the pause
        watch's next tick). Thread-safe; never raises."""
        with self._speakers_lock:
            speaker = self._speakers.get(viewer.id)
        if speaker is None or self._loop is None:
            return  # nobody new: a speaker who only sent silence is no one
        try:
            with speaker.lock:
                speaker.segmenter.sender_stopped()
                segments = speaker.segmenter.fill_pause()
        except Exception:
            self.failures += 1
            logger.exception("hearing: pause of %s not heard", viewer.name)
            return
        if segments:
            self._loop.call_soon_threadsafe(self._dispatch, speaker.viewer, segments,
                                            self.language)

    def forget(self, viewer_id: str) -> None:
        """The speaker left: transcribe what they were saying, drop their state."""
        with self._speakers_lock:
            speaker = self._speakers.pop(viewer_id, None)
        if speaker is not None and self._loop is not None:
            with speaker.lock:
                seg = speaker.segmenter.flush()
            if seg is not None:
                self._loop.call_soon_threadsafe(self._queue.put_nowait,
                                                (speaker.viewer, seg, self.language))

    def _speaker(self, viewer: Viewer) -> _Speaker:
        with self._speakers_lock:
            speaker = self._speakers.get(viewer.id)
            if speaker is None:
                assert self._vad is not None
                speaker = _Speaker(viewer, SpeechSegmenter(vad=self._vad, settings=self.settings,
                                                          clock=self._clock))
                self._speakers[viewer.id] = speaker
            return speaker

    def _speech_started(self, viewer: Viewer) -> None:
        try:
            assert self._on_speech_start is not None
            self._on_speech_start(viewer)
        except Exception:
            logger.exception("hearing: on_speech_start failed")

    # ------------------------------------------------------------------ on the loop

    async def _pause_watch(self) -> None:
        """Hear stopped packets as silence: every speaker whose packets stayed away for
        ``packet_gap_s`` in mid-utterance gets the missing time fed as silence (a few VAD
        windows per tick, cheap enough for the loop), which starts the early transcription
        and then ends the utterance. ``flush_if_idle`` stays as the backstop."""
        gap = self.settings.packet_gap_s
        period = min(0.05, self.settings.end_silence_s / 4, gap / 4 if gap else 0.05)
        while True:
            await asyncio.sleep(period)
            now = self._clock()
            with self._speakers_lock:
                speakers = list(self._speakers.values())
            for speaker in speakers:
                try:
                    with speaker.lock:
                        segments = speaker.segmenter.fill_pause(now)
                        last = speaker.segmenter.flush_if_idle(now)
                except Exception:
                    self.failures += 1
                    logger.exception("hearing: pause of %s not heard", speaker.viewer.name)
                    continue
                if last is not None:
                    segments.append(last)
                if segments:
                    self._dispatch(speaker.viewer, segments, self.language)

    def _dispatch(self, viewer: Viewer, segments: list[Segment], language: str) -> None:
        """Segments of one speaker: previews start an early transcription, finals queue."""
        for seg in segments:
            if seg.final:
                self._queue.put_nowait((viewer, seg, language))
            else:
                self._start_early(viewer, seg, language)

    def _start_early(self, viewer: Viewer, seg: Segment, language: str) -> None:
        """A preview: the speaker paused. Start transcribing now; if the pause turns out to
        end the turn, the final segment (same audio) takes this result instead of waiting."""
        if self._executor is None or self._stt is None:
            return
        for key in [k for k in self._early if k[0] == viewer.id]:  # older previews are moot
            self._early.pop(key)[0].cancel()
        stt = self._stt
        future = asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: stt.transcribe(seg.audio, language=language))
        self._early[(viewer.id, seg.key)] = (future, self._clock())

    async def _transcriber(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            viewer, seg, language = await self._queue.get()
            try:
                assert self._stt is not None
                early = self._early.pop((viewer.id, seg.key), None) if seg.key else None
                if early is not None and not early[0].cancelled():
                    self.reused += 1
                    started_at = early[1]
                    transcript = await early[0]
                else:
                    started_at = self._clock()
                    transcript = await loop.run_in_executor(
                        self._executor,
                        functools.partial(self._stt.transcribe, seg.audio, language=language),
                    )
                if not transcript.text or _is_noise(transcript.text):
                    continue
                utterance = Utterance(viewer=viewer, message=transcript.text,
                                      language=transcript.language, duration_s=seg.duration_s,
                                      detected_language=transcript.detected_language,
                                      language_probability=transcript.language_probability,
                                      platform=self.platform, persona=self.persona)
                result = self._on_heard(Heard(utterance, seg, transcript, started_at))
                if asyncio.iscoroutine(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failures += 1
                logger.exception("hearing: transcription of %s failed", viewer.name)


_NOISE = {"", ".", "...", "thanks for watching!"}


def _is_noise(text: str) -> bool:
    """Whisper's habitual hallucinations on near-silence."""
    return text.strip().lower() in _NOISE
