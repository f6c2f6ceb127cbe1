"""Microphone recordings for the /talk browser tests: what a learner says, as a WAV file that
Chromium plays as its fake microphone (``--use-file-for-fake-audio-capture=FILE%noloop``).

Speech comes from the project's own voices (Piper's embedded English voice; espeak-ng for
other languages), resampled to 48 kHz mono 16-bit. Pauses are not digital zeros but a faint
noise floor, as a real microphone's are (a muted or dead mic is the one that sends exact
zeros, and the page says so).
"""

from __future__ import annotations

import wave
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from avatar_engine.settings import VoiceSettings
from avatar_engine.voice.espeak import EspeakTTS
from avatar_engine.voice.piper import PiperTTS
from bots.hearing.audio import resample

RATE = 48_000
NOISE_FLOOR = 3e-4  # about -70 dBFS: a quiet room through a laptop mic, far below any VAD


@dataclass(frozen=True)
class Said:
    """Speech in a recording: its text and where it is (seconds from the start)."""

    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Recording:
    """A WAV file made by :func:`record` and what is said where in it."""

    path: Path
    duration_s: float
    said: tuple[Said, ...]

    def chromium_arg(self, *, loop: bool = False) -> str:
        """The Chromium switch that makes this file the fake microphone (played once)."""
        return f"--use-file-for-fake-audio-capture={self.path}{'' if loop else '%noloop'}"


@cache
def _piper() -> PiperTTS:
    return PiperTTS(settings=VoiceSettings())


@cache
def _espeak(language: str) -> EspeakTTS:
    return EspeakTTS(settings=VoiceSettings(provider="espeak", voice=language,
                                            words_per_minute=140), language=language)


def speak(text: str, *, language: str = "en") -> np.ndarray:
    """``text`` spoken (Piper for English, espeak-ng otherwise) as float32 mono at 48 kHz."""
    speech = (_piper() if language == "en" else _espeak(language)).synthesize(text)
    audio = resample(speech.audio.astype(np.float32), speech.sample_rate, RATE)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio * (0.5 / peak) if peak > 0 else audio  # a normal speaking level


def _floor(seconds: float, rng: np.random.Generator) -> np.ndarray:
    return (rng.standard_normal(round(seconds * RATE)) * NOISE_FLOOR).astype(np.float32)


def record(path: Path, parts: Sequence[str | float], *, language: str = "en",
           seed: int = 0) -> Recording:
    """Write a recording made of ``parts``: a string is spoken, a number is a pause of that
    many seconds (the room's faint noise). Returns where each spoken part is."""
    rng = np.random.default_rng(seed)
    pieces: list[np.ndarray] = []
    said: list[Said] = []
    t = 0.0
    for part in parts:
        if isinstance(part, str):
            audio = speak(part, language=language)
            said.append(Said(part, t, t + audio.size / RATE))
            audio = audio + _floor(audio.size / RATE, rng)
        else:
            audio = _floor(float(part), rng)
        pieces.append(audio)
        t += audio.size / RATE
    signal = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    pcm = (np.clip(signal, -1.0, 1.0) * 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return Recording(path=path, duration_s=t, said=tuple(said))
