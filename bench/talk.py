#!/usr/bin/env python
"""Benchmark of private spoken conversations (``/talk``, issue #15): many simulated learners
in one process, each talking to the persona through its own session, against the real
:class:`~bots.talk.hub.TalkHub` on the embedded models (Silero VAD, whisper tiny.en, SmolLM2,
Piper, the sprite avatar).

Each learner opens a session and about every ``--period`` seconds (jittered) speaks a short
question, pre-synthesised once with Piper (16 different questions), into ``session.hear()``
as real-time 20 ms 48 kHz mono frames. Between its questions it keeps sending quiet noise,
as a browser's microphone track does (browsers never stop sending, unlike Discord clients).
Every session's stream is consumed the way a page consumes it: a viewer on a
:class:`~overlays.live.encoder.SharedVideoEncoder` of the session's stream, whose VP8 frames
and Opus packets are drained as aiortc's tracks would read them (the encoding is real; RTP,
SRTP and ICE are not run). One task feeds every microphone, so a late event loop delays the
audio as it would delay an RTC track reader.

Per question: ``reply_start`` = the end of the learner's speech (the scheduled arrival of its
last voiced frame) -> the first tick of the answer released by the session's stream (its
first answer frame and audio). A question is ``answered`` (a sentence of its turn went on
air), ``refused`` (moderation, rate limit, a full queue), ``noticed`` (the page was told
something, e.g. "I heard no words") or ``dropped``: no answer and no word about it by the
end of the questions plus ``--grace`` seconds. ``served_min_max_ratio``: most answered
questions of one session over fewest. CPU: the process's cores in use over the phase, split
by thread (the event loop, whisper, the LLM, Piper and idle renders, the render pool, the
VP8 encoders; "native" is threads Python does not know: onnxruntime, CTranslate2, llama.cpp),
and over the first 3 s while nobody speaks (the standing cost of the sessions). Where the
time goes: the median time from the end of speech to each stage of the answering reply
(heard, pipeline started, LLM turn granted, first token, first sentence, first voice, first
clip, on air); the event loop's lag and, from a watchdog thread, where the loop was stuck;
the loop's CPU per microphone frame; how far behind the clock the microphones are read
(``mic_backlog_*``); the machine's CPU pressure (other programs included).

Side by side, in the same run, the old way: the same learners' questions through the public
show's single persona queue (the :class:`~bots.orchestrator.orchestrator.Orchestrator`, as
Discord voice does: one ``Listener`` hearing every learner, each utterance submitted, the
answers played one after another on the persona's one live stream, which every learner
watches). Barge-in is off there (on a shared show every learner's question would cut the
answer playing) and the queue's duplicate filter is off (the learners reuse the same 16
recordings; real people asking the same words within 30 s would be refused as spam).

Prints a table and writes ``bench/results/talk.json``; ``--profile`` also writes a
pyinstrument profile of the event loop thread during the first talk phase.

    .venv/bin/python bench/talk.py [--quick] [--sessions 10,20,40] [--profile]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # the repo, not bench/ (whose file names may shadow modules)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterable, Mapping, Sequence  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from typing import Any, Literal  # noqa: E402

import numpy as np  # noqa: E402

logger = logging.getLogger("bench.talk")

RESULTS = ROOT / "bench" / "results" / "talk.json"
PROFILE = ROOT / "bench" / "results" / "talk-profile.txt"
RATE = 48_000
FRAME_S = 0.02
FRAME = int(RATE * FRAME_S)  # 960 samples: what a browser's Opus frame carries
NOISE_RMS = 30.0  # int16 units: about -60 dBFS, a quiet room through a browser's mic

# What the learners ask; each learner goes through them from its own offset.
QUESTIONS = [
    "What do you like to eat for breakfast?",
    "Where did you go on your last holiday?",
    "What is your favourite book?",
    "How was your weekend?",
    "Can you recommend a good movie?",
    "Do you have any pets at home?",
    "What games are you playing lately?",
    "Which season do you like best?",
    "What music do you listen to?",
    "Tell me a fun fact about cats.",
    "What should I cook for dinner tonight?",
    "Do you prefer tea or coffee?",
    "What is your favourite colour?",
    "Can you tell me a short joke?",
    "What did you do yesterday evening?",
    "Which city would you like to visit?",
]

# Targets from the issue, at TARGET_SESSIONS private sessions.
TARGET_SESSIONS = 10
TARGETS: dict[str, tuple[str, float]] = {
    "reply_start_p50_s": ("<=", 2.0),
    "reply_start_p95_s": ("<=", 4.0),
    "served_min_max_ratio": ("<=", 1.3),
    "dropped_turns": ("<=", 0),
}

Outcome = Literal["answered", "refused", "noticed", "dropped"]
Mode = Literal["talk", "show"]
MODES: tuple[Mode, ...] = ("talk", "show")


# ------------------------------------------------------------------ pure helpers (tested)


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) by linear interpolation; None for no values."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} is not in [0, 100]")
    ordered = sorted(values)
    if not ordered:
        return None
    pos = q / 100 * (len(ordered) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def served_ratio(counts: Iterable[int]) -> float | None:
    """Most answered turns of one session over fewest (1.0: perfectly even). None when there
    are no sessions, or when one session got nothing while another did (unbounded); two
    sessions both at zero are even (1.0)."""
    xs = list(counts)
    if not xs:
        return None
    lo, hi = min(xs), max(xs)
    if lo < 0:
        raise ValueError(f"a negative count of turns: {lo}")
    if hi == 0:
        return 1.0
    return None if lo == 0 else hi / lo


_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def words(text: str) -> list[str]:
    """Lower-case words, punctuation dropped (how a question and its transcript compare)."""
    return _WORD.findall(text.lower().replace("’", "'"))


def overlap(question: str, heard: str) -> float:
    """The share of the question's distinct words found in ``heard`` (0..1): whisper may drop
    or change a word; a turn merged with the next question holds both questions' words."""
    want = set(words(question))
    if not want:
        return 0.0
    return len(want & set(words(heard))) / len(want)


def learner_schedule(rng: random.Random, *, turns: int, period_s: float, jitter_s: float,
                     min_gap_s: float) -> list[float]:
    """When one learner starts each of its ``turns`` questions, in seconds from the phase's
    start: the first somewhere in the first period (learners do not all start together),
    then every ``period_s`` give or take ``jitter_s``, never closer than ``min_gap_s``."""
    if turns < 0 or period_s <= 0 or jitter_s < 0 or min_gap_s < 0:
        raise ValueError("turns, period_s, jitter_s and min_gap_s must not be negative "
                         "(period_s above 0)")
    starts: list[float] = []
    t = rng.uniform(0.2, period_s)
    for _ in range(turns):
        starts.append(t)
        t = max(t + min_gap_s, t + period_s + rng.uniform(-jitter_s, jitter_s))
    return starts


