"""Tables of the memory store and the ordered migrations that build them.

The tables (for queries) describe the newest schema; the migrations are frozen DDL, one
function per version, because a migration must keep doing what it did when it shipped even
after the tables change. :func:`migrate` runs the missing ones on open, in one transaction
that holds the database's write lock (SQLite) or an advisory lock (PostgreSQL), so two
processes opening the same database at once migrate it once.

Versions:
    1. persons, viewers (platform + viewer id -> person), memories (facts and summaries,
       deduplicated), turns (conversation history), link codes.
    2. full-text search: an FTS5 table kept by triggers (SQLite) or a generated ``tsvector``
       column with a GIN index (PostgreSQL, ``simple`` configuration: no stemming or stop
       words, so German and French facts match as well as English ones); existing memories
       are indexed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from bots.memory.errors import MemoryStoreError

__all__ = [
    "LATEST",
    "MIGRATIONS",
    "UTCDateTime",
    "link_codes",
    "memories",
    "metadata",
    "migrate",
    "persons",
    "schema_version",
    "turns",
    "viewers",
]

logger = logging.getLogger(__name__)

# Advisory lock key of PostgreSQL migrations ("vstage memory" in ASCII, fits a bigint).
_PG_LOCK_KEY = 0x76737467_6d656d


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always an aware UTC datetime in Python.

    PostgreSQL stores ``timestamptz``; SQLite stores the UTC wall time as text (its only
    sortable form), and it comes back naive, so it is tagged UTC again on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the memory store; use UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

persons = Table(
    "persons", metadata,
    Column("id", String(40), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
)

viewers = Table(
    "viewers", metadata,
    Column("platform", String(32), primary_key=True),
    Column("viewer_id", String(128), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("person", String(40), ForeignKey("persons.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

memories = Table(
    "memories", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("persona", String(64), nullable=False),
    Column("person", String(40), ForeignKey("persons.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("text", Text, nullable=False),
    Column("dedupe_key", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("platform", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

turns = Table(
    "turns", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("persona", String(64), nullable=False),
    Column("person", String(40), ForeignKey("persons.id"), nullable=False),
    Column("said", Text, nullable=False),
    Column("replied", Text, nullable=False),
    Column("platform", String(32), nullable=False),
    Column("at", UTCDateTime, nullable=False),
)

link_codes = Table(
    "link_codes", metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("platform", String(32), nullable=False),
    Column("viewer_id", String(128), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)


Migration = Callable[[AsyncConnection, str], Awaitable[None]]


async def _run(conn: AsyncConnection, statements: str) -> None:
    """Run a script: statements end with ``;`` at the end of a line that is followed by an
    unindented line other than a trigger's ``END``."""
    for statement in re.split(r";\n(?=\S)(?!END\b)", statements):
        if statement.strip():
            await conn.exec_driver_sql(statement)


def _ddl(dialect: str, sql: str) -> str:
    """Fill the few type names that differ between SQLite and PostgreSQL."""
    if dialect == "sqlite":
        return sql.format(id="INTEGER PRIMARY KEY AUTOINCREMENT", ts="DATETIME")
    return sql.format(id="BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", ts="TIMESTAMPTZ")


