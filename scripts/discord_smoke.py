"""Manual smoke test against a real Discord server: the bot joins on /join, prints every
utterance it hears (with DAVE counters) and says it back with the embedded Piper voice.

    DISCORD_TOKEN=... .venv/bin/python scripts/discord_smoke.py --guild SERVER_ID
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from avatar_engine.settings import VoiceSettings  # noqa: E402
from avatar_engine.voice.piper import PiperTTS  # noqa: E402
from bots.adapters.discord.adapter import DiscordAdapter  # noqa: E402
from bots.adapters.discord.settings import DiscordSettings  # noqa: E402
from bots.events import Decision, Event, Utterance  # noqa: E402


class EchoSink:
    """Stands in for the orchestrator: echoes each utterance back into the channel."""

    def __init__(self, adapter: DiscordAdapter, tts: PiperTTS) -> None:
        self.adapter, self.tts = adapter, tts
        self.tasks: set[asyncio.Task] = set()

    def submit(self, event: Event) -> Decision:
        print(f"[heard] {event.viewer.name}: {event.text}", flush=True)
        for session in self.adapter.sessions.values():
            dave = getattr(session.receiver, "dave", None)
            if dave is not None:
                print(f"  DAVE decrypted={dave.decrypted} passed={dave.passed} "
                      f"failed={dave.failed}", flush=True)
            if isinstance(event, Utterance):
                task = asyncio.create_task(self._echo(session, event), name="smoke:echo")
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        return Decision(True, event.trace_id)

    async def _echo(self, session, event: Utterance) -> None:
        audio = self.adapter.start_reply(session, event.trace_id)
        speech = await asyncio.to_thread(self.tts.synthesize, f"You said: {event.message}")
        audio.append_speech(speech.audio, speech.sample_rate)
        audio.finish()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--guild", type=int, action="append", default=[])
    ap.add_argument("--language", default="en")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    tts = PiperTTS(settings=VoiceSettings())
    adapter = DiscordAdapter(settings=DiscordSettings(guild_ids=args.guild,
                                                      language=args.language))
    adapter.bind(EchoSink(adapter, tts))
    async with adapter:
        print("ready: join a voice channel and type /join (Ctrl-C to stop)", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
