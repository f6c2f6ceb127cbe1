"""Long-term memory in private conversations: the real talk routes, hub, session and reply
pipeline (a scripted brain that records its prompts, a fast voice, a fake avatar) with the
real memory service on SQLite.

A visitor is known by the random id their page keeps (``visitor``): a later conversation from
the same browser recalls what they said, another visitor's recalls none of it, a refused line
is never stored, and "Forget me" erases the rows (checked in the database), the
conversation's history and its transcript."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import func, select

from avatar_engine.types import Speech
from bots.brain.base import ChatTurn
from bots.memory.errors import MemoryStoreError
from bots.memory.schema import memories, turns, viewers
from bots.memory.service import MemoryService
from bots.memory.store import MemoryStore
from bots.orchestrator.pipeline import perform
from bots.talk.hub import TalkHub
from overlays.studio.server import StudioServer
from overlays.studio.talk_routes import TALK_PREFIXES, TalkLimits, TalkRoutes
from tests.talk.conftest import MakeHub
from tests.talk.fakes import Messages

TOKEN = "talk-memory-test-token-0123456789"
ANN = "a1" * 16  # the visitor ids two browsers keep (32 hex digits)
BOB = "b2" * 16
BLOCKED = "pineapple"  # on mika's blocklist in these tests


class RecordingLLM:
    """A brain of our LLM base: records every prompt, answers with one line."""

    name = "recording"

    def __init__(self) -> None:
        self.prompts: list[list[ChatTurn]] = []

    async def load(self) -> None:
        return None

    async def stream(self, messages: Sequence[ChatTurn]) -> AsyncIterator[str]:
        self.prompts.append(list(messages))
        for word in "That sounds lovely, tell me more!".split():
            yield word + " "

    async def aclose(self) -> None:
        return None


class QuickTTS:
    """A voice of our TTS base: 0.2 s of tone per sentence."""

    def synthesize(self, text: str, *, speed: float | None = None) -> Speech:
        t = np.arange(int(0.2 * 16000)) / 16000
        return Speech(text=text, audio=(0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32),
                      sample_rate=16000)


def text_of(prompt: list[ChatTurn]) -> str:
    return "\n".join(t.content for t in prompt)


async def rows(store: MemoryStore, table: Any) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def stored_texts(store: MemoryStore) -> list[str]:
    """Every text the database holds about anyone: notes, turns (both sides)."""
    async with store.engine.connect() as conn:
        notes = [r.text for r in (await conn.execute(select(memories.c.text))).all()]
        said = [f"{r.said} | {r.replied}" for r in
                (await conn.execute(select(turns.c.said, turns.c.replied))).all()]
    return notes + said


@dataclass
class Studio:
    """The talk API on a real studio server, a hub and the memory service."""

    client: TestClient
    hub: TalkHub
    memory: MemoryService | None
    store: MemoryStore
    llm: RecordingLLM

    async def open(self, visitor: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"persona": "mika"}
        if visitor is not None:
            body["visitor"] = visitor
        resp = await self.client.post("/api/talk/sessions", params={"token": TOKEN}, json=body)
        assert resp.status == 201, await resp.text()
        return dict(await resp.json())

    async def say(self, opened: dict[str, Any], text: str) -> list[ChatTurn] | None:
        """Type ``text`` in the conversation; wait until it is answered (or refused) and
        noted; the prompt the model got (None: refused, no prompt)."""
        session = self.hub.get(opened["session"], opened["key"])
        assert session is not None
        asked = len(self.llm.prompts)
        backlog = 1 + len(session.transcript)  # a new subscriber gets the state and these
        msgs = Messages(session)
        try:
            await session.say_text(text)
            done = await msgs.wait_for(lambda m: m["type"] in ("answer", "refused"),
                                       within=30.0, after=backlog)
        finally:
            await msgs.close()
        assert self.memory is None or await self.memory.drain(timeout_s=30.0)
        if done["type"] == "refused":
            assert len(self.llm.prompts) == asked
            return None
        assert len(self.llm.prompts) == asked + 1
        return self.llm.prompts[-1]

    async def memory_command(self, opened: dict[str, Any], command: Any) -> tuple[int, Any]:
        resp = await self.client.post(
            f"/api/talk/sessions/{opened['session']}/memory", params={"key": opened["key"]},
            json={"command": command})
        return resp.status, await resp.json()

    async def end(self, opened: dict[str, Any]) -> None:
        resp = await self.client.delete(f"/api/talk/sessions/{opened['session']}",
                                        params={"key": opened["key"]})
        assert resp.status == 204


async def _studio(tmp_path: Path, make_hub: MakeHub, store: MemoryStore, service: Any, *,
                  limits: TalkLimits | None = None, **persona: Any
                  ) -> tuple[Studio, TalkRoutes]:
    """The studio with ``service`` as its memory (None: none) and mika's file's ``persona``
    sections."""
    overrides = {"moderation": {"blocklist": {"words": [BLOCKED]}}, **persona}
    hub = await make_hub(pipeline=perform, persona_overrides=overrides)
    llm = RecordingLLM()
    mika = hub.personas["mika"]
    mika.llm, mika.tts = llm, QuickTTS()  # type: ignore[assignment]
    server = StudioServer(token=SecretStr(TOKEN), clips_dir=tmp_path, personas={"mika": "Mika"})
    routes = TalkRoutes(hub=hub, answer=None, authorized=server.authorized,
                        max_sessions=hub.settings.max_sessions, memory=service, limits=limits)
    server.add_routes(routes.register, self_guarded=TALK_PREFIXES)
    client = TestClient(TestServer(server.app))
    await client.start_server()
    return Studio(client, hub, service, store, llm), routes


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[MemoryStore]:
    async with await MemoryStore.open(None, state_dir=tmp_path / "var") as opened:
        yield opened


@pytest.fixture
async def studio(tmp_path: Path, make_hub: MakeHub, store: MemoryStore
                 ) -> AsyncIterator[Studio]:
    async with MemoryService(store, recall_timeout_s=5.0) as memory:
        made, routes = await _studio(tmp_path, make_hub, store, memory)
        yield made
        await routes.aclose()
        await made.client.close()


async def test_a_visitor_is_remembered_in_their_next_conversation_and_nobody_elses(
        studio: Studio) -> None:
    first = await studio.open(ANN)
    await studio.say(first, "My name is Ann and I have a cat called Miso.")
    await studio.end(first)
    # The id the page sent is not what the database keeps.
    async with studio.store.engine.connect() as conn:
        kept_ids = [r.viewer_id for r in (await conn.execute(select(viewers))).all()]
    assert kept_ids and ANN not in kept_ids
    assert all(v == hashlib.sha256(b"vstage-talk-visitor:" + ANN.encode()).hexdigest()[:32]
               for v in kept_ids)

    again = await studio.open(ANN)
    prompt = await studio.say(again, "Do you remember my cat?")
    assert prompt is not None
    ann = text_of(prompt)
    assert "They have a cat called Miso" in ann and "Their name is Ann" in ann
    assert "My name is Ann and I have a cat called Miso" in ann  # her turn, from the store

    bob = await studio.open(BOB)
    bob_prompt = await studio.say(bob, "What do you know about me?")
    assert bob_prompt is not None
    assert "Miso" not in text_of(bob_prompt) and "Ann" not in text_of(bob_prompt)
    # A page without a visitor id (storage off) is remembered by nobody, and recalls nothing.
    anonymous = await studio.open(None)
    anon_prompt = await studio.say(anonymous, "Do you remember my cat?")
    assert anon_prompt is not None and "Miso" not in text_of(anon_prompt)
    status, answer = await studio.memory_command(anonymous, "show")
    assert status == 200 and "storage is off" in answer["text"]
    assert await rows(studio.store, turns) == 3  # Ann's two, Bob's one; none without an id
    status, answer = await studio.memory_command(again, "show")
    assert status == 200 and answer["command"] == "show"
    assert "'They have a cat called Miso'" in answer["text"]
    assert "'Their name is Ann'" in answer["text"]
    status, answer = await studio.memory_command(bob, "show")
    assert "Miso" not in answer["text"] and "Ann" not in answer["text"]


async def test_a_refused_line_is_never_stored(studio: Studio) -> None:
    opened = await studio.open(ANN)
    assert await studio.say(opened, f"My dog Rex loves {BLOCKED} pizza.") is None
    assert await studio.say(opened, "I live in Oslo.") is not None
    texts = await stored_texts(studio.store)
    assert any("Oslo" in t for t in texts)
    assert not any("Rex" in t or BLOCKED in t for t in texts), texts
    await studio.end(opened)
    again = await studio.open(ANN)
    prompt = await studio.say(again, "Do you remember my dog?")
    assert prompt is not None and "Rex" not in text_of(prompt)
    assert "They live in Oslo" in text_of(prompt)


async def test_forget_me_erases_the_rows_the_history_and_the_transcript(studio: Studio) -> None:
    ann = await studio.open(ANN)
    await studio.say(ann, "My name is Ann and I have a cat called Miso.")
    bob = await studio.open(BOB)
    await studio.say(bob, "I live in Oslo.")
    assert await rows(studio.store, memories) >= 4 and await rows(studio.store, turns) == 2

    status, answer = await studio.memory_command(ann, "forget")
    assert status == 200
    assert answer == {"command": "forget",
                      "text": "Done: I have forgotten everything about you."}
    texts = await stored_texts(studio.store)
    assert not any("Ann" in t or "Miso" in t for t in texts), texts
    assert any("Oslo" in t for t in texts)  # another visitor's memory is untouched
    async with studio.store.engine.connect() as conn:
        people = (await conn.execute(select(viewers.c.platform))).all()
    assert len(people) == 1  # only Bob is known
    session = studio.hub.get(ann["session"], ann["key"])
    assert session is not None
    assert session.history == () and session.transcript == []  # a reload shows nothing
    # The same conversation goes on, and its next answer recalls nothing.
    prompt = await studio.say(ann, "Do you remember my cat?")
    assert prompt is not None
    assert "Miso" not in text_of(prompt) and "Notes you remember" not in text_of(prompt)
    assert text_of(prompt).count("says:") == 1  # no history, not even in RAM
    status, answer = await studio.memory_command(ann, "show")
    # The question just asked was noted again (a new turn); the old facts are gone.
    assert "Miso" not in answer["text"] and "Ann" not in answer["text"]
    status, answer = await studio.memory_command(bob, "forget")
    assert answer["text"] == "Done: I have forgotten everything about you."
    status, answer = await studio.memory_command(bob, "show")
    assert answer["text"] == "I don't keep anything about you."


async def test_bad_requests_get_specific_errors_and_are_rate_limited(
        tmp_path: Path, make_hub: MakeHub, store: MemoryStore) -> None:
    async with MemoryService(store, recall_timeout_s=5.0) as memory:
        studio, routes = await _studio(tmp_path, make_hub, store, memory,
                                       limits=TalkLimits(memory_per_min=1, memory_burst=2))
        try:
            for visitor in ("short", "A1" * 16, "z" * 40, 12345, "a" * 65):
                resp = await studio.client.post("/api/talk/sessions", params={"token": TOKEN},
                                                json={"persona": "mika", "visitor": visitor})
                assert resp.status == 400
                assert "field 'visitor'" in (await resp.json())["error"]
            opened = await studio.open(ANN)
            status, body = await studio.memory_command(opened, "everything")
            assert status == 400 and "field 'command'" in body["error"]
            status, body = await studio.memory_command(opened, "show")
            assert status == 200 and body["text"] == "I don't keep anything about you."
            status, body = await studio.memory_command(opened, "show")
            assert status == 429 and body["retry_after_s"] >= 1
            wrong = await studio.client.post(
                f"/api/talk/sessions/{opened['session']}/memory", params={"key": "nope"},
                json={"command": "show"})
            assert wrong.status == 404
        finally:
            await routes.aclose()
            await studio.client.close()


async def test_memory_off_and_a_broken_store_are_told_plainly(
        tmp_path: Path, make_hub: MakeHub, store: MemoryStore) -> None:
    async with MemoryService(store, recall_timeout_s=5.0) as memory:
        studio, routes = await _studio(tmp_path, make_hub, store, memory,
                                       memory={"enabled": False})
        try:
            opened = await studio.open(ANN)
            await studio.say(opened, "My name is Ann and I have a cat called Miso.")
            for table in (memories, turns, viewers):
                assert await rows(store, table) == 0
            status, body = await studio.memory_command(opened, "show")
            assert status == 200
            assert body["text"] == "Mika does not remember visitors: memory is off."

            async def broken(*args: Any, **kwargs: Any) -> Any:
                raise MemoryStoreError("database is locked", code="unavailable",
                                       retryable=True)

            store.find_viewer = broken  # type: ignore[method-assign]
            for command in ("show", "forget"):
                status, body = await studio.memory_command(opened, command)
                assert status == 200
                assert body["text"].startswith("My memory is not available right now")
        finally:
            await routes.aclose()
            await studio.client.close()


async def test_without_a_memory_service_the_page_is_told_and_forget_still_clears(
        tmp_path: Path, make_hub: MakeHub, store: MemoryStore) -> None:
    studio, routes = await _studio(tmp_path, make_hub, store, None)
    try:
        opened = await studio.open(ANN)
        prompt = await studio.say(opened, "I have a cat called Miso.")
        assert prompt is not None
        status, body = await studio.memory_command(opened, "show")
        assert status == 200 and "keeps no long-term memory" in body["text"]
        status, body = await studio.memory_command(opened, "forget")
        assert status == 200 and body["text"].startswith("Done: this conversation is cleared")
        session = studio.hub.get(opened["session"], opened["key"])
        assert session is not None and session.history == ()
    finally:
        await routes.aclose()
        await studio.client.close()


async def test_forget_while_the_persona_answers_cuts_the_answer_and_stores_nothing(
        studio: Studio) -> None:
    opened = await studio.open(ANN)
    session = studio.hub.get(opened["session"], opened["key"])
    assert session is not None
    msgs = Messages(session)
    try:
        await session.say_text("My name is Ann and I have a cat called Miso.")
        await msgs.wait_for(lambda m: m == {"type": "state", "state": "speaking"})
        status, body = await studio.memory_command(opened, "forget")
        await msgs.wait_type("interrupted")
        await asyncio.sleep(0.3)
    finally:
        await msgs.close()
    assert status == 200 and body["text"].startswith("Done:")
    assert studio.memory is not None and await studio.memory.drain(timeout_s=10.0)
    assert not any("Miso" in t for t in await stored_texts(studio.store))
    assert session.history == ()