@dataclass(slots=True)
class Question:
    """One question a learner spoke: what, and when its audio started and ended (the
    scheduled arrival of its first and last voiced frame, ``time.monotonic()``)."""

    learner: int
    index: int
    text: str
    started_at: float
    ended_at: float


@dataclass(frozen=True, slots=True)
class Hearing:
    """What the system heard of a learner (a final transcript) and under which key its
    answer is found: the session's turn number (talk) or the event's trace id (show)."""

    at: float
    text: str
    key: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """What became of one question."""

    learner: int
    index: int
    outcome: Outcome
    reply_start_s: float | None = None  # end of speech -> first answer tick (answered)
    key: str | None = None  # the turn / trace that answered it
    reason: str | None = None  # why it was refused, what the notice said


def match_hearings(questions: Sequence[Question], hearings: Sequence[Hearing], *,
                   min_overlap: float = 0.5) -> dict[int, list[str]]:
    """Which hearings (turns) belong to which of one learner's questions, by position in
    ``questions``.

    A hearing belongs to every question spoken before it that is at least ``min_overlap``
    in it (a merged turn holds two questions). A hearing that matches none (whisper garbled
    it) goes to the oldest question before it that nothing matched yet, so a question that
    was heard, however badly, is judged by what became of its turn.
    """
    keys: dict[int, list[str]] = {i: [] for i in range(len(questions))}
    for h in sorted(hearings, key=lambda h: h.at):
        before = [i for i, q in enumerate(questions) if q.started_at <= h.at]
        hits = [i for i in before if overlap(questions[i].text, h.text) >= min_overlap]
        if not hits:
            orphans = [i for i in before if not keys[i]]
            hits = orphans[:1]
        for i in hits:
            if h.key not in keys[i]:
                keys[i].append(h.key)
    return keys


def judge(questions: Sequence[Question], hearings: Sequence[Hearing], *,
          starts: Mapping[str, float], refusals: Mapping[str, str],
          loose: Sequence[tuple[float, str, str]] = (), deadline: float) -> list[Verdict]:
    """What became of each of one learner's questions by ``deadline``.

    Args:
        questions: the learner's questions, in the order spoken.
        hearings: the final transcripts of what it said, each with its key.
        starts: per key, when the answer's first tick was released.
        refusals: per key, why that turn was refused (moderation, rate limit, queue).
        loose: ``(time, kind, text)`` of messages with no key ("refused" with no turn,
            "notice"): one arriving between a question's start and the next question's
            start is its answer when nothing else is.
        deadline: what happens later does not count (the end of the phase plus grace).
    """
    order = sorted(range(len(questions)), key=lambda i: questions[i].started_at)
    qs = [questions[i] for i in order]
    matched = match_hearings(qs, [h for h in hearings if h.at <= deadline])
    out: list[Verdict] = []
    for pos, q in enumerate(qs):
        window_end = qs[pos + 1].started_at if pos + 1 < len(qs) else deadline
        keys = matched[pos]
        on_air = [(starts[k], k) for k in keys
                  if k in starts and q.ended_at < starts[k] <= deadline]
        if on_air:
            at, key = min(on_air)
            out.append(Verdict(q.learner, q.index, "answered", at - q.ended_at, key))
            continue
        refused = [k for k in keys if k in refusals]
        if refused:
            out.append(Verdict(q.learner, q.index, "refused", key=refused[0],
                               reason=refusals[refused[0]]))
            continue
        told = [(t, kind, text) for t, kind, text in loose
                if q.started_at <= t < min(window_end, deadline)]
        if told:
            _, kind, text = told[0]
            out.append(Verdict(q.learner, q.index, "refused" if kind == "refused" else "noticed",
                               reason=text))
            continue
        out.append(Verdict(q.learner, q.index, "dropped",
                           key=keys[0] if keys else None,
                           reason="heard, never answered" if keys else "never heard"))
    return out


def summarize(verdicts: Sequence[Verdict], learners: int) -> dict[str, Any]:
    """The figures of one phase from its verdicts."""
    latencies = [v.reply_start_s for v in verdicts if v.reply_start_s is not None]
    per_learner = [0] * learners
    for v in verdicts:
        if v.outcome == "answered":
            per_learner[v.learner] += 1
    count = {o: sum(v.outcome == o for v in verdicts)
             for o in ("answered", "refused", "noticed", "dropped")}
    ratio = served_ratio(per_learner)
    return {
        "questions": len(verdicts),
        **count,
        "dropped_turns": count["dropped"],
        "reply_start_p50_s": _r(percentile(latencies, 50)),
        "reply_start_p95_s": _r(percentile(latencies, 95)),
        "reply_start_max_s": _r(max(latencies)) if latencies else None,
        "served_min_max_ratio": _r(ratio),
        "served_min": min(per_learner) if per_learner else None,
        "served_max": max(per_learner) if per_learner else None,
    }


def verdict(name: str, value: Any) -> str:
    """``pass``, ``FAIL``, ``n/a`` (no value) or ``-`` (no target) for a figure."""
    target = TARGETS.get(name)
    if target is None:
        return "-"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    op, limit = target
    ok = value <= limit if op == "<=" else value >= limit
    return "pass" if ok else "FAIL"


def misses(figures: Mapping[str, Any]) -> list[str]:
    """The targets a phase's figures miss (a missing figure misses too: an unbounded
    fairness ratio, no answer to time)."""
    return [name for name in TARGETS if verdict(name, figures.get(name)) != "pass"]


def _cell(value: Any, width: int) -> str:
    if value is None:
        text = "-"
    elif isinstance(value, float):
        text = f"{value:.2f}"
    else:
        text = str(value)
    return f"{text:>{width}}"


TABLE_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("sessions", "sessions", 8), ("mode", "mode", 5), ("questions", "asked", 5),
    ("answered", "answd", 5), ("refused", "refsd", 5), ("noticed", "notcd", 5),
    ("dropped_turns", "dropd", 5), ("reply_start_p50_s", "p50_s", 6),
    ("reply_start_p95_s", "p95_s", 6), ("served_min_max_ratio", "ratio", 6),
    ("cpu_cores", "cores", 5), ("idle_cpu_cores", "idle", 5),
    ("capacity_2_free_cores_estimate", "cap2", 4), ("loop_lag_p95_ms", "lag95", 6),
)


def table(runs: Sequence[Mapping[str, Any]]) -> str:
    """The phases as a text table, one row each; a talk row at the target's session count
    ends with its verdict."""
    head = " ".join(f"{title:>{w}}" for _, title, w in TABLE_COLUMNS) + "  targets"
    lines = [head, "-" * len(head)]
    for run in runs:
        row = " ".join(_cell(run.get(key), w) for key, _, w in TABLE_COLUMNS)
        missed = misses(run)
        note = ("met" if not missed else "MISSED " + ",".join(missed)) \
            if run.get("mode") == "talk" else ""
        lines.append(f"{row}  {note}")
    return "\n".join(lines)


