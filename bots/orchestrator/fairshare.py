"""Fair turns on a shared resource (a local LLM that writes one reply at a time) between many
clients: the public show of each persona and every private conversation.

Each client waits in its own line; free slots go to the clients in rotation (round robin),
so a client asking ten times in a row waits behind everyone else's next turn, not in front of
them. A client that gives up waiting (its turn was cancelled: a barge-in, a closed page)
leaves its line at once.

    fair = FairShare(slots=1)
    async with fair.turn("talk:3f9a"):
        ...  # the LLM writes this client's reply
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["FairShare"]


class FairShare:
    """Round-robin turns between clients on ``slots`` concurrent places.

    Args:
        slots: how many turns run at once (1 for a local model; more for a server that
            batches requests).
    """

    def __init__(self, *, slots: int = 1) -> None:
        if slots < 1:
            raise ValueError(f"slots must be at least 1, not {slots}")
        self.slots = slots
        self._busy = 0
        # Clients with someone waiting, in the order they are served next.
        self._lines: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self.served: dict[str, int] = {}

    @property
    def busy(self) -> int:
        """Turns running now."""
        return self._busy

    def waiting(self, client: str | None = None) -> int:
        """Turns waiting (of one client, or of everyone)."""
        if client is not None:
            return len(self._lines.get(client, ()))
        return sum(len(line) for line in self._lines.values())

    @asynccontextmanager
    async def turn(self, client: str) -> AsyncIterator[None]:
        """Wait for ``client``'s turn, hold it inside the block, hand it on after."""
        await self._acquire(client)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, client: str) -> None:
        if self._busy < self.slots and not self._lines:
            self._take(client)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._lines.setdefault(client, deque()).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # granted, then cancelled before it ran: hand it on
            else:
                self._leave(client, waiter)
            raise

    def _take(self, client: str) -> None:
        self._busy += 1
        self.served[client] = self.served.get(client, 0) + 1

    def _leave(self, client: str, waiter: asyncio.Future[None]) -> None:
        line = self._lines.get(client)
        if line is None:
            return
        try:
            line.remove(waiter)
        except ValueError:
            pass
        if not line:
            del self._lines[client]

    def _release(self) -> None:
        self._busy -= 1
        self._grant()

    def _grant(self) -> None:
        while self._busy < self.slots and self._lines:
            client, line = next(iter(self._lines.items()))
            waiter = line.popleft()
            del self._lines[client]
            if line:  # the client's next turn goes to the back of the rotation
                self._lines[client] = line
            if waiter.done():
                continue
            self._take(client)
            waiter.set_result(None)
