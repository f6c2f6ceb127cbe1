#!/usr/bin/env python
"""Benchmark of hearing and speaking in English, German and French on the embedded models
(issue #14). Prints a table with targets and writes bench/results/languages.json with flat
keys ``<metric>_<lang>``:

- ``wer``: word error rate of the vstage hearing path: a fixed set of sentences voiced by the
  language's embedded voice (en: Piper ``en_US-joe``; de/fr: espeak-ng, the voices of the
  personas mika / lena / camille), sent as a Discord client sends them (opus packets of 20 ms
  48 kHz stereo frames in real time, only while the voice is heard, then five silence frames
  and nothing) into the Discord adapter's receive path -> Silero VAD segmenter ->
  faster-whisper (tiny.en for English, the multilingual Whisper base for the others);
- ``raw_wer``: the same whisper model with the same decoding settings called directly on the
  same audio (the clip the client sends, as a WAV file faster-whisper decodes and resamples
  itself). Target: ``wer <= raw_wer + 0.03``;
- ``stt_rtf``: whisper's seconds / seconds of speech in the vstage path (with the language
  detection pass a multilingual model makes); ``tts_rtf``: synthesis seconds / speech seconds;
- ``time_to_first_clip_s``: a question voiced the same way, to the language's persona, through
  the real path: Discord receive -> hearing -> orchestrator -> reply pipeline (embedded
  SmolLM2, the persona's voice at its level's rate, its avatar's performer); from the end of
  the question's audio to the pipeline's ``first_clip`` mark (median). Target:
  ``first_clip_ratio_<lang>`` (over English) ``<= 1.5``;
- ``tts_roundtrip_wer``: the embedded voice's speech transcribed back by the multilingual
  Whisper base forced to the language, beam 5 (how intelligible the voice is).

``diagnostics`` tells apart where the vstage path loses words, step by step: ``opus_wer`` is
the model called directly on the whole clip after opus and the receiver's 48 -> 16 kHz
conversion (``opus_wer - raw_wer``: codec and resampler), ``segment_wer`` on the exact audio
the segmenter handed to whisper (``segment_wer - opus_wer``: the VAD's cut, pre-roll and
tail), and ``wer - segment_wer`` comes from the transcription call itself;
``timestamps_wer`` is the raw call with faster-whisper's default timestamp tokens
(the hearing path decodes without them).
``--quick``: 4 sentences and 1 question per language; full: 12 and 3.

    .venv/bin/python bench/languages.py [--quick]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # the repo, not bench/ (whose file names may shadow modules)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import unicodedata  # noqa: E402
import wave  # noqa: E402
from collections.abc import Mapping, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

LANGUAGES = ("en", "de", "fr")
PERSONAS = {"en": "mika", "de": "lena", "fr": "camille"}

SENTENCES: dict[str, list[str]] = {
    "en": [
        "I would like a cup of coffee with milk, please.",
        "Could you tell me the way to the nearest bank?",
        "My sister lives in a small town near the sea.",
        "We are going to the cinema on Saturday evening.",
        "The museum opens early in the morning every day.",
        "I have been learning this language for two years.",
        "Please speak a little more slowly, I do not understand.",
        "What time does the last train leave tonight?",
        "The children are playing football in the park.",
        "Yesterday I cooked dinner for my whole family.",
        "Where can I buy a ticket for the bus?",
        "My favourite season is autumn because of the colours.",
    ],
    "de": [
        "Ich hätte gern eine Tasse Kaffee mit Milch.",
        "Können Sie mir den Weg zum Bahnhof zeigen?",
        "Meine Schwester wohnt in einer kleinen Stadt am Meer.",
        "Wir gehen am Samstagabend ins Kino.",
        "Das Museum öffnet jeden Tag früh am Morgen.",
        "Ich lerne diese Sprache seit zwei Jahren.",
        "Bitte sprechen Sie etwas langsamer.",
        "Wann fährt heute Abend der letzte Zug?",
        "Die Kinder spielen im Park Fußball.",
        "Gestern habe ich für meine ganze Familie gekocht.",
        "Wo kann ich eine Fahrkarte für den Bus kaufen?",
        "Im Herbst sind die Blätter rot und gelb.",
    ],
    "fr": [
        "Je voudrais une tasse de café au lait, s'il vous plaît.",
        "Pouvez-vous me montrer le chemin de la gare?",
        "Ma sœur habite dans une petite ville au bord de la mer.",
        "Nous allons au cinéma samedi soir.",
        "Le musée ouvre tôt le matin tous les jours.",
        "J'apprends cette langue depuis deux ans.",
        "Parlez plus lentement, s'il vous plaît.",
        "À quelle heure part le dernier train ce soir?",
        "Les enfants jouent au football dans le parc.",
        "Hier, j'ai préparé le dîner pour toute ma famille.",
        "Où est-ce que je peux acheter un billet de bus?",
        "En automne, les feuilles sont rouges et jaunes.",
    ],
}

QUESTIONS: dict[str, list[str]] = {
    "en": ["What do you like to eat for breakfast?",
           "Where did you go on your last holiday?",
           "What is your favourite book?"],
    "de": ["Was isst du gern zum Frühstück?",
           "Wohin bist du im letzten Urlaub gefahren?",
           "Was ist dein Lieblingsbuch?"],
    "fr": ["Qu'est-ce que tu aimes manger au petit déjeuner?",
           "Où es-tu allé pendant tes dernières vacances?",
           "Quel est ton livre préféré?"],
}

WER_MARGIN = 0.03  # target: wer <= raw_wer + WER_MARGIN
FIRST_CLIP_RATIO = 1.5  # target: time to first clip <= 1.5x English's

# ---------------------------------------------------------------------- pure maths

# A word: letters (any script, accented ones kept) and digits, with inner apostrophes
# ("l'eau", "don't"); hyphens and other punctuation separate words ("est-ce" -> "est", "ce").
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_APOSTROPHES = str.maketrans({"’": "'", "ʼ": "'", "‘": "'", "`": "'"})


def words(text: str) -> list[str]:
    """``text`` as WER compares it: lower-cased (``casefold``: ß -> ss on both sides),
    composed (NFC) so an accent typed either way is one letter, punctuation stripped, accented
    letters kept, numbers as written (``9`` and ``neun`` differ)."""
    text = unicodedata.normalize("NFC", text).translate(_APOSTROPHES).casefold()
    return _WORD.findall(text)


def edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Word-level Levenshtein distance: substitutions + deletions + insertions."""
    prev = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        cur = [i] + [0] * len(hypothesis)
        for j, h in enumerate(hypothesis, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edits, words in the reference) of one sentence."""
    ref = words(reference)
    return edit_distance(ref, words(hypothesis)), len(ref)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER of one sentence: edits / reference words (an empty reference counts as one word,
    so a hallucination on silence is an error, not a division by zero)."""
    edits, n = word_errors(reference, hypothesis)
    return edits / max(1, n)


