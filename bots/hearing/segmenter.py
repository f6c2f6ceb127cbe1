"""Cuts one speaker's live audio into utterances: Discord frames in, 16 kHz speech segments
out when the speaker has been silent long enough (or talked too long).

Discord clients stop sending packets when someone stops talking (five silence frames, then
nothing), so silence often never arrives as audio: :meth:`SpeechSegmenter.fill_pause` hears
the time without packets as the silence it is, so a pause ends a turn as real silence would.

One :class:`SpeechSegmenter` per speaker, so overlapping speech from two people is never mixed:
each stream has its own resampler, VAD state and buffer.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bots.hearing.audio import (
    FRAME_MS,
    FRAME_SAMPLES,
    Downsampler48to16,
    pcm48_stereo_to_mono,
)
from bots.hearing.settings import HearingSettings
from bots.hearing.vad import VAD_RATE, WINDOW, SileroVAD


@dataclass(frozen=True, slots=True)
class Segment:
    """One stretch of speech: 16 kHz mono float32 audio and when its speech ended
    (monotonic clock, at the end of the last voiced window)."""

    audio: np.ndarray
    speech_end: float
    detected_at: float
    cut: bool = False  # True: stopped at max_utterance_s, the speaker may still be talking
    final: bool = True  # False: a preview, sent early so transcription can start
    key: int = 0  # a final segment has the key of its preview when its audio is the same

    @property
    def duration_s(self) -> float:
        return self.audio.size / VAD_RATE


class SpeechSegmenter:
    """Streaming segmentation of one speaker. Not thread-safe: one feeder per instance.

    Args:
        vad: the shared Silero model.
        settings: thresholds (end-of-speech silence, max length, ...).
        clock: monotonic clock; time of the audio is derived from the samples fed, anchored
            at the clock when a frame arrives.
    """

    _FRAME_S = FRAME_MS / 1000

    def __init__(self, *, vad: SileroVAD, settings: HearingSettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._s = settings
        self._vad = vad.stream(floor_dbfs=settings.vad_floor_dbfs)
        self._down = Downsampler48to16()
        self._clock = clock
        self._pre: deque[np.ndarray] = deque(maxlen=max(1, round(
            settings.pre_roll_s * VAD_RATE / WINDOW)))
        self._speech: list[np.ndarray] = []
        self._unscored = np.zeros(0, np.float32)  # 16 kHz samples waiting for a full window
        self._in_speech = False
        self._voiced_windows = 0
        self._silent_windows = 0
        self._last_voice_at = 0.0
        self._last_fed_at = 0.0  # when audio last came in (a packet, not a filled pause)
        self._heard_until = 0.0  # the clock time the audio fed so far reaches (filled or not)
        # No voice is expected (until the next audio with sound): the client said it stops
        # sending, or its packets have been away for `packet_gap_s`.
        self._sender_stopped = False
        self._keys = 0
        self._preview_key = 0  # key of the preview still valid for this utterance (0: none)
        self._preview_windows = 0  # how many windows of the utterance that preview holds

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def feed_pcm(self, frame: bytes) -> list[Segment]:
        """Push one (or more) Discord PCM frames: 48 kHz interleaved stereo s16.

        Digital silence after :meth:`sender_stopped` (the rest of Discord's five silence
        frames) is not fed: :meth:`fill_pause` hears that time from the clock already, and
        feeding both would count it twice and end the turn early. Anything else cancels the
        stop."""
        if self._sender_stopped and frame.count(0) == len(frame):
            return []
        return self.feed_16k(self._down(pcm48_stereo_to_mono(frame)))

    def feed_16k(self, audio: np.ndarray) -> list[Segment]:
        """Push 16 kHz mono float32 audio; returns the segments it completed."""
        now = self._clock()
        self._last_fed_at = self._heard_until = now
        self._sender_stopped = False
        return self._score(audio, now)

    def sender_stopped(self) -> None:
        """The client announced the end of its transmission (Discord: the first of its five
        silence frames after speech): :meth:`fill_pause` need not wait ``packet_gap_s`` to
        know that no voice is coming, and the early transcription starts at the first quiet
        VAD window. The next audio fed cancels this (through :meth:`feed_pcm`: the next
        frame that is not digital silence)."""
        self._sender_stopped = True

    def fill_pause(self, now: float | None = None) -> list[Segment]:
        """Hear a stop in the packets as silence. When the speaker is mid-utterance and no audio
        has come for ``packet_gap_s``, the time since the audio last fed reaches is fed as
        digital silence (whole 20 ms frames, through the same resampler and VAD as packets).
        Called every few tens of ms, it keeps the silence flowing while packets stay away, so
        the early transcription starts at the first quiet VAD window (no voice is expected
        once packets are away) and the utterance ends after ``end_silence_s``, as if the
        client had kept sending silence. Returns the segments it
        completed; does nothing while packets flow or outside speech."""
        gap = self._s.packet_gap_s
        now = self._clock() if now is None else now
        if gap is None or not self._in_speech:
            return []
        if not self._sender_stopped:
            if now - self._last_fed_at < gap:
                return []
            # Packets come every 20 ms while someone talks: after the gap no voice is expected,
            # as if the client had said it stopped, so the early transcription starts at the
            # first quiet window instead of after `preempt_after_s` more. A late packet still
            # joins the utterance (and makes that transcription moot if it has voice).
            self._sender_stopped = True
        frames = int((now - self._heard_until) / self._FRAME_S + 1e-6)
        if frames <= 0:
            return []
        self._heard_until += frames * self._FRAME_S
        silence = np.zeros(frames * FRAME_SAMPLES, np.float32)
        return self._score(self._down(silence), self._heard_until)

    def _score(self, audio: np.ndarray, now: float) -> list[Segment]:
        """Run the VAD over new audio ending at ``now`` and advance the utterance state."""
        self._unscored = np.concatenate([self._unscored, audio])
        probs = self._vad.feed(audio)
        out: list[Segment] = []
        end_windows = max(1, round(self._s.end_silence_s * VAD_RATE / WINDOW))
        preempt = self._s.preempt_after_s
        preview_windows = (max(1, round(preempt * VAD_RATE / WINDOW))
                           if preempt is not None and preempt < self._s.end_silence_s else 0)
        max_windows = round(self._s.max_utterance_s * VAD_RATE / WINDOW)
        # The windows just scored end at `now`; the k-th of n ended (n-1-k) windows earlier.
        n = len(probs)
        for k, p in enumerate(probs):
            window = self._unscored[k * WINDOW:(k + 1) * WINDOW]
            t_end = now - (n - 1 - k) * WINDOW / VAD_RATE - self._vad_pending_s()
            voiced = p >= self._s.vad_threshold
            quiet = p < max(0.05, self._s.vad_threshold - 0.15)
            if not self._in_speech:
                if voiced:
                    self._in_speech = True
                    self._speech = list(self._pre)
                    self._pre.clear()
                    self._speech.append(window)
                    self._voiced_windows, self._silent_windows = 1, 0
                    self._last_voice_at = t_end
                else:
                    self._pre.append(window)
                continue
            self._speech.append(window)
            if quiet:
                self._silent_windows += 1
            else:
                self._silent_windows = 0
                self._preview_key = 0  # they went on talking: a preview is out of date
                self._last_voice_at = t_end
                if voiced:
                    self._voiced_windows += 1
            # The early transcription: after `preempt_after_s` of quiet, or at the first quiet
            # window once no voice is expected (the client said it stopped sending, or its
            # packets have been away for `packet_gap_s`).
            if preview_windows and not self._preview_key and self._silent_windows and (
                self._silent_windows >= preview_windows or self._sender_stopped
            ):
                seg = self._preview()
                if seg is not None:
                    out.append(seg)
            if self._silent_windows >= end_windows:
                seg = self._close(cut=False)
                if seg is not None:
                    out.append(seg)
            elif len(self._speech) >= max_windows:
                seg = self._close(cut=True)
                if seg is not None:
                    out.append(seg)
        self._unscored = self._unscored[n * WINDOW:]
        return out

    def _vad_pending_s(self) -> float:
        return (self._unscored.size - (self._unscored.size // WINDOW) * WINDOW) / VAD_RATE

    def flush_if_idle(self, now: float | None = None) -> Segment | None:
        """Close the utterance when no audio has come for ``end_silence_s``: the backstop for
        packets that stop when :meth:`fill_pause` is off (``packet_gap_s: null``) or the VAD
        never hears the pause as quiet."""
        now = self._clock() if now is None else now
        if self._in_speech and now - self._last_fed_at >= self._s.end_silence_s:
            return self._close(cut=False)
        return None

    def flush(self) -> Segment | None:
        """Close whatever is being said now (the speaker left, shutdown)."""
        return self._close(cut=False) if self._in_speech else None

    def _spoken_windows(self, *, cut: bool) -> list[np.ndarray]:
        trailing = 0 if cut else max(0, self._silent_windows - 2)  # keep ~64 ms of tail
        return self._speech[: len(self._speech) - trailing] if trailing else self._speech

    def _preview(self) -> Segment | None:
        """The utterance so far, as it will be if the speaker stays quiet: the same windows
        the final segment will hold, so its transcription can be reused."""
        windows = self._spoken_windows(cut=False)
        if self._voiced_windows * WINDOW / VAD_RATE < self._s.min_speech_s or not windows:
            return None
        self._keys += 1
        self._preview_key = self._keys
        self._preview_windows = len(windows)
        return Segment(audio=np.concatenate(windows), speech_end=self._last_voice_at,
                       detected_at=self._clock(), final=False, key=self._keys)

    def _close(self, *, cut: bool) -> Segment | None:
        key = 0 if cut else self._preview_key
        # A preview still valid holds exactly what was said: the final keeps those windows,
        # so the early transcription is of this very audio. (A preview made at the first
        # quiet window has one quiet window of tail, where the final would keep two.)
        windows = self._speech[:self._preview_windows] if key else \
            self._spoken_windows(cut=cut)
        voiced_s = self._voiced_windows * WINDOW / VAD_RATE
        self._in_speech = False
        self._speech = []
        self._silent_windows = 0
        self._voiced_windows = 0
        self._preview_key = 0
        if voiced_s < self._s.min_speech_s or not windows:
            return None
        return Segment(audio=np.concatenate(windows), speech_end=self._last_voice_at,
                       detected_at=self._clock(), cut=cut, key=key)
