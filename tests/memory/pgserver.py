"""A private PostgreSQL 15 server for tests and the memory benchmark.

Debian's binaries (``/usr/lib/postgresql/15/bin``) run as the ``postgres`` user when we are
root (initdb and the server refuse root), on a free port of 127.0.0.1, with the data dir (and
its Unix socket) in a fresh temporary folder; :meth:`PgServer.stop` stops it by its data dir
and removes the folder.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.netutil import free_port

PG_BIN = Path(os.environ.get("VSTAGE_PG_BIN", "/usr/lib/postgresql/15/bin"))


def available() -> bool:
    """Whether the PostgreSQL server binaries are installed."""
    return (PG_BIN / "initdb").exists() and (PG_BIN / "pg_ctl").exists()


class PgServer:
    """One throw-away PostgreSQL cluster; ``url(db)`` names a database on it."""

    def __init__(self, *, durable: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="vstage-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.durable = durable
        self._as_postgres = os.geteuid() == 0
        self._started = False

    def _cmd(self, *argv: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if self._as_postgres else list(argv)

    def start(self) -> None:
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        subprocess.run(self._cmd(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust",
                                 "-U", "postgres", "-E", "UTF8", "--no-sync"),
                       check=True, capture_output=True, timeout=120)
        options = [f"-p {self.port}", f"-k {self.data}", "-c listen_addresses=127.0.0.1",
                   "-c max_connections=200"]
        if not self.durable:
            # Tests never crash the server itself, only our clients: skip the disk flushes.
            options += ["-c fsync=off", "-c synchronous_commit=off",
                        "-c full_page_writes=off"]
        subprocess.run(self._cmd(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o",
                                 " ".join(options), "-l", str(self.data / "server.log"),
                                 "-w", "-t", "60", "start"),
                       check=True, capture_output=True, timeout=120)
        self._started = True

    def url(self, database: str = "postgres") -> str:
        """An asyncpg URL of ``database`` (user postgres, no password: trust on loopback)."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL with psql (as a superuser); returns its output."""
        done = subprocess.run(
            [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-d", database, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
            check=True, capture_output=True, text=True, timeout=60)
        return done.stdout

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self._started:
            subprocess.run(self._cmd(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m",
                                     "immediate", "-w", "stop"),
                           check=False, capture_output=True, timeout=60)
            self._started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, n: int = 3000) -> str:
        log = self.data / "server.log"
        try:
            return log.read_text(errors="replace")[-n:]
        except OSError:
            return ""
