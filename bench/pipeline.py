#!/usr/bin/env python
"""Benchmark of the whole reply path on the embedded default (issue #2).

Streaming (sentence by sentence, stages overlapping) against the naive way (whole reply,
then all TTS, then all render), same prompts, same persona, same run. Both end with each
sentence's frames in hand (a Performance): clip files are made downstream by the stages that
need them, so ``clip_realtime_factor`` (render + encode) is reported apart. Prints a table and
writes bench/results/pipeline.json.

    .venv/bin/python bench/pipeline.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # the repo, not bench/ (whose file names may shadow modules)

from avatar_engine.clips.encode import encode_clip  # noqa: E402
from avatar_engine.performer.render import render_speech  # noqa: E402
from avatar_engine.types import PhonemeTiming, Speech  # noqa: E402
from bots.app import load_personas  # noqa: E402
from bots.brain.base import stream_with_retry  # noqa: E402
from bots.brain.sentences import ReplyBudget, SentenceCutter, speakable  # noqa: E402
from bots.config import load_config  # noqa: E402
from bots.orchestrator.pipeline import perform  # noqa: E402
from bots.personas.prompt import build_messages  # noqa: E402

PROMPTS = [
    "Hi Mika! What game should we play tonight, and why?",
    "Tell me about your favourite snack and how you eat it.",
    "What would you do on a rainy Sunday afternoon?",
    "Can you give me a tip for staying focused while studying?",
    "What is the best part of streaming with your chat?",
    "If you could visit any city tomorrow, where would you go?",
    "How do you cheer yourself up after losing a hard game?",
]


async def sequential(persona, prompt: str) -> tuple[float, int]:
    """The naive path: whole reply, then whole TTS, then every sentence rendered."""
    t0 = time.monotonic()
    cfg = persona.config.llm
    cutter = SentenceCutter(language=persona.config.language)
    budget = ReplyBudget(max_pieces=cfg.max_sentences, max_chars=cfg.max_chars)
    text = ""
    async for delta in stream_with_retry(persona.llm, build_messages(
            persona.config, (), "viewer", prompt)):
        text += delta
    pieces = []
    for raw in [*cutter.push(text), cutter.flush()]:
        if raw and (p := speakable(raw)) and (p := budget.admit(p)):
            pieces.append(p)
    speeches = [await asyncio.to_thread(persona.tts.synthesize, p) for p in pieces]

    def render_all():
        for s in speeches:
            render_speech(persona.renderer, s, 0)  # the performers' render function

    await asyncio.to_thread(render_all)
    return time.monotonic() - t0, len(pieces)


def synthetic_speech(seconds: float) -> Speech:
    sr = 22050
    t = np.arange(int(seconds * sr)) / sr
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(
        np.float32)
    cycle = ["h", "ə", "l", "o", "m", "a", "p", "i", "f", "u", " ", "t", "ɛ", "s"]
    step = 0.08
    phonemes = tuple(PhonemeTiming(cycle[i % len(cycle)], i * step, (i + 1) * step)
                     for i in range(int(seconds / step)))
    return Speech(text="synthetic", audio=audio, sample_rate=sr, phonemes=phonemes)


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer prompts (< 1 minute)")
    args = ap.parse_args()
    prompts = PROMPTS[:3] if args.quick else PROMPTS

    config = load_config(ROOT / "config")
    base = config.persona()
    # Temperature 0: both ways get the same reply for the same prompt, so they compare fairly.
    persona_cfg = base.model_copy(update={"llm": base.llm.model_copy(update={"temperature": 0.0,
                                                                             "history_turns": 0})})
    config.personas[base.id] = persona_cfg
    t = time.monotonic()
    persona = (await load_personas(config, [base.id]))[base.id]
    load_s = time.monotonic() - t
    persona.conversations.clear()
    await perform(persona, viewer="viewer", text="warm up")  # first-call costs out of the way

    stream_first, seq_first, pieces, stream_total = [], [], [], []
    for prompt in prompts:
        reply = await perform(persona, viewer="viewer", text=prompt)
        persona.conversations.clear()
        stream_first.append(reply.trace.since_start("first_clip"))
        stream_total.append(reply.trace.since_start("done"))
        s, n = await sequential(persona, prompt)
        seq_first.append(s)
        pieces.append(n)

    # Compositing only: a 10 s clip, warm cache.
    speech = synthetic_speech(10.0)
    persona.renderer.render(speech)
    runs = []
    for _ in range(3 if args.quick else 5):
        t = time.perf_counter()
        frames = persona.renderer.render(speech, start_frame=1000)
        runs.append(frames.shape[0] / (time.perf_counter() - t))
    render_fps = statistics.median(runs)

    # TTS real-time factor and clip real-time factor (render + encode) on real speech.
    text = "Thanks for the follow, it really means a lot to me and the whole chat tonight."
    tts_runs, clip_runs = [], []
    for _ in range(2 if args.quick else 4):
        t = time.perf_counter()
        sp = persona.tts.synthesize(text)
        tts_runs.append((time.perf_counter() - t) / sp.duration)
        t = time.perf_counter()
        frames = persona.renderer.render(sp)
        encode_clip(frames=frames, audio=sp.audio, sample_rate=sp.sample_rate,
                    fps=persona.renderer.fps, out_base=persona.clips_dir / "bench-rtf",
                    formats=persona.clip_settings.formats)
        clip_runs.append(frames.shape[0] / persona.renderer.fps / (time.perf_counter() - t))

    ttfc = statistics.median(stream_first)
    seq = statistics.median(seq_first)
    result = {
        "time_to_first_clip_s": round(ttfc, 3),
        "sequential_first_clip_s": round(seq, 3),
        "speedup": round(seq / ttfc, 2),
        "stream_reply_done_s": round(statistics.median(stream_total), 3),
        "sentences_per_reply": round(statistics.mean(pieces), 2),
        "render_fps": round(render_fps, 1),
        "clip_realtime_factor": round(statistics.median(clip_runs), 2),
        "tts_rtf": round(statistics.median(tts_runs), 3),
        "model_load_s": round(load_s, 2),
        "prompts": len(prompts),
        "formats": list(persona.clip_settings.formats),
        "device": str(persona.renderer.device),
        "frame_size": list(frames.shape[1:3]),
    }
    targets = {"time_to_first_clip_s": ("<=", 1.0), "speedup": (">=", 2.0),
               "render_fps": (">=", 1000), "clip_realtime_factor": (">=", 3.0)}
    print(f"\n{'metric':28} {'value':>10}  target")
    for k, v in result.items():
        tgt = targets.get(k)
        mark = ""
        if tgt:
            ok = v <= tgt[1] if tgt[0] == "<=" else v >= tgt[1]
            mark = f"{tgt[0]} {tgt[1]}  {'ok' if ok else 'MISSED'}"
        print(f"{k:28} {v!s:>10}  {mark}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "pipeline.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out / 'pipeline.json'}")
    await persona.aclose()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
