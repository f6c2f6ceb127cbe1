"""The memory store on SQLite and PostgreSQL: the same tests run on both (``target`` fixture)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from bots.memory import db, schema
from bots.memory.errors import MemoryStoreError
from bots.memory.store import MemoryStore
from tests.memory.conftest import Clock, Target

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
OpenStore = Callable[..., Awaitable[MemoryStore]]


async def count(store: MemoryStore, sql: str, **params: object) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(text(sql), params)).scalar_one())


async def remember(store: MemoryStore, persona: str, person: str, *facts: str,
                   platform: str = "twitch") -> int:
    return await store.remember(persona, person, list(facts), source="chat line",
                                platform=platform)


# ------------------------------------------------------------------ recall


async def test_recall_ranks_matches_first_and_fills_with_newest(open_store: OpenStore) -> None:
    clock = Clock(T0)
    store = await open_store(clock=clock)
    try:
        ann = await store.person("twitch", "1", name="Ann")
        await remember(store, "mika", ann, "Has a cat called Tom", "Lives in Berlin")
        clock.now += timedelta(days=1)
        await remember(store, "mika", ann, "Is learning Spanish", "Plays the violin")
        clock.now += timedelta(days=1)
        await remember(store, "mika", ann, "Likes green tea")

        got = await store.recall("mika", ann, "What was the name of my cat?", limit=3,
                                 chars=500)
        assert [m.text for m in got] == ["Has a cat called Tom", "Likes green tea",
                                         "Plays the violin"]
        assert got[0].kind == "fact" and got[0].source == "chat line"
        assert got[0].platform == "twitch" and got[0].created_at == T0

        # Several words match: the memory matching more of them ranks first.
        got = await store.recall("mika", ann, "violin or spanish lessons in berlin", limit=2,
                                 chars=500)
        assert {m.text for m in got} <= {"Lives in Berlin", "Is learning Spanish",
                                         "Plays the violin"}

        # No word matches (or only stop words): the newest facts.
        for query in ("hello there!", "what do you know about me", ""):
            got = await store.recall("mika", ann, query, limit=2, chars=500)
            assert [m.text for m in got] == ["Likes green tea", "Plays the violin"], query
    finally:
        await store.aclose()


async def test_recall_prefers_the_newer_of_equal_matches(open_store: OpenStore) -> None:
    clock = Clock(T0)
    store = await open_store(clock=clock)
    try:
        ann = await store.person("twitch", "1")
        await remember(store, "mika", ann, "Favourite game is chess")
        clock.now += timedelta(days=60)
        await remember(store, "mika", ann, "Favourite game is go")
        clock.now += timedelta(days=1)
        got = await store.recall("mika", ann, "which game?", limit=2, chars=500)
        assert [m.text for m in got] == ["Favourite game is go", "Favourite game is chess"]
    finally:
        await store.aclose()


async def test_recall_respects_limit_and_character_budget(store: MemoryStore) -> None:
    ann = await store.person("twitch", "1")
    await remember(store, "mika", ann, "cat " + "x" * 60, "cat short", "cat tiny")
    got = await store.recall("mika", ann, "cat", limit=5, chars=20)
    assert got and sum(len(m.text) for m in got) <= 20
    assert all(len(m.text) < 60 for m in got)
    assert len(await store.recall("mika", ann, "cat", limit=1, chars=1000)) == 1
    assert await store.recall("mika", ann, "cat", limit=0, chars=1000) == []
    assert await store.recall("mika", ann, "cat", limit=3, chars=0) == []


async def test_recall_matches_german_and_french_words(store: MemoryStore) -> None:
    ann = await store.person("twitch", "1")
    await remember(store, "lena", ann, "Hat eine Katze namens Mimi", "Wohnt in München",
                   "Aime le café noir")
    got = await store.recall("lena", ann, "Wie heißt deine Katze?", limit=1, chars=500)
    assert [m.text for m in got] == ["Hat eine Katze namens Mimi"]
    got = await store.recall("lena", ann, "Tu bois du café ?", limit=1, chars=500)
    assert [m.text for m in got] == ["Aime le café noir"]
    got = await store.recall("lena", ann, "München ist schön", limit=1, chars=500)
    assert [m.text for m in got] == ["Wohnt in München"]


async def test_remember_deduplicates_and_counts_new(store: MemoryStore) -> None:
    ann = await store.person("twitch", "1")
    assert await remember(store, "mika", ann, "Likes cats", "likes cats!", "  ", "Likes dogs") == 2
    assert await remember(store, "mika", ann, "LIKES CATS.", "Likes birds") == 1
    assert await remember(store, "lena", ann, "Likes cats") == 1  # another persona's memory
    assert sorted(m.text for m in await store.about(ann, persona="mika")) == [
        "Likes birds", "Likes cats", "Likes dogs"]
    assert await remember(store, "mika", ann, "...", "!!") == 0


async def test_summary_is_replaced_and_recalled(store: MemoryStore) -> None:
    ann = await store.person("twitch", "1")
    await store.set_summary("mika", ann, "Ann is a regular who talks about her cat.")
    await store.set_summary("mika", ann, "Ann is a regular; she is learning the violin.")
    summaries = [m for m in await store.about(ann) if m.kind == "summary"]
    assert [m.text for m in summaries] == ["Ann is a regular; she is learning the violin."]
    got = await store.recall("mika", ann, "how is the violin going", limit=2, chars=500)
    assert got[0].kind == "summary"
    await store.set_summary("mika", ann, "")
    assert await store.about(ann) == []


# ------------------------------------------------------------------ isolation


async def test_nothing_of_one_viewer_is_recalled_for_another(store: MemoryStore) -> None:
    """Random facts of many viewers with shared words: every recall returns only the asked
    person's memories for the asked persona."""
    rng = random.Random(16)
    words = ["cat", "dog", "berlin", "violin", "tea", "chess", "pizza", "rain", "spanish"]
    people = [await store.person("twitch", str(i), name=f"v{i}") for i in range(12)]
    personas = ["mika", "lena"]
    owned: dict[tuple[str, str], set[str]] = {}
    for person in people:
        for persona in personas:
            facts = {f"{person} {persona} {' '.join(rng.sample(words, 3))}" for _ in range(4)}
            await remember(store, persona, person, *facts)
            owned[(persona, person)] = facts
    for person in people:
        for persona in personas:
            for word in [*words, "anything else"]:
                got = await store.recall(persona, person, f"tell me about {word}", limit=10,
                                         chars=4000)
                assert got, (persona, person, word)
                assert all(m.person == person and m.persona == persona for m in got)
                assert {m.text for m in got} <= owned[(persona, person)]