def breaks_at(runs: Sequence[Mapping[str, Any]], mode: Mode = "talk") -> int | None:
    """The fewest sessions at which a phase of ``mode`` misses a target (None: none did)."""
    missed = [int(r["sessions"]) for r in runs if r.get("mode") == mode and misses(r)]
    return min(missed) if missed else None


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def thread_group(name: str) -> str:
    """A thread's name without its pool number (``stt_0`` -> ``stt``, ``asyncio_3`` ->
    ``asyncio``, ``llm:SmolLM2-135M`` -> ``llm``)."""
    base = re.sub(r"[_-]\d+$", "", name)
    return base.split(":", 1)[0]


# ------------------------------------------------------------------ measuring helpers


class ThreadCPU:
    """CPU seconds per thread group of this process, from ``/proc/self/task/<tid>/stat``
    (threads Python started are known by name; the rest are "native")."""

    def __init__(self) -> None:
        self._tick = os.sysconf("SC_CLK_TCK")

    def snapshot(self) -> dict[int, tuple[str, float]]:
        names = {t.native_id: t.name for t in threading.enumerate() if t.native_id}
        out: dict[int, tuple[str, float]] = {}
        for tid_s in os.listdir("/proc/self/task"):
            tid = int(tid_s)
            try:
                with open(f"/proc/self/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the thread ended meanwhile
            cpu = (int(fields[11]) + int(fields[12])) / self._tick  # utime + stime
            out[tid] = (thread_group(names.get(tid, "native")), cpu)
        return out

    @staticmethod
    def delta(before: Mapping[int, tuple[str, float]],
              after: Mapping[int, tuple[str, float]]) -> dict[str, float]:
        groups: dict[str, float] = {}
        for tid, (name, cpu) in after.items():
            used = cpu - before.get(tid, (name, 0.0))[1]
            if used > 0:
                groups[name] = groups.get(name, 0.0) + used
        return groups


def cpu_pressure(text: str | None = None) -> float | None:
    """The share of the last 10 s in which some runnable task waited for a CPU, in percent
    (``some avg10`` of ``/proc/pressure/cpu``; None where the kernel does not report it): how
    busy the machine was, with other programs included."""
    if text is None:
        try:
            with open("/proc/pressure/cpu") as f:
                text = f.read()
        except OSError:
            return None
    for line in text.splitlines():
        if line.startswith("some "):
            fields = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
            try:
                return float(fields["avg10"])
            except (KeyError, ValueError):
                return None
    return None


def process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(slots=True)
class ReplyCall:
    """One run of the reply pipeline, with its milestones (``time.monotonic()``)."""

    reply_id: str | None
    context_key: str | None
    text: str
    started: float
    marks: dict[str, float] = field(default_factory=dict)
    ended: float | None = None
    status: str = "running"


class PipelineTap:
    """The reply pipeline (``perform``) with each call's milestones noted: where a reply's
    time goes (waiting for the shared LLM, its first token, first sentence, voice, render)."""

    def __init__(self, pipeline: Callable[..., Any]) -> None:
        self.pipeline = pipeline
        self.calls: list[ReplyCall] = []

    def by_reply(self) -> dict[str, ReplyCall]:
        """The last call of each reply id (a merged turn restarts its pipeline)."""
        return {c.reply_id: c for c in self.calls if c.reply_id is not None}

    async def __call__(self, persona: Any, **kwargs: Any) -> Any:
        call = ReplyCall(kwargs.get("reply_id"), kwargs.get("context_key"),
                         str(kwargs.get("text", "")), time.monotonic())
        self.calls.append(call)
        inner = kwargs.get("marks")

        def marks(name: str) -> None:
            call.marks.setdefault(name, time.monotonic())
            if inner is not None:
                inner(name)

        kwargs["marks"] = marks
        try:
            reply = await self.pipeline(persona, **kwargs)
        except asyncio.CancelledError:
            call.status = "cancelled"
            raise
        except Exception as e:
            call.status = f"failed: {type(e).__name__}"
            raise
        else:
            call.status = "done"
            return reply
        finally:
            call.ended = time.monotonic()


STAGES = ("heard", "pipeline", "llm_turn", "llm_first_token", "llm_first_sentence",
          "tts_first_audio", "first_clip", "on_air")


def breakdown(rows: Sequence[Mapping[str, float]]) -> dict[str, float | None]:
    """Median seconds from the end of speech to each stage, over answered questions."""
    return {stage: _r(percentile([r[stage] for r in rows if stage in r], 50))
            for stage in STAGES}


class LoopLag:
    """How late the event loop wakes (it sleeps 20 ms at a time and notes the overshoot),
    and where it was stuck: a watchdog thread samples the loop thread's stack whenever the
    loop has not woken for ``stall_s``."""

    def __init__(self, *, stall_s: float = 0.3) -> None:
        self.lags: list[float] = []
        self.stall_s = stall_s
        self.stalls: dict[str, int] = {}  # the loop thread's innermost frames -> samples
        self._beat = time.monotonic()
        self._loop_thread = threading.get_ident()
        self._stop = threading.Event()

    async def run(self) -> None:
        self._loop_thread = threading.get_ident()
        watchdog = threading.Thread(target=self._watch, name="bench-watchdog", daemon=True)
        watchdog.start()
        try:
            while True:
                t = time.monotonic()
                self._beat = t
                await asyncio.sleep(0.02)
                self.lags.append(time.monotonic() - t - 0.02)
        finally:
            self._stop.set()

    def _watch(self) -> None:
        import traceback

        while not self._stop.wait(0.1):
            if time.monotonic() - self._beat < self.stall_s:
                continue
            frame = sys._current_frames().get(self._loop_thread)
            if frame is None:
                continue
            stack = traceback.extract_stack(frame)[-4:]
            where = " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}"
                               for f in reversed(stack))
            self.stalls[where] = self.stalls.get(where, 0) + 1

    def top_stalls(self, n: int = 5) -> list[dict[str, Any]]:
        """Where the loop was stuck most often (samples every 0.1 s of a stall)."""
        ranked = sorted(self.stalls.items(), key=lambda kv: -kv[1])[:n]
        return [{"samples": k, "where": w} for w, k in ranked]


# ------------------------------------------------------------------ the learners


@dataclass(slots=True, eq=False)
class Recording:
    """A question as a browser's microphone sends it: 48 kHz mono int16, voiced part only."""

    text: str
    pcm: np.ndarray = field(repr=False)

    @property
    def frames(self) -> int:
        return math.ceil(len(self.pcm) / FRAME)

    def frame(self, i: int) -> np.ndarray:
        chunk = self.pcm[i * FRAME:(i + 1) * FRAME]
        if len(chunk) < FRAME:
            chunk = np.concatenate([chunk, np.zeros(FRAME - len(chunk), np.int16)])
        return chunk


