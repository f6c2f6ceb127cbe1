"""The hub of conversations: the cap and its retry time, idle timeouts, invites, keys, shut
down (fake models); and whole conversations on the embedded personas with the real models
(Piper speech in, Silero VAD + whisper, SmolLM2, Piper and the sprite avatar out)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from bots.app import load_personas
from bots.config import load_config
from bots.hearing.audio import resample
from bots.hearing.settings import HearingSettings
from bots.orchestrator.fairshare import FairShare
from bots.personas.runtime import PersonaRuntime
from bots.talk.hub import TalkFull, TalkHub
from bots.talk.session import TalkSession, TalkState
from bots.talk.settings import TalkSettings
from overlays.live.settings import LiveSettings
from tests.talk.conftest import MakeHub
from tests.talk.fakes import FRAME, Clock, Messages, TalkPipeline, Watch, tone48

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------- the hub (fake models)

async def test_open_get_close_and_personas(make_hub: MakeHub) -> None:
    hub = await make_hub(personas=("mika", "lena"),
                         persona_overrides={"language": "de"})
    assert hub.personas_info() == [{"id": "mika", "name": "Mika", "language": "de"},
                                   {"id": "lena", "name": "Lena", "language": "de"}]
    s = await hub.open("lena")
    assert re.fullmatch(r"[A-Za-z0-9_-]{12}", s.id) and len(s.key) == 32
    assert s.language == "de" and s.state is TalkState.LISTENING
    assert hub.get(s.id, s.key) is s
    assert hub.get(s.id, "x" * 32) is None and hub.get("nope", s.key) is None
    assert hub.get(s.id, "") is None and hub.get(s.id, None) is None  # type: ignore[arg-type]
    assert list(hub.sessions) == [s.id] and s.id in hub.hearing.ears
    with pytest.raises(KeyError, match="unknown persona 'zed'; loaded: lena, mika"):
        await hub.open("zed")
    msgs = Messages(s)
    await hub.close(s.id, "closed")
    await msgs.wait_type("ended")
    assert msgs.items[-2:] == [{"type": "state", "state": "ended"},
                               {"type": "ended", "reason": "closed"}]
    assert hub.get(s.id, s.key) is None and not hub.sessions
    await hub.close(s.id, "closed")  # again: nothing happens
    await msgs.close()


async def test_sessions_are_private_to_each_other(make_hub: MakeHub) -> None:
    pipeline = TalkPipeline(sentences=1, sentence_s=0.2)
    hub = await make_hub(pipeline=pipeline)
    persona = hub.personas["mika"]
    a, b = await hub.open("mika"), await hub.open("mika")
    ma, mb = Messages(a), Messages(b)
    try:
        await asyncio.gather(a.say_text("my cat is called Pixel"),
                             b.say_text("I live in Lisbon"))
        await asyncio.gather(ma.wait_type("answer"), mb.wait_type("answer"))
    finally:
        await ma.close()
        await mb.close()
    assert [m["text"] for m in ma.of("heard")] == ["my cat is called Pixel"]
    assert [m["text"] for m in mb.of("heard")] == ["I live in Lisbon"]
    assert "Lisbon" not in str(ma.items) and "Pixel" not in str(mb.items)
    assert a.context_key != b.context_key
    assert [e.said for e in a.history] == ["my cat is called Pixel"]
    assert [e.said for e in b.history] == ["I live in Lisbon"]
    # The persona's own (the show's) memory holds neither: no history, no stage note.
    assert len(persona.conversations) == 0 and persona.conversations.stage_note is None
    assert {c.context_key for c in pipeline.calls} == {a.context_key, b.context_key}


async def test_full_hub_says_when_to_retry(make_hub: MakeHub) -> None:
    clock = Clock()
    hub = await make_hub(clock=clock, max_sessions=2, idle_timeout_s=60)
    a = await hub.open("mika")
    clock.advance(20)
    b = await hub.open("mika")
    clock.advance(5)
    with pytest.raises(TalkFull) as full:
        await hub.open("mika")
    assert full.value.retry_after_s == 35  # when `a`, idle for 25 s of 60, times out
    assert full.value.code == "full" and "all 2 conversations are taken" in str(full.value)
    b.last_active = a.last_active = clock()
    clock.advance(58)
    with pytest.raises(TalkFull) as full:
        await hub.open("mika")
    assert full.value.retry_after_s == 5  # never less than 5
    await hub.close(a.id, "closed")
    c = await hub.open("mika")
    assert set(hub.sessions) == {b.id, c.id}


async def test_idle_session_is_closed_and_forgotten(make_hub: MakeHub) -> None:
    clock = Clock()
    pipeline = TalkPipeline(sentences=1, sentence_s=0.2)
    hub = await make_hub(clock=clock, pipeline=pipeline, idle_timeout_s=10)
    s = await hub.open("mika")
    msgs, watch = Messages(s), Watch(s.stream)
    await s.say_text("remember me")
    await msgs.wait_type("answer")
    assert s.history
    clock.advance(9)
    await asyncio.sleep(2.5)  # the reaper looks every second: not yet
    assert s.id in hub.sessions
    clock.advance(1.5)
    ended = await msgs.wait_type("ended", within=5)
    await asyncio.wait_for(watch._task, 2)  # the stream stopped: its subscription ended
    await msgs.close()
    assert ended == {"type": "ended", "reason": "idle"}
    assert s.id not in hub.sessions and s.id not in hub.hearing.ears
    assert s.history == () and s.state is TalkState.ENDED and hub.expired == 1
    s.hear(tone48(440, 0.1))  # a late frame is ignored


async def test_a_conversation_in_progress_does_not_time_out(make_hub: MakeHub) -> None:
    clock = Clock()
    pipeline = TalkPipeline(think_s=2.5, sentences=1, sentence_s=0.2)
    hub = await make_hub(clock=clock, pipeline=pipeline, idle_timeout_s=5)
    s = await hub.open("mika")
    msgs = Messages(s)
    await s.say_text("think hard")
    clock.advance(100)  # while the persona thinks
    await msgs.wait_type("answer")
    assert s.id in hub.sessions and hub.expired == 0
    clock.advance(6)
    await msgs.wait_type("ended", within=5)
    await msgs.close()


async def test_invites_open_once_expire_and_refuse_bad_codes(make_hub: MakeHub) -> None:
    clock = Clock()
    hub = await make_hub(clock=clock, invite_ttl_s=3600, personas=("mika", "lena"))
    code = hub.invite()
    assert hub.check_invite(code) and hub.check_invite(code)  # checking does not use it
    assert hub.redeem(code) == ""
    assert hub.redeem(code) is None and not hub.check_invite(code)
    assert hub.invite_problem(code) == "used"
    for_lena = hub.invite(persona="lena", uses=2)
    assert hub.redeem(for_lena) == "lena" and hub.redeem(for_lena) == "lena"
    assert hub.redeem(for_lena) is None
    late = hub.invite()
    clock.advance(3601)
    assert hub.redeem(late) is None and hub.invite_problem(late) == "expired"
    for bad in ("", "not-a-code", code[:-1], "x" * 5000, None, 42):
        assert hub.redeem(bad) is None  # type: ignore[arg-type]
        assert hub.invite_problem(bad) == "unknown"  # type: ignore[arg-type]
    assert hub.invite_problem(hub.invite()) is None
    with pytest.raises(KeyError, match="unknown persona 'zed'"):
        hub.invite(persona="zed")
    with pytest.raises(ValueError, match="1 to 1000"):
        hub.invite(uses=0)
    assert len({hub.invite() for _ in range(50)}) == 50


async def test_shutdown_ends_every_session(tmp_path: Path, make_hub: MakeHub) -> None:
    hub = await make_hub(pipeline=TalkPipeline(think_s=5.0))
    a, b = await hub.open("mika"), await hub.open("mika")
    ma, mb = Messages(a), Messages(b)
    await a.say_text("a long thought")
    await ma.wait_for(lambda m: m == {"type": "state", "state": "thinking"})
    await hub.__aexit__(None, None, None)
    for m in (ma, mb):
        assert (await m.wait_type("ended")) == {"type": "ended", "reason": "shutdown"}
        await m.close()
    assert not hub.sessions and not hub.hearing.ears
    with pytest.raises(RuntimeError, match="not running"):
        await hub.open("mika")


# ---------------------------------------------------------------------- real models

@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("talk-state")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mika(state: Path) -> AsyncIterator[PersonaRuntime]:
    config = load_config(REPO / "config")
    config = config.model_copy(
        update={"app": config.app.model_copy(update={"state_dir": state})})
    persona = (await load_personas(config, ["mika"]))["mika"]
    # Two sentences at most: a whole answer is heard sooner on a busy machine.
    persona.config = persona.config.model_copy(
        update={"llm": persona.config.llm.model_copy(update={"max_sentences": 2})})
    yield persona
    await persona.aclose()


@pytest.fixture(scope="module")
def hearing_models() -> tuple[Any, Any]:
    from bots.hearing.stt import WhisperSTT
    from bots.hearing.vad import SileroVAD

    return SileroVAD(), WhisperSTT(settings=HearingSettings())


@pytest_asyncio.fixture(loop_scope="module")
async def real_hub(mika: PersonaRuntime, hearing_models: tuple[Any, Any]
                   ) -> AsyncIterator[TalkHub]:
    vad, stt = hearing_models
    async with TalkHub(personas={"mika": mika}, settings=TalkSettings(),
                       hearing=HearingSettings(), live=LiveSettings(), fair=FairShare(),
                       vad=vad, stt=stt) as hub:
        yield hub


def spoken(persona: PersonaRuntime, text: str) -> np.ndarray:
    """``text`` in the persona's Piper voice as a microphone hears it: mono int16 48 kHz."""
    speech = persona.tts.synthesize(text)
    audio = resample(np.asarray(speech.audio, np.float32), speech.sample_rate, 48_000)
    return (np.clip(audio, -1, 1) * 32767 * 0.8).astype(np.int16)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref, hyp = _words(reference), _words(hypothesis)
    d = np.arange(len(hyp) + 1)
    for i, r in enumerate(ref, 1):
        prev, d[0] = d.copy(), i
        for j, h in enumerate(hyp, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (r != h))
    return float(d[len(hyp)]) / max(1, len(ref))


