"""Discord voice as an ordinary stage on the bus, behind the real orchestrator and the real
reply pipeline: it plays the pipeline's own speech (the voice is called once per sentence,
never a second time for Discord), and a second persona answering in the same channel speaks
with its own voice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import numpy as np

from bots.adapters.discord.adapter import DiscordAdapter, VoiceSession
from bots.adapters.discord.settings import DiscordSettings
from bots.brain.base import ChatTurn
from bots.orchestrator.orchestrator import Orchestrator
from tests.discord.fakes import Channel, VoiceClient
from tests.orchestrator.fakes import FakeAdapter, FakeStage, FastTTS, chat, live_persona

QUICK = {"queue": {"user_cooldown_s": 0, "duplicate_window_s": 0}}
ANSWER = "Hello there friend. Tea is ready now. See you soon."


class ScriptedLLM:
    """A fake of our LLM base that always answers with three sentences."""

    name = "scripted"

    async def load(self) -> None: ...

    async def aclose(self) -> None: ...

    async def stream(self, messages: Sequence[ChatTurn]) -> AsyncIterator[str]:
        for word in ANSWER.split(" "):
            yield word + " "
            await asyncio.sleep(0)


class Player(VoiceClient):
    """The voice client, keeping every source it was given to play (one per reply)."""

    def __init__(self) -> None:
        super().__init__()
        self.played: list = []

    def play(self, source, *, after=None) -> None:
        super().play(source, after=after)
        self.played.append(source)


def pitch(audio) -> float:
    """The loudest frequency (Hz) of what the source plays (48 kHz stereo s16)."""
    frames = []
    while chunk := audio.read():
        frames.append(chunk)
    left = np.frombuffer(b"".join(frames), "<i2").reshape(-1, 2)[:, 0].astype(np.float32)
    spectrum = np.abs(np.fft.rfft(left))
    return float(np.fft.rfftfreq(left.size, 1 / 48000)[int(np.argmax(spectrum[1:])) + 1])


async def test_discord_plays_the_pipelines_speech_in_each_personas_own_voice(tmp_path):
    voices = {"mika": FastTTS(hz=220.0), "ren": FastTTS(hz=440.0)}
    personas = {pid: live_persona(pid, tmp_path, ScriptedLLM(), tts=tts, **QUICK)
                for pid, tts in voices.items()}
    discord = DiscordAdapter(settings=DiscordSettings(persona="mika"), personas=list(personas))
    player = Player()
    discord.sessions[1] = VoiceSession(guild_id=1, text_channel=Channel(), persona="mika",
                                       language="en", transcripts=False, voice_client=player)
    seen, adapter = FakeStage(), FakeAdapter()
    async with Orchestrator(personas=personas, stages=[discord, seen], adapters=[adapter],
                            default_persona="mika", greet=False) as orch:
        first = orch.submit(chat("ann", "hi mika"))
        async with asyncio.timeout(30):
            while not adapter.status_of(first.trace_id):
                adapter.got.clear()
                await adapter.got.wait()
            await orch.bus.wait_idle()
        # /persona ren: the other persona answers in the same channel.
        assert "ren" in discord.set_persona(1, "ren")
        second = orch.submit(chat("bob", "hi ren", persona="ren"))
        async with asyncio.timeout(30):
            while not adapter.status_of(second.trace_id):
                adapter.got.clear()
                await adapter.got.wait()
            await orch.bus.wait_idle()
    assert adapter.status_of(first.trace_id) == adapter.status_of(second.trace_id) == ["spoken"]
    for pid, tts in voices.items():
        sentences = [c.text for c in seen.clips(pid)]
        assert len(sentences) == 3
        assert tts.calls == sentences  # once per sentence: Discord did not voice it again
    assert len(player.played) == 2
    mika_audio, ren_audio = player.played
    assert mika_audio.sentences == ren_audio.sentences == 3
    assert abs(pitch(mika_audio) - 220) < 5
    assert abs(pitch(ren_audio) - 440) < 5  # ren's own voice, not the start-up persona's