def record_questions(texts: Sequence[str]) -> list[Recording]:
    """Blocking: each question voiced once by the embedded Piper voice, trimmed of Piper's
    own silence, at 48 kHz."""
    from avatar_engine.settings import VoiceSettings
    from avatar_engine.voice.piper import PiperTTS
    from bots.hearing.audio import resample

    tts = PiperTTS(settings=VoiceSettings())
    out = []
    for text in texts:
        speech = tts.synthesize(text)
        audio = np.asarray(speech.audio, np.float32).reshape(-1)
        loud = np.nonzero(np.abs(audio) > 0.02 * float(np.abs(audio).max(initial=0.0)))[0]
        keep = round(0.02 * speech.sample_rate)
        audio = audio[max(0, loud[0] - keep): loud[-1] + 1 + keep] if loud.size else audio
        up = resample(audio, speech.sample_rate, RATE)
        out.append(Recording(text, np.round(np.clip(up, -1.0, 1.0) * 32767).astype(np.int16)))
    return out


class Learner:
    """One simulated learner: when it speaks which recording; what it said, when."""

    def __init__(self, index: int, schedule: Sequence[float], recordings: Sequence[Recording],
                 noise: np.ndarray) -> None:
        self.index = index
        self.schedule = list(schedule)
        self.plan = [recordings[(index * 5 + k) % len(recordings)] for k in range(len(schedule))]
        self.noise = noise
        self.questions: list[Question] = []
        self.hearings: list[Hearing] = []
        self.starts: dict[str, float] = {}
        self.refusals: dict[str, str] = {}
        self.loose: list[tuple[float, str, str]] = []
        self.reply_ids: dict[str, str] = {}  # key -> the reply id that went on air
        self._start_frames: list[int] = []
        self._turn = 0  # the next question to send

    def plan_frames(self, t0: float) -> None:
        """Fix the questions' times from ``t0``: a question starts and ends when its first
        and last frame are due (when the browser sends them), however late the server
        reads them."""
        self._start_frames = [round(s / FRAME_S) for s in self.schedule]
        self.questions = [
            Question(self.index, n, rec.text, t0 + k * FRAME_S, t0 + (k + rec.frames) * FRAME_S)
            for n, (rec, k) in enumerate(zip(self.plan, self._start_frames, strict=True))]

    @property
    def done(self) -> bool:
        """Every question has been sent (read by the server)."""
        return self._turn >= len(self.plan)

    def frame(self, k: int) -> np.ndarray:
        """The microphone's ``k``-th frame since the phase started: its speech or noise."""
        if self._turn < len(self.plan) and k >= self._start_frames[self._turn]:
            rec = self.plan[self._turn]
            i = k - self._start_frames[self._turn]
            if i < rec.frames:
                if i == rec.frames - 1:
                    self._turn += 1
                return rec.frame(i)
        j = (k * FRAME + self.index * 7919) % (len(self.noise) - FRAME)
        return self.noise[j:j + FRAME]

    def verdicts(self, deadline: float) -> list[Verdict]:
        """What became of every question spoken (by the clock) before ``deadline``, sent
        or still waiting to be read."""
        spoken = [q for q in self.questions if q.ended_at <= deadline]
        return judge(spoken, self.hearings, starts=self.starts, refusals=self.refusals,
                     loose=self.loose, deadline=deadline)


class Microphones:
    """Every learner's microphone from one task, 20 ms frames in real time. When the loop
    is late, the frames due are sent one tick after another, the loop's other tasks running
    between ticks (as packets that waited in the socket are read one by one)."""

    def __init__(self, learners: Sequence[Learner],
                 send: Callable[[Learner, np.ndarray], None]) -> None:
        self.learners = learners
        self.send = send
        self.t0 = 0.0
        self.sent = 0
        self.failures = 0
        self.late_frames = 0
        self.send_cpu_s = 0.0  # CPU of the loop thread inside send (hear): VAD and all
        self.behind_s = 0.0  # how far behind the clock the frames being sent are (latest)
        self.behind_max_s = 0.0

    @property
    def cpu_ms_per_frame(self) -> float | None:
        return 1000 * self.send_cpu_s / self.sent if self.sent else None

    async def run(self, t0: float, until: float) -> None:
        """Send frames from ``t0`` until ``until`` (monotonic), then stop."""
        self.t0 = t0
        for learner in self.learners:
            learner.plan_frames(t0)
        k = 0
        while True:
            due = t0 + k * FRAME_S
            if due >= until:
                return
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            else:
                if now - due > 2 * FRAME_S:
                    self.late_frames += len(self.learners)
                await asyncio.sleep(0)  # behind: the rest of the loop still gets its turn
            self.behind_s = max(0.0, time.monotonic() - due)
            self.behind_max_s = max(self.behind_max_s, self.behind_s)
            c0 = time.thread_time()
            for learner in self.learners:
                try:
                    self.send(learner, learner.frame(k))
                except Exception:
                    self.failures += 1
                    if self.failures == 1:
                        logger.exception("learner %d: hear() failed", learner.index)
            self.send_cpu_s += time.thread_time() - c0
            self.sent += len(self.learners)
            k += 1


async def drain(viewer: Any) -> None:
    """Read a viewer's VP8 frames and Opus packets as aiortc's tracks would, until closed."""

    async def video() -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                await viewer.next_packet()

    async def audio() -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                await viewer.next_audio()

    async with asyncio.TaskGroup() as tg:
        tg.create_task(video(), name=f"bench:{viewer.name}:video")
        tg.create_task(audio(), name=f"bench:{viewer.name}:audio")


@dataclass(slots=True)
class Shared:
    """What every phase shares: the persona (models loaded once), hearing models, settings,
    the recordings."""

    persona: Any
    vad: Any
    stt: Any
    hearing: Any
    live: Any
    show: Any
    recordings: list[Recording]
    noise: np.ndarray


@dataclass(slots=True)
class PhasePlan:
    sessions: int
    turns: int
    period_s: float
    jitter_s: float
    grace_s: float
    seed: int


IDLE_S = 3.0  # seconds of microphones sending only noise before the first question


def make_learners(shared: Shared, plan: PhasePlan) -> list[Learner]:
    rng = random.Random(plan.seed * 1000 + plan.sessions)
    longest = max(r.frames for r in shared.recordings) * FRAME_S
    return [Learner(i, [IDLE_S + t for t in learner_schedule(
                rng, turns=plan.turns, period_s=plan.period_s, jitter_s=plan.jitter_s,
                min_gap_s=longest + 1.0)], shared.recordings, shared.noise)
            for i in range(plan.sessions)]