def corpus_wer(pairs: Sequence[tuple[str, str]]) -> float:
    """WER over many sentences: all edits / all reference words (long sentences weigh
    more, as in every WER tool), not a mean of per-sentence rates."""
    edits = words_total = 0
    for reference, hypothesis in pairs:
        e, n = word_errors(reference, hypothesis)
        edits, words_total = edits + e, words_total + n
    return edits / max(1, words_total)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) with linear interpolation between closest ranks (numpy's
    default); NaN for no values."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is not in [0, 1]")
    xs = sorted(values)
    if not xs:
        return math.nan
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class TargetCheck:
    """One target: ``metric`` compared with ``limit`` (a number, or the metric it is derived
    from plus a margin / times a factor); ``passed`` is None when a figure is missing."""

    metric: str
    rule: str
    limit: float | None
    value: float | None
    passed: bool | None


def check_targets(result: Mapping[str, Any],
                  languages: Sequence[str] = LANGUAGES) -> list[TargetCheck]:
    """The targets of issue #14 on a result: ``wer_<lang> <= raw_wer_<lang> + 0.03`` for every
    language, ``first_clip_ratio_<lang> <= 1.5`` for every language but English."""
    checks = []

    def num(key: str) -> float | None:
        v = result.get(key)
        return float(v) if isinstance(v, int | float) and math.isfinite(v) else None

    for lang in languages:
        wer, raw = num(f"wer_{lang}"), num(f"raw_wer_{lang}")
        limit = None if raw is None else round(raw + WER_MARGIN, 6)
        checks.append(TargetCheck(
            f"wer_{lang}", f"<= raw_wer_{lang} + {WER_MARGIN}", limit, wer,
            None if wer is None or limit is None else wer <= limit + 1e-9))
    for lang in languages:
        if lang == "en":
            continue
        ratio = num(f"first_clip_ratio_{lang}")
        checks.append(TargetCheck(
            f"first_clip_ratio_{lang}", f"<= {FIRST_CLIP_RATIO}", FIRST_CLIP_RATIO, ratio,
            None if ratio is None else ratio <= FIRST_CLIP_RATIO))
    return checks


