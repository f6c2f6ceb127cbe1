"""Discord voice benchmark at the audio boundary, with the real codecs and models: Piper speech
-> opus -> the adapter's receive path -> per-speaker VAD -> whisper -> Utterance.

Writes bench/results/discord.json:
- endings: end of speech -> Utterance event (``transcript_latency_p50_s`` / ``_p95_s``) for
  the same ~2-3 s utterances ended two ways, side by side in one run, sentence by sentence:
  ``packets_stop``, as Discord clients do (five 0xF8 0xFF 0xFE silence frames, then nothing;
  developer docs, Voice Connections -> Voice Data Interpolation), and ``silence_frames``, a
  client that keeps sending encoded silence every 20 ms. Packets are sent from a thread in
  real time (20 ms apart), only while the voice is heard (Piper's own lead/tail silence
  trimmed); ``stt_start_p50_s``: end of speech -> whisper starts (early, in the pause),
  ``turn_end_p50_s``: -> the turn is known to be over, ``whisper_p50_s``: the transcription
  alone (on busy cores it, not the pause detection, makes most of the latency);
- transcript_latency_p50_s / _p95_s: the ``packets_stop`` figures (what a Discord client does);
- wer: word error rate over a fixed set of sentences;
- speech_start_s: utterance event -> first reply audio frame out of the AudioSource (first
  sentence of the reply voiced by the real Piper, as the pipeline does, and handed to the
  Discord stage as a Performance; the avatar's rendering is not included; a player thread
  reads every 20 ms);
- realtime_speakers: how many people talking non-stop the hearing path keeps up with, from its
  measured real-time factor (opus decode + resample + VAD + whisper) on this machine's cores;
- whisper_isolated: whisper alone on the same audio (each sentence as the segmenter cuts it),
  called in turn with the full 30 s encoder window (``short_window_s: null``, the settings
  before issue #10) and with the short window: CPU seconds per call (process CPU time, so a
  busy machine inflates wall time but hardly this), wall p50 and WER of each. The shared
  machine makes the end-to-end latencies above noisy; this is the like-for-like figure.
``--quick`` uses fewer sentences."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from discord import opus  # noqa: E402

from avatar_engine.settings import VoiceSettings  # noqa: E402
from avatar_engine.types import Performance, frame_count  # noqa: E402
from avatar_engine.voice.piper import PiperTTS  # noqa: E402
from bots.adapters.discord.adapter import DiscordAdapter, VoiceSession  # noqa: E402
from bots.adapters.discord.playback import ReplyAudio  # noqa: E402
from bots.adapters.discord.receive import OPUS_SILENCE, VoiceReceiver  # noqa: E402
from bots.adapters.discord.settings import DiscordSettings  # noqa: E402
from bots.hearing.audio import FRAME_BYTES, FRAME_SAMPLES  # noqa: E402
from bots.hearing.listener import Heard, Listener  # noqa: E402
from bots.hearing.segmenter import SpeechSegmenter  # noqa: E402
from bots.hearing.settings import HearingSettings  # noqa: E402
from bots.hearing.stt import WhisperSTT  # noqa: E402
from bots.hearing.vad import SileroVAD  # noqa: E402
from overlays.stage import Performed  # noqa: E402
from tests.discord.fakes import Sink  # noqa: E402
from tests.discord.helpers import speech_packets, word_error_rate  # noqa: E402

SENTENCES = [
    "I would like a cup of coffee with milk, please.",
    "Could you tell me the way to the nearest bank?",
    "My sister lives in a small town near the sea.",
    "We are going to the cinema on Saturday evening.",
    "The museum opens at nine in the morning every day.",
    "I have been learning this language for two years.",
    "Please speak a little more slowly, I do not understand.",
    "What time does the last train leave tonight?",
    "The children are playing football in the park.",
    "Yesterday I cooked dinner for my whole family.",
]


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


class _Ending:
    """The figures of one way of ending a turn."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.whisper: list[float] = []
        self.stt_start: list[float] = []
        self.turn_end: list[float] = []
        self.early = 0

    def add(self, latency: float, heard: Heard, speech_end: float) -> None:
        self.latencies.append(latency)
        self.whisper.append(heard.transcript.seconds)
        self.stt_start.append(heard.stt_started_at - speech_end)
        self.turn_end.append(heard.segment.detected_at - speech_end)
        self.early += heard.stt_started_at < heard.segment.detected_at

    def report(self) -> dict:
        return {
            "transcript_latency_p50_s": round(_pct(self.latencies, 0.5), 3),
            "transcript_latency_p95_s": round(_pct(self.latencies, 0.95), 3),
            # end of speech -> whisper starts (early: in the pause) / the turn is known over
            "stt_start_p50_s": round(_pct(self.stt_start, 0.5), 3),
            "turn_end_p50_s": round(_pct(self.turn_end, 0.5), 3),
            "whisper_p50_s": round(_pct(self.whisper, 0.5), 3),
            "early_transcriptions_used": f"{self.early}/{len(self.latencies)}",
        }


