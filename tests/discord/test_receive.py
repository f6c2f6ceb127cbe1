"""The receive path's DAVE step and opus decoding, as far as they run offline: real opus
codec, a real davey session (which cannot hold keys without the voice gateway) and a
stand-in for a session that has them."""

from __future__ import annotations

from types import SimpleNamespace

import davey
import numpy as np
from discord import opus

from bots.adapters.discord.receive import OPUS_SILENCE, DaveStep, VoiceReceiver
from bots.hearing.audio import FRAME_BYTES, FRAME_SAMPLES


def _packet(seed: int = 0) -> tuple[bytes, bytes]:
    t = np.arange(FRAME_SAMPLES) / 48000
    tone = (8000 * np.sin(2 * np.pi * (300 + seed) * t)).astype("<i2")
    pcm = np.repeat(tone, 2).tobytes()
    return opus.Encoder().encode(pcm, FRAME_SAMPLES), pcm


def test_no_dave_passes_payloads_through():
    step = DaveStep(SimpleNamespace(dave_session=None, dave_protocol_version=0))
    assert step(1, b"abc") == b"abc" and step.passed == 1


def test_real_davey_session_without_keys_drops_audio():
    session = davey.DaveSession(davey.DAVE_PROTOCOL_VERSION, 1111, 2222)
    step = DaveStep(SimpleNamespace(dave_session=session,
                                    dave_protocol_version=davey.DAVE_PROTOCOL_VERSION))
    packet, _ = _packet()
    assert step(42, packet) is None and step.failed == 1
    assert step(42, OPUS_SILENCE) == OPUS_SILENCE  # comfort silence is never encrypted


class _ReadySession:
    ready = True

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def decrypt(self, user_id, media_type, payload):
        self.calls.append((user_id, media_type, payload))
        return payload[::-1]  # "decrypt": the test encrypts by reversing

    def can_passthrough(self, user_id) -> bool:
        return False


def test_ready_session_decrypts_before_opus_decoding():
    session = _ReadySession()
    step = DaveStep(SimpleNamespace(dave_session=session, dave_protocol_version=1))
    got: list[tuple[int, bytes]] = []
    receiver = VoiceReceiver(on_pcm=lambda u, pcm: got.append((u, pcm)), dave=step)
    packet, pcm = _packet()
    out = receiver.receive(7, packet[::-1])
    assert session.calls == [(7, davey.MediaType.audio, packet[::-1])]
    assert out is not None and len(out) == FRAME_BYTES and got[0][0] == 7
    assert step.decrypted == 1


def test_decoders_are_per_speaker_and_bad_frames_are_dropped():
    got: list[int] = []
    receiver = VoiceReceiver(on_pcm=lambda u, pcm: got.append(u), ignore_ids={9})
    a, _ = _packet(0)
    b, _ = _packet(50)
    receiver.receive(1, a)
    receiver.receive(2, b)
    receiver.receive(9, a)  # the bot itself
    assert got == [1, 2] and len(receiver._decoders) == 2
    receiver.receive(1, b"\xff" * 3)  # corrupt
    assert receiver.errors == 1
    assert receiver.receive(1, None) is not None  # packet loss: concealed


def test_the_first_silence_frame_announces_the_end_of_transmission():
    """Discord's docs (Voice Connections -> Voice Data Interpolation): a client that stops
    sending sends five frames of silence (0xF8 0xFF 0xFE) first, and only then. So the first
    one in a row already tells the listener the voice has stopped (after its PCM); the other
    four announce nothing new, and voice starts a new run."""
    events: list[tuple[str, int]] = []
    receiver = VoiceReceiver(on_pcm=lambda u, pcm: events.append(("pcm", u)),
                             on_stop=lambda u: events.append(("stop", u)))
    speech, _ = _packet()
    receiver.receive(1, speech)
    assert ("stop", 1) not in events
    receiver.receive(1, OPUS_SILENCE)
    assert events[-2:] == [("pcm", 1), ("stop", 1)]
    for _ in range(4):
        receiver.receive(1, OPUS_SILENCE)
    assert events.count(("stop", 1)) == 1 and events.count(("pcm", 1)) == 6
    receiver.receive(2, speech)  # another speaker's run is their own
    assert ("stop", 2) not in events
    receiver.receive(1, speech)  # they talk again: the next silence frame announces again
    assert events.count(("stop", 1)) == 1
    receiver.receive(1, OPUS_SILENCE)
    assert events.count(("stop", 1)) == 2 and ("stop", 2) not in events
    receiver.receive(2, OPUS_SILENCE)
    assert events[-1] == ("stop", 2)
    pcm = receiver.receive(1, OPUS_SILENCE)
    assert pcm is not None and not any(pcm)  # silence frames decode to digital silence
