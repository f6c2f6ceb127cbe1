"""The encoder window: short utterances are encoded in ``short_window_s`` instead of whisper's
30 s (most of a transcription's CPU on tiny.en), long ones and a transcript that loops in the
short window get the full one, and the multilingual model keeps 30 s unless asked."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bots.hearing.audio import resample
from bots.hearing.settings import HearingSettings
from bots.hearing.stt import (
    FULL_WINDOW_S,
    WhisperSTT,
    looks_repeated,
    window_for,
)
from tests.discord.helpers import trim_silence, word_error_rate

SENTENCES = [
    "Could you tell me the way to the nearest bank?",
    "My sister lives in a small town near the sea.",
    "We are going to the cinema on Saturday evening.",
]


def test_window_for_short_long_and_multilingual() -> None:
    s = HearingSettings()
    assert s.short_window_s == 10.0
    assert window_for(2.5, s, multilingual=False) == 10.0
    assert window_for(6.0, s, multilingual=False) == 10.0  # 4 s of quiet left after it
    assert window_for(6.1, s, multilingual=False) == FULL_WINDOW_S
    assert window_for(14.0, s, multilingual=False) == FULL_WINDOW_S
    assert window_for(2.5, s, multilingual=True) == 15.0  # Whisper base: a longer window
    assert window_for(11.5, s, multilingual=True) == FULL_WINDOW_S
    off = HearingSettings(multilingual_window_s=None, short_window_s=12.0)
    assert window_for(2.5, off, multilingual=True) == FULL_WINDOW_S
    assert window_for(2.5, off, multilingual=False) == 12.0
    assert window_for(2.5, HearingSettings(short_window_s=None), multilingual=False) == 30.0
    with pytest.raises(ValueError):
        HearingSettings(short_window_s=5.0)  # too short: tiny.en loops (bench/discord.py)


def test_looks_repeated() -> None:
    said = "The children are playing football in the park."
    assert not looks_repeated(said, 2.2)
    assert looks_repeated(f"{said} {said}", 2.2)
    assert looks_repeated("Yesterday I cooked dinner. Yesterday I cooked dinner.", 2.6)
    assert looks_repeated(" ".join(["hello", "there"] * 20), 2.0)  # 40 words in 2 s
    assert not looks_repeated("no no no, I said the red one", 2.0)  # short repeats are speech
    assert not looks_repeated("", 1.0)


@pytest.fixture(scope="module")
def tts():
    from avatar_engine.settings import VoiceSettings
    from avatar_engine.voice.piper import PiperTTS

    return PiperTTS(settings=VoiceSettings())


@pytest.fixture(scope="module")
def stt() -> WhisperSTT:
    return WhisperSTT(settings=HearingSettings())


def _speech16k(tts, text: str) -> np.ndarray:
    speech = tts.synthesize(text)
    audio = trim_silence(speech.audio, speech.sample_rate)
    lead = np.zeros(3200, np.float32)  # the segmenter's pre-roll and tail, roughly
    return np.concatenate([lead, resample(audio, speech.sample_rate, 16_000).astype(np.float32),
                           lead[:1000]])


@pytest.mark.models
def test_short_utterances_use_the_short_window_long_ones_the_full(tts, stt: WhisperSTT) -> None:
    _, model = stt.model_for("en")
    encoder = stt.encoder(model)
    errors = words = 0.0
    for text in SENTENCES:
        audio = _speech16k(tts, text)
        assert audio.size / 16_000 < 6.0
        heard = stt.transcribe(audio)
        assert heard.window_s == 10.0
        assert encoder.frames[-1] == 1000  # the encoder ran over 10 s, not 30
        errors += word_error_rate(text, heard.text) * len(text.split())
        words += len(text.split())
    assert errors / words <= 0.1, errors / words

    long_text = " ".join(SENTENCES)
    audio = _speech16k(tts, long_text)
    assert audio.size / 16_000 > 6.0
    heard = stt.transcribe(audio)
    assert heard.window_s == FULL_WINDOW_S and encoder.frames[-1] == 3000
    assert word_error_rate(long_text, heard.text) <= 0.1, heard.text


@pytest.mark.models
def test_the_short_window_costs_less_encoder_work_than_30s(tts, stt: WhisperSTT) -> None:
    """Same audio, same text (tiny.en greedy), a third of the encoder frames."""
    audio = _speech16k(tts, SENTENCES[1])
    short = stt.transcribe(audio)
    full = WhisperSTT(settings=HearingSettings(short_window_s=None), languages=())
    full._models = stt._models  # the same loaded model
    _, model = stt.model_for("en")
    whole = full.transcribe(audio)
    assert (short.window_s, whole.window_s) == (10.0, 30.0)
    assert word_error_rate(SENTENCES[1], short.text) <= word_error_rate(
        SENTENCES[1], whole.text) + 0.1
    assert stt.encoder(model).frames[-2:] == [1000, 3000]


class _LoopingWhisper:
    """faster-whisper's ``WhisperModel`` as far as :class:`WhisperSTT` uses it, whose decoder
    loops when its encoder window is short (as tiny.en does under ~4 s of trailing quiet)."""

    def __init__(self) -> None:
        self.model = SimpleNamespace(is_multilingual=False)
        self.windows: list[int] = []

    def encode(self, features: np.ndarray) -> Any:
        self.windows.append(features.shape[-1])
        return features

    def transcribe(self, audio: np.ndarray, **_: Any) -> tuple[list[Any], Any]:
        self.encode(np.zeros((80, 3000), np.float32))  # faster-whisper pads to 30 s
        said = "Yesterday I cooked dinner for my whole family."
        text = said if self.windows[-1] == 3000 else f"{said} {said} {said}"
        return [SimpleNamespace(text=text)], None


def test_a_transcript_that_loops_in_the_short_window_is_redone_in_30s() -> None:
    stt = WhisperSTT(settings=HearingSettings(), languages=())
    fake = _LoopingWhisper()
    choice = stt.choice_for("en")
    stt._models[choice.source] = fake
    heard = stt.transcribe(np.zeros(40_000, np.float32))
    assert fake.windows == [1000, 3000]
    assert heard.text == "Yesterday I cooked dinner for my whole family."
    assert heard.window_s == FULL_WINDOW_S and stt.redone == 1
