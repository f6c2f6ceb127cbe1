"""Voices: text in, :class:`~avatar_engine.types.Speech` (audio + phoneme timings) out."""

from avatar_engine.voice.base import TTS, create_tts

__all__ = ["TTS", "create_tts"]
