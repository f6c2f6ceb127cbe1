"""The memory store: who a viewer is, what a persona remembers about them, what they said.

One code path for SQLite (default, a WAL file under ``state_dir``) and PostgreSQL
(``memory.url``), with SQLAlchemy Core on the async drivers (aiosqlite, asyncpg). Only
full-text search differs by database: FTS5 on SQLite, a ``tsvector`` on PostgreSQL
(:mod:`bots.memory.schema`). Every write is one transaction; nothing one person said is ever
returned for another person, because every memory query is keyed by the person's id.

Identity: a viewer is ``(platform, viewer id)``; each viewer belongs to one *person* (an opaque
id such as ``p3f9c0e4b1a2d7c65``). Linking two viewers merges their persons, moving every row of
one onto the other, so a Twitch and a Discord account share memories once a streamer or the
viewer (with a one-time code) links them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import re
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, cast

from sqlalchemy import and_, delete, exists, func, insert, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bots.memory import db
from bots.memory.errors import MemoryStoreError
from bots.memory.schema import (
    UTCDateTime,
    link_codes,
    memories,
    migrate,
    persons,
    turns,
    viewers,
)

__all__ = ["MemoryItem", "MemoryStore", "Turn"]

logger = logging.getLogger(__name__)

Kind = Literal["fact", "summary"]
KINDS: frozenset[str] = frozenset({"fact", "summary"})

MAX_TEXT = 1000  # one memory; extracted facts are a sentence, summaries a paragraph
MAX_SOURCE = 1000  # the message a memory came from, kept as context only
MAX_TURN = 4000
MAX_NAME = 128
MAX_QUERY_WORDS = 16
# Link codes: 8 characters from 32 that cannot be misread (no 0/O, 1/I): 40 bits, so guessing
# one in its lifetime (10 minutes by default) through chat is hopeless.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
MAX_CODE_TTL_S = 7 * 24 * 3600.0

_PLATFORM = re.compile(r"[a-z0-9_-]{1,32}")
_WORD = re.compile(r"[^\W_]+")
_CODE = re.compile(f"[{CODE_ALPHABET}]{{{CODE_LENGTH}}}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# Words that say nothing about a person; a query made only of them falls back to the newest
# facts instead of matching every memory that says "I" or "ich".
_STOP_WORDS = frozenset("""
a an the i me my mine you your is am are was were be been do does did to of in on at for and
or but it its this that what who how why when where with about have has had can could will
would should not no yes so just like im dont please tell know remember
ich du er sie es wir ihr mein meine dein deine ist bin bist sind war und oder aber nicht ein
eine einen der die das den dem was wer wie warum wo mit von zu im am auf für
je tu il elle nous vous ils le la les un une des de du et ou mais ne pas est suis es sont
mon ma mes ton ta tes que qui quoi comment pourquoi où avec pour dans sur au aux
""".split())


@dataclass(frozen=True, slots=True)
class MemoryItem:
    """One thing a persona remembers about a person.

    Attributes:
        id: the row id (stable; used by exports and tests).
        persona: the persona that remembers it; other personas never see it.
        person: the person it is about.
        kind: ``fact`` (one short statement) or ``summary`` (the rolling summary).
        text: what is remembered, as stored (data, never instructions).
        source: the message it was taken from.
        platform: where that message was said.
        created_at: when it was stored (UTC).
    """

    id: int
    persona: str
    person: str
    kind: Kind
    text: str
    source: str
    platform: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Turn:
    """One exchange of a person with a persona: what they said and what the persona replied."""

    said: str
    replied: str
    platform: str
    at: datetime


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _bad(message: str) -> MemoryStoreError:
    return MemoryStoreError(message, code="bad_input")


def _check_str(value: object, what: str, max_len: int) -> str:
    if not isinstance(value, str):
        raise _bad(f"{what} must be a string, not {type(value).__name__}")
    value = value.strip()
    if not value:
        raise _bad(f"{what} is empty")
    if len(value) > max_len:
        raise _bad(f"{what} is longer than {max_len} characters")
    if _CONTROL.search(value):
        raise _bad(f"{what} contains control characters")
    return value


def _check_platform(platform: object) -> str:
    if not isinstance(platform, str) or not _PLATFORM.fullmatch(platform):
        raise _bad(f"platform {platform!r} is not a platform name (a-z, 0-9, _ or -, "
                   "at most 32 characters)")
    return platform


def _check_viewer(platform: object, viewer_id: object) -> tuple[str, str]:
    return _check_platform(platform), _check_str(viewer_id, "viewer id", 128)


def _check_pair(viewer: object) -> tuple[str, str]:
    if not isinstance(viewer, tuple | list) or len(viewer) != 2:
        raise _bad(f"a viewer is (platform, viewer id), not {viewer!r}")
    return _check_viewer(viewer[0], viewer[1])


def _clip(value: object, what: str, max_len: int) -> str:
    """Free text kept as context (names, sources): any string, whitespace-collapsed, clipped."""
    if not isinstance(value, str):
        raise _bad(f"{what} must be a string, not {type(value).__name__}")
    return " ".join(_CONTROL.sub(" ", value).split())[:max_len]


def dedupe_key(memory_text: str) -> str:
    """What two memories share when they say the same thing ("Likes cats." == "likes cats")."""
    return " ".join(_WORD.findall(memory_text.casefold()))


def query_words(query: str) -> list[str]:
    """The words of ``query`` worth searching for: lower-cased, no stop words, no repeats."""
    words: list[str] = []
    for word in _WORD.findall(query.lower()):
        if len(word) > 1 and word not in _STOP_WORDS and word not in words:
            words.append(word)
            if len(words) == MAX_QUERY_WORDS:
                break
    return words


def _new_person_id() -> str:
    return "p" + secrets.token_hex(8)


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _item(row: Any) -> MemoryItem:
    return MemoryItem(id=int(row.id), persona=row.persona, person=row.person,
                      kind=cast(Kind, row.kind), text=row.text, source=row.source,
                      platform=row.platform, created_at=row.created_at)


_ITEM_COLUMNS = (memories.c.id, memories.c.persona, memories.c.person, memories.c.kind,
                 memories.c.text, memories.c.source, memories.c.platform, memories.c.created_at)

# Recall is one statement (each round trip costs more than the indexed work): the person's
# full-text matches (relevance set) and their newest facts (relevance NULL), to fill up.
_MEMORY_COLUMNS = "m.id, m.persona, m.person, m.kind, m.text, m.source, m.platform, m.created_at"
_NEWEST = f"""
SELECT {_MEMORY_COLUMNS}, NULL AS relevance FROM memories AS m
WHERE m.person = :person AND m.persona = :persona AND m.kind = 'fact'
ORDER BY m.created_at DESC, m.id DESC LIMIT :newest"""
_RECALL_NEWEST = text(_NEWEST).columns(created_at=UTCDateTime)
_RECALL_SQLITE = text(f"""
SELECT * FROM (
    SELECT {_MEMORY_COLUMNS}, -bm25(memories_fts) AS relevance
    FROM memories_fts JOIN memories AS m ON m.id = memories_fts.rowid
    WHERE memories_fts MATCH :query AND m.person = :person AND m.persona = :persona)