def first_clip_ratios(result: Mapping[str, Any],
                      languages: Sequence[str] = LANGUAGES) -> dict[str, float | None]:
    """``first_clip_ratio_<lang>``: time to first clip over English's (None without both)."""
    en = result.get("time_to_first_clip_s_en")
    out: dict[str, float | None] = {}
    for lang in languages:
        if lang == "en":
            continue
        v = result.get(f"time_to_first_clip_s_{lang}")
        out[f"first_clip_ratio_{lang}"] = (
            round(v / en, 3) if isinstance(v, int | float) and isinstance(en, int | float)
            and en > 0 else None)
    return out


METRICS = ("wer", "raw_wer", "stt_rtf", "tts_rtf", "time_to_first_clip_s",
           "first_clip_ratio", "tts_roundtrip_wer")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def render_table(result: Mapping[str, Any], languages: Sequence[str] = LANGUAGES) -> str:
    """The printed table: one row per metric, one column per language, then the targets with
    ok / MISSED (``?`` when a figure is missing)."""
    head = f"{'metric':22}" + "".join(f"{lang:>10}" for lang in languages)
    lines = [head, "-" * len(head)]
    for metric in METRICS:
        row = [result.get(f"{metric}_{lang}") for lang in languages]
        if all(v is None for v in row):
            continue
        lines.append(f"{metric:22}" + "".join(f"{_cell(v):>10}" for v in row))
    lines += ["", f"{'target':24} {'rule':28} {'limit':>8} {'value':>8}  result"]
    for c in check_targets(result, languages):
        verdict = "?" if c.passed is None else "ok" if c.passed else "MISSED"
        lines.append(f"{c.metric:24} {c.rule:28} {_cell(c.limit):>8} {_cell(c.value):>8}"
                     f"  {verdict}")
    return "\n".join(lines)


# ---------------------------------------------------------------------- measuring


def pin_cores(n: int = 2) -> list[int]:
    """Run on ``n`` cores (the first ones this process may use), like the machines the
    figures are compared on; returns them."""
    cores = sorted(os.sched_getaffinity(0))[:n]
    os.sched_setaffinity(0, cores)
    return cores


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())


def transcribe_direct(model: Any, audio: np.ndarray | str, *, language: str,
                      beam_size: int, timestamps: bool = False) -> tuple[str, float]:
    """faster-whisper called directly (no vstage code): text and seconds. By default with the
    decoding options the hearing path uses (no timestamps, no VAD filter, no conditioning on
    previous text), so a difference in WER is the path's, not the options'; ``timestamps``:
    faster-whisper's own default (timestamp tokens on)."""
    t0 = time.perf_counter()
    segments, _ = model.transcribe(audio, language=language, beam_size=beam_size,
                                   condition_on_previous_text=False, vad_filter=False,
                                   without_timestamps=not timestamps)
    text = " ".join(s.text.strip() for s in segments).strip()
    return text, time.perf_counter() - t0


@dataclass
class Heard:
    """What the vstage path heard of one sentence (it may cut one into several utterances)."""

    text: str
    whisper_s: float
    speech_s: float
    segments: list[np.ndarray] = field(default_factory=list, repr=False)
    detected: list[str | None] = field(default_factory=list)


