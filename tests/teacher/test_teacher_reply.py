"""A teacher persona end to end: the real orchestrator and reply pipeline, the real OpenAI
client against a scripted OpenAI-compatible server (the one place a scripted LLM is fine: it
checks our parsing and display, not the model). Corrections and glosses reach the transcript
event and the adapter's outcome, never the voice; ``!slower`` replays the last reply slower
without asking the LLM; the level sets the rate."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from avatar_engine.settings import ClipSettings
from avatar_engine.types import Speech
from bots.brain.openai import OpenAILLM
from bots.brain.settings import LLMSettings
from bots.config import PersonaConfig
from bots.events import Outcome
from bots.orchestrator.orchestrator import Orchestrator
from bots.personas.runtime import PersonaRuntime
from overlays.stage import ChatShown, Performed, ReplyFinished, StageEvent, Transcript
from tests.netutil import free_port
from tests.orchestrator.fakes import FakeAdapter, TinyRenderer, chat


class ScriptedChat:
    """An OpenAI-compatible ``/v1/chat/completions`` that streams the next scripted reply in
    small deltas as server-sent events, as the API reference documents the stream
    (``chat.completion.chunk`` objects, then ``data: [DONE]``). Records each request body."""

    def __init__(self, replies: list[str], *, delta_chars: int = 3) -> None:
        self.replies = list(replies)
        self.delta_chars = delta_chars
        self.requests: list[dict[str, Any]] = []

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        text = self.replies.pop(0)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        pieces = [text[i:i + self.delta_chars] for i in range(0, len(text), self.delta_chars)]
        for i, piece in enumerate(pieces):
            chunk = {
                "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": None,
                             "delta": {"role": "assistant", "content": piece} if i == 0
                             else {"content": piece}}],
            }
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        done = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await resp.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
        await resp.write_eof()
        return resp


class PacedVoice:
    """A voice of our TTS base that takes a per-call speed: a tone of 0.3 s per sentence at the
    voice's natural pace (longer when slower). Records what it was asked to say."""

    sample_rate = 16000

    def __init__(self) -> None:
        self.said: list[tuple[str, float | None]] = []

    def synthesize(self, text: str, *, speed: float | None = None) -> Speech:
        self.said.append((text, speed))
        n = int(self.sample_rate * 0.3 / (speed or 1.0))
        t = np.arange(n, dtype=np.float32) / self.sample_rate
        audio = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
        return Speech(text=text, audio=audio, sample_rate=self.sample_rate)


class Recorder:
    """A stage that keeps what a chat log would show."""

    name = "recorder"
    wants: frozenset[type[StageEvent]] = frozenset(
        {ChatShown, Performed, ReplyFinished, Transcript})

    def __init__(self) -> None:
        self.events: list[StageEvent] = []

    async def handle(self, event: StageEvent) -> None:
        self.events.append(event)

    def transcripts(self) -> list[Transcript]:
        return [e for e in self.events if isinstance(e, Transcript)]

    def heard(self, reply_id: str) -> list[Performed]:
        return [e for e in self.events if isinstance(e, Performed) and e.reply_id == reply_id]


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[ScriptedChat, str]]:
    server = ScriptedChat([])
    app = web.Application()
    app.router.add_post("/v1/chat/completions", server.completions)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield server, f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


def teacher(pid: str, tmp: Path, base_url: str, voice: PacedVoice, *, language: str,
            level: str, correction: str = "explicit"):
    """A teacher persona whose brain is the real OpenAI client pointed at ``base_url``."""
    settings = LLMSettings(provider="openai", model="scripted", base_url=base_url,
                           max_sentences=4)
    cfg = PersonaConfig.model_validate({
        "id": pid, "name": "Lena", "language": language, "personality": "A patient teacher.",
        "llm": settings.model_dump(),
        # As the shipped teachers (config/personas/lena.yaml): a lesson is a run of quick
        # turns, and "!slower" may come right after an answer, or twice.
        "queue": {"user_cooldown_s": 0, "duplicate_window_s": 0},
        "teacher": {"target_language": language, "learner_language": "en", "level": level,
                    "correction": correction},
    })
    folder = tmp / pid
    folder.mkdir(parents=True, exist_ok=True)
    return PersonaRuntime(config=cfg, llm=OpenAILLM(settings=settings), tts=voice,
                          renderer=TinyRenderer(), clips_dir=folder,
                          clip_settings=ClipSettings(formats=("mp4",)))