def capacity(*, sessions: int, idle_cores: float | None, loop_idle_cores: float | None,
             cpu_s_per_turn: float | None, period_s: float, cores: float = 2.0,
             loop_share: float = 0.8) -> int | None:
    """Sessions a free machine of ``cores`` could hold, from what one phase cost: each
    session's standing cost (stream, encoding, hearing noise) plus a turn every ``period_s``
    must fit in the cores, and the event loop's standing cost in ``loop_share`` of its one
    core. An estimate from CPU seconds, blind to latency: None without the figures."""
    if sessions < 1 or idle_cores is None or cpu_s_per_turn is None or loop_idle_cores is None:
        return None
    per_session = idle_cores / sessions + cpu_s_per_turn / period_s
    by_cores = cores / per_session if per_session > 0 else math.inf
    loop_per_session = loop_idle_cores / sessions
    by_loop = loop_share / loop_per_session if loop_per_session > 0 else math.inf
    best = min(by_cores, by_loop)
    return None if math.isinf(best) else int(best)


async def run_phase(mode: Mode, shared: Shared, plan: PhasePlan,
                    profiler: Any | None = None) -> dict[str, Any]:
    """One phase: ``plan.sessions`` learners, talk sessions or the show's queue."""
    learners = make_learners(shared, plan)
    tap = PipelineTap(_perform())
    lag = LoopLag()
    extra: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        if mode == "talk":
            send, closing = await _talk_setup(stack, shared, plan, learners, tap, extra)
        else:
            send, closing = await _show_setup(stack, shared, plan, learners, tap, extra)
        mics = Microphones(learners, send)
        speech_s = max(s[-1] for s in (lr.schedule for lr in learners)) + \
            max(r.frames for r in shared.recordings) * FRAME_S + 0.5
        await asyncio.sleep(1.0)  # streams started, encoders warm
        threads = ThreadCPU()
        cpu0, thr0, wall0 = process_cpu_s(), threads.snapshot(), time.monotonic()
        load0 = os.getloadavg()[0]
        pressure: list[float] = []
        polls = 0
        t0 = time.monotonic() + 0.1
        idle: dict[str, float] = {}

        async def idle_window() -> None:
            """The standing cost: everyone connected, nobody speaking yet."""
            c0, m0, w0 = process_cpu_s(), mics.send_cpu_s, time.monotonic()
            main0 = time.thread_time()  # this coroutine runs on the loop's thread
            await asyncio.sleep(max(0.0, t0 + IDLE_S - time.monotonic()))
            dt = time.monotonic() - w0
            idle.update(cores=(process_cpu_s() - c0) / dt, hear=(mics.send_cpu_s - m0) / dt,
                        loop=(time.thread_time() - main0) / dt)

        if profiler is not None:
            profiler.start()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(idle_window(), name="bench:idle-window")
            lag_task = tg.create_task(lag.run(), name="bench:loop-lag")
            mic_task = tg.create_task(mics.run(t0, t0 + speech_s + plan.grace_s),
                                      name="bench:microphones")
            spoken_end = t0 + speech_s
            while time.monotonic() < spoken_end + plan.grace_s:
                await asyncio.sleep(0.5)
                polls += 1
                if polls % 20 == 1 and (pct := cpu_pressure()) is not None:
                    pressure.append(pct)  # every 10 s
                now = time.monotonic()
                if now > spoken_end and all(lr.done for lr in learners) and not any(
                        v.outcome == "dropped" for lr in learners for v in lr.verdicts(now)):
                    break  # every question has its answer (or its refusal)
            deadline = time.monotonic()
            mic_task.cancel()
            lag_task.cancel()
        if profiler is not None:
            profiler.stop()
        wall = time.monotonic() - wall0
        cpu = process_cpu_s() - cpu0
        by_thread = ThreadCPU.delta(thr0, threads.snapshot())
        # Threads that ended during the phase (the LLM's, one per reply) took the rest.
        by_thread["ended threads"] = max(0.0, cpu - sum(by_thread.values()))
        load1 = os.getloadavg()[0]
        verdicts = [v for lr in learners for v in lr.verdicts(deadline)]
        extra.update(closing())
    figures = summarize(verdicts, plan.sessions)
    # CPU beyond the standing cost, per answered question (cancelled work included). On a
    # machine busy with other programs the process gets what it can, not what it needs:
    # then neither figure tells what the work costs, and no capacity is estimated from them.
    crowded = max(pressure, default=0.0) > 50.0
    turn_cpu = ((cpu - idle["cores"] * wall) / figures["answered"]
                if figures["answered"] and "cores" in idle else None)
    if turn_cpu is not None and turn_cpu <= 0:
        turn_cpu = None
    rows = _stage_rows(learners, verdicts, tap, extra.pop("heard_at", {}))
    consumer = ("one SharedVideoEncoder viewer per session: VP8 + Opus encoded per session, "
                "packets drained (no RTP/SRTP)") if mode == "talk" else (
                "one SharedVideoEncoder on the show's stream, one viewer per learner")
    return {
        "mode": mode,
        "sessions": plan.sessions,
        "turns_per_learner": plan.turns,
        **figures,
        "cpu_cores": _r(cpu / wall if wall > 0 else None, 2),
        "idle_cpu_cores": _r(idle.get("cores"), 3),
        "idle_loop_cores": _r(idle.get("loop"), 3),
        "idle_hear_cores": _r(idle.get("hear"), 3),
        "cpu_s_per_answered_turn": _r(turn_cpu, 2),
        "capacity_2_free_cores_estimate": None if crowded else capacity(
            sessions=plan.sessions, idle_cores=idle.get("cores"),
            loop_idle_cores=idle.get("loop"), cpu_s_per_turn=turn_cpu, period_s=plan.period_s),
        "capacity_note": "not estimated: the machine was busy with other programs (CPU "
                         "pressure above 50%)" if crowded else "from CPU seconds; blind to "
                                                               "latency",
        "cpu_by_thread_cores": {k: _r(v / wall, 3) for k, v in sorted(
            by_thread.items(), key=lambda kv: -kv[1])} if wall > 0 else {},
        "loop_lag_p95_ms": _r((percentile(lag.lags, 95) or 0.0) * 1000, 1),
        "loop_lag_max_ms": _r(max(lag.lags, default=0.0) * 1000, 1),
        "loop_stalls": lag.top_stalls(),
        "mic_frames_sent": mics.sent,
        "mic_frames_late": mics.late_frames,
        "mic_backlog_end_s": _r(mics.behind_s, 2),
        "mic_backlog_max_s": _r(mics.behind_max_s, 2),
        "hear_cpu_ms_per_frame": _r(mics.cpu_ms_per_frame, 3),
        "hear_cpu_cores": _r(mics.send_cpu_s / wall if wall > 0 else None, 3),
        "hear_failures": mics.failures,
        "wall_s": _r(wall, 1),
        "loadavg_1m": [_r(load0, 2), _r(load1, 2)],
        "cpu_pressure_pct": [_r(x, 1) for x in pressure],
        "stages_p50_s": breakdown(rows),
        "replies_started": len(tap.calls),
        "replies_cancelled": sum(c.status == "cancelled" for c in tap.calls),
        "replies_failed": sum(c.status.startswith("failed") for c in tap.calls),
        "stream_consumed_by": consumer,
        **extra,
        "questions_detail": _details(learners, verdicts),
    }


