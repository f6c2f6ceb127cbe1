"""Task ownership helpers: loops built on them stop when cancelled, whatever the timing."""

from __future__ import annotations

import asyncio

from vstage_core.tasks import cancel_and_wait, wait_event


async def _loop(wait) -> None:
    event = asyncio.Event()

    async def waker() -> None:
        while True:
            event.set()
            await asyncio.sleep(0)

    w = asyncio.create_task(waker())
    try:
        while True:  # a consumer loop: wait for work, repeat
            await wait(event)
            event.clear()
    finally:
        w.cancel()


async def _stops(wait) -> bool:
    """Cancel a busy consumer loop 200 times at random moments; True if it always stopped."""
    for _ in range(200):
        task = asyncio.create_task(_loop(wait))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=0.2)
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=0.2)
            return False
    return True


async def test_a_loop_on_wait_event_stops_when_cancelled():
    # The same loop on `asyncio.wait_for(event.wait(), 1.0)` fails this on Python 3.11: a
    # cancel that lands as the event is set is swallowed and the loop runs on (it hung the
    # orchestrator's shutdown under load).
    assert await _stops(lambda ev: wait_event(ev, 1.0))


async def test_wait_event_says_whether_the_event_came():
    ev = asyncio.Event()
    assert await wait_event(ev, 0.01) is False
    ev.set()
    assert await wait_event(ev, 0.01) is True


async def test_cancel_and_wait_finishes_every_task_and_survives_failed_ones():
    async def forever() -> None:
        await asyncio.sleep(3600)

    async def failed() -> None:
        raise RuntimeError("boom")

    tasks = [asyncio.create_task(forever()) for _ in range(3)]
    bad = asyncio.create_task(failed())
    await asyncio.sleep(0)
    await cancel_and_wait([*tasks, bad])
    assert all(t.cancelled() for t in tasks) and bad.done()
