"""Hearing: turns live voice (Discord's 48 kHz stereo frames, one stream per speaker) into
transcribed :class:`~bots.events.Utterance` events. ``audio`` resamples, ``vad`` finds speech
(Silero), ``segmenter`` cuts one speaker's stream into utterances, ``stt`` transcribes them
(faster-whisper: ``tiny.en`` for English, Whisper base for other languages, installed by
``models``) and ``listener`` ties it together off the event loop."""

from bots.hearing.settings import HearingSettings

__all__ = ["HearingSettings"]
