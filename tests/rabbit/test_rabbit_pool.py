"""The RabbitMQ render pool against a real broker and real worker processes."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

import pytest

from avatar_engine.workers.pool import RenderPool
from avatar_engine.workers.rabbit import RabbitRenderPool
from avatar_engine.workers.worker import echo, sleep_then_echo
from tests.netutil import free_port
from tests.rabbit import jobs  # noqa: F401 - registers the test job kinds here too
from vstage_core.errors import ProviderError

pytestmark = pytest.mark.timeout(120)


def started_by(folder: Path) -> dict[int, str]:
    """Which worker (pid) started which jobs, from ``sleep_then_echo``'s marks."""
    return {int(p.name.split("-")[1]): p.read_text() for p in folder.glob("started-*")}


async def test_broker_down_at_start_is_a_clear_error() -> None:
    url = f"amqp://guest:secret@127.0.0.1:{free_port()}/"
    pool = RabbitRenderPool(url=url)
    with pytest.raises(ProviderError, match="cannot reach the RabbitMQ broker") as e:
        await pool.start()
    assert e.value.retryable
    assert "secret" not in str(e.value)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "avatar_engine.workers.worker",
        "--broker",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert "cannot reach the RabbitMQ broker" in err.decode()


async def test_round_trip_and_errors(broker, queue, start_worker) -> None:
    start_worker()
    async with RabbitRenderPool(url=broker.url, queue=queue) as pool:
        assert isinstance(pool, RenderPool)
        assert await pool.run("a", echo, {"x": [1, 2]}) == {"x": [1, 2]}
        assert await pool.run("a", "echo", 7) == 7
        with pytest.raises(ValueError, match="renderer exploded"):
            await pool.run("a", "test.fail", "renderer exploded")
        assert await pool.run("a", echo, "still serving") == "still serving"
        with pytest.raises(TypeError, match="not a registered job"):
            await pool.run("a", print, 1)
        assert pool.pending() == 0


async def test_results_in_order_per_persona(broker, queue, start_worker) -> None:
    start_worker()
    start_worker()
    async with RabbitRenderPool(url=broker.url, queue=queue) as pool:
        done: list[tuple[str, int]] = []

        async def one(key: str, i: int, seconds: float) -> None:
            assert await pool.run(key, sleep_then_echo, seconds, i) == i
            done.append((key, i))

        # Later jobs are shorter: on two workers they finish first, yet are handed out last.
        async with asyncio.TaskGroup() as tg:
            for i, seconds in enumerate([0.6, 0.3, 0.0, 0.0]):
                tg.create_task(one("alice", i, seconds))
                tg.create_task(one("bob", i, seconds / 2))
                await asyncio.sleep(0.01)
        for key in ("alice", "bob"):
            assert [i for k, i in done if k == key] == [0, 1, 2, 3]
        assert pool.served == {"alice": 4, "bob": 4}


async def test_cancelled_job_does_not_block_its_persona(broker, queue, start_worker) -> None:
    start_worker()
    async with RabbitRenderPool(url=broker.url, queue=queue) as pool:
        slow = asyncio.create_task(pool.run("a", sleep_then_echo, 0.5, "slow"))
        await asyncio.sleep(0.1)
        nxt = asyncio.create_task(pool.run("a", echo, "next"))
        await asyncio.sleep(0.05)
        slow.cancel()
        assert await asyncio.wait_for(nxt, 10) == "next"
        assert pool.pending() == 0


async def test_worker_killed_mid_job_is_done_elsewhere_once(
    broker, queue, start_worker, tmp_path: Path
) -> None:
    workers = {w.pid: w for w in (start_worker(), start_worker())}
    async with RabbitRenderPool(url=broker.url, queue=queue) as pool:
        job = asyncio.create_task(pool.run("a", sleep_then_echo, 1.5, "X", str(tmp_path)))
        deadline = time.monotonic() + 10
        while not (started := started_by(tmp_path)):
            assert time.monotonic() < deadline, "no worker took the job"
            await asyncio.sleep(0.02)
        (victim,) = started
        workers[victim].kill()
        killed_at = time.monotonic()
        assert await asyncio.wait_for(job, 15) == "X"
        redelivery_s = time.monotonic() - killed_at
        (survivor,) = set(workers) - {victim}
        assert started_by(tmp_path) == {victim: "'X'\n", survivor: "'X'\n"}
        assert redelivery_s < 10
        await asyncio.sleep(0.3)
        assert pool.duplicates == 0 and pool.served == {"a": 1}
        # the pool keeps working on the survivor
        assert await pool.run("a", "test.pid") == survivor


async def test_broker_restart_is_survived(broker, queue, start_worker) -> None:
    worker = start_worker()
    async with RabbitRenderPool(url=broker.url, queue=queue, reconnect_interval=0.5) as pool:
        assert await pool.run("a", echo, 1) == 1
        await asyncio.to_thread(broker.stop)
        # submitted while the broker is down: sent once the pool is back
        during = asyncio.create_task(pool.run("a", echo, 2))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(broker.start)
        assert await asyncio.wait_for(during, 30) == 2
        assert await asyncio.wait_for(pool.run("a", echo, 3), 30) == 3
        assert await asyncio.wait_for(pool.run("b", "test.pid"), 30) == worker.pid


async def test_broker_outage_is_logged_once_lost_and_once_back(
    broker, queue, start_worker, caplog
) -> None:
    worker = start_worker()
    caplog.set_level(logging.DEBUG)  # everything is captured; the log a user reads is INFO+
    async with RabbitRenderPool(url=broker.url, queue=queue, reconnect_interval=0.25) as pool:
        assert await pool.run("a", echo, 1) == 1
        caplog.clear()
        await asyncio.to_thread(broker.stop)
        during = asyncio.create_task(pool.run("a", echo, 2))
        await asyncio.sleep(5)  # ~20 reconnection attempts by the pool, as many by the worker
        await asyncio.to_thread(broker.start)
        assert await asyncio.wait_for(during, 30) == 2
        await asyncio.sleep(0.5)
        records = [r for r in caplog.records if r.levelno >= logging.INFO]
        messages = [f"{r.name} {r.levelname} {r.getMessage()}" for r in records]
        assert len(records) == 2, "\n".join(messages)
        lost, back = records
        assert "lost the broker" in lost.getMessage() and lost.levelno == logging.WARNING
        assert "reconnected" in back.getMessage() and "after" in back.getMessage()
        assert "guest:guest" not in "".join(messages)  # the password never shows
        assert pool.outage_log.outages == 1 and not pool.outage_log.down
        # The per-attempt records are still there, at DEBUG, for anyone who asks.
        assert any(r.levelno == logging.DEBUG and r.name.startswith(("aio_pika", "aiormq"))
                   for r in caplog.records)
    # The worker process says the same, once each, in its own log.
    worker.stop()
    log = worker.log.read_text()
    assert log.count("lost the broker") == 1, log[-3000:]
    assert log.count("reconnected to") == 1, log[-3000:]
    assert "Connection attempt" not in log, log[-3000:]
