"""The database behind the memory store: URL resolution and one configured async engine.

SQLite (the default, a file under ``state_dir``) and PostgreSQL (``memory.url``) share every
query; what differs lives here (connection pragmas, how transactions begin) and in the
full-text parts of :mod:`bots.memory.schema`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bots.memory.errors import MemoryStoreError
from vstage_core.errors import require

__all__ = ["SQLITE_FILE", "WRITE", "create_engine", "is_sqlite", "resolve_url"]

logger = logging.getLogger(__name__)

SQLITE_FILE = "memory.db"
# Execution option that makes a SQLite transaction take the write lock at BEGIN (IMMEDIATE):
# a deferred transaction that reads and then writes can fail with SQLITE_BUSY_SNAPSHOT when
# another connection wrote in between, and the busy timeout does not help with that.
WRITE = "vstage_write"
BUSY_TIMEOUT_MS = 15_000

_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg",
            "postgres": "postgresql+asyncpg"}


def resolve_url(url: str | None, *, state_dir: Path) -> URL:
    """The async SQLAlchemy URL for ``memory.url``.

    ``None`` means SQLite at ``<state_dir>/memory.db``. A plain ``sqlite:///`` or
    ``postgresql://`` URL gets the async driver (aiosqlite, asyncpg); anything else is refused
    with :class:`MemoryStoreError` (``bad_url``), whose message hides the password.
    """
    if url is None:
        return URL.create("sqlite+aiosqlite", database=str(Path(state_dir) / SQLITE_FILE))
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise MemoryStoreError("memory.url is not a database URL (expected sqlite:///PATH or "
                               "postgresql+asyncpg://USER@HOST/DB)", code="bad_url") from e
    backend = parsed.get_backend_name()
    if backend not in _DRIVERS:
        raise MemoryStoreError(
            f"memory.url {parsed.render_as_string(hide_password=True)!r}: only SQLite and "
            "PostgreSQL are supported", code="bad_url")
    wanted = _DRIVERS[backend]
    if parsed.drivername != wanted:
        if parsed.get_driver_name() not in ("", "pysqlite", "aiosqlite", "asyncpg", "psycopg2",
                                            "psycopg"):
            raise MemoryStoreError(
                f"memory.url {parsed.render_as_string(hide_password=True)!r}: driver "
                f"{parsed.get_driver_name()!r} is not supported, use {wanted}", code="bad_url")
        parsed = parsed.set(drivername=wanted)
    if wanted.startswith("sqlite") and parsed.database in (None, "", ":memory:"):
        raise MemoryStoreError("memory.url: an in-memory SQLite database would forget "
                               "everything on restart; give a file path", code="bad_url")
    return parsed


def is_sqlite(engine: AsyncEngine) -> bool:
    """Whether ``engine`` talks to SQLite (else PostgreSQL)."""
    return engine.dialect.name == "sqlite"


def create_engine(url: URL, *, reader: bool = False) -> AsyncEngine:
    """An async engine for ``url`` (from :func:`resolve_url`), configured for this store.

    ``reader``: an engine for the hot read path (``person``, ``recall``): autocommit, no
    BEGIN, COMMIT or ROLLBACK around a query and no reset when a connection goes back to the
    pool. Each of those is a round trip (a thread hop with aiosqlite, a packet with asyncpg)
    that costs more than the indexed query itself; one SELECT is consistent on its own. On
    SQLite its connections are also ``query_only``.

    SQLite: the file is created owner-only (0600, memories are personal data), every connection
    runs in WAL mode with ``synchronous=NORMAL`` (a killed process never loses a committed
    transaction nor corrupts the file; only a power cut may lose the newest ones), a busy
    timeout, foreign keys and ``secure_delete`` (forgotten rows are overwritten, not left in
    free pages). SQLAlchemy emits BEGIN itself (the sqlite3 module's legacy mode would run
    SELECTs outside the transaction); a connection with the :data:`WRITE` execution option
    begins IMMEDIATE. PostgreSQL: asyncpg with pre-ping, so a restarted server is survived.
    """
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        if reader:
            engine = create_async_engine(url, pool_size=8, max_overflow=8, pool_timeout=60,
                                         **_READER)
        else:
            engine = create_async_engine(url, pool_size=8, max_overflow=8, pool_timeout=60)
        _configure_sqlite(engine, reader=reader)
        return engine
    require("asyncpg", extra="postgres")
    if reader:
        return create_async_engine(url, pool_size=10, max_overflow=10, pool_timeout=60,
                                   pool_pre_ping=True, **_READER)
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_timeout=60,
                               pool_pre_ping=True)


_READER: dict[str, Any] = {"isolation_level": "AUTOCOMMIT", "skip_autocommit_rollback": True,
                           "pool_reset_on_return": None}


def _wal(cursor: Any) -> None:
    """Switch to WAL. On a new file opened by two processes at once the switch can be refused
    as "database is locked" without waiting for the busy timeout: try again for a while."""
    for attempt in range(100):
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or attempt == 99:
                raise
            time.sleep(0.05)


def _configure_sqlite(engine: AsyncEngine, *, reader: bool) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy's documented recipe: let it emit BEGIN instead of the sqlite3 module.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _wal(cursor)
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA secure_delete = ON")
            if reader:
                cursor.execute("PRAGMA query_only = ON")
        finally:
            cursor.close()

    if reader:
        return

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