def _client(receiver: VoiceReceiver, packets: list[bytes], *, ending: str,
            answered: threading.Event, speech_end: list[float]) -> None:
    """A Discord client in its own thread, sending a packet every 20 ms: the speech, then
    five silence frames and nothing (``packets_stop``) or encoded silence until the utterance
    is answered (``silence_frames``)."""
    silence = opus.Encoder().encode(bytes(FRAME_BYTES), FRAME_SAMPLES)
    t0 = time.monotonic()
    for i, packet in enumerate(packets):
        time.sleep(max(0.0, t0 + i * 0.02 - time.monotonic()))
        receiver.receive(1, packet)
    speech_end.append(time.monotonic())
    tail = 5 if ending == "packets_stop" else 500  # 10 s at most
    for i in range(1, tail + 1):
        if answered.wait(max(0.0, speech_end[0] + i * 0.02 - time.monotonic())):
            return
        receiver.receive(1, OPUS_SILENCE if ending == "packets_stop" else silence)


async def _utterance(receiver: VoiceReceiver, sink: Sink, packets: list[bytes], *,
                     ending: str) -> tuple[float, float]:
    """Say one utterance; returns the end of speech (monotonic) and end of speech -> its
    Utterance event, in seconds."""
    n = len(sink.events)
    answered, speech_end = threading.Event(), []
    async with asyncio.TaskGroup() as tg:
        tg.create_task(asyncio.to_thread(_client, receiver, packets, ending=ending,
                                         answered=answered, speech_end=speech_end),
                       name=f"bench:client:{ending}")
        try:
            while len(sink.events) == n:
                sink.got.clear()
                await asyncio.wait_for(sink.got.wait(), 15)
        finally:
            answered.set()
    return speech_end[0], sink.events[n].received_at - speech_end[0]


