"""The espeak-ng provider, real (libespeak-ng through ctypes): German, French and Spanish speech
with phoneme timings from espeak-ng's own events that line up with the audio and move the
mouth, the rate setting, and clear errors for languages it lacks."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest
from voice_helpers import FRENCH, GERMAN, SPANISH, assert_mouth_moves, mouth_of

from avatar_engine.settings import VoiceSettings
from avatar_engine.voice import TTS, create_tts, voice_languages, voice_speaks
from avatar_engine.voice.espeak import (
    DEFAULT_WPM,
    EspeakTTS,
    espeak_languages,
    espeak_voice_languages,
)
from vstage_core.errors import ProviderError


def espeak(voice: str | None = None, **fields: object) -> EspeakTTS:
    return EspeakTTS(settings=VoiceSettings(provider="espeak", voice=voice, **fields))


def ipa_letters(speech) -> set[str]:
    return {
        ch
        for p in speech.phonemes
        for ch in unicodedata.normalize("NFC", p.phoneme)
        if not unicodedata.combining(ch)
    }


def test_espeak_knows_many_languages() -> None:
    langs = espeak_languages()
    assert {"de", "fr", "es", "it", "pt", "ru", "ja", "cmn"} <= langs
    assert len(langs) >= 90


@pytest.mark.parametrize(
    ("lang", "text", "native"),
    [
        ("de", GERMAN, {"ç", "ø", "y", "ʏ", "x", "ʁ"}),
        ("fr", FRENCH, {"ʁ", "ɔ", "ɑ", "ɛ", "ɥ", "y", "ʒ"}),
        ("es", SPANISH, {"ɲ", "ɾ", "β", "ð", "ɣ", "θ", "x"}),
    ],
)
def test_speech_with_timings_in_the_language(lang: str, text: str, native: set[str]) -> None:
    tts = espeak(lang)
    assert isinstance(tts, TTS)
    speech = tts.synthesize(text)
    assert speech.sample_rate == 22050 and speech.audio.dtype == np.float32
    assert 2.0 < speech.duration < 10.0
    assert np.abs(speech.audio).max() > 0.1
    phonemes = speech.phonemes
    assert phonemes is not None and len(phonemes) >= 25
    # The phonemes are the language's own (espeak-ng phonemised it as German / French /
    # Spanish, not English letter by letter).
    assert len(ipa_letters(speech) & native) >= 2, ipa_letters(speech)
    # In order, contiguous, inside the audio.
    for a, b in zip(phonemes, phonemes[1:], strict=False):
        assert a.start <= a.end == pytest.approx(b.start)
    assert phonemes[0].start >= 0.0
    assert phonemes[-1].end == pytest.approx(speech.duration, abs=0.02)
    assert_mouth_moves(mouth_of(speech))


def test_timings_line_up_with_the_audio() -> None:
    """Vowels sit where the audio is loud, long pauses where it is quiet: the events' sample
    positions are the audio's own."""
    speech = espeak("de").synthesize("Ja, aber ... nein! Oma, Opa, Mama.")
    sr = speech.sample_rate

    def rms(a: float, b: float) -> float:
        seg = speech.audio[int(a * sr) : int(b * sr)]
        return float(np.sqrt(np.mean(seg.astype(np.float64) ** 2))) if seg.size else 0.0

    vowels = [p for p in speech.phonemes if p.phoneme[:1] in "aoɔɑeɛiuː" and p.end - p.start > 0.04]
    pauses = [p for p in speech.phonemes if p.phoneme == " " and p.end - p.start > 0.1]
    assert len(vowels) >= 5 and len(pauses) >= 2
    vowel_level = np.median([rms(p.start, p.end) for p in vowels])
    pause_level = np.median([rms(p.start + 0.02, p.end - 0.02) for p in pauses])
    assert vowel_level > 10 * pause_level, (vowel_level, pause_level)
    # "Mama": the lips close on each m.
    codes = mouth_of(speech)
    assert (codes == 1).sum() >= 4  # shape A


def test_speed_is_words_per_minute() -> None:
    text = "Wir sprechen heute langsam und deutlich über das Wetter."
    normal = espeak("de")
    assert normal.words_per_minute() == DEFAULT_WPM
    slow_settings = espeak("de", speed=0.6)
    assert slow_settings.words_per_minute() == round(DEFAULT_WPM * 0.6)
    fixed = espeak("de", words_per_minute=240)
    assert fixed.words_per_minute() == 240
    d_normal = normal.synthesize(text).duration
    d_slow = slow_settings.synthesize(text).duration
    d_fast = fixed.synthesize(text).duration
    d_call = normal.synthesize(text, speed=0.6).duration  # per call, same voice object
    assert d_slow > 1.4 * d_normal and d_fast < 0.85 * d_normal
    assert d_call == pytest.approx(d_slow, rel=0.05)
    # the per-call pace scales the configured rate, and the next call is back to normal
    assert fixed.words_per_minute(0.5) == 120
    assert normal.synthesize(text).duration == pytest.approx(d_normal, rel=0.02)


def test_voice_defaults_to_the_persona_language_and_accepts_regions() -> None:
    tts = create_tts(VoiceSettings(provider="espeak"), language="fr")
    assert isinstance(tts, EspeakTTS) and tts.speaks("fr") and not tts.speaks("de")
    assert tts.voice.identifier == "roa/fr"
    assert espeak("de-AT").speaks("de")  # no Austrian voice: German
    assert espeak("es").speaks("es-MX")
    assert espeak("en-gb").speaks("en")
    assert espeak("gmw/de").languages() == {"de"}
    assert espeak("German").languages() == {"de"}


def test_languages_without_loading_a_voice() -> None:
    assert voice_languages(VoiceSettings(provider="espeak", voice="de")) == {"de"}
    assert voice_speaks(VoiceSettings(provider="espeak"), "fr") is True
    assert voice_speaks(VoiceSettings(provider="espeak", voice="de"), "fr") is False
    assert voice_speaks(VoiceSettings(provider="espeak"), "tlh") is False  # Klingon: none
    assert espeak_voice_languages("tlh") == frozenset()


def test_unknown_language_names_what_is_available() -> None:
    with pytest.raises(ProviderError) as info:
        espeak("tlh")
    message = str(info.value)
    assert "'tlh'" in message
    for code in ("de", "fr", "es", "ja"):
        assert f" {code}," in message or f" {code}." in message
    assert "espeak-ng --voices" in message
    assert info.value.retryable is False


def test_threads_share_the_library_safely() -> None:
    """espeak-ng is one global state; two voices used from threads at once still get their own
    language and their own audio."""
    from concurrent.futures import ThreadPoolExecutor

    de, fr = espeak("de"), espeak("fr")
    alone = {"de": de.synthesize(GERMAN).duration, "fr": fr.synthesize(FRENCH).duration}
    with ThreadPoolExecutor(4) as pool:
        jobs = [pool.submit(t.synthesize, s) for t, s in [(de, GERMAN), (fr, FRENCH)] * 3]
        results = [j.result() for j in jobs]
    for i, speech in enumerate(results):
        lang = "de" if i % 2 == 0 else "fr"
        assert speech.duration == pytest.approx(alone[lang], rel=0.01)
        assert speech.phonemes[-1].end == pytest.approx(speech.duration, abs=0.02)
