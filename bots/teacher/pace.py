"""How fast a teacher speaks: the rate follows the learner's CEFR level, and a replay asked
for with "say that again slower" (:mod:`bots.teacher.replay`) is slower still.

A voice that takes a per-call ``speed`` (``synthesize(text, *, speed=...)``: the pace for that
call, as a factor of the voice's natural pace; Piper's ``length_scale`` is its inverse) is
asked for it directly. A voice
without one is voiced at its own pace and stretched in time afterwards (WSOLA: the pitch is
kept, the phoneme timings are scaled with the audio), so every provider can slow down.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import replace

import numpy as np

from avatar_engine.types import PhonemeTiming, Speech
from avatar_engine.voice import TTS
from bots.teacher.settings import TeacherSettings

__all__ = [
    "LEVEL_SPEED",
    "SLOWER_FACTOR",
    "accepts_speed",
    "level_speed",
    "slower",
    "stretch",
    "synthesize_at",
]

logger = logging.getLogger(__name__)

LEVEL_SPEED: dict[str, float] = {
    "A1": 0.75, "A2": 0.8, "B1": 0.87, "B2": 0.93, "C1": 0.97, "C2": 1.0,
}
"""Speaking rate per CEFR level, as a factor on the voice's own pace (1.0: normal)."""
SLOWER_FACTOR = 0.75  # "say that again slower": this much of the rate it was said at
MIN_SPEED = 0.5  # slower than this is no longer speech a learner can follow


def level_speed(teacher: TeacherSettings | None) -> float:
    """The rate a persona speaks at: its level's for a teacher, 1.0 otherwise."""
    return 1.0 if teacher is None else LEVEL_SPEED[teacher.level]


def slower(speed: float) -> float:
    """The rate of a slower replay of something said at ``speed``."""
    return max(MIN_SPEED, round(speed * SLOWER_FACTOR, 3))


# ------------------------------------------------------------------ voicing at a rate


def accepts_speed(tts: TTS) -> bool:
    """Whether the voice takes a per-call ``speed`` keyword in ``synthesize``."""
    try:
        params = inspect.signature(tts.synthesize).parameters
    except (TypeError, ValueError):
        return False
    p = params.get("speed")
    return p is not None and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)


def synthesize_at(tts: TTS, text: str, speed: float = 1.0, *, base: float = 1.0) -> Speech:
    """Voice ``text`` at ``speed`` times the pace the voice is set to (blocking: run it in a
    thread).

    Args:
        speed: the factor (a level's rate, a slower replay's).
        base: the voice's own setting (``VoiceSettings.speed``), which a per-call ``speed``
            replaces: the voice is asked for ``base * speed``.
    """
    if abs(speed - 1.0) < 1e-3:
        return tts.synthesize(text)
    if accepts_speed(tts):
        return tts.synthesize(text, speed=base * speed)
    return stretch(tts.synthesize(text), speed)


def stretch(speech: Speech, speed: float) -> Speech:
    """``speech`` played at ``speed`` (0.5: twice as long) with its pitch kept (WSOLA), its
    phoneme timings scaled to match."""
    if abs(speed - 1.0) < 1e-3 or len(speech.audio) == 0:
        return speech
    audio = _wsola(np.asarray(speech.audio, np.float32), speech.sample_rate, speed)
    phonemes = None
    if speech.phonemes is not None:
        k = len(audio) / len(speech.audio)
        phonemes = tuple(PhonemeTiming(p.phoneme, p.start * k, p.end * k)
                         for p in speech.phonemes)
    return replace(speech, audio=audio, phonemes=phonemes)


def _wsola(x: np.ndarray, rate: int, speed: float) -> np.ndarray:
    """Waveform-similarity overlap-add: windows of ~30 ms taken every ``hop * speed`` samples
    of the input, each shifted (within ~10 ms) to continue the previous one's waveform,
    and laid down every ``hop`` samples of the output."""
    win = max(32, int(0.03 * rate)) // 2 * 2
    hop = win // 2
    tol = int(0.01 * rate)
    window = np.hanning(win).astype(np.float32)
    n_out = int(round(len(x) / speed))
    pad = np.concatenate([np.zeros(tol, np.float32), x, np.zeros(win + 2 * tol, np.float32)])
    out = np.zeros(n_out + win, np.float32)
    norm = np.zeros(n_out + win, np.float32)
    prev_next = None  # the input that naturally follows the last window taken
    for k, pos_out in enumerate(range(0, n_out, hop)):
        centre = int(round(k * hop * speed)) + tol
        if prev_next is None:
            start = centre
        else:
            lo, hi = max(0, centre - tol), min(len(pad) - win, centre + tol)
            region = pad[lo:hi + win]
            # The shift whose window best matches the natural continuation.
            scores = np.correlate(region, prev_next, mode="valid")
            start = lo + int(np.argmax(scores)) if len(scores) else centre
        seg = pad[start:start + win]
        if len(seg) < win:
            break
        out[pos_out:pos_out + win] += seg * window
        norm[pos_out:pos_out + win] += window
        prev_next = pad[start + hop:start + hop + win]
        if len(prev_next) < win:
            prev_next = None
    norm[norm < 1e-3] = 1.0
    return (out / norm)[:n_out].astype(np.float32)
