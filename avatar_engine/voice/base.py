"""The TTS interface every voice provider implements, and the registry that builds one."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from avatar_engine.settings import VoiceSettings
from avatar_engine.types import Speech


@runtime_checkable
class TTS(Protocol):
    """A voice. ``synthesize`` is blocking (model inference): callers run it off the loop.

    One call voices one sentence; the result carries phoneme timings when the provider
    knows them, else ``phonemes`` is None and the avatar follows the audio envelope.
    """

    sample_rate: int

    def synthesize(self, text: str) -> Speech: ...


def create_tts(settings: VoiceSettings) -> TTS:
    """Build the voice a persona's settings ask for."""
    if settings.provider == "piper":
        from avatar_engine.voice.piper import PiperTTS

        return PiperTTS(settings=settings)
    raise ValueError(f"unknown voice provider {settings.provider!r}")
