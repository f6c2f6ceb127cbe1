"""The TTS interface every voice provider implements, language codes as voices know them, and
the registry that builds a provider from a persona's settings.

A provider is one leaf module (``piper.py``, ``espeak.py``, ``openai.py``) with one class
implementing :class:`TTS`; registering it is one line in :data:`PROVIDERS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from avatar_engine.settings import VoiceSettings
from avatar_engine.types import Speech

__all__ = [
    "PROVIDERS",
    "TTS",
    "create_tts",
    "language_matches",
    "normalize_language",
    "voice_languages",
    "voice_speaks",
]


@runtime_checkable
class TTS(Protocol):
    """A voice. ``synthesize`` is blocking (model inference or a network read): callers run it
    off the loop.

    One call voices one sentence; the result carries phoneme timings when the provider
    knows them, else ``phonemes`` is None and the avatar follows the audio envelope.
    """

    sample_rate: int

    def synthesize(self, text: str, *, speed: float | None = None) -> Speech:
        """Voice ``text``.

        Args:
            text: one sentence or clause.
            speed: pace for this call only, as a factor of the voice's own pace (``0.7`` is
                slower); None keeps the settings' ``speed``.
        """
        ...

    def languages(self) -> frozenset[str] | None:
        """Language codes this voice speaks (``{"de"}``, or espeak-ng's ~100); None when the
        provider cannot know (a remote server)."""
        ...

    def speaks(self, language: str) -> bool:
        """Whether this voice speaks ``language`` (``"de"``, ``"de-AT"``, ``"pt_BR"``); True when
        :meth:`languages` is unknown."""
        ...


def normalize_language(code: str) -> str:
    """``"de_DE"`` / ``"DE-de"`` -> ``"de-de"``: lower case with ``-`` between the subtags."""
    return code.strip().replace("_", "-").lower()


def language_matches(language: str, supported: Iterable[str] | None) -> bool:
    """Whether a voice that speaks ``supported`` can speak ``language``.

    Exact tags match, and so do tags with the same primary language (``de-AT`` is spoken by a
    ``de`` voice, ``en`` by an ``en-us`` voice): a regional accent is not a reason to warn.
    ``supported`` None (unknown) matches everything.
    """
    if supported is None:
        return True
    wanted = normalize_language(language)
    primary = wanted.split("-")[0]
    for code in supported:
        have = normalize_language(code)
        if have == wanted or have.split("-")[0] == primary:
            return True
    return False


PROVIDERS: dict[str, str] = {
    "piper": "avatar_engine.voice.piper:PiperTTS",
    "espeak": "avatar_engine.voice.espeak:EspeakTTS",
    "openai": "avatar_engine.voice.openai:OpenAITTS",
}
"""Provider name (``voice.provider``) -> ``module:Class`` of its :class:`TTS`. The class takes
keyword-only ``settings`` and ``language`` (the persona's language, a default)."""


def _provider_class(provider: str) -> type:
    try:
        module_name, _, class_name = PROVIDERS[provider].partition(":")
    except KeyError:
        raise ValueError(
            f"unknown voice provider {provider!r}; known: {', '.join(sorted(PROVIDERS))}"
        ) from None
    cls: type = getattr(importlib.import_module(module_name), class_name)
    return cls


def create_tts(settings: VoiceSettings, *, language: str | None = None) -> TTS:
    """Build the voice a persona's settings ask for.

    Args:
        settings: the persona's ``voice:`` section.
        language: the persona's language; espeak speaks it when ``settings.voice`` is unset.
            Other providers ignore it (a Piper voice's language is in its file).

    Raises:
        ProviderError: the voice cannot be loaded (a missing file, an unknown espeak language);
            the message names what is missing and how to get it.
        MissingDependency: the provider's package or library is not installed.
    """
    tts: TTS = _provider_class(settings.provider)(settings=settings, language=language)
    return tts


def voice_languages(
    settings: VoiceSettings, *, language: str | None = None
) -> frozenset[str] | None:
    """Languages the voice these settings describe speaks, without loading it (cheap enough for
    ``vstage check``: reads a Piper voice's json, asks espeak-ng for its list).

    Returns:
        Language codes, or None when unknown (an ``openai`` voice without ``languages:``, or a
        Piper voice file that is missing: loading it will report that).
    """
    if settings.provider == "openai":
        return frozenset(settings.languages) if settings.languages is not None else None
    if settings.provider == "espeak":
        from avatar_engine.voice.espeak import espeak_voice_languages

        return espeak_voice_languages(settings.voice or language or "en")
    from avatar_engine.voice.piper import piper_voice_languages

    return piper_voice_languages(settings)


def voice_speaks(settings: VoiceSettings, language: str) -> bool | None:
    """Whether the voice these settings describe speaks ``language``: True, False, or None
    when unknown. ``language`` is the persona's; an espeak voice without ``voice:`` speaks it
    whenever espeak-ng has it."""
    supported = voice_languages(settings, language=language)
    if supported is None:
        return None
    return language_matches(language, supported)
