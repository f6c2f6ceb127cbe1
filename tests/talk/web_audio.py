"""A spoken question as a browser's microphone would send it, for the /talk WebRTC tests."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from avatar_engine.voice.base import TTS


def write_question(path: Path, text: str, *, silence_s: float = 3.0,
                   tts: TTS | None = None) -> Path:
    """``text`` spoken by ``tts`` (default: Piper's embedded voice) between 0.1 s and
    ``silence_s`` of silence, as a 48 kHz mono 16-bit WAV (aiortc's ``MediaPlayer`` plays it
    as a microphone)."""
    from avatar_engine.settings import VoiceSettings
    from avatar_engine.voice.piper import PiperTTS
    from bots.hearing.audio import resample

    speech = (tts or PiperTTS(settings=VoiceSettings())).synthesize(text)
    audio = resample(speech.audio.astype(np.float32), speech.sample_rate, 48000)
    audio = audio * (0.5 / max(1e-6, float(np.max(np.abs(audio)))))  # a normal speaking level
    audio = np.concatenate([np.zeros(4800, np.float32), audio,
                            np.zeros(round(silence_s * 48000), np.float32)])
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(48000)
        f.writeframes((audio * 32767).astype(np.int16).tobytes())
    return path
