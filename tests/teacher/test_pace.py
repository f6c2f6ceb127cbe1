"""Speaking rate: the level sets it, a slower replay lowers it, and a voice without a per-call
speed is stretched in time with its pitch and mouth timings kept in step."""

from __future__ import annotations

import numpy as np
import pytest

from avatar_engine.types import PhonemeTiming, Speech
from bots.teacher.pace import (
    LEVEL_SPEED,
    MIN_SPEED,
    accepts_speed,
    level_speed,
    slower,
    stretch,
    synthesize_at,
)
from bots.teacher.replay import wants_slower
from bots.teacher.settings import TeacherSettings


def test_rate_follows_the_level_from_a1_slowest_to_c2_normal():
    levels = ["A1", "A2", "B1", "B2", "C1", "C2"]
    rates = [level_speed(TeacherSettings(target_language="de", level=lv)) for lv in levels]
    assert rates == sorted(rates) and len(set(rates)) == len(rates)
    assert rates[0] <= 0.8 and rates[-1] == 1.0
    assert level_speed(None) == 1.0  # not a teacher: the voice's own pace
    assert set(LEVEL_SPEED) == set(levels)


def test_slower_is_slower_down_to_a_floor():
    s = 1.0
    seen = []
    for _ in range(6):
        s = slower(s)
        seen.append(s)
    assert seen[0] < 1.0 and seen == sorted(seen, reverse=True)
    assert seen[-1] == MIN_SPEED


def _tone(seconds: float, hz: float = 200.0, rate: int = 16000) -> Speech:
    t = np.arange(int(seconds * rate), dtype=np.float32) / rate
    phonemes = (PhonemeTiming("a", 0.0, seconds / 2), PhonemeTiming("m", seconds / 2, seconds))
    return Speech(text="x", audio=(0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32),
                  sample_rate=rate, phonemes=phonemes)


def _pitch(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / rate)[int(np.argmax(spectrum))])


@pytest.mark.parametrize("speed", [0.5, 0.75, 0.9])
def test_stretch_makes_it_longer_keeps_the_pitch_and_scales_the_timings(speed):
    speech = _tone(1.0)
    slow = stretch(speech, speed)
    assert len(slow.audio) == pytest.approx(len(speech.audio) / speed, rel=0.01)
    assert _pitch(slow.audio, 16000) == pytest.approx(200.0, abs=5.0)  # not resampled
    assert slow.phonemes is not None
    assert slow.phonemes[-1].end == pytest.approx(slow.duration, rel=0.01)
    assert slow.phonemes[0].end == pytest.approx(0.5 / speed, rel=0.01)
    # Smooth: no window seams (a glitch would show as a big sample-to-sample jump).
    assert float(np.max(np.abs(np.diff(slow.audio[400:-400])))) < 0.1


class _NoSpeedVoice:
    sample_rate = 16000

    def __init__(self) -> None:
        self.calls: list[str] = []

    def synthesize(self, text: str) -> Speech:
        self.calls.append(text)
        return _tone(0.5)


class _SpeedVoice(_NoSpeedVoice):
    def __init__(self) -> None:
        super().__init__()
        self.speeds: list[float | None] = []

    def synthesize(self, text: str, *, speed: float | None = None) -> Speech:  # type: ignore[override]
        self.speeds.append(speed)
        return _tone(0.5 / (speed or 1.0))


def test_a_voice_with_a_per_call_speed_is_asked_for_it():
    voice = _SpeedVoice()
    assert accepts_speed(voice)  # type: ignore[arg-type]
    speech = synthesize_at(voice, "Hallo", 0.75, base=1.2)  # type: ignore[arg-type]
    assert voice.speeds == [pytest.approx(0.9)]  # the persona's own pace times the factor
    assert speech.duration == pytest.approx(0.5 / 0.9, rel=0.01)
    synthesize_at(voice, "Hallo", 1.0)  # type: ignore[arg-type]
    assert voice.speeds[-1] is None  # normal pace: the voice's settings


def test_a_voice_without_one_is_stretched():
    voice = _NoSpeedVoice()
    assert not accepts_speed(voice)  # type: ignore[arg-type]
    speech = synthesize_at(voice, "Bonjour", 0.5)  # type: ignore[arg-type]
    assert voice.calls == ["Bonjour"] and speech.duration == pytest.approx(1.0, rel=0.01)


@pytest.mark.models
def test_the_embedded_piper_voice_slows_down():
    """The real voice, both ways: a per-call speed when it takes one, else the stretch."""
    from avatar_engine.settings import VoiceSettings
    from avatar_engine.voice import create_tts

    tts = create_tts(VoiceSettings())
    text = "Say that again, but slower."
    normal = synthesize_at(tts, text, 1.0)
    slow = synthesize_at(tts, text, 0.6)
    stretched = stretch(normal, 0.6)
    assert slow.text == normal.text == text
    assert slow.duration > normal.duration * 1.3
    assert stretched.duration == pytest.approx(normal.duration / 0.6, rel=0.02)
    assert slow.phonemes and slow.phonemes[-1].end > normal.phonemes[-1].end  # type: ignore[index]


@pytest.mark.parametrize("text", [
    "!slower", "!Slower lena", "say that again slower", "Slower please!",
    "Can you speak more slowly?", "Noch einmal langsamer, bitte.",
    "Kannst du das bitte langsamer sagen?", "Langsamer bitte!",
    "Plus lentement, s'il te plaît !", "Tu peux répéter plus lentement ?",
    "Más despacio, por favor.",
])
def test_requests_to_say_it_again_slower(text):
    assert wants_slower(text)


@pytest.mark.parametrize("text", [
    "I walk slower than you.", "Ich laufe langsamer als du.", "Le train roule lentement.",
    "slower is better when you are learning a language with lots of grammar", "Hello!",
    "!slowerr",
])
def test_lines_that_are_not_such_requests(text):
    assert not wants_slower(text)


def test_only_the_command_when_spoken_phrases_are_off():
    assert wants_slower("!slower", spoken_phrases=False)
    assert not wants_slower("say that again slower", spoken_phrases=False)