def _details(learners: Sequence[Learner], verdicts: Sequence[Verdict]) -> list[dict[str, Any]]:
    """Each question: what was asked, what was heard under the key that answered it, what
    became of it."""
    asked = {(q.learner, q.index): q.text for lr in learners for q in lr.questions}
    heard = {(lr.index, h.key): h.text for lr in learners for h in lr.hearings}
    return [{**asdict(v), "reply_start_s": _r(v.reply_start_s),
             "question": asked.get((v.learner, v.index)),
             "heard": heard.get((v.learner, v.key)) if v.key is not None else None}
            for v in verdicts]


def _perform() -> Callable[..., Any]:
    from bots.orchestrator.pipeline import perform

    return perform


def _stage_rows(learners: Sequence[Learner], verdicts: Sequence[Verdict], tap: PipelineTap,
                heard_at: Mapping[tuple[int, str], float]) -> list[dict[str, float]]:
    """Per answered question: seconds from the end of speech to each milestone of the reply
    that answered it."""
    ends = {(q.learner, q.index): q.ended_at for lr in learners for q in lr.questions}
    reply_of: dict[tuple[int, str], str] = {}
    for lr in learners:
        for key, rid in lr.reply_ids.items():
            reply_of[(lr.index, key)] = rid
    calls = tap.by_reply()
    rows = []
    for v in verdicts:
        if v.outcome != "answered" or v.key is None or v.reply_start_s is None:
            continue
        end = ends[(v.learner, v.index)]
        row: dict[str, float] = {"on_air": v.reply_start_s}
        if (v.learner, v.key) in heard_at:
            row["heard"] = heard_at[(v.learner, v.key)] - end
        call = calls.get(reply_of.get((v.learner, v.key), v.key))
        if call is not None:
            row["pipeline"] = call.started - end
            for name, at in call.marks.items():
                if name in STAGES:
                    row[name] = at - end
        rows.append(row)
    return rows


# ------------------------------------------------------------------ talk: private sessions


async def _talk_setup(stack: contextlib.AsyncExitStack, shared: Shared, plan: PhasePlan,
                      learners: list[Learner], tap: PipelineTap,
                      extra: dict[str, Any]) -> tuple[Callable[[Learner, np.ndarray], None],
                                                      Callable[[], dict[str, Any]]]:
    from bots.orchestrator.fairshare import FairShare
    from bots.talk.hub import TalkHub
    from bots.talk.settings import TalkSettings
    from overlays.live.encoder import SharedVideoEncoder

    fair = FairShare(slots=1)
    pid = shared.persona.id
    hub = TalkHub(personas={pid: shared.persona},
                  settings=TalkSettings(max_sessions=max(plan.sessions, 1)),
                  hearing=shared.hearing, live=shared.live, fair=fair, pipeline=tap,
                  vad=shared.vad, stt=shared.stt)
    await stack.enter_async_context(hub)
    tasks: list[asyncio.Task[Any]] = []
    sessions: dict[int, Any] = {}
    heard_at: dict[tuple[int, str], float] = {}
    encoders: list[Any] = []
    viewers: list[Any] = []
    t_open = time.monotonic()
    for lr in learners:
        session = await hub.open(pid)
        sessions[lr.index] = session
        encoder = SharedVideoEncoder(stream=session.stream, settings=shared.live)
        await stack.enter_async_context(encoder)
        encoders.append(encoder)
        viewer = encoder.add_viewer(f"learner{lr.index}")
        viewers.append(viewer)
        changes: list[tuple[float, str, int]] = []

        def on_sentence(change: Any, changes: list[tuple[float, str, int]] = changes) -> None:
            if change.reply_id is not None:
                changes.append((change.at, change.reply_id, change.sentence))

        session.stream.on_sentence(on_sentence)
        tasks.append(asyncio.create_task(drain(viewer), name=f"bench:learner{lr.index}:drain"))
        tasks.append(asyncio.create_task(
            _read_messages(session, lr, changes, heard_at),
            name=f"bench:learner{lr.index}:messages"))
    extra["open_s"] = _r(time.monotonic() - t_open, 2)

    async def stop_tasks() -> None:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    stack.push_async_callback(stop_tasks)

    def send(learner: Learner, frame: np.ndarray) -> None:
        sessions[learner.index].hear(frame)

    def closing() -> dict[str, Any]:
        served = [fair.served.get(f"talk:{s.id}", 0) for s in sessions.values()]
        return {
            "heard_at": heard_at,
            "merges": sum(s.merges for s in sessions.values()),
            "interruptions": sum(s.interruptions for s in sessions.values()),
            "echo_frames": sum(s.echo_frames for s in sessions.values()),
            "llm_turns_min_max": [min(served, default=0), max(served, default=0)],
            "stream_ticks_per_session_min": min((s.stream.ticks for s in sessions.values()),
                                                default=0),
            "stream_rebased": sum(s.stream.rebased for s in sessions.values()),
            "viewer_lagged": sum(v.lagged for v in viewers),
            "encoded_ticks": sum(e.ticks for e in encoders),
        }

    return send, closing


async def _read_messages(session: Any, learner: Learner,
                         changes: list[tuple[float, str, int]],
                         heard_at: dict[tuple[int, str], float]) -> None:
    """A page's websocket: the session's messages, noted as the learner's hearings, answer
    starts (the stream tick that made each ``said``), refusals and notices."""
    async for msg in session.subscribe():
        now = time.monotonic()
        kind = msg.get("type")
        turn = msg.get("turn")
        key = None if turn is None else str(turn)
        if kind == "heard" and key is not None:
            learner.hearings.append(Hearing(now, str(msg.get("text", "")), key))
            heard_at.setdefault((learner.index, key), now)
        elif kind == "said" and key is not None and key not in learner.starts:
            # The sentence started to play: the stream's tick that carried it was released
            # just before (the message comes from the stream's own sentence hook).
            # (the one of this sentence's index, if a later one is already out too).
            on_air = [c for c in changes if c[0] <= now]
            same = [c for c in on_air if c[2] == msg.get("index")]
            pick = same[-1] if same else on_air[-1] if on_air else None
            learner.starts[key] = pick[0] if pick else now
            if pick is not None:
                learner.reply_ids[key] = pick[1]
        elif kind == "refused":
            reason = str(msg.get("reason", ""))
            if key is not None:
                learner.refusals[key] = reason
            else:
                learner.loose.append((now, "refused", reason))
        elif kind == "notice":
            learner.loose.append((now, "notice",
                                  f"{msg.get('level', 'info')}: {msg.get('text', '')}"))


