"""Voices: text in, :class:`~avatar_engine.types.Speech` (audio + phoneme timings) out.

Providers (``voice.provider``): ``piper`` (neural voices, the embedded English one or any
``.onnx`` a user brings), ``espeak`` (espeak-ng, ~100 languages, robotic, with phoneme
timings) and ``openai`` (any OpenAI-compatible speech server, mouth from the audio envelope).
See docs/voices.md.
"""

from avatar_engine.voice.base import (
    PROVIDERS,
    TTS,
    create_tts,
    language_matches,
    normalize_language,
    voice_languages,
    voice_speaks,
)

__all__ = [
    "PROVIDERS",
    "TTS",
    "create_tts",
    "language_matches",
    "normalize_language",
    "voice_languages",
    "voice_speaks",
]
