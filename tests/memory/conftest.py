"""Fixtures of the memory tests: a private PostgreSQL per session and a ``store`` fixture that
runs every store test on SQLite and on PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bots.memory.store import MemoryStore
from tests.memory.pgserver import PgServer, available

_DATABASES = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL 15 cluster for the whole test session (initdb + start: ~1 s)."""
    if not available():
        pytest.skip("PostgreSQL 15 server binaries are not installed (apt-get install "
                    "postgresql-15)")
    server = PgServer()
    try:
        server.start()
    except Exception:
        tail = server.log_tail()
        server.stop()
        raise RuntimeError(f"PostgreSQL did not start: {tail}") from None
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(pg_server: PgServer) -> str:
    """The URL of the session's PostgreSQL server (its ``postgres`` database)."""
    return pg_server.url()


@dataclass(frozen=True)
class Target:
    """Where a test's memory database lives: ``url`` (None: SQLite in ``state_dir``)."""

    backend: str
    url: str | None
    state_dir: Path

    async def open(self, **kwargs: Any) -> MemoryStore:
        return await MemoryStore.open(self.url, state_dir=self.state_dir, **kwargs)


@pytest.fixture(params=["sqlite", "postgres"])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """A fresh, empty database on each backend."""
    state_dir = tmp_path / "var"
    if request.param == "sqlite":
        return Target("sqlite", None, state_dir)
    server: PgServer = request.getfixturevalue("pg_server")
    name = f"memtest{next(_DATABASES)}"
    conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="postgres",
                                 database="postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return Target("postgres", server.url(name), state_dir)


class Clock:
    """A settable UTC clock for the store (expiry and retention without sleeping)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def store(target: Target) -> AsyncIterator[MemoryStore]:
    """An open store on a fresh database (SQLite and PostgreSQL)."""
    s = await target.open()
    try:
        yield s
    finally:
        await s.aclose()


@pytest.fixture
def open_store(target: Target) -> Callable[..., Awaitable[MemoryStore]]:
    """Open (another) store on the test's database, e.g. with a ``clock``."""
    return target.open
