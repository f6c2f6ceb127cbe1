"""Helpers of the avatar tests: synthetic speech (numpy audio with matching phoneme timings, so
no voice model is needed) and the path of the committed default sprite set."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from avatar_engine.types import PhonemeTiming, Speech

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SET = REPO / "config" / "avatars" / "default"
SAMPLE_RATE = 16_000
SILENT = frozenset({"^", "$", " ", ",", ".", "!", "?", "ˈ", "ˌ"})


def timeline(entries: Sequence[tuple[str, float]], start: float = 0.0) -> tuple[PhonemeTiming, ...]:
    """Phoneme timings from ``(symbol, duration)`` pairs laid end to end."""
    out, t = [], start
    for symbol, duration in entries:
        out.append(PhonemeTiming(symbol, t, t + duration))
        t += duration
    return tuple(out)


def synth_speech(
    entries: Sequence[tuple[str, float]], *, with_phonemes: bool = True, text: str = "test"
) -> Speech:
    """Speech whose audio is a 220 Hz tone under voiced phonemes and silence elsewhere."""
    phonemes = timeline(entries)
    n = round(phonemes[-1].end * SAMPLE_RATE)
    audio = np.zeros(n, dtype=np.float32)
    t = np.arange(n) / SAMPLE_RATE
    for p in phonemes:
        if p.phoneme not in SILENT:
            a, b = round(p.start * SAMPLE_RATE), round(p.end * SAMPLE_RATE)
            audio[a:b] = 0.5 * np.sin(2 * np.pi * 220 * t[a:b])
    return Speech(
        text=text,
        audio=audio,
        sample_rate=SAMPLE_RATE,
        phonemes=phonemes if with_phonemes else None,
    )


# "Hello there, chat! ... Great." as Piper (espeak-ng) spells it, with plausible durations.
HELLO = [
    ("^", 0.05),
    ("h", 0.035),
    ("ə", 0.035),
    ("l", 0.046),
    ("ˈ", 0.035),
    ("o", 0.035),
    ("ʊ", 0.07),
    (" ", 0.035),
    ("ð", 0.07),
    ("ˈ", 0.07),
    ("ɛ", 0.058),
    ("ɹ", 0.07),
    (",", 0.07),
    (" ", 0.14),
    ("t", 0.046),
    ("ʃ", 0.058),
    ("ˈ", 0.1),
    ("æ", 0.08),
    ("t", 0.058),
    ("!", 0.035),
    ("$", 0.3),
    ("^", 0.07),
    ("ɡ", 0.05),
    ("ɹ", 0.05),
    ("ˈ", 0.05),
    ("e", 0.09),
    ("ɪ", 0.07),
    ("t", 0.06),
    (".", 0.05),
    ("$", 0.2),
]