async def until(predicate, within_s: float = 30.0) -> None:
    async with asyncio.timeout(within_s):
        while not predicate():  # noqa: ASYNC110 - polls what the stages and adapter recorded
            await asyncio.sleep(0.02)


def norm(text: str) -> str:
    """French typography's space before ! ? : ; may or may not survive speech cleaning."""
    return re.sub(r"\s+([!?:;])", r"\1", text)


def spoken(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.status == "spoken"]


@pytest.mark.parametrize(("language", "reply", "answer", "correction", "gloss"), [
    ("de",
     "[correction] Ich habe Hunger.\nSuper! Ich habe auch Hunger. Was isst du gern?\n"
     "[gloss] Great! I'm hungry too. What do you like to eat?",
     ["Super!", "Ich habe auch Hunger.", "Was isst du gern?"],
     "Ich habe Hunger.", "Great! I'm hungry too. What do you like to eat?"),
    ("fr",
     "Correction : Je suis allée au marché.\nTrès bien ! Qu'est-ce que tu as acheté ?\n"
     "Traduction : Very good! What did you buy?",
     ["Très bien !", "Qu'est-ce que tu as acheté ?"],
     "Je suis allée au marché.", "Very good! What did you buy?"),
])
async def test_notes_land_in_the_transcript_and_outcome_never_in_the_audio(
        tmp_path, scripted, language, reply, answer, correction, gloss):
    server, url = scripted
    server.replies.append(reply)
    voice, stage, adapter = PacedVoice(), Recorder(), FakeAdapter()
    p = teacher("lena", tmp_path, url, voice, language=language, level="A2")
    async with Orchestrator(personas={"lena": p}, stages=[stage], default_persona="lena",
                            adapters=[adapter], greet=False, lookahead=0) as orch:
        event = chat("ann", "Ich bin Hunger. What does your answer mean in English?")
        d = orch.submit(event)
        assert d.accepted, d.reason
        await until(lambda: spoken(adapter.outcomes))
        await until(lambda: stage.transcripts())

    # The voice was asked for the answer's sentences only: no tag, no correction, no gloss.
    said = [norm(text) for text, _ in voice.said]
    answer = [norm(a) for a in answer]
    assert said == answer
    for text in said:
        assert "[" not in text and "Hunger." != text
        assert gloss.split()[0].rstrip("!") not in text  # "Great" / "Very"
    assert correction not in " ".join(said)
    # The stages heard exactly those sentences.
    heard = [norm(e.performance.speech.text) for e in stage.heard(event.trace_id)]
    assert heard == answer
    # The transcript has both sides and the notes.
    (tr,) = stage.transcripts()
    assert tr.said == event.text and tr.user == "ann" and tr.platform == "test"
    assert norm(tr.answer) == " ".join(answer)
    assert tr.correction == correction and tr.gloss == gloss
    assert tr.language == language and not tr.replay
    # So does the outcome the adapter posts in its chat.
    (out,) = spoken(adapter.outcomes)
    assert norm(out.reply_text or "") == " ".join(answer)
    assert (out.correction, out.gloss) == (correction, gloss)
    # The model was told how to teach.
    system = server.requests[0]["messages"][0]["content"]
    assert "A2" in system and "[correction]" in system
    assert "asked for a translation" in system  # "what does your answer mean in English?"


async def test_correction_off_drops_a_correction_the_model_wrote_anyway(
        tmp_path, scripted):
    server, url = scripted
    server.replies.append("Korrektur: Ich habe Hunger.\nJa, ich auch! Essen wir zusammen?")
    voice, stage, adapter = PacedVoice(), Recorder(), FakeAdapter()
    p = teacher("lena", tmp_path, url, voice, language="de", level="B1", correction="off")
    async with Orchestrator(personas={"lena": p}, stages=[stage], default_persona="lena",
                            adapters=[adapter], greet=False, lookahead=0) as orch:
        assert orch.submit(chat("ann", "Ich bin Hunger")).accepted
        await until(lambda: stage.transcripts())
    (tr,) = stage.transcripts()
    # correction: off -> a correction the model wrote anyway is dropped, and never spoken.
    assert tr.correction is None and tr.gloss is None
    assert [t for t, _ in voice.said] == ["Ja, ich auch!", "Essen wir zusammen?"]
    system = server.requests[0]["messages"][0]["content"]
    assert "Do not correct" in system and "B1" in system
    assert "asked for a translation" not in system  # the learner did not ask for one