async def test_same_name_on_two_platforms_stays_apart(store: MemoryStore) -> None:
    twitch_ann = await store.person("twitch", "42", name="Ann")
    discord_ann = await store.person("discord", "42", name="Ann")
    assert twitch_ann != discord_ann
    await remember(store, "mika", twitch_ann, "Has a cat called Tom")
    assert await store.recall("mika", discord_ann, "cat", limit=5, chars=500) == []
    assert await store.history("mika", discord_ann, limit=5) == []
    found = await store.find_viewer("ann")
    assert {(v["platform"], v["person"]) for v in found} == {("twitch", twitch_ann),
                                                               ("discord", discord_ann)}
    assert await store.person("twitch", "42") == twitch_ann  # stable
    assert await store.find_viewer("twitch:42") == [
        {"platform": "twitch", "viewer_id": "42", "name": "Ann", "person": twitch_ann}]


# ------------------------------------------------------------------ forget, export


async def _seed_person(store: MemoryStore) -> str:
    ann = await store.person("twitch", "1", name="Ann")
    await store.link(("twitch", "1"), ("discord", "77"))
    await remember(store, "mika", ann, "Has a zebracorn plush", "Lives in Berlin")
    await remember(store, "lena", ann, "Lernt Deutsch seit zebracorn Zeiten")
    await store.set_summary("mika", ann, "Ann loves her zebracorn plush.")
    await store.add_turn("mika", ann, "my zebracorn is called Zed", "Cute!", platform="twitch")
    await store.add_turn("lena", ann, "Hallo", "Hallo Ann!", platform="discord")
    await store.link_code("discord", "77")
    return ann


async def fts_hits(store: MemoryStore, word: str) -> int:
    if store.backend == "sqlite":
        return await count(store, "SELECT count(*) FROM memories_fts WHERE memories_fts MATCH "
                                  ":w", w=f'"{word}"')
    return await count(store, "SELECT count(*) FROM memories WHERE tsv @@ "
                              "to_tsquery('simple', :w)", w=word)


