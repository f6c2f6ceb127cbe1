"""Hearing for private conversations: every session is one speaker with an :class:`Ear`, and
all ears share one Silero VAD, one whisper and one transcription executor
(:class:`TalkHearing`).

A browser keeps sending audio (silence too), unlike a Discord client, so turns are cut by
the voice activity detector alone; what Discord's :class:`~bots.hearing.listener.Listener`
adds for stopped packets is kept as a backstop (a muted or ended track, hold-to-talk
released). What the ear adds for a conversation, which the listener cannot tell its
callbacks: when a sound turns out to be too short to be speech (the page leaves "hearing"
at once), and a *turn* made of several cut pieces: speech longer than
``hearing.max_utterance_s`` arrives as pieces transcribed while the speaker goes on, joined
into one turn of at most ``max_turn_s``; the rest of a monologue is not transcribed at all.

Everything here runs on the event loop (the VAD is ~1% of a core per speaker); only whisper
runs in the executor.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
import time
from collections.abc import Callable, Collection, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, Self

import numpy as np

from bots.hearing.audio import Downsampler48to16
from bots.hearing.segmenter import Segment, SpeechSegmenter
from bots.hearing.settings import HearingSettings
from bots.hearing.stt import Transcript, WhisperSTT
from bots.hearing.vad import SileroVAD
from vstage_core.errors import ProviderError
from vstage_core.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

__all__ = ["Ear", "EarListener", "HeardSpeech", "TalkHearing", "has_words"]

_PAUSE_PERIOD_S = 0.05
# Whisper's habits on near-silence and noise: captions of sounds, not words.
_ANNOTATION = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|♪+")
_NOISE = {"you", "thank you.", "thanks for watching!", "thank you for watching."}


def has_words(text: str) -> bool:
    """Whether a transcript holds words, not just whisper's captions of sounds
    (``[Music]``, ``(applause)``, ``♪``) or its habitual fillers on noise."""
    rest = _ANNOTATION.sub(" ", text).strip()
    return bool(re.search(r"\w", rest)) and rest.lower() not in _NOISE


@dataclass(frozen=True, slots=True)
class HeardSpeech:
    """One turn of a speaker, transcribed.

    Attributes:
        text: the words ("" when there were none: a noise, a cough, or whisper failed).
        language: the language it was transcribed in.
        duration_s: seconds of audio heard for it (pieces joined).
        speech_end: clock time the speech ended (the last voiced window of its last piece).
        truncated: the speaker went on past ``max_turn_s``; the rest was not heard.
        transcripts: whisper's result for each piece.
        error: why transcription failed (None: it did not).
    """

    text: str
    language: str
    duration_s: float
    speech_end: float
    truncated: bool = False
    transcripts: tuple[Transcript, ...] = ()
    error: str | None = None


class EarListener(Protocol):
    """What an ear tells its session, on the event loop."""

    def speech_started(self) -> None:
        """The speaker started talking (not called for the continuation of a long turn)."""
        ...

    def speech_dropped(self) -> None:
        """Speech ended without making a turn: too short to be any (a click, a cough), or
        the ignored rest of a monologue longer than ``max_turn_s``."""
        ...

    def speech_heard(self, heard: HeardSpeech) -> None:
        """A turn is over and transcribed (its ``text`` may be empty: no words)."""
        ...


@dataclass(frozen=True, slots=True)
class _Piece:
    """A final segment queued for transcription; ``last``: it closes the turn."""

    segment: Segment
    last: bool
    truncated: bool


@dataclass(frozen=True, slots=True)
class _EndOfTurn:
    """The turn's pieces so far are all there is (a continuation came to nothing)."""


