"""Splitting replies at 500 characters and the chat rate limiter."""

from __future__ import annotations

from bots.adapters.twitch.chat import RateLimiter, split_message


def test_split_respects_the_limit_and_keeps_every_word():
    text = " ".join(f"word{i}" for i in range(400))
    parts = split_message(text)
    assert len(parts) > 1 and all(len(p) <= 500 for p in parts)
    assert " ".join(parts) == text
    assert split_message("x" * 1200) == ["x" * 500, "x" * 500, "x" * 200]
    assert split_message("short") == ["short"]


async def test_rate_limiter_waits_for_the_window():
    now = [0.0]
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(limit=3, window_s=30, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        await limiter.acquire()
    assert slept == []
    await limiter.acquire()
    assert slept == [30.0]