async def test_forget_erases_every_row(store: MemoryStore) -> None:
    ann = await _seed_person(store)
    bob = await store.person("twitch", "2", name="Bob")
    await remember(store, "mika", bob, "Has a zebracorn too")
    assert await fts_hits(store, "zebracorn") == 4

    erased = await store.forget(ann)
    # 4 memories + 2 turns + 2 viewers + 1 link code + 1 person
    assert erased == 10
    for table in ("memories", "turns", "viewers", "persons"):
        assert await count(store, f"SELECT count(*) FROM {table} WHERE person = :p"
                           if table != "persons" else "SELECT count(*) FROM persons WHERE id = :p",
                           p=ann) == 0, table
    assert await count(store, "SELECT count(*) FROM link_codes") == 0
    assert await count(store, "SELECT count(*) FROM viewers WHERE name = 'Ann'") == 0
    assert await fts_hits(store, "zebracorn") == 1  # Bob's only
    if store.backend == "sqlite":
        assert await count(store, "SELECT count(*) FROM memories_fts_docsize") == 1
    assert [m.text for m in await store.recall("mika", bob, "zebracorn", limit=5, chars=500)] \
        == ["Has a zebracorn too"]
    with pytest.raises(MemoryStoreError) as e:
        await remember(store, "mika", ann, "Late fact from a turn in flight")
    assert e.value.code == "unknown_person"
    with pytest.raises(MemoryStoreError):
        await store.add_turn("mika", ann, "hi", "hello", platform="twitch")
    data = await store.export(ann)
    assert (data["viewers"], data["memories"], data["turns"]) == ([], [], [])
    again = await store.person("twitch", "1", name="Ann")
    assert again != ann and await store.about(again) == []


async def test_forget_leaves_no_trace_in_the_sqlite_file(tmp_path: Path) -> None:
    """SQLite only: secure_delete, the FTS merge and the WAL checkpoint leave no forgotten
    word in the database file or its WAL."""
    target = Target("sqlite", None, tmp_path / "var")
    store = await target.open()
    try:
        ann = await _seed_person(store)
        for i in range(30):  # enough rows to span several pages
            await remember(store, "mika", ann, f"fact number {i} about quokkaberry")
        bob = await store.person("twitch", "2")
        await remember(store, "mika", bob, "Bob stays")
        await store.forget(ann)
    finally:
        await store.aclose()
    for path in target.state_dir.glob("memory.db*"):
        data = path.read_bytes()
        assert b"zebracorn" not in data and b"quokkaberry" not in data, path.name
    assert b"Bob stays" in (target.state_dir / "memory.db").read_bytes()


async def test_forget_one_persona_keeps_the_rest(store: MemoryStore) -> None:
    ann = await _seed_person(store)
    assert await store.forget(ann, persona="mika") == 4  # 2 facts, 1 summary, 1 turn
    assert {m.persona for m in await store.about(ann)} == {"lena"}
    assert await store.history("mika", ann, limit=5) == []
    assert len(await store.history("lena", ann, limit=5)) == 1
    assert await store.person("discord", "77") == ann


async def test_export_holds_everything_kept(store: MemoryStore) -> None:
    ann = await _seed_person(store)
    data = await store.export(ann)
    json.dumps(data)  # JSON-ready
    assert data["person"] == ann
    assert {(v["platform"], v["viewer_id"]) for v in data["viewers"]} == {
        ("twitch", "1"), ("discord", "77")}
    assert sorted(m["text"] for m in data["memories"]) == sorted(
        m.text for m in await store.about(ann))
    assert len(data["memories"]) == 4
    assert [t["said"] for t in data["turns"] if t["persona"] == "mika"] == [
        "my zebracorn is called Zed"]
    assert datetime.fromisoformat(data["memories"][0]["created_at"]).tzinfo is not None


# ------------------------------------------------------------------ identity


async def test_linked_viewers_share_memory(store: MemoryStore) -> None:
    tw = await store.person("twitch", "1", name="Ann")
    dc = await store.person("discord", "9", name="ann#1")
    await remember(store, "mika", tw, "Has a cat called Tom", "Likes tea")
    await remember(store, "mika", dc, "Likes tea", "Plays chess", platform="discord")
    await store.set_summary("mika", tw, "old summary")
    await store.set_summary("mika", dc, "newer summary")
    await store.add_turn("mika", dc, "hi from discord", "hi!", platform="discord")

    person = await store.link(("twitch", "1"), ("discord", "9"))
    assert person == tw
    assert await store.person("discord", "9") == tw
    assert await store.link(("twitch", "1"), ("discord", "9")) == tw  # idempotent
    facts = sorted(m.text for m in await store.about(tw) if m.kind == "fact")
    assert facts == ["Has a cat called Tom", "Likes tea", "Plays chess"]  # tea once
    assert [m.text for m in await store.about(tw) if m.kind == "summary"] == ["newer summary"]
    assert [m.text for m in await store.recall("mika", tw, "chess", limit=1, chars=99)] == [
        "Plays chess"]
    assert [t.said for t in await store.history("mika", tw, limit=5)] == ["hi from discord"]
    assert await count(store, "SELECT count(*) FROM persons WHERE id = :p", p=dc) == 0