class Microphone:
    """A browser's microphone track: 20 ms frames in real time, without end; silence when
    nobody speaks, or (``echo``) what the persona's stream plays, heard back through the
    speakers at ``echo`` of its level."""

    def __init__(self, session: TalkSession, watch: Watch | None = None,
                 echo: float = 0.0) -> None:
        self.session, self.watch, self.echo = session, watch, echo
        self._say: list[np.ndarray] = []
        self.echo_fed = 0
        self._task = asyncio.create_task(self._run(), name="test:microphone")

    def say(self, audio: np.ndarray) -> None:
        self._say.append(audio)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start, n = loop.time(), 0
        seen = len(self.watch.audio) if self.watch is not None else 0
        pending = np.zeros(0, np.int16)
        echo = np.zeros(0, np.int16)
        while True:
            if pending.size == 0 and self._say:
                pending = self._say.pop(0)
            frame = pending[:FRAME].astype(np.float32)
            pending = pending[FRAME:]
            frame = np.pad(frame, (0, FRAME - frame.size))
            if self.watch is not None and self.echo:
                # What the speakers play comes back into the microphone, mixed in.
                if seen < len(self.watch.audio):
                    echo = np.concatenate([echo, *self.watch.audio[seen:]])
                    seen = len(self.watch.audio)
                back, echo = echo[:FRAME].astype(np.float32) * self.echo, echo[FRAME:]
                if np.abs(back).max(initial=0) > 300:
                    self.echo_fed += 1
                frame[:back.size] += back
            self.session.hear(np.clip(frame, -32768, 32767).astype(np.int16))
            n += 1
            await asyncio.sleep(max(0.0, start + n * 0.02 - loop.time()))

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@pytest.mark.models
@pytest.mark.asyncio(loop_scope="module")
async def test_spoken_conversation_end_to_end(real_hub: TalkHub, mika: PersonaRuntime) -> None:
    question = "What is your favourite snack?"
    s = await real_hub.open("mika")
    msgs, watch = Messages(s), Watch(s.stream)
    mic = Microphone(s, watch, echo=0.5)  # the answer comes back through the speakers
    try:
        mic.say(spoken(mika, question))
        heard = await msgs.wait_type("heard", within=20)
        answer = await msgs.wait_type("answer", within=60)
        await msgs.wait_for(lambda m: m == {"type": "state", "state": "listening"},
                            after=msgs.items.index(answer), within=5)
    finally:
        await mic.close()
        await msgs.close()
        await watch.close()
    assert heard["turn"] == 1 and heard["language"] == "en"
    assert word_error_rate(question, heard["text"]) <= 0.3, heard
    said = msgs.of("said")
    assert said and [m["index"] for m in said] == list(range(len(said)))
    assert " ".join(m["text"] for m in said) == answer["text"] and answer["text"]
    assert msgs.states()[:4] == ["listening", "hearing", "thinking", "speaking"]
    # The answer's audio went out on the session's own stream...
    loud = sum(1 for rid, rms in watch.ticks if rid and rid.startswith(f"{s.id}-1-")
               and rms > 0.01)
    assert loud >= 10
    # ...and its echo in the microphone did not interrupt it.
    assert mic.echo_fed > 10 and s.echo_frames > 0 and not msgs.of("interrupted")
    assert [e.said for e in s.history] and len(mika.conversations) == 0
    assert real_hub.fair.served == {f"talk:{s.id}": 1}