async def _v1_tables(conn: AsyncConnection, dialect: str) -> None:
    await _run(conn, _ddl(dialect, """
CREATE TABLE persons (
    id VARCHAR(40) PRIMARY KEY,
    created_at {ts} NOT NULL
);
CREATE TABLE viewers (
    platform VARCHAR(32) NOT NULL,
    viewer_id VARCHAR(128) NOT NULL,
    name VARCHAR(128) NOT NULL DEFAULT '',
    person VARCHAR(40) NOT NULL REFERENCES persons (id),
    created_at {ts} NOT NULL,
    PRIMARY KEY (platform, viewer_id)
);
CREATE INDEX ix_viewers_person ON viewers (person);
CREATE INDEX ix_viewers_name ON viewers (lower(name));
CREATE TABLE memories (
    id {id},
    persona VARCHAR(64) NOT NULL,
    person VARCHAR(40) NOT NULL REFERENCES persons (id),
    kind VARCHAR(16) NOT NULL CHECK (kind IN ('fact', 'summary')),
    text TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    platform VARCHAR(32) NOT NULL DEFAULT '',
    created_at {ts} NOT NULL,
    CONSTRAINT uq_memories_dedupe UNIQUE (person, persona, kind, dedupe_key)
);
CREATE INDEX ix_memories_person_time ON memories (person, persona, created_at);
CREATE INDEX ix_memories_persona_time ON memories (persona, created_at);
CREATE TABLE turns (
    id {id},
    persona VARCHAR(64) NOT NULL,
    person VARCHAR(40) NOT NULL REFERENCES persons (id),
    said TEXT NOT NULL,
    replied TEXT NOT NULL,
    platform VARCHAR(32) NOT NULL DEFAULT '',
    at {ts} NOT NULL
);
CREATE INDEX ix_turns_person ON turns (person, persona, id);
CREATE INDEX ix_turns_persona_time ON turns (persona, at);
CREATE TABLE link_codes (
    code_hash VARCHAR(64) PRIMARY KEY,
    platform VARCHAR(32) NOT NULL,
    viewer_id VARCHAR(128) NOT NULL,
    expires_at {ts} NOT NULL,
    FOREIGN KEY (platform, viewer_id) REFERENCES viewers (platform, viewer_id)
);
CREATE INDEX ix_link_codes_viewer ON link_codes (platform, viewer_id)
"""))


async def _v2_fulltext(conn: AsyncConnection, dialect: str) -> None:
    if dialect == "sqlite":
        # External content: the index holds no second copy of the text; the triggers keep it
        # in step with every insert, delete (forget, retention) and edit.
        await _run(conn, """
CREATE VIRTUAL TABLE memories_fts USING fts5(
    text, content='memories', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER memories_fts_update AFTER UPDATE OF text ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO memories_fts (rowid, text) VALUES (new.id, new.text);
END;
INSERT INTO memories_fts (memories_fts) VALUES ('rebuild')
""")
    else:
        await _run(conn, """
ALTER TABLE memories ADD COLUMN tsv tsvector
    GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, text)) STORED;
CREATE INDEX ix_memories_tsv ON memories USING GIN (tsv)
""")


MIGRATIONS: tuple[tuple[int, str, Migration], ...] = (
    (1, "persons, viewers, memories, turns, link codes", _v1_tables),
    (2, "full-text search of memories", _v2_fulltext),
)
LATEST = MIGRATIONS[-1][0]


async def current_version(conn: AsyncConnection) -> int:
    """The schema version of the database (0: empty, nothing of ours yet)."""
    has_table = await conn.run_sync(
        lambda sync: sync.dialect.has_table(sync, "schema_version"))
    if not has_table:
        return 0
    value = (await conn.execute(text("SELECT max(version) FROM schema_version"))).scalar()
    return int(value or 0)


async def migrate(conn: AsyncConnection, *, target: int = LATEST) -> tuple[int, int]:
    """Bring the database to schema ``target``; returns (version before, version after).

    ``conn`` must be inside a transaction that may write; every step runs in it, so a failed
    or interrupted migration leaves the database at the version it had.

    Raises:
        MemoryStoreError: ``schema_too_new`` when the database is newer than this code.
    """
    dialect = conn.dialect.name
    if dialect == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    before = await current_version(conn)
    if before > LATEST:
        raise MemoryStoreError(
            f"the memory database has schema version {before}, newer than this vstage knows "
            f"({LATEST}); upgrade vstage", code="schema_too_new")
    if before == 0:
        await conn.exec_driver_sql("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        await conn.execute(text("INSERT INTO schema_version (version) VALUES (0)"))
    version = before
    for number, what, step in MIGRATIONS:
        if version < number <= target:
            logger.info("memory schema: migrating to v%d (%s)", number, what)
            await step(conn, dialect)
            await conn.execute(text("UPDATE schema_version SET version = :v"), {"v": number})
            version = number
    return before, version


def row_dict(row: Any) -> dict[str, Any]:
    """A result row as a plain dict (for exports)."""
    return dict(row._mapping)