async def test_link_codes_are_one_time_and_expire(open_store: OpenStore) -> None:
    clock = Clock(T0)
    store = await open_store(clock=clock)
    try:
        tw = await store.person("twitch", "1")
        await remember(store, "mika", tw, "Has a cat called Tom")
        code = await store.link_code("twitch", "1", ttl_s=600)
        assert len(code) == 8 and code.isalnum() and code.isupper()
        assert await count(store, "SELECT count(*) FROM link_codes WHERE code_hash = :c",
                           c=code) == 0  # only its hash is stored

        wrong = "A" * 8 if code != "A" * 8 else "B" * 8
        for bad in (wrong, "", "abc", code + "X", "DROP TABLE", code[:-1] + "0"):
            assert await store.redeem_link_code(bad, "discord", "9") is None
        # Case, spaces and a dash in what the viewer typed do not matter.
        typed = f"{code[:4].lower()}-{code[4:]} "
        assert await store.redeem_link_code(typed, "discord", "9") == tw
        assert await store.person("discord", "9") == tw
        assert [m.text for m in await store.recall("mika", tw, "cat", limit=1, chars=99)] == [
            "Has a cat called Tom"]
        assert await store.redeem_link_code(code, "discord", "10") is None  # used
        assert await store.person("discord", "10") != tw

        expiring = await store.link_code("twitch", "1", ttl_s=60)
        clock.now += timedelta(seconds=61)
        assert await store.redeem_link_code(expiring, "discord", "11") is None  # expired
        assert await store.person("discord", "11") != tw

        first = await store.link_code("twitch", "1")
        second = await store.link_code("twitch", "1")
        assert await store.redeem_link_code(first, "discord", "12") is None  # replaced
        assert await store.redeem_link_code(second, "discord", "12") == tw
        with pytest.raises(MemoryStoreError):
            await store.link_code("twitch", "1", ttl_s=0)
    finally:
        await store.aclose()


async def test_a_code_redeemed_twice_at_once_links_once(store: MemoryStore) -> None:
    tw = await store.person("twitch", "1")
    code = await store.link_code("twitch", "1")
    results = await asyncio.gather(*(store.redeem_link_code(code, "discord", str(i))
                                     for i in range(5)))
    assert [r for r in results if r is not None] == [tw]


# ------------------------------------------------------------------ history, persistence


async def test_history_and_memories_survive_close_and_reopen(target: Target) -> None:
    store = await target.open()
    ann = await store.person("twitch", "1", name="Ann")
    for i in range(5):
        await store.add_turn("mika", ann, f"message {i}", f"reply {i}", platform="twitch")
    await remember(store, "mika", ann, "Has a cat called Tom")
    await store.aclose()
    await store.aclose()  # idempotent
    with pytest.raises(MemoryStoreError) as e:
        await store.history("mika", ann, limit=3)
    assert e.value.code == "closed"

    async with await target.open() as reopened:
        assert await reopened.person("twitch", "1") == ann
        turns = await reopened.history("mika", ann, limit=3)
        assert [(t.said, t.replied) for t in turns] == [
            ("message 2", "reply 2"), ("message 3", "reply 3"), ("message 4", "reply 4")]
        assert turns[0].platform == "twitch" and turns[0].at.tzinfo is not None
        assert await reopened.history("lena", ann, limit=3) == []
        got = await reopened.recall("mika", ann, "my cat", limit=1, chars=99)
        assert [m.text for m in got] == ["Has a cat called Tom"]


# ------------------------------------------------------------------ concurrency