def client_packets(speech: Any) -> tuple[list[bytes], np.ndarray]:
    """A Discord client's opus packets for ``speech`` (sent only while the voice is heard)
    and the audio they carry, at the voice's rate."""
    from discord import opus

    from bots.hearing.audio import FRAME_SAMPLES, tts_to_discord_pcm
    from tests.discord.helpers import pcm_frames, trim_silence

    audio = trim_silence(speech.audio, speech.sample_rate)
    frames = pcm_frames(tts_to_discord_pcm(audio, speech.sample_rate))
    encoder = opus.Encoder()
    return [encoder.encode(f, FRAME_SAMPLES) for f in frames], audio


def send_like_a_client(receiver: Any, user: int, packets: Sequence[bytes]) -> float:
    """Blocking (a thread of its own): a packet every 20 ms, then five silence frames and
    nothing, as Discord clients do. Returns the end of the speech (monotonic)."""
    from bots.adapters.discord.receive import OPUS_SILENCE

    t0 = time.monotonic()
    for i, packet in enumerate(packets):
        time.sleep(max(0.0, t0 + i * 0.02 - time.monotonic()))
        receiver.receive(user, packet)
    speech_end = time.monotonic()
    for i in range(1, 6):
        time.sleep(max(0.0, speech_end + i * 0.02 - time.monotonic()))
        receiver.receive(user, OPUS_SILENCE)
    return speech_end


def decoded_like_the_receiver(packets: Sequence[bytes]) -> np.ndarray:
    """The whole clip as the hearing path converts it, without the VAD's cut: opus decode,
    stereo -> mono, 48 -> 16 kHz with the segmenter's streaming resampler."""
    from discord import opus

    from bots.hearing.audio import Downsampler48to16, pcm48_stereo_to_mono

    decoder, down = opus.Decoder(), Downsampler48to16()
    return np.concatenate([down(pcm48_stereo_to_mono(decoder.decode(p))) for p in packets])


async def hear_sentence(session: Any, log: list[Any], packets: Sequence[bytes], *,
                        user: int, settle_s: float = 1.0, limit_s: float = 30.0) -> Heard:
    """Say one sentence into a Discord session and gather every utterance it became: done
    when the speaker's turn is closed and nothing new was heard for ``settle_s``."""
    n = len(log)
    await asyncio.to_thread(send_like_a_client, session.receiver, user, packets)
    deadline = time.monotonic() + limit_s
    last_change, seen = time.monotonic(), n
    listener = session.listener
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if len(log) != seen:
            seen, last_change = len(log), time.monotonic()
        speaker = listener._speakers.get(f"discord:{user}")
        busy = speaker is not None and speaker.segmenter.in_speech
        if len(log) > n and not busy and time.monotonic() - last_change >= settle_s:
            break
    got = log[n:]
    return Heard(text=" ".join(h.utterance.message for h in got),
                 whisper_s=sum(h.transcript.seconds for h in got),
                 speech_s=sum(h.segment.duration_s for h in got),
                 segments=[h.segment.audio for h in got],
                 detected=[h.transcript.detected_language for h in got])


async def wait_until(condition: Any, *, limit_s: float, period: float = 0.02) -> bool:
    """Poll ``condition()`` until it holds (True) or ``limit_s`` has passed (False)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(period)
    return True


class FirstClips:
    """A stage that notes when each reply's first Performance reaches the stages."""

    name = "bench-first-clip"

    def __init__(self) -> None:
        from overlays.stage import Performed

        self.wants = frozenset({Performed})
        self.first: dict[str, float] = {}
        self.got = asyncio.Event()

    async def handle(self, event: Any) -> None:
        self.first.setdefault(event.performance.reply_id, time.monotonic())
        self.got.set()


