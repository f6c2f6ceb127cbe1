"""A real RabbitMQ broker for tests: a private node with its own state dir, epmd and ports.

``rabbitmq-server`` runs directly (not the /usr/sbin wrapper, which switches user and logs to
/var/log), with an epmd of our own on a private port, so nothing is shared with another
broker on the machine and everything started is stopped by its PID.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.netutil import free_port

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


def available() -> bool:
    return (RABBIT_BIN / "rabbitmq-server").exists() and shutil.which("epmd") is not None


class Broker:
    """One RabbitMQ node on 127.0.0.1; ``start``/``stop`` may be repeated (a restart keeps the
    state dir, so durable queues and persistent messages survive)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.epmd_port = free_port()
        self.dist_port = free_port()
        self.node = f"vstage{os.getpid()}x{self.port}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self.pid_file = root / "rabbit.pid"
        self._server: subprocess.Popen | None = None
        self._epmd: subprocess.Popen | None = None
        (root / "home").mkdir(parents=True, exist_ok=True)
        (root / "mnesia").mkdir(exist_ok=True)
        (root / "log").mkdir(exist_ok=True)
        (root / "enabled_plugins").write_text("[].\n")
        (root / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            "loopback_users = none\n"
            # Tests kill workers mid-job; a dead consumer's unacked job must come back fast.
            "heartbeat = 5\n"
        )

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            HOME=str(self.root / "home"),
            RABBITMQ_MNESIA_BASE=str(self.root / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.root / "log"),
            RABBITMQ_PID_FILE=str(self.pid_file),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.root / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(self.root / "rabbitmq"),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_DIST_PORT=str(self.dist_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            ERL_EPMD_PORT=str(self.epmd_port),
        )
        return env

    def start(self, timeout: float = 60.0) -> None:
        if self._epmd is None:
            self._epmd = subprocess.Popen(
                ["epmd", "-address", "127.0.0.1", "-port", str(self.epmd_port)],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        log = open(self.root / "server.out", "ab")  # noqa: SIM115 - owned by the process
        self._server = subprocess.Popen(
            [str(RABBIT_BIN / "rabbitmq-server")],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._server.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited: {self.log_tail()}")
            if self.accepting():
                return
            time.sleep(0.2)
        raise TimeoutError(f"RabbitMQ did not accept AMQP in {timeout} s: {self.log_tail()}")

    def accepting(self) -> bool:
        """Whether the AMQP listener answers the protocol header."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"AMQP\x00\x00\x09\x01")
                return s.recv(8).startswith(b"\x01")  # connection.start frame
        except OSError:
            return False

    def stop(self) -> None:
        if self._server is None:
            return
        subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, "stop", str(self.pid_file)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        try:
            self._server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._server.kill()
            self._server.wait()
        self._server = None

    def close(self) -> None:
        """Stop the node and our epmd."""
        self.stop()
        if self._epmd is not None:
            self._epmd.terminate()
            try:
                self._epmd.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._epmd.kill()
                self._epmd.wait()
            self._epmd = None

    def log_tail(self, n: int = 3000) -> str:
        out = self.root / "server.out"
        return out.read_text(errors="replace")[-n:] if out.exists() else ""
