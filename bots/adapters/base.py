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


@runtime_checkable
class WatchedConnection(Protocol):
    """An adapter whose connection lives on in a task of its own once ``async with`` has
    entered (discord.py's gateway task, Twitch's EventSub sessions). The supervisor awaits
    :meth:`wait_closed` while the adapter counts as up, so a connection that dies right after
    entering is seen instead of reported as connected."""

    async def wait_closed(self) -> None:
        """Wait while the connection is alive; end when it has ended on its own.

        Raises:
            PlatformError: why it ended (``fatal`` when retrying cannot help); returning
                normally means it closed for no known reason, and is retried.
        """
        ...