@pytest.mark.models
@pytest.mark.asyncio(loop_scope="module")
async def test_two_conversations_at_once_stay_private(real_hub: TalkHub,
                                                      mika: PersonaRuntime) -> None:
    questions = ["Do you like playing video games?", "Where do you live?"]
    a, b = await real_hub.open("mika"), await real_hub.open("mika")
    ma, mb = Messages(a), Messages(b)
    mic_a, mic_b = Microphone(a), Microphone(b)
    try:
        mic_a.say(spoken(mika, questions[0]))
        mic_b.say(spoken(mika, questions[1]))
        answers = await asyncio.gather(ma.wait_type("answer", within=150),
                                       mb.wait_type("answer", within=150))
    finally:
        for m in (mic_a, mic_b, ma, mb):
            await m.close()
    heard_a = [m["text"] for m in ma.of("heard")]
    heard_b = [m["text"] for m in mb.of("heard")]
    assert len(heard_a) == 1 and word_error_rate(questions[0], heard_a[0]) <= 0.3, heard_a
    assert len(heard_b) == 1 and word_error_rate(questions[1], heard_b[0]) <= 0.3, heard_b
    # Each page holds its own conversation only.
    assert answers[0]["text"] not in str(mb.items) and answers[1]["text"] not in str(ma.items)
    assert heard_b[0] not in str(ma.items) and heard_a[0] not in str(mb.items)
    # (a reply that moderation screened a sentence of is not remembered at all)
    assert {e.said for e in a.history} <= set(heard_a)
    assert {e.said for e in b.history} <= set(heard_b)
    assert a.context_key != b.context_key
    assert len(mika.conversations) == 0  # the show's memory holds neither conversation
    assert set(real_hub.fair.served) >= {a.client, b.client}