async def main(quick: bool, end_silence_s: float, packet_gap_s: float | None) -> dict:
    sentences = SENTENCES[:5] if quick else SENTENCES
    tts = PiperTTS(settings=VoiceSettings())
    hearing = HearingSettings(end_silence_s=end_silence_s, packet_gap_s=packet_gap_s)
    vad, stt = SileroVAD(), WhisperSTT(settings=hearing)
    stt.transcribe(np.zeros(16000, np.float32))  # warm up
    heard_log: list[Heard] = []

    def listener(*, on_heard, **kwargs) -> Listener:  # shared models; keeps what was heard
        def tap(h: Heard):
            heard_log.append(h)
            return on_heard(h)
        return Listener(on_heard=tap, vad=vad, stt=stt, **kwargs)

    adapter = DiscordAdapter(settings=DiscordSettings(transcripts=False, hearing=hearing),
                             listener_factory=listener)
    sink = Sink()
    adapter.bind(sink)
    session = await adapter.open_session(guild_id=1, text_channel=None)

    endings = {"packets_stop": _Ending(), "silence_frames": _Ending()}
    errors, words, durations = 0.0, 0, []
    for i, text in enumerate(sentences):
        packets, dur = speech_packets(tts, text, lead_s=0.0, tail_s=0.0, trim=True)
        durations.append(dur)
        order = list(endings) if i % 2 == 0 else list(reversed(endings))
        for ending in order:
            n = len(sink.events)
            speech_end, latency = await _utterance(session.receiver, sink, packets,
                                                   ending=ending)
            event = sink.events[n]
            heard = heard_log[-1]
            endings[ending].add(latency, heard, speech_end)
            w = len(text.split())
            errors += word_error_rate(text, event.message) * w
            words += w
            print(f"{ending:>14}  {latency:.3f}s  (whisper from "
                  f"{heard.stt_started_at - speech_end:.3f}s for {heard.transcript.seconds:.3f}s, "
                  f"turn over {heard.segment.detected_at - speech_end:.3f}s)  {event.message!r}",
                  flush=True)
            await asyncio.sleep(0.3)  # a pause between turns
    await adapter.leave(1)

    # Real-time factor of the whole hearing path (opus decode + VAD + whisper), one stream.
    encoded = [speech_packets(tts, text, lead_s=0.0, tail_s=0.6) for text in sentences]
    audio_s = sum(dur + 0.6 for _, dur in encoded)
    t0 = time.perf_counter()
    cut_segments: list[np.ndarray] = []  # the final segment of each sentence
    for packets, _ in encoded:
        segmenter = SpeechSegmenter(vad=vad, settings=hearing)
        segments: list = []
        rx = VoiceReceiver(on_pcm=lambda _u, pcm, s=segmenter, o=segments: o.extend(
            s.feed_pcm(pcm)))
        for p in packets:
            rx.receive(1, p)
        for seg in segments:
            stt.transcribe(seg.audio)
        finals = [seg.audio for seg in segments if seg.final]
        cut_segments.append(finals[-1] if finals else np.zeros(0, np.float32))
    rtf = (time.perf_counter() - t0) / audio_s

    # Speech start: utterance event -> first reply frame out. The pipeline's Piper voices
    # sentence one; the Discord stage plays that very speech (no second synthesis).
    starts = []
    voice = DiscordAdapter(settings=DiscordSettings(persona="bench", transcripts=False))
    for i, text in enumerate(["Très bien! Let us begin with greetings.",
                              "Good question. The answer is yes.",
                              "Of course. Repeat after me, please."]):
        player = _Player()
        voice.sessions[2] = VoiceSession(guild_id=2, text_channel=None, persona="bench",
                                         language="en", transcripts=False,
                                         voice_client=player)
        t_event = time.monotonic()
        first_sentence = text.split(". ")[0] + "."
        speech = await asyncio.to_thread(tts.synthesize, first_sentence)
        n = frame_count(speech.duration, 25)
        await voice.handle(Performed(Performance(
            persona="bench", reply_id=f"b{i}", index=0, speech=speech,
            frames=np.zeros((n, 2, 2, 4), np.uint8), fps=25, start_frame=0)))
        await asyncio.to_thread(player.wait_first_frame, 5)
        audio = player.source
        assert isinstance(audio, ReplyAudio) and audio.first_frame_at is not None
        starts.append(audio.first_frame_at - t_event)

    isolated = _whisper_isolated(stt, hearing, sentences, cut_segments)

    cores = os.cpu_count() or 1
    return {
        "quick": quick,
        "cpu_cores": cores,
        "utterances": len(sentences),
        "utterance_mean_s": round(statistics.mean(durations), 2),
        "end_silence_s": hearing.end_silence_s,
        "packet_gap_s": hearing.packet_gap_s,
        "whisper": f"tiny.en int8, beam 1, {hearing.short_window_s or 30:g} s encoder window "
                   "for utterances up to 4 s shorter (30 s otherwise)",
        "transcript_latency_p50_s": endings["packets_stop"].report()["transcript_latency_p50_s"],
        "transcript_latency_p95_s": endings["packets_stop"].report()["transcript_latency_p95_s"],
        "endings": {name: ending.report() for name, ending in endings.items()},
        "wer": round(errors / max(1, words), 3),
        "speech_start_s": round(statistics.median(starts), 3),
        "hearing_rtf": round(rtf, 3),
        "realtime_speakers": int(1 / rtf) if rtf > 0 else 0,
        "whisper_isolated": isolated,
        "targets": {"transcript_latency_p50_s": 0.6, "wer": 0.15, "realtime_speakers": 3},
        "notes": "transcript_latency_*: end of speech -> utterance with packets that stop, as "
                 "Discord clients send; endings.silence_frames is the same speech followed by "
                 "encoded silence every 20 ms",
    }


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _whisper_isolated(stt: WhisperSTT, hearing: HearingSettings, sentences: list[str],
                      audios: list[np.ndarray], rounds: int = 3) -> dict:
    """Whisper alone, the full 30 s window against the short one, on the same audio: CPU s
    and wall s per call (p50 over ``rounds`` passes, calls interleaved so that load hits
    both alike) and the WER of each."""
    full = WhisperSTT(settings=hearing.model_copy(update={"short_window_s": None}),
                      languages=())
    full._models = stt._models  # the very same loaded model
    ways = {"window_30s": full, f"window_{hearing.short_window_s or 30:g}s": stt}
    cpu: dict[str, list[float]] = {k: [] for k in ways}
    wall: dict[str, list[float]] = {k: [] for k in ways}
    errors = dict.fromkeys(ways, 0.0)
    words = 0
    for r in range(rounds):
        for text, audio in zip(sentences, audios, strict=True):
            if audio.size == 0:
                continue
            for name, way in ways.items():
                c0, t0 = _cpu_s(), time.perf_counter()
                heard = way.transcribe(audio)
                cpu[name].append(_cpu_s() - c0)
                wall[name].append(time.perf_counter() - t0)
                if r == 0:
                    errors[name] += word_error_rate(text, heard.text) * len(text.split())
            if r == 0:
                words += len(text.split())
    out = {name: {"cpu_p50_s": round(_pct(cpu[name], 0.5), 3),
                  "wall_p50_s": round(_pct(wall[name], 0.5), 3),
                  "wer": round(errors[name] / max(1, words), 3)} for name in ways}
    print("\nwhisper alone, same audio   cpu p50   wall p50   wer")
    for name, row in out.items():
        print(f"  {name:<24} {row['cpu_p50_s']:8.3f}  {row['wall_p50_s']:8.3f}  "
              f"{row['wer']:.3f}")
    out["redone_in_30s"] = stt.redone
    return out


