"""A fake of our own :class:`~bots.adapters.base.Adapter` base, scripted attempt by attempt,
to drive the real supervisor: fail on entering, die after entering, or stay up until told."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Self

from bots.adapters.base import EventSink
from bots.events import Outcome
from vstage_core.errors import PlatformError


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """What one connection attempt does.

    Attributes:
        enter_error: raised by ``__aenter__`` (the login failed).
        close_error: raised by ``wait_closed`` once the connection dies.
        dies: the connection dies at once after entering; False: it lives until
            :meth:`FakeAdapter.kill` (or for ever).
    """

    enter_error: Exception | None = None
    close_error: Exception | None = None
    dies: bool = False


def transient(code: str = "connection_failed") -> PlatformError:
    return PlatformError(f"{code} happened", platform="fake", code=code, fatal=False)


def fatal(code: str = "token_invalid") -> PlatformError:
    return PlatformError("the token was refused", platform="fake", code=code, fatal=True,
                         fix="log in again")


class FakeAdapter:
    """Follows ``script`` one attempt per ``async with``; the last attempt repeats."""

    def __init__(self, script: list[Attempt], *, platform: str = "fake") -> None:
        self.platform = platform
        self.script = script
        self.attempts = 0
        self.entered = 0
        self.exited = 0
        self._closed: asyncio.Future[None] | None = None
        self._current = Attempt()

    def bind(self, sink: EventSink) -> None:
        pass

    async def deliver(self, outcome: Outcome) -> None:
        pass

    async def __aenter__(self) -> Self:
        self._current = self.script[min(self.attempts, len(self.script) - 1)]
        self.attempts += 1
        if self._current.enter_error is not None:
            raise self._current.enter_error
        self.entered += 1
        self._closed = asyncio.get_running_loop().create_future()
        if self._current.dies:
            self.kill()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.exited += 1
        if self._closed is not None and not self._closed.done():
            self._closed.cancel()
        self._closed = None

    def kill(self, error: Exception | None = None) -> None:
        """The connection task dies now (with ``error``, else the attempt's close_error)."""
        assert self._closed is not None, "not connected"
        error = error or self._current.close_error
        if error is None:
            self._closed.set_result(None)
        else:
            self._closed.set_exception(error)

    async def wait_closed(self) -> None:
        assert self._closed is not None, "wait_closed outside async with"
        await self._closed


class UnwatchedAdapter(FakeAdapter):
    """The same, without ``wait_closed``: an adapter whose library reconnects inside."""

    wait_closed = None  # type: ignore[assignment]
