"""Fixtures of the RabbitMQ tests: a real broker (one per module) and real worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rabbit.broker import Broker, available

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    if not available():
        pytest.skip("rabbitmq-server is not installed (scripts/install.sh installs it)")
    b = Broker(tmp_path_factory.mktemp("rabbit"))
    b.start()
    try:
        yield b
    finally:
        b.close()


class Worker:
    """One ``python -m avatar_engine.workers.worker`` process (with ``cli``: one ``vstage
    worker``, which serves the render jobs of :mod:`avatar_engine.workers.jobs`)."""

    def __init__(self, url: str, queue: str, log: Path, *, cli: bool = False) -> None:
        self.log = log
        if cli:
            argv = ["-m", "bots.cli", "worker", "--broker", url, "--queue", queue]
        else:
            argv = ["-m", "avatar_engine.workers.worker", "--broker", url, "--queue", queue,
                    "--import", "tests.rabbit.jobs"]
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=open(log, "wb"),  # noqa: SIM115 - owned by the process
            text=True,
        )
        assert self.proc.stdout is not None  # stdout=PIPE
        line = self.proc.stdout.readline()
        if "worker ready" not in line:
            self.proc.kill()
            raise RuntimeError(f"worker did not start: {line!r} {log.read_text()[-2000:]}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def queue(request: pytest.FixtureRequest) -> str:
    """A job queue of this test's own, so tests never see each other's leftovers."""
    return f"test.{request.node.name}.{time.monotonic_ns()}"


@pytest.fixture
def start_worker(broker: Broker, queue: str, tmp_path: Path):
    started: list[Worker] = []

    def start(*, cli: bool = False) -> Worker:
        w = Worker(broker.url, queue, tmp_path / f"worker{len(started)}.log", cli=cli)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()
