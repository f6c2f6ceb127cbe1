"""The persona's voice as a discord.AudioSource: 20 ms 48 kHz stereo frames, sentences
streamed in while playing, barge-in within one frame."""

from __future__ import annotations

import discord
import numpy as np
import pytest

from bots.adapters.discord.playback import SILENCE, ReplyAudio
from bots.hearing.audio import FRAME_BYTES


def _tone(seconds: float, rate: int = 22050) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def _drain(audio: ReplyAudio, limit: int = 10_000) -> list[bytes]:
    frames = []
    for _ in range(limit):
        f = audio.read()
        if not f:
            break
        frames.append(f)
    return frames


def test_is_a_pcm_audio_source_of_20ms_stereo_frames():
    audio = ReplyAudio(reply_id="r")
    assert isinstance(audio, discord.AudioSource) and not audio.is_opus()
    assert FRAME_BYTES == discord.opus.Encoder.FRAME_SIZE == 3840
    audio.append_speech(_tone(1.0), 22050)
    audio.finish()
    frames = _drain(audio)
    assert len(frames) == 50 and all(len(f) == FRAME_BYTES for f in frames)
    pcm = np.frombuffer(b"".join(frames), "<i2").reshape(-1, 2)
    assert np.array_equal(pcm[:, 0], pcm[:, 1])  # mono duplicated to both channels
    # 220 Hz survives the 22050 -> 48000 resampling: ~220 zero crossings up per second
    left = pcm[:, 0].astype(np.float32)
    ups = np.sum((left[:-1] < 0) & (left[1:] >= 0))
    assert 215 <= ups <= 225
    assert audio.read() == b""


def test_sentences_appended_while_playing_and_silence_in_gaps():
    first: list[float] = []
    audio = ReplyAudio(reply_id="r", on_first_frame=first.append)
    assert audio.read() == SILENCE  # nothing voiced yet: hold the channel
    assert first == []
    audio.append_speech(_tone(0.2), 22050)
    got = [audio.read() for _ in range(10)]
    assert all(len(f) == FRAME_BYTES and f != SILENCE for f in got) and len(first) == 1
    assert audio.read() == SILENCE  # sentence 2 is still being voiced
    audio.append_speech(_tone(0.4), 22050)
    audio.finish()
    assert len(_drain(audio)) == 20
    assert audio.sentences == 2 and audio.frames_out == 30


def test_stop_ends_playback_at_the_next_frame_and_drops_the_rest():
    audio = ReplyAudio(reply_id="r")
    audio.append_speech(_tone(3.0), 22050)
    assert len(audio.read()) == FRAME_BYTES
    audio.stop()
    assert audio.read() == b""
    audio.append_speech(_tone(1.0), 22050)  # late sentences of the interrupted reply
    assert audio.read() == b"" and audio.done and audio.buffered_s == 0


def test_a_stuck_pipeline_does_not_hold_the_channel():
    now = [0.0]
    audio = ReplyAudio(reply_id="r", max_wait_s=1.0, clock=lambda: now[0])
    assert audio.read() == SILENCE
    now[0] = 2.0
    assert audio.read() == b""


@pytest.mark.models
def test_piper_sentence_plays_as_frames(tts):
    speech = tts.synthesize("Bonjour, let us practice.")
    audio = ReplyAudio(reply_id="r")
    audio.append_speech(speech.audio, speech.sample_rate)
    audio.finish()
    frames = _drain(audio)
    expected = speech.audio.size / speech.sample_rate / 0.02
    assert abs(len(frames) - expected) <= 1
