"""Discord's audio boundary with the real codecs and models: Piper speech -> opus encode ->
the adapter's receive path (opus decode) -> per-speaker VAD -> whisper -> Utterance events.
Speakers end their turns as Discord clients do: five silence frames, then no packets."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from bots.adapters.discord.adapter import DiscordAdapter
from bots.adapters.discord.settings import DiscordSettings
from bots.events import Utterance
from bots.hearing.audio import FRAME_BYTES, tts_to_discord_pcm
from bots.hearing.listener import Heard, Listener
from bots.hearing.segmenter import Segment, SpeechSegmenter
from bots.hearing.settings import HearingSettings
from bots.hearing.vad import VAD_RATE, WINDOW
from tests.discord.fakes import Channel, Sink, SpeakingClient
from tests.discord.helpers import pcm_frames, speech_packets, trim_silence, word_error_rate

pytestmark = pytest.mark.models

SENTENCES = [
    "Good morning, how are you today?",
    "I would like to practice my French with you.",
    "The weather is lovely this afternoon.",
]


async def _session(vad, stt, *, hearing: HearingSettings | None = None, transcripts=True,
                   heard: list[Heard] | None = None):
    settings = DiscordSettings(transcripts=transcripts, hearing=hearing or HearingSettings())

    def listener(*, on_heard, **kwargs) -> Listener:  # shared models; keeps what was heard
        def tap(h: Heard):
            if heard is not None:
                heard.append(h)
            return on_heard(h)
        return Listener(on_heard=tap, vad=vad, stt=stt, **kwargs)

    adapter = DiscordAdapter(settings=settings, listener_factory=listener)
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


def _client_packets(tts, text: str, *, lead_s: float = 0.0) -> list[bytes]:
    """The packets of the speech itself; :class:`SpeakingClient` adds the silence frames."""
    return speech_packets(tts, text, lead_s=lead_s, tail_s=0.0, trim=True)[0]


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
    alice = SpeakingClient(session.receiver, 101)
    try:
        for n, sentence in enumerate(SENTENCES, 1):
            await alice.say(_client_packets(tts, sentence, lead_s=0.1))
            events = await _wait_events(sink, n)
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
        end = [SpeakingClient.SILENCE_FRAME] * 5  # then both stop sending
        a = _client_packets(tts, a_text, lead_s=0.2) + end
        b = _client_packets(tts, b_text, lead_s=0.8) + end  # starts while Alice still talks
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


async def test_packets_that_stop_start_early_transcription_and_end_the_turn(tts, vad, stt):
    """A Discord client sends five silence frames after speech, then nothing: the pause is
    heard all the same. Transcription starts early, while the turn may still go on, and the
    utterance is out about ``end_silence_s`` after the speech, not only once a timeout after
    the last packet has passed and whisper has run from scratch."""
    hearing = HearingSettings()
    heard: list[Heard] = []
    adapter, session, sink, _ = await _session(vad, stt, hearing=hearing, heard=heard)
    alice = SpeakingClient(session.receiver, 101)
    text = SENTENCES[2]
    try:
        packets = _client_packets(tts, text)
        await asyncio.to_thread(stt.transcribe, np.zeros(16000, np.float32))  # warm up
        speech_end = await alice.say(packets)
        events = await _wait_events(sink, 1, limit_s=10.0)  # no packet ever comes back
        latency = events[0].received_at - speech_end
        await asyncio.sleep(hearing.end_silence_s + 0.2)
        reused, in_speech = session.listener.reused, session.listener._speakers[
            "discord:101"].segmenter.in_speech
    finally:
        await adapter.leave(7)
    assert word_error_rate(text, events[0].message) <= 0.3, events[0].message
    # The early transcription started when the packets stopped (five frames + the gap + a
    # tick), well before the turn was known to be over, and its result was the one used.
    assert reused == 1
    started = heard[0].stt_started_at - speech_end
    assert started <= 0.1 + hearing.packet_gap_s + 0.15, started
    assert heard[0].stt_started_at < heard[0].segment.detected_at
    # So the transcript is out when the end-of-turn silence is over, or when that early
    # transcription is done if whisper is slower than the silence, plus a small margin. The
    # path that waits for silence audio: 5 frames + end_silence_s after the last packet, then
    # a whole transcription from there.
    whisper_s = heard[0].transcript.seconds
    assert latency <= max(hearing.end_silence_s, started + whisper_s) + 0.15, (
        latency, started, whisper_s)
    assert len(sink.events) == 1 and not in_speech  # closed once; nothing more is made up


async def test_turn_ends_when_packets_stop_dead(tts, vad, stt):
    """A client that drops out mid-sentence (no silence frames; packets never come back) and
    a listener without early transcription: the utterance still ends, once."""
    hearing = HearingSettings(preempt_after_s=None)
    heard: list[Heard] = []
    adapter, session, sink, _ = await _session(vad, stt, hearing=hearing, transcripts=False,
                                               heard=heard)
    try:
        packets = _client_packets(tts, "Please tell me a story about dragons and castles.")
        for p in packets[: len(packets) * 2 // 3]:  # cut off in mid-word
            session.receiver.receive(101, p)
        cut_at = time.monotonic()
        events = await _wait_events(sink, 1, limit_s=10.0)
        await asyncio.sleep(1.0)
    finally:
        await adapter.leave(7)
    assert len(sink.events) == 1 and events[0].viewer.id == "discord:101"
    assert "story" in events[0].message.lower(), events[0].message
    # The turn ends (the segment is cut) after the gap and the end silence, whatever whisper
    # then takes on these shared cores.
    ended = heard[0].segment.detected_at - cut_at
    assert ended <= hearing.packet_gap_s + hearing.end_silence_s + 0.25, ended


@pytest.mark.parametrize("announced", [False, True], ids=["gap", "announced"])
def test_segmenter_hears_a_packet_stop_as_silence(tts, vad, announced):
    """On a simulated clock: speech in real time, five silence frames, then only the pause
    watch's ticks. The preview comes once the packets have been away for ``packet_gap_s``
    (at once when the receiver saw the client announce its stop) and the final segment
    (same audio, same key) ``end_silence_s`` after the speech."""
    hearing = HearingSettings()
    now = [100.0]
    segmenter = SpeechSegmenter(vad=vad, settings=hearing, clock=lambda: now[0])
    speech = tts.synthesize("Could you say that again a little slower?")
    voice = trim_silence(speech.audio, speech.sample_rate)
    frames = pcm_frames(tts_to_discord_pcm(voice, speech.sample_rate), lead_s=0.1)
    out: list[Segment] = []
    for frame in frames:
        now[0] += 0.02
        out += segmenter.feed_pcm(frame)
    speech_end = now[0]
    for _ in range(5):  # the client's five silence frames (0xF8 0xFF 0xFE decode to zeros)
        now[0] += 0.02
        out += segmenter.feed_pcm(bytes(FRAME_BYTES))
    last_packet = now[0]
    assert segmenter.in_speech and not [s for s in out if s.final]
    if announced:
        segmenter.sender_stopped()
    gap = 0.0 if announced else hearing.packet_gap_s
    while now[0] < last_packet + 2.0:  # the pause watch ticks every 20 ms; no packet comes
        now[0] = round(now[0] + 0.02, 6)
        got = segmenter.fill_pause(now[0])
        if now[0] < last_packet + gap - 1e-9:
            assert got == [], now[0] - last_packet  # packets may just be late: wait
        out += got
    previews = [s for s in out if not s.final]
    finals = [s for s in out if s.final]
    assert len(finals) == 1 and previews, out
    # As soon as the packets are known to have stopped and the VAD has heard
    # ``preempt_after_s`` of quiet after the voice (a tick and a VAD window of slack).
    preview = previews[-1]
    due = max(last_packet + gap, preview.speech_end + hearing.preempt_after_s)
    assert preview.detected_at <= due + 0.02 + WINDOW / VAD_RATE, (preview, last_packet)
    assert finals[0].key == previews[-1].key  # the early transcription is the one used
    assert np.array_equal(finals[0].audio, previews[-1].audio)
    assert finals[0].detected_at <= speech_end + hearing.end_silence_s + 0.1
    assert not segmenter.in_speech and segmenter.fill_pause(now[0] + 1.0) == []
