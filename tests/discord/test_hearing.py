"""Discord's audio boundary with the real codecs and models: Piper speech -> opus encode ->
the adapter's receive path (opus decode) -> per-speaker VAD -> whisper -> Utterance events."""

from __future__ import annotations

import asyncio
import functools

import pytest

from bots.adapters.discord.adapter import DiscordAdapter
from bots.adapters.discord.settings import DiscordSettings
from bots.events import Utterance
from bots.hearing.listener import Listener
from bots.hearing.settings import HearingSettings
from tests.discord.fakes import Channel, Sink
from tests.discord.helpers import speech_packets, word_error_rate

pytestmark = pytest.mark.models

SENTENCES = [
    "Good morning, how are you today?",
    "I would like to practice my French with you.",
    "The weather is lovely this afternoon.",
]


async def _session(vad, stt, *, hearing: HearingSettings | None = None, transcripts=True):
    settings = DiscordSettings(transcripts=transcripts, hearing=hearing or HearingSettings())
    adapter = DiscordAdapter(settings=settings,
                             listener_factory=functools.partial(Listener, vad=vad, stt=stt))
    sink = Sink()
    adapter.bind(sink)
    channel = Channel()
    session = await adapter.open_session(guild_id=7, text_channel=channel)
    session.names.update({101: "Alice", 202: "Bob"})
    return adapter, session, sink, channel


async def _wait_events(sink: Sink, n: int, limit_s: float = 20.0) -> list[Utterance]:
    async def until() -> None:
        while len(sink.events) < n:
            sink.got.clear()
            await sink.got.wait()
    await asyncio.wait_for(until(), limit_s)
    return [e for e in sink.events if isinstance(e, Utterance)]


async def _feed(session, packets_by_user: dict[int, list[bytes]]) -> None:
    """Interleave users frame by frame, like concurrent RTP streams, yielding to the loop."""
    longest = max(len(p) for p in packets_by_user.values())
    for i in range(longest):
        for user, packets in packets_by_user.items():
            if i < len(packets):
                session.receiver.receive(user, packets[i])
        if i % 10 == 0:
            await asyncio.sleep(0)


async def test_utterances_transcribed_through_opus(tts, vad, stt):
    adapter, session, sink, channel = await _session(vad, stt)
    try:
        for sentence in SENTENCES:
            packets, _ = speech_packets(tts, sentence)
            await _feed(session, {101: packets})
        events = await _wait_events(sink, len(SENTENCES))
        reused = session.listener.reused
    finally:
        await adapter.leave(7)
    assert len(events) == len(SENTENCES)
    # Transcription started in the pause before the turn was sure to be over, and was used.
    assert reused >= 1
    for sentence, event in zip(SENTENCES, events, strict=True):
        wer = word_error_rate(sentence, event.message)
        assert wer <= 0.3, (sentence, event.message, wer)
        assert event.viewer.id == "discord:101" and event.viewer.name == "Alice"
        assert event.platform == "discord" and event.language == "en"
        assert 1.0 < event.duration_s < 6.0
    await asyncio.sleep(0.05)
    assert any(line.startswith("**Alice**: ") for line in channel.sent)


async def test_two_speakers_overlapping_are_attributed(tts, vad, stt):
    adapter, session, sink, _ = await _session(vad, stt)
    a_text, b_text = "Please open the window.", "Where can I find the train station?"
    try:
        a, _ = speech_packets(tts, a_text, lead_s=0.2)
        b, _ = speech_packets(tts, b_text, lead_s=0.8)  # starts while Alice still talks
        await _feed(session, {101: a, 202: b})
        events = await _wait_events(sink, 2)
    finally:
        await adapter.leave(7)
    by_user = {e.viewer.id: e.message for e in events}
    assert set(by_user) == {"discord:101", "discord:202"}
    assert word_error_rate(a_text, by_user["discord:101"]) <= 0.3, by_user
    assert word_error_rate(b_text, by_user["discord:202"]) <= 0.3, by_user


async def test_bot_voice_and_ignored_speakers_are_never_transcribed(tts, vad, stt):
    adapter, session, sink, _ = await _session(vad, stt)
    try:
        session.receiver.ignore_ids.add(999)  # the bot's own user id
        packets, _ = speech_packets(tts, "I am the bot talking.")
        await _feed(session, {999: packets})
        # While the persona speaks, others are dropped when ignore_while_speaking is set.
        session.listener.settings = HearingSettings(ignore_while_speaking=True)
        session.listener.speaking = True
        await _feed(session, {101: packets})
        await asyncio.sleep(1.5)
        assert sink.events == []
        session.listener.speaking = False
        await _feed(session, {101: packets})
        events = await _wait_events(sink, 1)
    finally:
        await adapter.leave(7)
    assert [e.viewer.id for e in events] == ["discord:101"]


async def test_speech_start_barges_in_on_the_reply(tts, vad, stt):
    from tests.discord.fakes import VoiceClient

    adapter, session, sink, _ = await _session(vad, stt)
    try:
        session.voice_client = VoiceClient()
        audio = adapter.start_reply(session, "r1")
        audio.append_pcm(bytes(3840 * 100))
        assert audio.read()
        packets, _ = speech_packets(tts, "Wait, stop please.")
        await _feed(session, {101: packets})
        await asyncio.sleep(0.1)
        assert audio.stopped and audio.read() == b""
        # The reply still being made is cut too, not only the audio.
        assert sink.interrupts and "started talking" in sink.interrupts[0][1]
        await _wait_events(sink, 1)
    finally:
        await adapter.leave(7)


async def test_long_speech_is_cut_at_max_length(tts, vad, stt):
    hearing = HearingSettings(max_utterance_s=1.5)
    adapter, session, sink, _ = await _session(vad, stt, hearing=hearing, transcripts=False)
    try:
        packets, dur = speech_packets(
            tts, "This is a rather long sentence that keeps going on and on for a while.")
        assert dur > 3.0
        await _feed(session, {101: packets})
        events = await _wait_events(sink, 2)
    finally:
        await adapter.leave(7)
    assert all(e.duration_s <= 1.6 for e in events)
