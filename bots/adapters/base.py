"""The adapter interface every platform (studio chat, Twitch, Discord) implements."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, Self, runtime_checkable

from bots.events import Decision, Event, Outcome


class EventSink(Protocol):
    """Where adapters send events: the orchestrator. ``submit`` never blocks."""

    def submit(self, event: Event) -> Decision: ...

    def interrupt(self, persona: str | None, *, reason: str) -> bool:
        """Cut the persona's reply in flight (a voice barge-in); True if there was one."""
        ...

    def withdraw(
        self, persona: str | None, match: Callable[[Event], bool], *, reason: str
    ) -> int:
        """Take back matching events wherever they are (queued, prepared, on stage): a
        deleted message, a cleared chat, a banned viewer. None: every persona's."""
        ...


@runtime_checkable
class Adapter(Protocol):
    """A platform connection. Lifecycle is ``async with adapter:``; start and stop are
    idempotent. Events go out through the sink given to :meth:`bind`; outcomes come back
    through :meth:`deliver` (post the reply, fulfil or refund a redemption, ...)."""

    platform: str

    def bind(self, sink: EventSink) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def deliver(self, outcome: Outcome) -> None: ...
