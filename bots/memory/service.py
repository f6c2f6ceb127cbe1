"""Long-term memory in the show: recall before a reply, note-taking after it, and the viewer's
own controls (what is kept, forget me, link my accounts).

One :class:`MemoryService` per app holds the :class:`~bots.memory.store.MemoryStore`. The
reply pipeline sees only a :class:`ViewerMemory`: one viewer's memory as one persona sees it.

Two rules shape it:

* **A reply never waits for the database.** Recall runs as a task of its own and is awaited
  for at most ``recall_timeout_s`` (30 ms by default); a slower lookup is left to finish in
  the background and the reply goes on without memories. A database call is never cancelled
  halfway (a cancelled driver call can leave a pooled connection unusable).
* **Note-taking is off the critical path.** After a spoken turn the turn is queued; one
  background task stores it, extracts facts (:mod:`bots.memory.extract`) and keeps the
  rolling summary and retention. Everything it stores passes the persona's input rules
  first (:class:`InputFilter`): nothing the input filter would refuse is kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self

from bots.events import ChatMessage, Viewer
from bots.memory.errors import MemoryStoreError
from bots.memory.extract import Extractor, Gate, choose_extractor, rolling_summary
from bots.memory.settings import MemorySettings
from bots.memory.store import MemoryItem, MemoryStore
from bots.moderation.matchers import CompiledModeration, compile_moderation
from bots.moderation.rules import check_input
from bots.moderation.settings import ModerationSettings
from bots.personas.context import Exchange
from vstage_core.tasks import cancel_and_wait

if TYPE_CHECKING:
    from bots.brain.base import LLM
    from bots.config import Config, PersonaConfig
    from bots.moderation.moderator import Moderator

__all__ = [
    "RECALL_TIMEOUT_S",
    "InputFilter",
    "Kept",
    "MemoryService",
    "Recalled",
    "TextCheck",
    "ViewerMemory",
    "ViewerRef",
]

logger = logging.getLogger(__name__)

RECALL_TIMEOUT_S: Final = 0.03
# Stand-in ids that many people share (Twitch's anonymous cheers and gifts): never remembered.
SHARED_IDS: Final = frozenset({"anonymous", ""})

TextCheck = Callable[[str], bool]
"""Whether a text may be stored (the persona's input rules, for this viewer)."""


@dataclass(frozen=True, slots=True)
class ViewerRef:
    """A viewer as the store knows them: the platform and the platform's own id.

    Adapters write some ids with the platform in front (``discord:123``, ``studio:ann``);
    :meth:`of` takes it off, so ``vstage memory show discord:123`` finds that viewer.
    """

    platform: str
    viewer_id: str
    name: str = ""

    @classmethod
    def of(cls, platform: str, viewer: Viewer) -> ViewerRef:
        vid = viewer.id.removeprefix(f"{platform}:")
        return cls(platform=platform, viewer_id=vid, name=viewer.name)

    @property
    def key(self) -> tuple[str, str]:
        return (self.platform, self.viewer_id)

    @property
    def remembered(self) -> bool:
        """False for ids many people share (an anonymous cheer): nobody to remember."""
        return self.viewer_id not in SHARED_IDS


@dataclass(frozen=True, slots=True)
class Recalled:
    """What recall found for one reply.

    Attributes:
        notes: memories of this viewer for the prompt (facts, their summary), best first.
        history: their last exchanges with the persona from the store, oldest first (only
            when asked for: when the persona has none of theirs in RAM).
        timed_out: the lookup took longer than the reply may wait; nothing was used.
    """

    notes: tuple[str, ...] = ()
    history: tuple[Exchange, ...] = ()
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class Kept:
    """What is kept about a viewer, for ``!memory`` and ``/memory``.

    Attributes:
        facts: the facts to show, newest first.
        elsewhere: facts taken from what they said in another place (a linked account),
            counted but not shown when the answer goes to a public chat.
        summaries: rolling summaries of their conversations (one per persona).
        personas: the personas that keep notes about them.
    """

    facts: tuple[str, ...] = ()
    elsewhere: int = 0
    summaries: int = 0
    personas: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        """Notes kept in all: facts (shown or not) and summaries."""
        return len(self.facts) + self.elsewhere + self.summaries


class InputFilter:
    """The persona's input rules applied to text about to be stored: a fact, a turn.

    The rules are the moderator's own (its settings in force, recompiled when they change),
    run without the audit log and the counters: these are not viewer messages, and each one
    has passed (or failed) moderation as a message already.
    """

    def __init__(self, moderator: Moderator) -> None:
        self.moderator = moderator
        self._settings: ModerationSettings | None = None
        self._compiled: CompiledModeration | None = None

    def _rules(self) -> CompiledModeration:
        settings = self.moderator.settings
        if self._compiled is None or settings is not self._settings:
            self._compiled, self._settings = compile_moderation(settings), settings
        return self._compiled

    def allows(self, text: str, *, viewer: Viewer, platform: str, persona: str) -> bool:
        """Whether ``text`` would pass as a chat line from ``viewer`` (their roles count:
        a banned viewer's notes are refused, a broadcaster's may hold a link)."""
        event = ChatMessage(viewer=viewer, message=text, platform=platform, persona=persona)
        return check_input(event, self._rules()).allowed

    def for_viewer(self, viewer: Viewer, *, platform: str, persona: str) -> TextCheck:
        """:meth:`allows` for one viewer, as a plain check."""
        return lambda text: self.allows(text, viewer=viewer, platform=platform, persona=persona)


@dataclass(frozen=True, slots=True)
class _Turn:
    """A spoken turn waiting to be stored."""

    persona: PersonaConfig
    who: ViewerRef
    said: str
    replied: str
    allowed: TextCheck
    extractor: Extractor
    queued_at: float


class ViewerMemory:
    """One viewer's memory as one persona sees it: what the reply pipeline calls.

    Made by :meth:`MemoryService.viewer` (which returns None when there is nothing to
    remember: memory off for the persona, an anonymous viewer).
    """

    def __init__(self, service: MemoryService, persona: PersonaConfig, who: ViewerRef, *,
                 allowed: TextCheck, extractor: Extractor) -> None:
        self.service = service
        self.persona = persona
        self.who = who
        self.allowed = allowed
        self.extractor = extractor

    async def recall(self, text: str, *, with_history: bool) -> Recalled:
        """Memories of this viewer relevant to ``text`` (and their recent turns when
        ``with_history``), within the service's recall timeout; never raises."""
        turns = self.persona.llm.history_turns if with_history else 0
        return await self.service.recall(
            self.persona, self.who, text, history_turns=turns, allowed=self.allowed,
            turns_in_prompt=not with_history and self.persona.llm.history_turns > 0)

    def after_turn(self, said: str, replied: str) -> None:
        """Queue a spoken turn to be stored and noted; returns at once."""
        self.service.note(_Turn(self.persona, self.who, said, replied, self.allowed,
                                self.extractor, self.service.clock()))


@dataclass
class _Retention:
    last: float | None = None


class MemoryService:
    """Memory for the whole app. Use as ``async with``.

    Args:
        store: the opened store.
        close_store: close ``store`` on exit (:meth:`open` and :meth:`from_config` do: the
            service opened it).
        recall_timeout_s: how long a reply waits for recall at most.
        queue_size: turns waiting to be noted at most; more are dropped (and counted).
        retention_every_s: how often each persona's retention (age, size) is enforced.
        person_ttl_s: how long a viewer's person id is cached; a link made by
            ``vstage memory link`` in another process is seen after this long.
        drain_timeout_s: on exit, how long queued turns may take to be stored.
        clock: monotonic clock.

    Attributes:
        counts: what happened, for logs and tests: ``recalled``, ``recall_timeout``,
            ``recall_failed``, ``turns_stored``, ``facts_stored``, ``refused`` (texts the
            input rules refused), ``dropped`` (queue full), ``note_failed``.
    """

    def __init__(self, store: MemoryStore, *, close_store: bool = False,
                 recall_timeout_s: float = RECALL_TIMEOUT_S,
                 queue_size: int = 256, retention_every_s: float = 600.0,
                 person_ttl_s: float = 30.0, drain_timeout_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.close_store = close_store
        self.recall_timeout_s = recall_timeout_s
        self.retention_every_s = retention_every_s
        self.person_ttl_s = person_ttl_s
        self.drain_timeout_s = drain_timeout_s
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self._queue: asyncio.Queue[_Turn] = asyncio.Queue(maxsize=queue_size)
        self._worker: asyncio.Task[None] | None = None
        self._lookups: set[asyncio.Task[Recalled]] = set()
        self._persons: dict[tuple[str, str], tuple[str, float]] = {}
        self._retention: dict[str, _Retention] = {}
        self._forgotten: dict[tuple[str, str], float] = {}  # viewer -> when they said forget
        self._writing = asyncio.Lock()  # one note-taking at a time, and forget between them

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(cls, settings: MemorySettings, *, state_dir: Path,
                   **kwargs: Any) -> MemoryService:
        """Open (and migrate) the store ``settings`` name; SQLite under ``state_dir`` by
        default."""
        url = settings.url.get_secret_value() if settings.url is not None else None
        store = await MemoryStore.open(url, state_dir=state_dir)
        return cls(store, close_store=True, **kwargs)

    @classmethod
    async def from_config(cls, config: Config, **kwargs: Any) -> MemoryService:
        """The service for the app's configuration (``memory:`` and ``state_dir``)."""
        return await cls.open(config.app.memory, state_dir=config.state_dir, **kwargs)

    async def __aenter__(self) -> Self:
        if self._worker is None:
            self._worker = asyncio.create_task(self._take_notes(), name="memory:notes")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.drain(timeout_s=self.drain_timeout_s)
        worker, self._worker = self._worker, None
        tasks: list[asyncio.Task[Any]] = [*self._lookups]
        if worker is not None:
            tasks.append(worker)
        await cancel_and_wait(tasks)
        if self.close_store:
            await self.store.aclose()

    async def drain(self, *, timeout_s: float | None = None) -> bool:
        """Wait until every queued turn is stored; False if ``timeout_s`` passed first."""
        if self._worker is None or self._worker.done():
            return self._queue.empty()
        try:
            async with asyncio.timeout(timeout_s):
                await self._queue.join()
        except TimeoutError:
            logger.warning("memory: %d turn(s) not stored in time", self._queue.qsize())
            return False
        return True

    # ------------------------------------------------------------------ the show

    def viewer(self, persona: PersonaConfig, who: ViewerRef, *, allowed: TextCheck,
               llm: LLM | None = None, gate: Gate | None = None) -> ViewerMemory | None:
        """The memory of ``who`` for ``persona``'s next reply; None when nothing is to be
        remembered (memory off for the persona, a viewer id many people share).

        Args:
            allowed: the persona's input rules for this viewer; what they refuse is never
                stored.
            llm: the persona's model, for ``extract: llm`` (and ``auto`` with a model
                other than the embedded one).
            gate: a turn on the shared model for note-taking.
        """
        if not persona.memory.enabled or not who.remembered:
            return None
        extractor = choose_extractor(persona.memory.extract, provider=persona.llm.provider,
                                     llm=llm, gate=gate)
        return ViewerMemory(self, persona, who, allowed=allowed, extractor=extractor)

    async def recall_for(self, persona: PersonaConfig, platform: str, viewer_id: str,
                         name: str, text: str) -> list[str]:
        """The notes ``persona`` recalls about a viewer for ``text`` (within the timeout;
        [] on timeout, error or memory off)."""
        who = ViewerRef(platform=platform, viewer_id=viewer_id, name=name)
        if not persona.memory.enabled or not who.remembered:
            return []
        return list((await self.recall(persona, who, text)).notes)

    async def recall(self, persona: PersonaConfig, who: ViewerRef, text: str, *,
                     history_turns: int = 0, allowed: TextCheck | None = None,
                     turns_in_prompt: bool = False) -> Recalled:
        """Recall for one reply, waiting at most ``recall_timeout_s``; never raises.

        A lookup that takes longer goes on in the background (its connection is not torn
        down mid-call) and its answer is dropped.

        Args:
            history_turns: also load the viewer's last turns from the store (at most this
                many).
            allowed: the input rules; a note they refuse now is not recalled.
            turns_in_prompt: the prompt already holds their recent turns (from RAM). The
                rolling summary (their last topics) is then left out: the turns say it,
                and every note costs the model time to read before it can answer.
        """
        task = asyncio.create_task(
            self._lookup(persona, who, text, history_turns, allowed, turns_in_prompt),
            name=f"memory:recall:{persona.id}")
        self._lookups.add(task)
        task.add_done_callback(self._lookup_done)
        done, _ = await asyncio.wait({task}, timeout=self.recall_timeout_s)
        if not done:
            self.counts["recall_timeout"] += 1
            logger.info("memory: recall for %s took over %.0f ms; answering without it",
                        persona.id, self.recall_timeout_s * 1000)
            return Recalled(timed_out=True)
        if task.cancelled() or task.exception() is not None:
            return Recalled()
        self.counts["recalled"] += 1
        return task.result()

    def _lookup_done(self, task: asyncio.Task[Recalled]) -> None:
        self._lookups.discard(task)
        if not task.cancelled() and (e := task.exception()) is not None:
            self.counts["recall_failed"] += 1
            logger.warning("memory: recall failed (%s: %s)", type(e).__name__, e)

    async def _lookup(self, persona: PersonaConfig, who: ViewerRef, text: str,
                      history_turns: int, allowed: TextCheck | None,
                      turns_in_prompt: bool) -> Recalled:
        cfg = persona.memory
        person = await self._person(who)

        async def notes() -> list[MemoryItem]:
            if not cfg.recall or not cfg.recall_chars or not text.strip():
                return []
            return await self.store.recall(persona.id, person, text, limit=cfg.recall,
                                           chars=cfg.recall_chars)

        async def turns() -> list[Exchange]:
            if history_turns <= 0:
                return []
            got = await self.store.history(persona.id, person, limit=history_turns)
            return [Exchange(t.said, t.replied) for t in sorted(got, key=lambda t: t.at)]

        items, history = await asyncio.gather(notes(), turns())
        if turns_in_prompt or history:
            items = [i for i in items if i.kind != "summary"]
        # Moderated again on the way out: a word blocked since it was noted is not recalled.
        kept = tuple(i.text for i in items if allowed is None or allowed(i.text))
        return Recalled(notes=kept, history=tuple(history))

    def note(self, turn: _Turn) -> None:
        """Queue a spoken turn for note-taking (dropped, and counted, when the queue is
        full: memory never holds the show back)."""
        try:
            self._queue.put_nowait(turn)
        except asyncio.QueueFull:
            self.counts["dropped"] += 1
            logger.warning("memory: %d turns wait to be noted; dropping one of %s's",
                           self._queue.qsize(), turn.persona.id)

    async def _take_notes(self) -> None:
        while True:
            turn = await self._queue.get()
            try:
                async with self._writing:
                    try:
                        await self._store_turn(turn)
                    except MemoryStoreError as e:
                        if e.code != "unknown_person":
                            raise
                        # Forgotten from elsewhere (``vstage memory forget``) while we had
                        # their old id: look them up again, once.
                        self._persons.pop(turn.who.key, None)
                        await self._store_turn(turn)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # one failed turn never stops note-taking
                self.counts["note_failed"] += 1
                logger.warning("memory: could not note a turn of %s (%s: %s)",
                               turn.persona.id, type(e).__name__, e)
            finally:
                self._queue.task_done()

    async def _store_turn(self, turn: _Turn) -> None:
        forgot = self._forgotten.get(turn.who.key)
        if forgot is not None and turn.queued_at <= forgot:
            return  # they said "forget me" after this turn was queued
        if not turn.allowed(turn.said):
            self.counts["refused"] += 1
            return  # nothing the input filter refuses is stored
        pid = turn.persona.id
        person = await self._person(turn.who)
        platform = turn.who.platform
        if turn.replied and turn.allowed(turn.replied):
            await self.store.add_turn(pid, person, turn.said, turn.replied, platform=platform)
            self.counts["turns_stored"] += 1
        elif turn.replied:
            self.counts["refused"] += 1
        facts = await turn.extractor.facts(turn.said, viewer=turn.who.name)
        allowed = [f for f in facts if turn.allowed(f)]
        self.counts["refused"] += len(facts) - len(allowed)
        if allowed:
            await self.store.remember(pid, person, allowed, kind="fact", source=turn.said,
                                      platform=platform)
            self.counts["facts_stored"] += len(allowed)
        previous = next((i.text for i in await self.store.about(person, persona=pid)
                         if i.kind == "summary"), None)
        summary = rolling_summary(previous, turn.said)
        if turn.allowed(summary):
            await self.store.set_summary(pid, person, summary)
        await self._enforce_retention(turn.persona)

    async def _enforce_retention(self, persona: PersonaConfig) -> None:
        state = self._retention.setdefault(persona.id, _Retention())
        now = self.clock()
        if state.last is not None and now - state.last < self.retention_every_s:
            return
        state.last = now
        cfg = persona.memory
        erased = await self.store.enforce_retention(
            persona.id, max_age_days=cfg.max_age_days, max_per_viewer=cfg.max_per_viewer)
        if erased:
            logger.info("memory: retention erased %d of %s's notes", erased, persona.id)

    # ------------------------------------------------------------------ identity

    async def _person(self, who: ViewerRef) -> str:
        cached = self._persons.get(who.key)
        now = self.clock()
        if cached is not None and now - cached[1] < self.person_ttl_s:
            return cached[0]
        person = await self.store.person(who.platform, who.viewer_id, name=who.name)
        if len(self._persons) >= 50_000:
            self._persons.clear()
        self._persons[who.key] = (person, now)
        return person

    async def _known_person(self, who: ViewerRef) -> str | None:
        """The person id of ``who`` if the store has seen them (never creates one: asking
        what is kept, or to be forgotten, leaves no trace)."""
        found = await self.store.find_viewer(f"{who.platform}:{who.viewer_id}")
        return next((v["person"] for v in found if v["platform"] == who.platform
                     and v["viewer_id"] == who.viewer_id), None)

    # ------------------------------------------------------------------ viewer controls

    async def kept(self, who: ViewerRef, *, public: bool) -> Kept:
        """What is kept about ``who`` (every persona's notes). ``public``: the answer goes
        to a public chat, so facts from other places (a linked account) are only counted."""
        person = await self._known_person(who)
        if person is None:
            return Kept()
        items = await self.store.about(person)  # newest first
        facts = [i for i in items if i.kind == "fact"]
        shown = [i for i in facts if not public or i.platform == who.platform]
        return Kept(facts=tuple(i.text for i in shown), elsewhere=len(facts) - len(shown),
                    summaries=sum(i.kind == "summary" for i in items),
                    personas=tuple(sorted({i.persona for i in items})))

    async def forget(self, who: ViewerRef) -> int:
        """Erase everything kept about ``who`` (and the accounts linked to them), for every
        persona; turns of theirs still waiting to be noted are dropped. Returns the rows
        erased."""
        async with self._writing:  # not while one of their turns is half stored
            self._forgotten[who.key] = self.clock()
            person = await self._known_person(who)
            erased = 0 if person is None else await self.store.forget(person)
        self._persons.clear()
        self.counts["forgotten"] += 1
        return erased

    async def link_code(self, who: ViewerRef, *, ttl_s: float = 600.0) -> str:
        """A one-time code ``who`` types in another place to link that account to this
        one."""
        await self._person(who)  # they exist before their code does
        return await self.store.link_code(who.platform, who.viewer_id, ttl_s=ttl_s)

    async def redeem(self, code: str, who: ViewerRef) -> bool:
        """Link ``who`` to the account that made ``code``; False when the code is unknown,
        used or expired."""
        await self._person(who)
        person = await self.store.redeem_link_code(code.strip(), who.platform, who.viewer_id)
        self._persons.clear()
        return person is not None
