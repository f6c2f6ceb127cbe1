"""Outgoing Twitch chat: replies split into messages of at most 500 characters, sent no faster
than Twitch allows for the bot's role (20 messages per 30 s; 100 when the bot is a moderator
or the broadcaster)."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable

MAX_MESSAGE_CHARS = 500
LIMITS = {"user": 20, "moderator": 100}  # messages per 30 seconds
WINDOW_S = 30.0


def split_message(text: str, *, limit: int = MAX_MESSAGE_CHARS) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` characters, at spaces where possible."""
    words = text.split()
    chunks: list[str] = []
    current = ""
    for word in words:
        while len(word) > limit:  # a word longer than a message is cut hard
            if current:
                chunks.append(current)
                current = ""
            chunks.append(word[:limit])
            word = word[limit:]
        if not current:
            current = word
        elif len(current) + 1 + len(word) <= limit:
            current = f"{current} {word}"
        else:
            chunks.append(current)
            current = word
    if current:
        chunks.append(current)
    return chunks


class RateLimiter:
    """A sliding-window limiter: at most ``limit`` acquisitions per ``window_s`` seconds.

    Args:
        limit: messages per window.
        window_s: the window.
        clock: monotonic clock (tests pass a fake).
        sleep: how to wait (tests pass a fake).
    """

    def __init__(self, *, limit: int, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit, self.window_s = limit, window_s
        self._clock, self._sleep = clock, sleep
        self._sent: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until one more message fits in the window, and count it."""
        async with self._lock:  # FIFO: replies keep their order
            while True:
                now = self._clock()
                while self._sent and now - self._sent[0] >= self.window_s:
                    self._sent.popleft()
                if len(self._sent) < self.limit:
                    self._sent.append(now)
                    return
                await self._sleep(self._sent[0] + self.window_s - now)