# ------------------------------------------------------------------ show: the old way


class _BenchAdapter:
    """The learners' platform as the orchestrator sees it: it gets each event's outcome."""

    platform = "bench"

    def __init__(self, on_outcome: Callable[[Any], None]) -> None:
        self.on_outcome = on_outcome
        self.outcomes = 0
        self.sink: Any = None

    def bind(self, sink: Any) -> None:
        self.sink = sink

    async def __aenter__(self) -> _BenchAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def deliver(self, outcome: Any) -> None:
        self.outcomes += 1
        self.on_outcome(outcome)


async def _show_setup(stack: contextlib.AsyncExitStack, shared: Shared, plan: PhasePlan,
                      learners: list[Learner], tap: PipelineTap,
                      extra: dict[str, Any]) -> tuple[Callable[[Learner, np.ndarray], None],
                                                      Callable[[], dict[str, Any]]]:
    from bots.events import Viewer
    from bots.hearing.listener import Heard, Listener
    from bots.orchestrator.orchestrator import Orchestrator
    from overlays.live.encoder import SharedVideoEncoder
    from overlays.live.stage import LiveStage
    from overlays.live.stream import LiveStream

    persona = shared.persona
    pid = persona.id
    live = shared.live
    # Learners reuse 16 recordings: the spam filter would refuse the same words from another
    # learner within 30 s. People ask different things; turn it off for the comparison.
    config = persona.config
    persona.config = config.model_copy(update={
        "queue": config.queue.model_copy(update={"duplicate_window_s": 0.0})})
    stack.callback(setattr, persona, "config", config)
    stream = await stack.enter_async_context(LiveStream(
        persona=pid, performer=persona.performer, sample_rate=live.sample_rate,
        lead_frames=live.lead_frames, idle_batch=live.idle_batch, max_late_s=live.max_late_s))
    encoder = await stack.enter_async_context(SharedVideoEncoder(stream=stream, settings=live))
    tasks = [asyncio.create_task(drain(encoder.add_viewer(f"learner{lr.index}")),
                                 name=f"bench:learner{lr.index}:drain") for lr in learners]
    by_viewer = {f"learner{lr.index}": lr for lr in learners}
    by_key: dict[str, Learner] = {}  # trace id -> whose utterance

    def on_sentence(change: Any) -> None:
        lr = by_key.get(change.reply_id) if change.reply_id is not None else None
        if lr is not None and change.reply_id not in lr.starts:
            lr.starts[change.reply_id] = change.at
            lr.reply_ids[change.reply_id] = change.reply_id

    def on_outcome(outcome: Any) -> None:
        key = outcome.event.trace_id
        lr = by_key.get(key)
        if lr is not None and outcome.status != "spoken" and key not in lr.starts:
            lr.refusals.setdefault(key, f"{outcome.status}: {outcome.reason}")

    stream.on_sentence(on_sentence)
    adapter = _BenchAdapter(on_outcome)
    orch = Orchestrator(personas={pid: persona}, stages=[LiveStage({pid: stream})],
                        default_persona=pid, adapters=[adapter], greet=False,
                        lookahead=shared.show.lookahead, pipeline=tap)
    await stack.enter_async_context(orch)
    heard_at: dict[tuple[int, str], float] = {}
    rejected: list[str] = []

    def on_heard(h: Heard) -> None:
        lr = by_viewer.get(h.utterance.viewer.id)
        if lr is None:
            return
        now = time.monotonic()
        key = h.utterance.trace_id
        by_key[key] = lr
        lr.hearings.append(Hearing(now, h.utterance.message, key))
        heard_at[(lr.index, key)] = now
        decision = orch.submit(h.utterance)
        if not decision.accepted:
            lr.refusals[key] = f"rejected: {decision.reason}"
            rejected.append(decision.reason or "")

    listener = Listener(settings=shared.hearing, on_heard=on_heard, platform="bench",
                        language=persona.config.language, persona=pid, vad=shared.vad,
                        stt=shared.stt)
    await stack.enter_async_context(listener)
    viewers = {lr.index: Viewer(id=f"learner{lr.index}", name=f"Learner {lr.index}")
               for lr in learners}

    async def stop_tasks() -> None:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    stack.push_async_callback(stop_tasks)

    def send(learner: Learner, frame: np.ndarray) -> None:
        listener.feed(viewers[learner.index], np.repeat(frame, 2).astype("<i2").tobytes())

    def closing() -> dict[str, Any]:
        return {"outcomes": adapter.outcomes, "heard_at": heard_at,
                "queue_left": orch.queue_length(pid),
                "submits_rejected": len(rejected),
                "rejected_reasons": sorted(set(rejected))[:5],
                "stream_rebased": stream.rebased}

    return send, closing


# ------------------------------------------------------------------ the run


def pin_cores(n: int = 2) -> list[int]:
    """Run on ``n`` cores (the first this process may use), as on the issue's machine."""
    cores = sorted(os.sched_getaffinity(0))[:n]
    os.sched_setaffinity(0, cores)
    return cores


async def load_shared(persona_id: str, questions: Sequence[str] = QUESTIONS, *,
                      warm_up: bool = True) -> tuple[Shared, contextlib.AsyncExitStack, float]:
    """The persona on the app's render pool, the hearing models, the recordings."""
    from avatar_engine.workers import LocalRenderPool
    from bots.app import load_personas
    from bots.config import load_config
    from bots.hearing.settings import HearingSettings
    from bots.hearing.stt import WhisperSTT
    from bots.hearing.vad import SileroVAD
    from bots.orchestrator.pipeline import perform

    t0 = time.monotonic()
    stack = contextlib.AsyncExitStack()
    cfg = load_config(ROOT / "config")
    pool = await stack.enter_async_context(
        LocalRenderPool(workers=cfg.app.show.render_workers))
    personas = await load_personas(cfg, [persona_id], pool=pool)
    persona = personas[persona_id]
    stack.push_async_callback(persona.aclose)
    hearing = HearingSettings()
    vad = await asyncio.to_thread(SileroVAD)
    stt = await asyncio.to_thread(WhisperSTT, settings=hearing,
                                  languages=(persona.config.language,))
    await asyncio.to_thread(stt.transcribe, np.zeros(16000, np.float32),
                            language=persona.config.language)
    if warm_up:  # first-call costs out of the way
        await perform(persona, viewer="bench", text="Hello!")
        persona.conversations.clear()
    recordings = await asyncio.to_thread(record_questions, questions)
    noise = np.round(np.random.default_rng(5).normal(0.0, NOISE_RMS, RATE)).astype(np.int16)
    shared = Shared(persona=persona, vad=vad, stt=stt, hearing=hearing, live=cfg.app.live,
                    show=cfg.app.show, recordings=recordings, noise=noise)
    return shared, stack, time.monotonic() - t0


