"""Render pools: where the heavy, blocking work of a performance (render + encode) runs.

The pool is shared by every persona and schedules them fairly: each persona (key) has its own
FIFO of jobs, and free workers take jobs from the keys in round-robin order, so a persona with
a long queue cannot starve the others. The local pool runs jobs in threads of this process;
a RabbitMQ pool with the same interface can spread them over other machines.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from vstage_core.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

T = TypeVar("T")


@runtime_checkable
class RenderPool(Protocol):
    """Runs blocking jobs for many keys (personas), fairly."""

    async def run(self, key: str, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on a worker when ``key``'s turn comes; return its result.

        Cancelling the caller drops the job if it has not started yet.
        """
        ...


@runtime_checkable
class RemoteRenderPool(RenderPool, Protocol):
    """A pool whose jobs leave this process (RabbitMQ workers): callers must submit registered
    jobs with arguments that pickle (:mod:`avatar_engine.workers.jobs`), never closures over
    in-process objects such as a loaded renderer."""

    remote: Literal[True]


@dataclass(eq=False)
class _Job:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: asyncio.Future = field(repr=False)


class LocalRenderPool:
    """A fair pool of ``workers`` threads in this process; use as ``async with``.

    Args:
        workers: how many jobs run at once (1 per GPU is typical; on a CPU, 1-2).
    """

    def __init__(self, *, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers = workers
        self._queues: OrderedDict[str, deque[_Job]] = OrderedDict()
        self._ready = asyncio.Condition()
        self._tasks: set[asyncio.Task] = set()
        self._executor: ThreadPoolExecutor | None = None
        self.served: dict[str, int] = {}

    async def __aenter__(self) -> LocalRenderPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="render")
        for i in range(self.workers):
            task = asyncio.create_task(self._work(), name=f"render-pool:worker:{i}")
            self._tasks.add(task)

    async def stop(self) -> None:
        await cancel_and_wait(list(self._tasks))
        self._tasks.clear()
        for q in self._queues.values():
            for job in q:
                job.future.cancel()
        self._queues.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def pending(self, key: str | None = None) -> int:
        if key is not None:
            return len(self._queues.get(key, ()))
        return sum(len(q) for q in self._queues.values())

    async def run(self, key: str, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("the render pool is not started (use `async with pool:`)")
        job = _Job(fn, args, asyncio.get_running_loop().create_future())
        self._queues.setdefault(key, deque()).append(job)
        async with self._ready:
            self._ready.notify()
        return await job.future  # cancelling here cancels the future: the job is skipped

    def _next_job(self) -> tuple[str, _Job] | None:
        # Round-robin: take from the first key with work, then move that key to the back.
        for key in list(self._queues):
            q = self._queues[key]
            while q and q[0].future.cancelled():
                q.popleft()
            if not q:
                del self._queues[key]
                continue
            job = q.popleft()
            if q:
                self._queues.move_to_end(key)
            else:
                del self._queues[key]
            return key, job
        return None

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            async with self._ready:
                while (picked := self._next_job()) is None:
                    await self._ready.wait()
            key, job = picked
            try:
                result = await loop.run_in_executor(self._executor, job.fn, *job.args)
            except asyncio.CancelledError:
                job.future.cancel()
                raise
            except Exception as e:  # handed to the caller, never kills the worker
                if not job.future.done():
                    job.future.set_exception(e)
            else:
                if not job.future.done():
                    job.future.set_result(result)
            self.served[key] = self.served.get(key, 0) + 1