class _Player:
    """discord.VoiceClient's playback: a thread reading the source every 20 ms, as
    discord.py's player does, until its first real frame is out."""

    def __init__(self) -> None:
        self.source: ReplyAudio | None = None
        self._thread: threading.Thread | None = None

    def is_playing(self) -> bool:
        return self.source is not None

    def stop(self) -> None:
        pass

    def play(self, source: ReplyAudio, *, after=None) -> None:
        self.source = source

        def read() -> None:
            deadline = time.monotonic() + 5
            while source.first_frame_at is None and time.monotonic() < deadline:
                source.read()
                time.sleep(0.02)

        self._thread = threading.Thread(target=read, daemon=True)
        self._thread.start()

    def wait_first_frame(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--end-silence", type=float, default=HearingSettings().end_silence_s)
    ap.add_argument("--packet-gap", default=str(HearingSettings().packet_gap_s),
                    help="seconds without packets heard as a pause; 'off' waits for audio "
                         "(the behaviour before packet stops were heard)")
    args = ap.parse_args()
    gap = None if args.packet_gap == "off" else float(args.packet_gap)
    result = asyncio.run(main(args.quick, args.end_silence, gap))
    name = "discord.json" if gap is not None else "discord-packet-gap-off.json"
    out = ROOT / "bench" / "results" / name
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