async def measure_language(lang: str, persona: Any, *, vad: Any, stt: Any, base: Any,
                           hearing: Any, sentences: Sequence[str],
                           tmp: Path) -> dict[str, Any]:
    """WER (vstage and raw), RTFs, round trip, per-sentence details for one language."""
    from bots.adapters.discord.adapter import DiscordAdapter
    from bots.adapters.discord.settings import DiscordSettings
    from bots.hearing.listener import Listener
    from tests.discord.fakes import Sink

    log: list[Any] = []

    def listener(*, on_heard: Any, **kwargs: Any) -> Listener:
        def tap(h: Any) -> Any:
            log.append(h)
            return on_heard(h)
        return Listener(on_heard=tap, vad=vad, stt=stt, **kwargs)

    adapter = DiscordAdapter(settings=DiscordSettings(language=lang, transcripts=False,
                                                      hearing=hearing),
                             listener_factory=listener)
    adapter.bind(Sink())
    session = await adapter.open_session(guild_id=1, text_channel=None)
    _, model = stt.model_for(lang)
    beam = hearing.beam_size
    rows: list[dict[str, Any]] = []
    tts_s = speech_s = raw_s = 0.0
    try:
        for i, text in enumerate(sentences):
            t0 = time.perf_counter()
            speech = await asyncio.to_thread(persona.tts.synthesize, text)
            tts_s += time.perf_counter() - t0
            speech_s += speech.duration
            packets, sent = client_packets(speech)
            heard = await hear_sentence(session, log, packets, user=100 + i)
            wav = tmp / f"{lang}-{i}.wav"
            write_wav(wav, sent, speech.sample_rate)
            raw, took = await asyncio.to_thread(transcribe_direct, model, str(wav),
                                                language=lang, beam_size=beam)
            raw_s += took
            seg_text = " ".join([
                (await asyncio.to_thread(transcribe_direct, model, seg, language=lang,
                                         beam_size=beam))[0] for seg in heard.segments])
            opus_text, _ = await asyncio.to_thread(
                transcribe_direct, model, decoded_like_the_receiver(packets), language=lang,
                beam_size=beam)
            stamped, _ = await asyncio.to_thread(transcribe_direct, model, str(wav),
                                                 language=lang, beam_size=beam,
                                                 timestamps=True)
            trip, _ = await asyncio.to_thread(transcribe_direct, base, str(wav),
                                              language=lang, beam_size=5)
            rows.append({"text": text, "vstage": heard.text, "raw": raw, "segments": seg_text,
                         "opus": opus_text,
                         "raw_timestamps": stamped,
                         "roundtrip": trip, "utterances": len(heard.segments),
                         "detected": heard.detected, "sent_s": round(sent.size /
                                                                     speech.sample_rate, 3),
                         "heard_s": round(heard.speech_s, 3), "whisper_s":
                         round(heard.whisper_s, 3)})
            print(f"  {lang} {i + 1:2}/{len(sentences)} wer {word_error_rate(text, heard.text):.2f}"
                  f" raw {word_error_rate(text, raw):.2f}  {heard.text!r}", flush=True)
    finally:
        await adapter.leave(1)
    heard_speech = sum(r["heard_s"] for r in rows)
    sent_speech = sum(r["sent_s"] for r in rows)
    return {
        "wer": round(corpus_wer([(r["text"], r["vstage"]) for r in rows]), 3),
        "raw_wer": round(corpus_wer([(r["text"], r["raw"]) for r in rows]), 3),
        "segment_wer": round(corpus_wer([(r["text"], r["segments"]) for r in rows]), 3),
        "opus_wer": round(corpus_wer([(r["text"], r["opus"]) for r in rows]), 3),
        "timestamps_wer": round(corpus_wer([(r["text"], r["raw_timestamps"]) for r in rows]),
                                3),
        "tts_roundtrip_wer": round(corpus_wer([(r["text"], r["roundtrip"]) for r in rows]), 3),
        "stt_rtf": round(sum(r["whisper_s"] for r in rows) / max(1e-9, heard_speech), 3),
        "raw_stt_rtf": round(raw_s / max(1e-9, sent_speech), 3),
        "tts_rtf": round(tts_s / max(1e-9, speech_s), 3),
        "rows": rows,
    }