async def bench(sessions: Sequence[int], *, turns: int, period_s: float = 10.0,
                jitter_s: float = 2.0, grace_s: float = 20.0,
                modes: Sequence[Mode] = MODES, persona: str = "mika", seed: int = 7,
                profile: bool = False, quick: bool = False,
                questions: Sequence[str] = QUESTIONS, warm_up: bool = True
                ) -> dict[str, Any]:
    """Every phase: for each session count, each mode; returns the result document."""
    if not sessions or any(n < 1 for n in sessions):
        raise ValueError(f"session counts must be 1 or more, got {list(sessions)}")
    if turns < 1:
        raise ValueError(f"turns must be 1 or more, got {turns}")
    load_before = os.getloadavg()
    if not questions:
        raise ValueError("at least one question is needed")
    if unknown := [m for m in modes if m not in MODES]:
        raise ValueError(f"unknown modes {unknown}: expected some of {', '.join(MODES)}")
    shared, stack, load_s = await load_shared(persona, questions, warm_up=warm_up)
    runs: list[dict[str, Any]] = []
    profiled = None
    async with stack:
        for n in sessions:
            for mode in modes:
                profiler = None
                if profile and mode == "talk" and profiled is None:
                    from pyinstrument import Profiler

                    profiler = Profiler(interval=0.002, async_mode="disabled")
                    profiled = n
                plan = PhasePlan(n, turns, period_s, jitter_s, grace_s, seed)
                print(f"{mode}: {n} learner(s), {turns} question(s) each ...", flush=True)
                run = await run_phase(mode, shared, plan, profiler)
                runs.append(run)
                print(table([run]).splitlines()[-1], flush=True)
                if profiler is not None:
                    PROFILE.parent.mkdir(parents=True, exist_ok=True)
                    PROFILE.write_text(profiler.output_text(unicode=False, color=False,
                                                            show_all=False))
                shared.persona.conversations.clear()
                await asyncio.sleep(1.0)
    return result_document(runs, quick=quick, load_s=load_s, load_before=load_before,
                           persona=persona, period_s=period_s, grace_s=grace_s,
                           profiled=profiled)


def result_document(runs: list[dict[str, Any]], *, quick: bool, load_s: float,
                    load_before: tuple[float, float, float], persona: str, period_s: float,
                    grace_s: float, profiled: int | None) -> dict[str, Any]:
    """The JSON written: the target figures at TARGET_SESSIONS (or the nearest talk phase)
    first, then every phase."""
    talk = [r for r in runs if r["mode"] == "talk"]
    show = {r["sessions"]: r for r in runs if r["mode"] == "show"}
    head = min(talk, key=lambda r: abs(r["sessions"] - TARGET_SESSIONS)) if talk else None
    top: dict[str, Any] = {}
    if head is not None:
        top = {"sessions": head["sessions"], **{k: head[k] for k in TARGETS}}
        old = show.get(head["sessions"])
        if old is not None:
            top["show_reply_start_p50_s"] = old["reply_start_p50_s"]
            top["show_dropped_turns"] = old["dropped_turns"]
            top["show_served_min_max_ratio"] = old["served_min_max_ratio"]
            a, b = old["reply_start_p50_s"], head["reply_start_p50_s"]
            top["p50_speedup_over_show"] = _r(a / b) if a and b else None
    return {
        **top,
        "verdicts": {k: verdict(k, top.get(k)) for k in TARGETS} if top else {},
        "targets": {k: f"{op} {v:g} at {TARGET_SESSIONS} sessions"
                    for k, (op, v) in TARGETS.items()},
        "breaks_at_sessions": breaks_at(runs),
        "runs": runs,
        "quick": quick,
        "persona": persona,
        "question_period_s": period_s,
        "grace_s": grace_s,
        "profiled_sessions": profiled,
        "load_s": _r(load_s, 1),
        "cores": sorted(os.sched_getaffinity(0)),
        "loadavg_before": [round(x, 2) for x in load_before],
        "host": platform.node(),
        "python": platform.python_version(),
        "notes": "talk: private sessions through TalkHub (FairShare turns on the one LLM); "
                 "show: the same questions as Utterances through the Orchestrator's single "
                 "persona queue (barge-in and the duplicate filter off). reply_start: end of "
                 "the learner's speech -> first tick of the answer released by the stream the "
                 "learner watches.",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="10 sessions, 2 questions each (under ~3 minutes)")
    parser.add_argument("--sessions", default=None,
                        help="comma-separated session counts (default 10,20,40; quick: 10)")
    parser.add_argument("--turns", type=int, default=None,
                        help="questions per learner (default 4; quick: 2)")
    parser.add_argument("--period", type=float, default=10.0,
                        help="seconds between a learner's questions (jittered by +-2 s)")
    parser.add_argument("--grace", type=float, default=None,
                        help="seconds after the last question for answers (default 20; "
                             "quick: 15)")
    parser.add_argument("--modes", default="talk,show",
                        help="talk (private sessions), show (the public show's queue)")
    parser.add_argument("--persona", default="mika")
    parser.add_argument("--profile", action="store_true",
                        help=f"pyinstrument profile of the first talk phase -> "
                             f"{PROFILE.relative_to(ROOT)}")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        sessions = [int(s) for s in (args.sessions or ("10" if args.quick else "10,20,40"))
                    .split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sessions takes numbers separated by commas, got {args.sessions!r}")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        if m not in MODES:
            parser.error(f"--modes: {m!r} is not one of {', '.join(MODES)}")
    cores = pin_cores(2)
    t0 = time.monotonic()
    result = asyncio.run(bench(
        sessions, turns=args.turns or (2 if args.quick else 4), period_s=args.period,
        grace_s=args.grace if args.grace is not None else (15.0 if args.quick else 20.0),
        modes=modes, persona=args.persona, profile=args.profile,
        quick=args.quick))
    result["cores"] = cores
    result["total_s"] = round(time.monotonic() - t0, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(table(result["runs"]))
    for run in result["runs"]:
        print(f"{run['mode']:>5} x{run['sessions']:<3} stages p50 (s after speech end): "
              f"{run['stages_p50_s']}")
        print(f"{'':>10}cpu by thread (cores): {run['cpu_by_thread_cores']}")
    print(f"stream consumed by: {result['runs'][0]['stream_consumed_by']}")
    missed = [k for k, v in result["verdicts"].items() if v != "pass"]
    print(f"at {result.get('sessions')} sessions: "
          + ("targets met" if not missed else f"TARGETS MISSED: {', '.join(missed)}"))
    print(f"breaks at: {result['breaks_at_sessions']} sessions; "
          f"written to {RESULTS.relative_to(ROOT)} in {result['total_s']} s")


if __name__ == "__main__":
    main()
