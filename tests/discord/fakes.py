"""Stand-ins for the parts of discord.py that need a live gateway: a text channel, a voice
client, an event sink. They record what the adapter does with them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bots.events import Decision, Event


class Channel:
    """A text channel: ``send`` is what discord.abc.Messageable offers."""

    def __init__(self, cid: int = 1) -> None:
        self.id = cid
        self.sent: list[str] = []
        self.got = asyncio.Event()

    async def send(self, content: str) -> None:
        self.sent.append(content)
        self.got.set()


class Sink:
    """An orchestrator that accepts everything (or nothing)."""

    def __init__(self, *, accept: bool = True) -> None:
        self.events: list[Event] = []
        self.interrupts: list[tuple[str | None, str]] = []
        self.accept = accept
        self.got = asyncio.Event()

    def submit(self, event: Event) -> Decision:
        self.events.append(event)
        self.got.set()
        return Decision(self.accept, event.trace_id, None if self.accept else "queue full")

    def interrupt(self, persona: str | None, *, reason: str) -> bool:
        self.interrupts.append((persona, reason))
        return True


class VoiceClient:
    """discord.VoiceClient's playback surface, driving the source like its player thread."""

    def __init__(self) -> None:
        self.source = None
        self.after = None

    def is_playing(self) -> bool:
        return self.source is not None

    def play(self, source, *, after=None) -> None:
        self.source, self.after = source, after

    def stop(self) -> None:
        self.source = None


@dataclass
class Member:
    id: int
    display_name: str
    bot: bool = False
    guild: object = None
    guild_permissions: object = field(default=None)