@pytest.mark.models
@pytest.mark.asyncio(loop_scope="module")
async def test_barge_in_heard_by_the_real_models(mika: PersonaRuntime,
                                                 hearing_models: tuple[Any, Any]) -> None:
    """Silero and whisper hear a visitor talking over a long answer (in its pauses, the
    echo guard on): the answer is cut and their words answered."""
    vad, stt = hearing_models
    pipeline = TalkPipeline(sentences=4, sentence_s=1.5, pause_s=0.6)
    async with TalkHub(personas={"mika": mika}, settings=TalkSettings(),
                       hearing=HearingSettings(), live=LiveSettings(), fair=FairShare(),
                       pipeline=pipeline, vad=vad, stt=stt) as hub:
        s = await hub.open("mika")
        msgs, watch = Messages(s), Watch(s.stream)
        mic = Microphone(s, watch, echo=0.5)
        try:
            await s.say_text("tell me everything")
            await msgs.wait_type("said", within=30)
            # Long enough to run into the pause after sentence 0: it is heard from there.
            interruption = ("Wait a moment please, I would rather hear about your favourite "
                            "snacks and games instead.")
            mic.say(spoken(mika, interruption))
            interrupted = await msgs.wait_type("interrupted", within=30)
            heard = await msgs.wait_for(lambda m: m["type"] == "heard" and m["turn"] == 2,
                                        within=60)
            await msgs.wait_for(lambda m: m["type"] == "answer" and m["turn"] == 2,
                                within=60)
        finally:
            for m in (mic, msgs, watch):
                await m.close()
    assert interrupted == {"type": "interrupted", "turn": 1}
    # What was said over the loud part of sentence 0 is lost to the echo guard; the rest is
    # heard (at least the end of the sentence).
    said, got = set(_words(interruption)), _words(heard["text"])
    assert len(set(got) & said) >= 4 and {"snacks", "games"} & set(got), heard
    assert len([m for m in msgs.of("said") if m["turn"] == 1]) < 4
    assert pipeline.calls[1].text == heard["text"]