async def test_slower_replays_the_last_reply_slower_without_the_llm(tmp_path, scripted):
    server, url = scripted
    server.replies.append("Guten Morgen! Wie geht es dir?\n[gloss] Good morning! How are you?")
    voice, stage, adapter = PacedVoice(), Recorder(), FakeAdapter()
    p = teacher("lena", tmp_path, url, voice, language="de", level="A1")
    async with Orchestrator(personas={"lena": p}, stages=[stage], default_persona="lena",
                            adapters=[adapter], greet=False, lookahead=0) as orch:
        # Nothing said to this viewer yet: nothing to repeat.
        early = orch.submit(chat("ann", "!slower"))
        assert not early.accepted and "nothing" in (early.reason or "")
        first = chat("ann", "Guten Morgen! Translate please.")
        assert orch.submit(first).accepted
        await until(lambda: len(spoken(adapter.outcomes)) == 1)
        again = chat("ann", "!slower")
        assert orch.submit(again).accepted
        await until(lambda: len(spoken(adapter.outcomes)) == 2)
        spoken_phrase = chat("ann", "Noch einmal langsamer, bitte")
        assert orch.submit(spoken_phrase).accepted
        await until(lambda: len(spoken(adapter.outcomes)) == 3)
        await until(lambda: len(stage.transcripts()) == 3)

    assert len(server.requests) == 1  # the replays never asked the LLM
    texts = [o.reply_text for o in spoken(adapter.outcomes)]
    assert texts[0] == texts[1] == texts[2] == "Guten Morgen! Wie geht es dir?"
    # Each time slower: A1's rate, then slower, then slower still; so longer audio.
    speeds = [s for _, s in voice.said]
    a1, replay1, replay2 = speeds[0], speeds[2], speeds[4]
    assert a1 is not None and replay1 is not None and replay2 is not None
    assert a1 == pytest.approx(0.75) and replay1 < a1 and replay2 < replay1
    durations = [sum(e.performance.speech.duration for e in stage.heard(ev.trace_id))
                 for ev in (first, again, spoken_phrase)]
    assert durations[0] < durations[1] < durations[2]
    # Same words each time; the replays are marked as such in the transcript.
    trs = stage.transcripts()
    assert [t.answer for t in trs] == texts
    assert [t.replay for t in trs] == [False, True, True]
    assert trs[0].gloss == "Good morning! How are you?"


async def test_level_sets_the_rate_of_every_sentence(tmp_path, scripted):
    server, url = scripted
    server.replies += ["Bonjour ! Ça va ?", "Bonjour ! Ça va ?"]
    rates = {}
    for level in ("A1", "C2"):
        voice, adapter = PacedVoice(), FakeAdapter()
        p = teacher(f"camille-{level.lower()}", tmp_path, url, voice, language="fr",
                    level=level)
        async with Orchestrator(personas={p.id: p}, stages=[Recorder()], default_persona=p.id,
                                adapters=[adapter], greet=False, lookahead=0) as orch:
            assert orch.submit(chat("ann", "Salut")).accepted
            await until(lambda a=adapter: bool(spoken(a.outcomes)))
        rates[level] = [s for _, s in voice.said]
    assert len(rates["A1"]) == 2 and rates["A1"] == [pytest.approx(0.75)] * 2
    assert rates["C2"] == [None, None]  # normal pace: the voice's own setting


async def test_a_gloss_after_a_full_answer_is_still_read(tmp_path, scripted):
    """The reply budget stops the answer at max_sentences; the gloss the model writes after
    it still reaches the transcript (and the extra sentences are never voiced)."""
    from bots.orchestrator.pipeline import perform

    server, url = scripted
    server.replies.append("Eins. Zwei. Drei. Vier. Fünf. Sechs.\n[gloss] One. Two. Three.")
    voice = PacedVoice()
    p = teacher("lena", tmp_path, url, voice, language="de", level="B2")
    reply = await perform(p, viewer="ann", text="Zähl bis drei, und was heißt das?")
    assert [t for t, _ in voice.said] == ["Eins.", "Zwei.", "Drei.", "Vier."]  # max_sentences
    assert reply.gloss == "One. Two. Three."
    assert reply.speed == pytest.approx(0.93)
    assert [s for _, s in voice.said] == [pytest.approx(0.93)] * 4
