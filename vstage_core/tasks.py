"""Owning tasks: cancel a group of tasks and wait until every one has really finished."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

__all__ = ["cancel_and_wait"]

logger = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object] | asyncio.Future[object]]) -> None:
    """Cancel ``tasks`` and wait for all of them (the caller's own task is skipped).

    A task that ends with an error other than cancellation is logged, not raised: shutting
    down must not stop halfway because one task had failed earlier.
    """
    me = asyncio.current_task()
    pending = [t for t in tasks if t is not me]
    for task in pending:
        task.cancel()
    results = await asyncio.gather(*pending, return_exceptions=True)
    for task, result in zip(pending, results, strict=True):
        if isinstance(result, Exception):
            name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
            logger.warning("task %s had failed: %r", name, result)


async def wait_event(event: asyncio.Event, seconds: float | None) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass (None: forever); True if it was set.

    Unlike ``asyncio.wait_for`` on Python 3.11, a cancellation that arrives just as the event
    is set is never swallowed, so a loop built on this stops when its task is cancelled.
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