async def test_fifty_concurrent_writers_lose_nothing(target: Target) -> None:
    """50 viewers write at once through two store instances (on SQLite: two engines contend
    for the file lock as two processes would)."""
    stores = [await target.open(), await target.open()]
    try:
        async def viewer(i: int) -> str:
            store = stores[i % 2]
            person = await store.person("twitch", f"v{i}", name=f"viewer{i}")
            for j in range(6):
                await store.remember("mika", person, [f"viewer {i} fact {j}"],
                                     source=f"msg {j}", platform="twitch")
                await store.add_turn("mika", person, f"said {j}", f"replied {j}",
                                     platform="twitch")
            return person

        people = await asyncio.gather(*(viewer(i) for i in range(50)))
        assert len(set(people)) == 50
        store = stores[0]
        assert await count(store, "SELECT count(*) FROM memories") == 300
        assert await count(store, "SELECT count(*) FROM turns") == 300
        for i, person in enumerate(people):
            facts = {m.text for m in await store.about(person)}
            assert facts == {f"viewer {i} fact {j}" for j in range(6)}
    finally:
        for s in stores:
            await s.aclose()


# ------------------------------------------------------------------ retention


async def test_retention_by_age_and_count(open_store: OpenStore) -> None:
    clock = Clock(T0)
    store = await open_store(clock=clock)
    try:
        ann = await store.person("twitch", "1")
        bob = await store.person("twitch", "2")
        await remember(store, "mika", ann, "old fact")
        await store.add_turn("mika", ann, "old turn", "ok", platform="twitch")
        await remember(store, "lena", ann, "old fact of lena")
        clock.now += timedelta(days=40)
        for i in range(5):
            await remember(store, "mika", ann, f"ann fact {i}")
            await remember(store, "mika", bob, f"bob fact {i}")
            clock.now += timedelta(minutes=1)
        await store.set_summary("mika", ann, "summary")

        erased = await store.enforce_retention("mika", max_age_days=30, max_per_viewer=3)
        # old fact + old turn by age; 2 of ann's and 2 of bob's 5 new facts by count
        assert erased == 6
        assert sorted(m.text for m in await store.about(ann, persona="mika")) == [
            "ann fact 2", "ann fact 3", "ann fact 4", "summary"]
        assert sorted(m.text for m in await store.about(bob)) == [
            "bob fact 2", "bob fact 3", "bob fact 4"]
        assert [m.text for m in await store.about(ann, persona="lena")] == ["old fact of lena"]
        assert await store.enforce_retention("mika", max_age_days=None, max_per_viewer=3) == 0
        with pytest.raises(MemoryStoreError):
            await store.enforce_retention("mika", max_age_days=0, max_per_viewer=3)
    finally:
        await store.aclose()


# ------------------------------------------------------------------ schema


async def _make_v1(target: Target) -> None:
    """A database as vstage with schema v1 (no full-text index) left it, with data."""
    engine = db.create_engine(db.resolve_url(target.url, state_dir=target.state_dir))
    try:
        async with engine.begin() as conn:
            assert await schema.migrate(conn, target=1) == (0, 1)
            now = datetime.now(UTC)
            await conn.execute(schema.persons.insert().values(id="pold", created_at=now))
            await conn.execute(schema.viewers.insert().values(
                platform="twitch", viewer_id="5", name="Old", person="pold", created_at=now))
            await conn.execute(schema.memories.insert(), [
                {"persona": "mika", "person": "pold", "kind": "fact", "text": text_,
                 "dedupe_key": text_.lower(), "source": "", "platform": "twitch",
                 "created_at": now}
                for text_ in ("Has a cat called Tom", "Lives in Paris")])
        async with engine.connect() as conn:
            assert await schema.current_version(conn) == 1
    finally:
        await engine.dispose()


async def test_migrates_an_older_schema_and_indexes_old_memories(target: Target) -> None:
    await _make_v1(target)
    async with await target.open() as store:
        async with store.engine.connect() as conn:
            assert await schema.current_version(conn) == schema.LATEST
        assert await store.person("twitch", "5") == "pold"
        got = await store.recall("mika", "pold", "paris?", limit=1, chars=99)
        assert [m.text for m in got] == ["Lives in Paris"]
        await remember(store, "mika", "pold", "Learns the cello")
        assert [m.text for m in await store.recall("mika", "pold", "cello", limit=1,
                                                   chars=99)] == ["Learns the cello"]
    async with await target.open() as again:  # a current schema is left alone
        assert len(await again.about("pold")) == 3


async def test_tables_match_the_migrated_schema(store: MemoryStore) -> None:
    def columns(sync_conn: object) -> dict[str, set[str]]:
        from sqlalchemy import inspect
        inspector = inspect(sync_conn)
        return {t: {c["name"] for c in inspector.get_columns(t)}
                for t in schema.metadata.tables}

    async with store.engine.connect() as conn:
        found = await conn.run_sync(columns)
    for name, table in schema.metadata.tables.items():
        assert {c.name for c in table.columns} <= found[name], name


