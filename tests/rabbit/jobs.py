"""Job kinds the RabbitMQ tests register on both sides (workers get ``--import`` of this)."""

from __future__ import annotations

import os

from avatar_engine.workers.worker import job


@job("test.fail")
def fail(message: str) -> None:
    raise ValueError(message)


@job("test.pid")
def worker_pid() -> int:
    return os.getpid()
