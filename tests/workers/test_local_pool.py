"""The local render pool: results, errors, fairness between personas, cancellation."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from avatar_engine.workers import LocalRenderPool


async def test_runs_jobs_off_the_loop_and_returns_results():
    async with LocalRenderPool(workers=1) as pool:
        main = threading.get_ident()
        ident = await pool.run("a", threading.get_ident)
        assert ident != main
        assert await pool.run("a", pow, 2, 10) == 1024


async def test_errors_reach_the_caller_and_the_worker_survives():
    def boom():
        raise RuntimeError("renderer exploded")

    async with LocalRenderPool(workers=1) as pool:
        with pytest.raises(RuntimeError, match="exploded"):
            await pool.run("a", boom)
        assert await pool.run("a", lambda: 7) == 7


async def test_round_robin_between_keys():
    order: list[str] = []

    def job(key: str) -> None:
        order.append(key)
        time.sleep(0.005)

    async with LocalRenderPool(workers=1) as pool:
        # "a" floods first, "b" and "c" arrive later: they must not wait for all of "a".
        jobs = [asyncio.create_task(pool.run("a", job, "a")) for _ in range(10)]
        await asyncio.sleep(0)
        jobs += [asyncio.create_task(pool.run(k, job, k)) for k in "bc" for _ in range(3)]
        await asyncio.gather(*jobs)
    # Interleaved: b and c are done long before a's backlog (FIFO would put them last).
    last_bc = max(i for i, k in enumerate(order) if k in "bc")
    assert last_bc <= 10 and order[last_bc + 1 :] == ["a"] * (len(order) - last_bc - 1), order


async def test_cancelled_caller_skips_its_queued_job():
    ran: list[int] = []
    gate = threading.Event()

    async with LocalRenderPool(workers=1) as pool:
        blocker = asyncio.create_task(pool.run("a", gate.wait, 5))
        await asyncio.sleep(0.05)
        victim = asyncio.create_task(pool.run("a", ran.append, 1))
        await asyncio.sleep(0.01)
        victim.cancel()
        gate.set()
        await blocker
        assert await pool.run("a", ran.append, 2) is None
    assert ran == [2]