async def test_a_newer_schema_is_refused(target: Target) -> None:
    async with await target.open() as store, store.engine.begin() as conn:
        await conn.execute(text("UPDATE schema_version SET version = 99"))
    with pytest.raises(MemoryStoreError) as e:
        await target.open()
    assert e.value.code == "schema_too_new"


async def test_two_stores_opening_an_empty_database_at_once_migrate_it_once(
        target: Target) -> None:
    stores = await asyncio.gather(*(target.open() for _ in range(4)))
    try:
        assert await count(stores[0], "SELECT count(*) FROM schema_version") == 1
    finally:
        for s in stores:
            await s.aclose()


# ------------------------------------------------------------------ bad input


async def test_bad_input_gets_specific_errors(store: MemoryStore) -> None:
    ann = await store.person("twitch", "1")
    cases: list[Awaitable[object]] = [
        store.person("Twitch!", "1"),
        store.person("twitch", ""),
        store.person("twitch", "x" * 129),
        store.remember("", ann, ["x"], source="", platform="twitch"),
        store.remember("mika", ann, ["x"], kind="secret", source="", platform="twitch"),
        store.remember("mika", ann, "a string, not a list", source="", platform="twitch"),
        store.remember("mika", ann, ["x" * 1001], source="", platform="twitch"),
        store.recall("mika", ann, None, limit=1, chars=9),  # type: ignore[arg-type]
        store.link(("twitch", "1"), ("", "2")),
        store.link(("twitch",), ("discord", "2")),  # type: ignore[arg-type]
        store.find_viewer("  "),
    ]
    for call in cases:
        with pytest.raises(MemoryStoreError) as e:
            await call
        assert e.value.code == "bad_input"


@pytest.mark.parametrize("url", ["mysql://root:hunter2@db/x", "sqlite://", "not a url",
                                 "postgresql+psycopg2cffi://u:hunter2@h/d"])
async def test_unsupported_urls_are_refused_without_the_password(url: str,
                                                                 tmp_path: Path) -> None:
    with pytest.raises(MemoryStoreError) as e:
        await MemoryStore.open(url, state_dir=tmp_path)
    assert e.value.code == "bad_url"
    assert "hunter2" not in str(e.value)


async def test_unreachable_postgres_is_unavailable(tmp_path: Path) -> None:
    from tests.netutil import free_port
    url = f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/nothing"
    with pytest.raises(MemoryStoreError) as e:
        await MemoryStore.open(url, state_dir=tmp_path)
    assert e.value.code == "unavailable" and e.value.retryable
    assert "hunter2" not in str(e.value)


async def test_hostile_queries_and_texts_are_plain_data(store: MemoryStore) -> None:
    """Full-text syntax, SQL and odd characters in a query or a memory are words, not
    operators: nothing errors and nothing leaks from another person."""
    ann = await store.person("twitch", "1")
    bob = await store.person("twitch", "2")
    odd = ['Says "NEAR(cat dog)" AND * ^ : - OR NOT a lot', "Robert'); DROP TABLE memories;--",
           "Lives in 東京", "Loves 🐈 and ü-umlauts", "Uses back\\slashes and 'quotes'"]
    assert await remember(store, "mika", ann, *odd) == len(odd)
    await remember(store, "mika", bob, "Bob's secret: NEAR AND OR NOT")
    for query in ['NEAR(cat dog)', 'AND OR NOT', '"', "'", "*", "^cat", "cat:dog", "a & b | !c",
                  "Robert'); DROP TABLE memories;--", "東京", "🐈", "ü", "\\", "x" * 500,
                  " ".join(f"w{i}" for i in range(100)), "-", "((", "<->", "NULL"]:
        got = await store.recall("mika", ann, query, limit=10, chars=4000)
        assert got and all(m.person == ann for m in got), query
    got = await store.recall("mika", ann, "where in 東京?", limit=1, chars=400)
    assert [m.text for m in got] == ["Lives in 東京"]
    assert await count(store, "SELECT count(*) FROM memories") == len(odd) + 1


async def test_the_sqlite_file_is_private(tmp_path: Path) -> None:
    async with await MemoryStore.open(None, state_dir=tmp_path / "new" / "var") as store:
        await store.person("twitch", "1")
    assert ((tmp_path / "new" / "var" / "memory.db").stat().st_mode & 0o777) == 0o600