async def first_clip_times(lang: str, personas: dict[str, Any], *, vad: Any, stt: Any,
                           hearing: Any, questions: Sequence[str]) -> dict[str, Any]:
    """Questions voiced in ``lang`` to its persona through Discord receive -> hearing ->
    orchestrator -> pipeline -> performer; end of the question's audio -> ``first_clip``."""
    from bots.adapters.discord.adapter import DiscordAdapter
    from bots.adapters.discord.settings import DiscordSettings
    from bots.hearing.listener import Listener
    from bots.orchestrator.orchestrator import Orchestrator

    pid = PERSONAS[lang]
    persona = personas[pid]
    log: list[Any] = []

    def listener(*, on_heard: Any, **kwargs: Any) -> Listener:
        def tap(h: Any) -> Any:
            log.append(h)
            return on_heard(h)
        return Listener(on_heard=tap, vad=vad, stt=stt, **kwargs)

    adapter = DiscordAdapter(settings=DiscordSettings(persona=pid, language=lang,
                                                      transcripts=False, hearing=hearing),
                             listener_factory=listener)
    stage = FirstClips()
    times: list[float] = []
    parts: list[dict[str, Any]] = []
    async with Orchestrator(personas={pid: persona}, stages=[stage], default_persona=pid,
                            adapters=[adapter], greet=False, lookahead=0) as orch:
        session = await adapter.open_session(guild_id=2, text_channel=None)
        try:
            for i, question in enumerate(questions):
                speech = await asyncio.to_thread(persona.tts.synthesize, question)
                packets, _ = client_packets(speech)
                n = len(log)
                speech_end = await asyncio.to_thread(send_like_a_client, session.receiver,
                                                     200 + i, packets)
                if not await wait_until(lambda n=n: len(log) > n, limit_s=30):
                    print(f"  {lang}: {question!r} was not heard", flush=True)
                    continue
                tid = log[n].utterance.trace_id
                deadline = time.monotonic() + 60
                while tid not in stage.first and time.monotonic() < deadline:
                    stage.got.clear()
                    try:
                        await asyncio.wait_for(stage.got.wait(), 1.0)
                    except TimeoutError:
                        pass
                trace = orch.tracer.get(tid)
                marks = dict(trace.marks) if trace is not None else {}
                if "first_clip" not in marks:
                    print(f"  {lang}: no first clip for {question!r} ({marks})", flush=True)
                    continue
                took = marks["first_clip"] - speech_end
                times.append(took)
                heard = log[n]
                parts.append({
                    "question": question, "heard": heard.utterance.message,
                    "first_clip_s": round(took, 3),
                    "stt_start_s": round(heard.stt_started_at - speech_end, 3),
                    "whisper_s": round(heard.transcript.seconds, 3),
                    **{f"{k}_s": round(v - speech_end, 3) for k, v in marks.items()
                       if k in ("received", "llm_first_token", "llm_first_sentence",
                                "tts_first_audio", "first_clip")},
                })
                print(f"  {lang} question {i + 1}: first clip {took:.2f}s after the speech "
                      f"({parts[-1]})", flush=True)
                # Let the reply play out before the next question (the persona holds the stage).
                await wait_until(lambda t=trace: not orch.queue_length(pid) and (
                    t is None or t.status not in ("received", "queued")), limit_s=120)
                await asyncio.sleep(0.5)
        finally:
            await adapter.leave(2)
    return {"time_to_first_clip_s": round(statistics.median(times), 3) if times else None,
            "time_to_first_clip_p95_s": round(percentile(times, 0.95), 3) if times else None,
            "first_clip_breakdown": parts}