UNION ALL
SELECT * FROM ({_NEWEST})""").columns(created_at=UTCDateTime)
_RECALL_POSTGRES = text(f"""
(SELECT {_MEMORY_COLUMNS}, ts_rank(m.tsv, q.query) AS relevance
 FROM memories AS m, to_tsquery('simple'::regconfig, :query) AS q(query)
 WHERE m.person = :person AND m.persona = :persona AND m.tsv @@ q.query)
UNION ALL
({_NEWEST.replace("NULL AS", "NULL::real AS")})""").columns(created_at=UTCDateTime)


class MemoryStore:
    """Long-term memory of every persona about every person, in SQLite or PostgreSQL.

    Open it with :meth:`open` (which migrates the schema) and close it with :meth:`aclose` or
    ``async with``. Methods are safe to call concurrently from many tasks: SQLite writes are
    serialised in-process by a lock (the file allows one writer anyway) and across processes
    by SQLite's lock with a busy timeout; reads run in parallel.

    Errors: bad arguments raise :class:`MemoryStoreError` with code ``bad_input``; a database
    failure raises it with code ``unavailable``; writing about a person that does not exist
    (any more: it was forgotten) raises ``unknown_person``.
    """

    def __init__(self, engine: AsyncEngine, *, reader: AsyncEngine | None = None,
                 clock: Callable[[], datetime] = _utcnow, half_life_days: float = 30.0,
                 relevance_weight: float = 0.75) -> None:
        """Use :meth:`open`; this only wraps engines whose schema is already current.

        ``engine`` takes every write; ``reader`` (an autocommit engine on the same database,
        see :func:`bots.memory.db.create_engine`) serves the reads; None: ``engine`` does.
        """
        if half_life_days <= 0:
            raise _bad("half_life_days must be positive")
        if not 0.0 <= relevance_weight <= 1.0:
            raise _bad("relevance_weight must be between 0 and 1")
        self._engine = engine
        self._reader = reader or engine
        self._sqlite = db.is_sqlite(engine)
        self._clock = clock
        self._half_life_days = half_life_days
        self._relevance_weight = relevance_weight
        self._write_lock = asyncio.Lock() if self._sqlite else None
        self._closed = False

    # ---------------------------------------------------------------- lifecycle

    @classmethod
    async def open(cls, url: str | None, *, state_dir: Path,
                   clock: Callable[[], datetime] = _utcnow, half_life_days: float = 30.0,
                   relevance_weight: float = 0.75) -> MemoryStore:
        """Connect to the database and bring its schema up to date.

        Args:
            url: ``memory.url`` (SQLAlchemy URL; ``postgresql://`` and ``sqlite:///`` get the
                async drivers), or None for SQLite at ``<state_dir>/memory.db``.
            state_dir: where the default SQLite file lives.
            clock: the current UTC time (tests move it instead of sleeping).
            half_life_days: recall's recency half-life (see :meth:`recall`).
            relevance_weight: recall's share of text relevance against recency (0..1).

        Raises:
            MemoryStoreError: ``bad_url``, ``unavailable`` (cannot connect), ``schema_too_new``.
        """
        resolved = db.resolve_url(url, state_dir=state_dir)
        engine = db.create_engine(resolved)
        try:
            async with engine.connect() as conn:
                await conn.execution_options(**{db.WRITE: True})
                async with conn.begin():
                    before, after = await migrate(conn)
        except MemoryStoreError:
            await engine.dispose()
            raise
        except (DBAPIError, OSError) as e:
            await engine.dispose()
            where = engine.url.render_as_string(hide_password=True)
            raise MemoryStoreError(f"cannot open the memory database {where}: {_reason(e)}",
                                   code="unavailable", retryable=True) from e
        if before != after:
            logger.info("memory database migrated from schema v%d to v%d", before, after)
        return cls(engine, reader=db.create_engine(resolved, reader=True), clock=clock,
                   half_life_days=half_life_days, relevance_weight=relevance_weight)

    @property
    def engine(self) -> AsyncEngine:
        """The SQLAlchemy engine (for maintenance tools and tests that count rows)."""
        return self._engine

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    async def aclose(self) -> None:
        """Close every connection; idempotent. Later calls raise ``closed``."""
        if self._closed:
            return
        self._closed = True
        await self._reader.dispose()
        await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    # ---------------------------------------------------------------- transactions

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads. Each statement sees the latest commit (no transaction
        around them): a read made of several statements must not need them to agree."""
        self._check_open()
        try:
            async with self._reader.connect() as conn:
                yield conn
        except DBAPIError as e:
            raise _translate(e) from e

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[AsyncConnection]:
        """A read transaction: several statements that see the same state (exports)."""
        self._check_open()
        try:
            async with self._engine.connect() as conn, conn.begin():
                yield conn
        except DBAPIError as e:
            raise _translate(e) from e

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE, after the in-process lock)."""
        self._check_open()
        async with AsyncExitStack() as stack:
            if self._write_lock is not None:
                await stack.enter_async_context(self._write_lock)
            try:
                async with self._engine.connect() as conn:
                    await conn.execution_options(**{db.WRITE: True})
                    async with conn.begin():
                        yield conn
            except DBAPIError as e:
                raise _translate(e) from e

    def _check_open(self) -> None:
        if self._closed:
            raise MemoryStoreError("the memory store is closed", code="closed")

    def _insert(self, table: Any) -> Any:
        return sqlite_insert(table) if self._sqlite else pg_insert(table)

    # ---------------------------------------------------------------- identity

    async def person(self, platform: str, viewer_id: str, *, name: str = "") -> str:
        """The person id of a viewer, created on first sight; keeps the display name current.

        Reads only, unless the viewer is new or renamed, so calling it before every recall
        costs one indexed lookup.
        """
        platform, viewer_id = _check_viewer(platform, viewer_id)
        name = _clip(name, "name", MAX_NAME)
        async with self._read() as conn:
            row = (await conn.execute(
                select(viewers.c.person, viewers.c.name).where(
                    viewers.c.platform == platform, viewers.c.viewer_id == viewer_id))).first()
        if row is not None and (not name or row.name == name):
            return str(row.person)
        async with self._write() as conn:
            return await self._ensure_viewer(conn, platform, viewer_id, name)

    async def _ensure_viewer(self, conn: AsyncConnection, platform: str, viewer_id: str,
                             name: str) -> str:
        key = and_(viewers.c.platform == platform, viewers.c.viewer_id == viewer_id)
        row = (await conn.execute(select(viewers.c.person, viewers.c.name).where(key))).first()
        if row is not None:
            if name and row.name != name:
                await conn.execute(update(viewers).where(key).values(name=name))
            return str(row.person)
        now = self._clock()
        person = _new_person_id()
        await conn.execute(insert(persons).values(id=person, created_at=now))
        added = await conn.execute(
            self._insert(viewers).values(platform=platform, viewer_id=viewer_id, name=name,
                                         person=person, created_at=now)
            .on_conflict_do_nothing(index_elements=["platform", "viewer_id"]))
        if added.rowcount == 1:
            return person
        # PostgreSQL: another transaction created this viewer first; use its person.
        await conn.execute(delete(persons).where(persons.c.id == person))
        return str((await conn.execute(select(viewers.c.person).where(key))).scalar_one())

    async def link(self, a: tuple[str, str], b: tuple[str, str]) -> str:
        """Make two viewers one person (a streamer's decision); returns that person's id.

        ``a`` and ``b`` are ``(platform, viewer id)``; unseen viewers are created. Every row
        of ``b``'s person (memories, history, other linked viewers) moves to ``a``'s person;
        a fact both had is kept once, and of two summaries for a persona the newer one stays.
        """
        pa_key = _check_pair(a)
        pb_key = _check_pair(b)
        for attempt in range(3):
            try:
                async with self._write() as conn:
                    pa = await self._ensure_viewer(conn, *pa_key, "")
                    pb = await self._ensure_viewer(conn, *pb_key, "")
                    if pa != pb:
                        await self._merge(conn, into=pa, gone=pb)
                    return pa
            except MemoryStoreError as e:
                # PostgreSQL: a concurrent write to the vanishing person; run the merge again.
                if e.code != "conflict" or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _merge(self, conn: AsyncConnection, *, into: str, gone: str) -> None:
        kept = memories.alias("kept")
        await conn.execute(delete(memories).where(
            memories.c.person == gone, memories.c.kind == "fact",
            exists().where(kept.c.person == into, kept.c.persona == memories.c.persona,
                           kept.c.kind == memories.c.kind,
                           kept.c.dedupe_key == memories.c.dedupe_key)))
        summaries = (await conn.execute(
            select(memories.c.id, memories.c.persona, memories.c.created_at).where(
                memories.c.person.in_((into, gone)), memories.c.kind == "summary")
            .order_by(memories.c.created_at.desc(), memories.c.id.desc()))).all()
        seen: set[str] = set()
        older: list[int] = []
        for row in summaries:
            if row.persona in seen:
                older.append(int(row.id))
            seen.add(row.persona)
        if older:
            await conn.execute(delete(memories).where(memories.c.id.in_(older)))
        for table in (memories, turns, viewers):
            await conn.execute(update(table).where(table.c.person == gone).values(person=into))
        await conn.execute(delete(persons).where(persons.c.id == gone))
        logger.info("memory: person %s merged into %s", gone, into)

    async def link_code(self, platform: str, viewer_id: str, *, ttl_s: float = 600) -> str:
        """A one-time code that links whoever redeems it (elsewhere) to this viewer.

        Only a hash of the code is stored; a viewer holds one live code at a time (asking
        again replaces it), and it expires after ``ttl_s`` seconds.
        """
        platform, viewer_id = _check_viewer(platform, viewer_id)
        if not 0 < ttl_s <= MAX_CODE_TTL_S:
            raise _bad(f"ttl_s must be in (0, {MAX_CODE_TTL_S:.0f}] seconds")
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        now = self._clock()
        async with self._write() as conn:
            await self._ensure_viewer(conn, platform, viewer_id, "")
            await conn.execute(delete(link_codes).where(or_(
                link_codes.c.expires_at <= now,
                and_(link_codes.c.platform == platform, link_codes.c.viewer_id == viewer_id))))
            await conn.execute(insert(link_codes).values(
                code_hash=_code_hash(code), platform=platform, viewer_id=viewer_id,
                expires_at=now + timedelta(seconds=ttl_s)))
        return code

    async def redeem_link_code(self, code: str, platform: str, viewer_id: str) -> str | None:
        """Link this viewer to the one that asked for ``code``; returns the person id, or None
        when the code is wrong, expired or already used (a code works once, even if wrong
        redeemers try it first).

        The code is looked up by its SHA-256 and then compared with :func:`hmac.compare_digest`:
        the guess is hashed before any comparison, so timing says nothing about the real code.
        Case, spaces and dashes in what the viewer typed do not matter.
        """
        platform, viewer_id = _check_viewer(platform, viewer_id)
        if not isinstance(code, str):
            raise _bad("code must be a string")
        typed = re.sub(r"[\s-]", "", code).upper()
        if not _CODE.fullmatch(typed):
            return None
        wanted = _code_hash(typed)
        now = self._clock()
        async with self._write() as conn:
            row = (await conn.execute(
                delete(link_codes).where(link_codes.c.code_hash == wanted).returning(
                    link_codes.c.code_hash, link_codes.c.platform, link_codes.c.viewer_id,
                    link_codes.c.expires_at))).first()
            if row is None or not hmac.compare_digest(row.code_hash, wanted):
                return None
            if row.expires_at <= now:
                return None
            issuer = await self._ensure_viewer(conn, row.platform, row.viewer_id, "")
            redeemer = await self._ensure_viewer(conn, platform, viewer_id, "")
            if redeemer != issuer:
                await self._merge(conn, into=issuer, gone=redeemer)
            return issuer

    async def find_viewer(self, query: str) -> list[dict[str, str]]:
        """Viewers matching ``query``: ``platform:viewer-id``, a person id, a viewer id or a
        display name (case-insensitive for ASCII letters). Each is a dict with ``platform``,
        ``viewer_id``, ``name`` and ``person``, sorted by platform and id."""
        query = _check_str(query, "query", 200)
        conditions = [viewers.c.person == query, viewers.c.viewer_id == query,
                      func.lower(viewers.c.name) == query.lower()]
        platform, sep, viewer_id = query.partition(":")
        if sep and _PLATFORM.fullmatch(platform) and viewer_id:
            conditions.append(and_(viewers.c.platform == platform,
                                   viewers.c.viewer_id == viewer_id))
        async with self._read() as conn:
            rows = (await conn.execute(
                select(viewers.c.platform, viewers.c.viewer_id, viewers.c.name, viewers.c.person)
                .where(or_(*conditions))
                .order_by(viewers.c.platform, viewers.c.viewer_id))).all()
        return [{"platform": r.platform, "viewer_id": r.viewer_id, "name": r.name,
                 "person": r.person} for r in rows]

    # ---------------------------------------------------------------- history

    async def add_turn(self, persona: str, person: str, said: str, replied: str, *,
                       platform: str) -> None:
        """Keep one exchange in the person's history with this persona."""
        persona = _check_str(persona, "persona", 64)
        person = _check_str(person, "person", 40)
        platform = _check_platform(platform)
        said = _clip(said, "said", MAX_TURN)
        replied = _clip(replied, "replied", MAX_TURN)
        async with self._write() as conn:
            await self._require_person(conn, person)
            await conn.execute(insert(turns).values(
                persona=persona, person=person, said=said, replied=replied, platform=platform,
                at=self._clock()))

    async def history(self, persona: str, person: str, *, limit: int) -> list[Turn]:
        """The person's last ``limit`` exchanges with this persona, oldest first."""
        persona = _check_str(persona, "persona", 64)
        person = _check_str(person, "person", 40)
        if limit <= 0:
            return []
        async with self._read() as conn:
            rows = (await conn.execute(
                select(turns.c.said, turns.c.replied, turns.c.platform, turns.c.at)
                .where(turns.c.person == person, turns.c.persona == persona)
                .order_by(turns.c.id.desc()).limit(limit))).all()
        return [Turn(said=r.said, replied=r.replied, platform=r.platform, at=r.at)
                for r in reversed(rows)]

    async def _require_person(self, conn: AsyncConnection, person: str) -> None:
        found = (await conn.execute(select(persons.c.id).where(persons.c.id == person))).first()
        if found is None:
            raise MemoryStoreError(f"person {person!r} does not exist (forgotten?)",
                                   code="unknown_person")

    # ---------------------------------------------------------------- memories

    async def remember(self, persona: str, person: str, texts: Sequence[str], *,
                       kind: str = "fact", source: str, platform: str) -> int:
        """Store memories about a person for one persona; returns how many were new.

        A text that says what an existing memory of the same kind says (same words, ignoring
        case and punctuation) is not stored twice; blank texts are skipped.

        Raises:
            MemoryStoreError: ``bad_input`` (unknown kind, a text over 1000 characters),
                ``unknown_person`` (the person was forgotten meanwhile: nothing is stored).
        """
        persona = _check_str(persona, "persona", 64)
        person = _check_str(person, "person", 40)
        platform = _check_platform(platform)
        if kind not in KINDS:
            raise _bad(f"kind must be 'fact' or 'summary', not {kind!r}")
        if isinstance(texts, str):
            raise _bad("texts must be a sequence of strings, not one string")
        source = _clip(source, "source", MAX_SOURCE)
        rows: list[tuple[str, str]] = []
        for raw in texts:
            memory_text = _clip(raw, "memory text", MAX_TEXT + 1)
            if len(memory_text) > MAX_TEXT:
                raise _bad(f"a memory is at most {MAX_TEXT} characters")
            key = dedupe_key(memory_text)
            if key and all(key != k for _, k in rows):
                rows.append((memory_text, key))
        if not rows:
            return 0
        now = self._clock()
        added = 0
        async with self._write() as conn:
            await self._require_person(conn, person)
            for memory_text, key in rows:
                result = await conn.execute(
                    self._insert(memories).values(
                        persona=persona, person=person, kind=kind, text=memory_text,
                        dedupe_key=key, source=source, platform=platform, created_at=now)
                    .on_conflict_do_nothing(
                        index_elements=["person", "persona", "kind", "dedupe_key"]))
                added += max(result.rowcount, 0)
        return added

    async def set_summary(self, persona: str, person: str, text: str) -> None:
        """Replace the persona's rolling summary of this person (an empty text removes it)."""
        persona = _check_str(persona, "persona", 64)
        person = _check_str(person, "person", 40)
        summary = _clip(text, "summary", MAX_TEXT + 1)
        if len(summary) > MAX_TEXT:
            raise _bad(f"a summary is at most {MAX_TEXT} characters")
        async with self._write() as conn:
            await self._require_person(conn, person)
            await conn.execute(delete(memories).where(
                memories.c.person == person, memories.c.persona == persona,
                memories.c.kind == "summary"))
            if summary:
                await conn.execute(insert(memories).values(
                    persona=persona, person=person, kind="summary", text=summary,
                    dedupe_key=dedupe_key(summary), source="", platform="",
                    created_at=self._clock()))

    async def recall(self, persona: str, person: str, query: str, *, limit: int,
                     chars: int) -> list[MemoryItem]:
        """The few memories of this person, for this persona, that best fit ``query``.

        Only rows keyed by both ``person`` and ``persona`` are ever read. The query's words
        (lower-cased, stop words dropped) are searched with full-text search (FTS5 on SQLite,
        ``tsvector`` on PostgreSQL); each match scores::

            score = w * relevance / best_relevance + (1 - w) * 0.5 ** (age_days / half_life)

        where relevance is FTS5's bm25 (negated) or PostgreSQL's ``ts_rank``, normalised by
        the best match of this query, ``w`` is ``relevance_weight`` (0.75) and ``half_life``
        30 days: the best textual match wins unless it is much older than a close second.
        Matches come best first; then the newest facts fill the remaining places (with no
        match at all, recall is the newest facts). Items are taken in that order while their
        texts fit into ``chars`` characters together; ``limit`` caps the count.
        """
        persona = _check_str(persona, "persona", 64)
        person = _check_str(person, "person", 40)
        if not isinstance(query, str):
            raise _bad("query must be a string")
        if limit <= 0 or chars <= 0:
            return []
        words = query_words(query)
        now = self._clock()
        params: dict[str, object] = {"person": person, "persona": persona, "newest": 2 * limit}
        if not words:
            statement = _RECALL_NEWEST
        elif self._sqlite:
            statement, params["query"] = _RECALL_SQLITE, " OR ".join(f'"{w}"' for w in words)
        else:
            statement, params["query"] = _RECALL_POSTGRES, " | ".join(f"'{w}'" for w in words)
        async with self._read() as conn:
            rows = (await conn.execute(statement, params)).all()
        matched = [r for r in rows if r.relevance is not None]
        best = max((float(r.relevance) for r in matched), default=0.0)
        scored = sorted(((self._score(float(r.relevance), best, _item(r), now), _item(r))
                         for r in matched), key=lambda m: (-m[0], -m[1].id))
        chosen = [item for _, item in scored[:limit]]
        have = {item.id for item in chosen}
        chosen += [_item(r) for r in rows if r.relevance is None and int(r.id) not in have]
        picked: list[MemoryItem] = []
        budget = chars
        for item in chosen:
            if len(picked) == limit:
                break
            if len(item.text) <= budget:
                picked.append(item)
                budget -= len(item.text)
        return picked

    def _score(self, relevance: float, best: float, item: MemoryItem, now: datetime) -> float:
        age_days = max((now - item.created_at).total_seconds(), 0.0) / 86400.0
        recency = math.exp(-math.log(2.0) * age_days / self._half_life_days)  # halves per half-life
        textual = relevance / best if best > 0 else 0.0
        return self._relevance_weight * textual + (1.0 - self._relevance_weight) * recency

    async def about(self, person: str, *, persona: str | None = None) -> list[MemoryItem]:
        """Everything remembered about a person (by one persona, or all), newest first."""
        person = _check_str(person, "person", 40)
        condition = memories.c.person == person
        if persona is not None:
            condition = and_(condition, memories.c.persona == _check_str(persona, "persona", 64))
        async with self._read() as conn:
            rows = (await conn.execute(
                select(*_ITEM_COLUMNS).where(condition)
                .order_by(memories.c.created_at.desc(), memories.c.id.desc()))).all()
        return [_item(r) for r in rows]

    async def forget(self, person: str, *, persona: str | None = None) -> int:
        """Erase a person; returns the number of rows deleted.

        With ``persona``: that persona's memories and history of the person (the identity
        stays). Without: every memory and turn, every linked viewer, pending link codes and
        the person itself; a viewer who speaks again later is a new person. Full-text rows go
        with their memories (triggers / a generated column). On SQLite deleted pages are
        overwritten (``secure_delete``), the full-text index is merged so no deleted word
        lingers in it, and the WAL is checkpointed into the main file.
        """
        person = _check_str(person, "person", 40)
        if persona is not None:
            persona = _check_str(persona, "persona", 64)
        erased = 0
        async with self._write() as conn:
            if persona is not None:
                for table in (memories, turns):
                    erased += (await conn.execute(delete(table).where(
                        table.c.person == person, table.c.persona == persona))).rowcount
            else:
                erased += (await conn.execute(delete(link_codes).where(
                    tuple_(link_codes.c.platform, link_codes.c.viewer_id).in_(
                        select(viewers.c.platform, viewers.c.viewer_id)
                        .where(viewers.c.person == person))))).rowcount
                for table in (memories, turns, viewers):
                    erased += (await conn.execute(
                        delete(table).where(table.c.person == person))).rowcount
                erased += (await conn.execute(
                    delete(persons).where(persons.c.id == person))).rowcount
            if self._sqlite and erased:
                await conn.execute(text(
                    "INSERT INTO memories_fts (memories_fts) VALUES ('optimize')"))
        if self._sqlite and erased:
            await self._checkpoint()
        logger.info("memory: forgot person %s (%s): %d rows", person, persona or "all personas",
                    erased)
        return erased

    async def _checkpoint(self) -> None:
        """Move the WAL into the database file and truncate it (best effort: a reader in
        another process may hold it; the next checkpoint finishes the job)."""
        try:
            async with self._engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except DBAPIError as e:
            logger.warning("memory: WAL checkpoint after forget failed: %s", _reason(e))

    async def export(self, person: str) -> dict[str, Any]:
        """Everything kept about a person as JSON-ready data (timestamps as ISO 8601 UTC):
        ``person``, ``exported_at``, ``viewers``, ``memories`` and ``turns`` (all personas)."""
        person = _check_str(person, "person", 40)
        async with self._snapshot() as conn:
            viewer_rows = (await conn.execute(
                select(viewers.c.platform, viewers.c.viewer_id, viewers.c.name,
                       viewers.c.created_at)
                .where(viewers.c.person == person)
                .order_by(viewers.c.platform, viewers.c.viewer_id))).all()
            memory_rows = (await conn.execute(
                select(*_ITEM_COLUMNS).where(memories.c.person == person)
                .order_by(memories.c.persona, memories.c.created_at, memories.c.id))).all()
            turn_rows = (await conn.execute(
                select(turns.c.persona, turns.c.said, turns.c.replied, turns.c.platform,
                       turns.c.at)
                .where(turns.c.person == person)
                .order_by(turns.c.persona, turns.c.id))).all()
        return {
            "person": person,
            "exported_at": self._clock().isoformat(),
            "viewers": [{"platform": r.platform, "viewer_id": r.viewer_id, "name": r.name,
                         "first_seen": r.created_at.isoformat()} for r in viewer_rows],
            "memories": [{"id": int(r.id), "persona": r.persona, "kind": r.kind,
                          "text": r.text, "source": r.source, "platform": r.platform,
                          "created_at": r.created_at.isoformat()} for r in memory_rows],
            "turns": [{"persona": r.persona, "said": r.said, "replied": r.replied,
                       "platform": r.platform, "at": r.at.isoformat()} for r in turn_rows],
        }

    async def enforce_retention(self, persona: str, *, max_age_days: float | None,
                                max_per_viewer: int) -> int:
        """Apply a persona's retention; returns the number of rows erased.

        Memories and turns older than ``max_age_days`` go (None: no age limit); then, per
        person, only the newest ``max_per_viewer`` facts and turns are kept (the summary is
        one row and is rewritten, so it is only subject to the age limit).
        """
        persona = _check_str(persona, "persona", 64)
        if max_age_days is not None and max_age_days <= 0:
            raise _bad("max_age_days must be positive or None")
        if max_per_viewer < 1:
            raise _bad("max_per_viewer must be at least 1")
        erased = 0
        async with self._write() as conn:
            if max_age_days is not None:
                cutoff = self._clock() - timedelta(days=max_age_days)
                erased += (await conn.execute(delete(memories).where(
                    memories.c.persona == persona, memories.c.created_at < cutoff))).rowcount
                erased += (await conn.execute(delete(turns).where(
                    turns.c.persona == persona, turns.c.at < cutoff))).rowcount
            ranked_facts = select(
                memories.c.id,
                func.row_number().over(
                    partition_by=memories.c.person,
                    order_by=(memories.c.created_at.desc(), memories.c.id.desc()),
                ).label("rank"),
            ).where(memories.c.persona == persona, memories.c.kind == "fact").subquery()
            erased += (await conn.execute(delete(memories).where(memories.c.id.in_(
                select(ranked_facts.c.id).where(ranked_facts.c.rank > max_per_viewer))))
            ).rowcount
            ranked_turns = select(
                turns.c.id,
                func.row_number().over(partition_by=turns.c.person,
                                       order_by=turns.c.id.desc()).label("rank"),
            ).where(turns.c.persona == persona).subquery()
            erased += (await conn.execute(delete(turns).where(turns.c.id.in_(
                select(ranked_turns.c.id).where(ranked_turns.c.rank > max_per_viewer))))
            ).rowcount
        if erased:
            logger.info("memory: retention of %s erased %d rows", persona, erased)
        return erased


def _reason(e: BaseException) -> str:
    """A short reason for a database error, without the SQL and its parameters."""
    orig = getattr(e, "orig", None)
    return f"{type(orig or e).__name__}: {orig or e}".splitlines()[0][:300]


def _translate(e: DBAPIError) -> MemoryStoreError:
    if isinstance(e, IntegrityError):
        return MemoryStoreError(f"the memory database refused a write: {_reason(e)}",
                                code="conflict", retryable=True)
    retryable = isinstance(e, OperationalError) or e.connection_invalidated
    return MemoryStoreError(f"the memory database failed: {_reason(e)}", code="unavailable",
                            retryable=retryable)
