"""Models for the Discord tests, loaded once per session: Piper, Silero VAD, whisper."""

from __future__ import annotations

import pytest

from bots.hearing.settings import HearingSettings


@pytest.fixture(scope="session")
def tts():
    from avatar_engine.settings import VoiceSettings
    from avatar_engine.voice.piper import PiperTTS

    return PiperTTS(settings=VoiceSettings())


@pytest.fixture(scope="session")
def vad():
    from bots.hearing.vad import SileroVAD

    return SileroVAD()


@pytest.fixture(scope="session")
def stt():
    from bots.hearing.stt import WhisperSTT

    return WhisperSTT(settings=HearingSettings())
