"""When packets stop, the early transcription starts: at the first quiet VAD window after the
client announced its stop (the first of Discord's five silence frames) or after
``packet_gap_s`` without packets; a late packet still joins the utterance. Real Piper speech
and Silero VAD on a simulated clock (the pause watch's ticks are explicit)."""

from __future__ import annotations

import numpy as np
import pytest

from bots.hearing.audio import FRAME_BYTES, tts_to_discord_pcm
from bots.hearing.segmenter import Segment, SpeechSegmenter
from bots.hearing.settings import HearingSettings
from bots.hearing.vad import VAD_RATE, WINDOW
from tests.discord.helpers import pcm_frames, trim_silence

pytestmark = pytest.mark.models

TICK = 0.01  # the pause watch's period here


@pytest.fixture(scope="module")
def tts():
    from avatar_engine.settings import VoiceSettings
    from avatar_engine.voice.piper import PiperTTS

    return PiperTTS(settings=VoiceSettings())


@pytest.fixture(scope="module")
def vad():
    from bots.hearing.vad import SileroVAD

    return SileroVAD()


@pytest.fixture(scope="module")
def frames(tts) -> list[bytes]:
    speech = tts.synthesize("Could you say that again a little slower?")
    voice = trim_silence(speech.audio, speech.sample_rate)
    return pcm_frames(tts_to_discord_pcm(voice, speech.sample_rate), lead_s=0.1)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now = round(self.now + seconds, 6)
        return self.now


def _say(segmenter: SpeechSegmenter, clock: _Clock, frames: list[bytes]) -> list[Segment]:
    out: list[Segment] = []
    for frame in frames:
        clock.advance(0.02)
        out += segmenter.feed_pcm(frame)
    return out


def _tick_until(segmenter: SpeechSegmenter, clock: _Clock, until: float) -> list[Segment]:
    out: list[Segment] = []
    while clock.now < until - 1e-9:
        clock.advance(TICK)
        out += segmenter.fill_pause(clock.now)
    return out


def test_packet_gap_default_is_three_missing_frames() -> None:
    assert HearingSettings().packet_gap_s == 0.06


def test_packets_that_stop_dead_start_the_preview_at_the_gap(vad, frames) -> None:
    """No silence frames (a client that dropped out): once packets have been away for
    ``packet_gap_s`` no voice is expected, so the preview comes at the first quiet window
    then, not after ``preempt_after_s`` of quiet (0.3 s here, to tell the two apart)."""
    settings = HearingSettings(preempt_after_s=0.3)
    clock = _Clock()
    segmenter = SpeechSegmenter(vad=vad, settings=settings, clock=clock)
    assert not _say(segmenter, clock, frames)
    last_packet = clock.now
    gap = settings.packet_gap_s
    assert gap is not None
    early = _tick_until(segmenter, clock, last_packet + gap - TICK)
    assert early == []  # packets may just be late: wait
    out = _tick_until(segmenter, clock, last_packet + 1.0)
    previews = [s for s in out if not s.final]
    finals = [s for s in out if s.final]
    assert len(previews) == 1 and len(finals) == 1, out
    # The gap, a tick, and the VAD window that holds the first quiet audio.
    assert previews[0].detected_at <= last_packet + gap + TICK + WINDOW / VAD_RATE + 1e-6, (
        previews[0].detected_at - last_packet)
    assert previews[0].detected_at < previews[0].speech_end + 0.2
    assert finals[0].key == previews[0].key and np.array_equal(finals[0].audio,
                                                               previews[0].audio)
    assert finals[0].detected_at <= last_packet + settings.end_silence_s + 0.1


def test_announced_stop_starts_the_preview_at_the_first_quiet_window(vad, frames) -> None:
    """The receiver saw the first silence frame and said so: the preview needs no gap. The
    other four silence frames are not heard twice (the turn does not end early)."""
    settings = HearingSettings()
    clock = _Clock()
    segmenter = SpeechSegmenter(vad=vad, settings=settings, clock=clock)
    out = _say(segmenter, clock, frames)
    speech_end = clock.now
    out += _say(segmenter, clock, [bytes(FRAME_BYTES)])  # the first silence frame
    segmenter.sender_stopped()
    out += segmenter.fill_pause(clock.now)
    for _ in range(4):  # the other four, 20 ms apart, with the pause watch ticking between
        out += _tick_until(segmenter, clock, clock.now + 0.02 - TICK)
        out += _say(segmenter, clock, [bytes(FRAME_BYTES)])
    out += _tick_until(segmenter, clock, speech_end + 1.0)
    previews = [s for s in out if not s.final]
    finals = [s for s in out if s.final]
    assert len(previews) == 1 and len(finals) == 1, out
    assert previews[0].detected_at <= speech_end + 0.02 + TICK + WINDOW / VAD_RATE + 1e-6, (
        previews[0].detected_at - speech_end)
    assert finals[0].key == previews[0].key
    # end_silence_s of quiet after the voice, not less: the announced frames were not counted
    # on top of the clock's silence.
    assert finals[0].detected_at >= finals[0].speech_end + settings.end_silence_s - 0.04
    assert finals[0].detected_at <= speech_end + settings.end_silence_s + 0.1


def test_a_late_packet_after_the_gap_joins_the_utterance(vad, frames) -> None:
    """Packets away for longer than the gap start the early transcription; then the speaker's
    packets come again (a network hiccup, or they went on talking): that voice is part of the
    same utterance, and the preview of the first half is not used for it."""
    settings = HearingSettings()
    clock = _Clock()
    segmenter = SpeechSegmenter(vad=vad, settings=settings, clock=clock)
    half = len(frames) // 2
    out = _say(segmenter, clock, frames[:half])
    gap = settings.packet_gap_s
    assert gap is not None
    out += _tick_until(segmenter, clock, clock.now + gap + 0.1)  # a hiccup under end_silence
    previews = [s for s in out if not s.final]
    assert len(previews) == 1 and segmenter.in_speech
    out += _say(segmenter, clock, frames[half:])
    out += _tick_until(segmenter, clock, clock.now + 1.0)
    finals = [s for s in out if s.final]
    assert len(finals) == 1, out
    assert finals[0].key != previews[0].key  # the early transcription is moot
    assert finals[0].duration_s > previews[0].duration_s + 0.5 * len(frames[half:]) * 0.02