class Ear:
    """One speaker (a session) of :class:`TalkHearing`. Made by :meth:`TalkHearing.ear`."""

    def __init__(self, hearing: TalkHearing, key: str, *, language: str,
                 listener: EarListener) -> None:
        self.key = key
        self.language = language
        self._hearing = hearing
        self._listener = listener
        self._clock = hearing.clock
        self._segmenter = SpeechSegmenter(vad=hearing.vad, settings=hearing.segmenting,
                                          clock=hearing.clock)
        self._down = Downsampler48to16()
        self._queue: asyncio.Queue[_Piece | _EndOfTurn] = asyncio.Queue()
        self._turn_s = 0.0  # seconds of the pieces of the current turn queued so far
        self._continuing = False  # a cut piece is queued: more of the same turn may follow
        self._skipping = False  # past max_turn_s: the rest of the monologue is not heard
        self._quiet_since: float | None = None  # when in_speech last went False
        self._early: tuple[int, asyncio.Future[Transcript]] | None = None
        self._transcribing = False
        self.closed = False
        self.frames = 0
        self._task = hearing.own(self._transcribe_turns(), f"talk:{key}:hearing")

    @property
    def in_speech(self) -> bool:
        """Whether the speaker is talking now (as the VAD hears it)."""
        return self._segmenter.in_speech

    @property
    def forming(self) -> bool:
        """Speech that may still become a turn is under way (not the ignored rest of a
        monologue)."""
        return (self.in_speech and not self._skipping) or self._continuing

    @property
    def busy(self) -> bool:
        """Talking, or a turn of theirs is still being put together or transcribed."""
        return self.in_speech or self._continuing or not self._queue.empty() or \
            self._transcribing

    # ------------------------------------------------------------------ intake (the loop)

    def feed(self, pcm48: np.ndarray) -> None:
        """Mono ``int16`` 48 kHz samples from the speaker's microphone, any length."""
        if self.closed:
            return
        self.frames += 1
        mono = pcm48.astype(np.float32) / 32768.0
        was = self._segmenter.in_speech
        segments = self._segmenter.feed_16k(self._down(mono))
        self._advance(was, segments, self._clock())

    def sender_stopped(self) -> None:
        """No more audio is coming for now (hold-to-talk released, the track ended or was
        muted): the pause is heard at once instead of after ``packet_gap_s``."""
        if not self.closed:
            self._segmenter.sender_stopped()

    def watch(self, now: float) -> None:
        """Hear the time without audio as silence (called every few tens of ms)."""
        if self.closed:
            return
        was = self._segmenter.in_speech
        segments = self._segmenter.fill_pause(now)
        last = self._segmenter.flush_if_idle(now)
        if last is not None:
            segments.append(last)
        self._advance(was, segments, now)

    def close(self) -> None:
        """Forget the speaker: nothing more is heard or reported (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self._task.cancel()
        if self._early is not None:
            self._early[1].cancel()
            self._early = None
        self._hearing._forget(self)

    def _advance(self, was: bool, segments: list[Segment], now: float) -> None:
        finals = [s for s in segments if s.final]
        started = not was and (self._segmenter.in_speech or bool(finals))
        if started and not self._continuing and not self._skipping:
            self._call(self._listener.speech_started)
        for seg in segments:
            if seg.final:
                self._take(seg)
            else:
                self._preview(seg)
        if was and not self._segmenter.in_speech and not finals:
            # What was speech ended too short to keep (the segmenter dropped it).
            if self._continuing:
                self._end_turn()
            else:
                self._skipping = False
                self._call(self._listener.speech_dropped)
        if self._segmenter.in_speech:
            self._quiet_since = None
        elif self._quiet_since is None:
            self._quiet_since = now
        elif now - self._quiet_since >= self._hearing.segmenting.end_silence_s:
            # A cut piece with no continuation after it: the turn is over.
            if self._continuing:
                self._end_turn()
            if self._skipping:
                self._skipping = False
                self._call(self._listener.speech_dropped)

    def _take(self, seg: Segment) -> None:
        if self._skipping:
            if not seg.cut:  # the monologue ended with this piece
                self._skipping = False
                self._call(self._listener.speech_dropped)
            return
        self._turn_s += seg.duration_s
        truncated = seg.cut and self._turn_s >= self._hearing.max_turn_s - 0.05
        last = not seg.cut or truncated
        self._skipping = truncated
        self._continuing = not last
        if last:
            self._turn_s = 0.0
        self._queue.put_nowait(_Piece(seg, last, truncated))

    def _end_turn(self) -> None:
        self._continuing = False
        self._turn_s = 0.0
        self._queue.put_nowait(_EndOfTurn())

    def _preview(self, seg: Segment) -> None:
        """The speaker paused: start transcribing now; if the pause ends the turn, the final
        segment (the same audio, the same key) takes this result."""
        if self._skipping or self._continuing:
            return  # part of a long turn: its pieces are transcribed as they come
        if self._early is not None:
            self._early[1].cancel()
        self._early = (seg.key, self._hearing.transcribe(seg.audio, self.language))

    def _call(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            logger.exception("talk %s: hearing callback failed", self.key)

    # ------------------------------------------------------------------ transcription

    async def _transcribe_turns(self) -> None:
        transcripts: list[Transcript] = []
        heard_s, speech_end, error = 0.0, 0.0, None
        while True:
            item = await self._queue.get()
            if isinstance(item, _Piece):
                seg = item.segment
                self._transcribing = True
                try:
                    transcripts.append(await self._transcribe(seg))
                except ProviderError as e:
                    self._hearing.failures += 1
                    logger.warning("talk %s: transcription failed: %s", self.key, e)
                    error = str(e)
                finally:
                    self._transcribing = False
                heard_s += seg.duration_s
                speech_end = seg.speech_end
                if not item.last:
                    continue
                truncated = item.truncated
            else:
                truncated = False
                if not transcripts and error is None:
                    continue
            text = " ".join(t.text.strip() for t in transcripts if has_words(t.text)).strip()
            language = transcripts[-1].language if transcripts else self.language
            heard = HeardSpeech(text=text, language=language, duration_s=heard_s,
                                speech_end=speech_end, truncated=truncated,
                                transcripts=tuple(transcripts), error=error)
            transcripts, heard_s, error = [], 0.0, None
            self._call(functools.partial(self._listener.speech_heard, heard))

    async def _transcribe(self, seg: Segment) -> Transcript:
        early, self._early = self._early, None
        if early is not None and seg.key and early[0] == seg.key and not early[1].cancelled():
            self._hearing.reused += 1
            return await early[1]
        if early is not None:
            early[1].cancel()
        return await self._hearing.transcribe(seg.audio, self.language)


class TalkHearing:
    """The shared hearing of every conversation; ``async with``.

    Args:
        settings: VAD and whisper settings (``hearing:``).
        max_turn_s: the longest turn heard; longer speech is cut there and the rest of it
            ignored until the speaker pauses.
        languages: languages whose whisper model loads at start (a missing one fails then).
        vad, stt: models to share (loaded here otherwise).
        clock: monotonic clock.
    """

    def __init__(self, *, settings: HearingSettings, max_turn_s: float,
                 languages: Collection[str] = ("en",), vad: SileroVAD | None = None,
                 stt: WhisperSTT | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.max_turn_s = max_turn_s
        # Pieces of equal length that add up to max_turn_s exactly, each at most the
        # hearing's own limit (whisper's window is 30 s).
        pieces = max(1, math.ceil(max_turn_s / settings.max_utterance_s - 1e-9))
        self.segmenting = settings.model_copy(update={"max_utterance_s": max_turn_s / pieces})
        self.languages = tuple(dict.fromkeys(languages))
        self.clock = clock
        self._vad = vad
        self._stt = stt
        self._executor: ThreadPoolExecutor | None = None
        self._ears: dict[str, Ear] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False
        self.transcriptions = 0
        self.reused = 0
        self.failures = 0

    @property
    def vad(self) -> SileroVAD:
        if self._vad is None:
            raise RuntimeError("TalkHearing is not started (use `async with`)")
        return self._vad

    @property
    def ears(self) -> dict[str, Ear]:
        """The ears listening now, by key."""
        return dict(self._ears)

    async def __aenter__(self) -> Self:
        if self._started:
            return self
        if self._vad is None:
            self._vad = await asyncio.to_thread(SileroVAD)
        if self._stt is None:
            self._stt = await asyncio.to_thread(WhisperSTT, settings=self.settings,
                                                languages=self.languages)
        self._executor = ThreadPoolExecutor(self.settings.workers,
                                            thread_name_prefix="talk-stt")
        self.own(self._pause_watch(), "talk:hearing:pauses")
        self._started = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ear in list(self._ears.values()):
            ear.close()
        await cancel_and_wait(list(self._tasks))
        self._tasks.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._started = False

    def ear(self, key: str, *, language: str, listener: EarListener) -> Ear:
        """A new speaker ``key`` expected to speak ``language``."""
        if not self._started:
            raise RuntimeError("TalkHearing is not started (use `async with`)")
        if key in self._ears:
            raise ValueError(f"speaker {key!r} already has an ear")
        ear = Ear(self, key, language=language, listener=listener)
        self._ears[key] = ear
        return ear

    def own(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def transcribe(self, audio16k: np.ndarray, language: str) -> asyncio.Future[Transcript]:
        """Whisper on ``audio16k`` in the shared executor (first come, first served)."""
        if self._executor is None or self._stt is None:
            raise RuntimeError("TalkHearing is not started (use `async with`)")
        self.transcriptions += 1
        stt = self._stt
        return asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(stt.transcribe, audio16k, language=language))

    def _forget(self, ear: Ear) -> None:
        if self._ears.get(ear.key) is ear:
            del self._ears[ear.key]

    async def _pause_watch(self) -> None:
        while True:
            await asyncio.sleep(_PAUSE_PERIOD_S)
            now = self.clock()
            for ear in list(self._ears.values()):
                try:
                    ear.watch(now)
                except Exception:
                    self.failures += 1
                    logger.exception("talk %s: pause not heard", ear.key)