async def main(quick: bool) -> dict[str, Any]:
    from avatar_engine.settings import VoiceSettings
    from bots.app import load_personas
    from bots.config import load_config
    from bots.hearing.models import ensure_multilingual_model
    from bots.hearing.settings import HearingSettings
    from bots.hearing.stt import WhisperSTT
    from bots.hearing.vad import SileroVAD
    from bots.orchestrator.pipeline import perform

    cores = pin_cores(2)
    sentences = {lang: s[:4] if quick else s for lang, s in SENTENCES.items()}
    questions = {lang: q[:1] if quick else q for lang, q in QUESTIONS.items()}
    hearing = HearingSettings()
    t0 = time.monotonic()
    config = load_config(ROOT / "config")
    personas = await load_personas(config, [PERSONAS[lang] for lang in LANGUAGES])
    vad = SileroVAD()
    stt = WhisperSTT(settings=hearing, languages=LANGUAGES)
    from faster_whisper import WhisperModel

    base = WhisperModel(str(ensure_multilingual_model()), device="cpu", compute_type="int8",
                        cpu_threads=hearing.cpu_threads)
    for lang in LANGUAGES:  # first-call costs out of the way
        stt.transcribe(np.zeros(16000, np.float32), language=lang)
        await perform(personas[PERSONAS[lang]], viewer="bench", text="Hello!")
        personas[PERSONAS[lang]].conversations.clear()
    load_s = time.monotonic() - t0

    result: dict[str, Any] = {}
    details: dict[str, Any] = {}
    for lang in LANGUAGES:
        print(f"{lang}: {len(sentences[lang])} sentences ({PERSONAS[lang]}'s voice: "
              f"{personas[PERSONAS[lang]].config.voice.provider})", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            m = await measure_language(lang, personas[PERSONAS[lang]], vad=vad, stt=stt,
                                       base=base, hearing=hearing, sentences=sentences[lang],
                                       tmp=Path(tmp))
        for key in ("wer", "raw_wer", "stt_rtf", "tts_rtf", "tts_roundtrip_wer"):
            result[f"{key}_{lang}"] = m[key]
        details[lang] = {"opus_wer": m["opus_wer"], "segment_wer": m["segment_wer"],
                         "timestamps_wer": m["timestamps_wer"], "raw_stt_rtf": m["raw_stt_rtf"],
                         "sentences": m["rows"]}
    for lang in LANGUAGES:
        f = await first_clip_times(lang, personas, vad=vad, stt=stt, hearing=hearing,
                                   questions=questions[lang])
        result[f"time_to_first_clip_s_{lang}"] = f["time_to_first_clip_s"]
        details[lang]["time_to_first_clip_p95_s"] = f["time_to_first_clip_p95_s"]
        details[lang]["first_clip_breakdown"] = f["first_clip_breakdown"]
    result.update(first_clip_ratios(result))
    for persona in personas.values():
        await persona.aclose()

    checks = check_targets(result)
    return {
        **result,
        "targets_met": all(c.passed for c in checks),
        "targets": {c.metric: {"rule": c.rule, "limit": c.limit, "passed": c.passed}
                    for c in checks},
        "quick": quick,
        "sentences_per_language": len(sentences["en"]),
        "questions_per_language": len(questions["en"]),
        "cpu_cores": cores,
        "models": {"stt_en": stt.choice_for("en").name, "stt_other": stt.choice_for("de").name,
                   "roundtrip": "faster-whisper-base (embedded), beam 5",
                   "beam_size": hearing.beam_size, "compute_type": hearing.compute_type,
                   "voices": {lang: personas[PERSONAS[lang]].config.voice.provider
                              for lang in LANGUAGES},
                   "default_voice": VoiceSettings().provider},
        "load_s": round(load_s, 2),
        "diagnostics": {lang: {k: v for k, v in d.items() if k != "sentences"}
                        for lang, d in details.items()},
        "sentences": {lang: d["sentences"] for lang, d in details.items()},
        "notes": "wer: vstage Discord hearing path; raw_wer: the same whisper model and beam "
                 "on the same clip, called directly; diagnostics.segment_wer: the model called "
                 "directly on the audio the segmenter produced; tts_roundtrip_wer: embedded "
                 "Whisper base forced to the language, beam 5; time_to_first_clip_s: median, "
                 "end of the question's audio -> the pipeline's first_clip mark",
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 sentences, 1 question per language")
    args = ap.parse_args()
    out = asyncio.run(main(args.quick))
    folder = ROOT / "bench" / "results"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "languages.json").write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    print()
    print(render_table(out))
    print(f"\nwrote {folder / 'languages.json'}")
    sys.exit(0)
