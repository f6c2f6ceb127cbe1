"""The orchestrator: accepts viewer events, keeps a queue per persona, and performs replies.

Each persona has one consumer task that takes the next accepted event, runs the reply
pipeline and hands clips to every stage as they are made. A failing reply is logged and the
show goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from avatar_engine.errors import InputRejected
from bots.events import ChatMessage
from bots.moderation.input import clean_viewer_text
from bots.orchestrator.pipeline import Reply, perform
from bots.personas.runtime import PersonaRuntime
from overlays.stage import Stage

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether an event was accepted into a persona's queue, and if not, why."""

    accepted: bool
    trace_id: str
    reason: str | None = None


class Orchestrator:
    """Owns one queue and one consumer task per persona; use as ``async with``."""

    def __init__(
        self,
        *,
        personas: dict[str, PersonaRuntime],
        stages: Sequence[Stage],
        default_persona: str,
        max_message_chars: int = 500,
        max_queue: int = 50,
    ) -> None:
        self.personas = personas
        self.stages = list(stages)
        self.default_persona = default_persona
        self.max_message_chars = max_message_chars
        self._queues: dict[str, asyncio.Queue[ChatMessage]] = {
            pid: asyncio.Queue(maxsize=max_queue) for pid in personas
        }
        self._tasks: set[asyncio.Task] = set()
        self.replies: list[Reply] = []  # recent, newest last

    async def __aenter__(self) -> Orchestrator:
        for pid in self.personas:
            task = asyncio.create_task(self._serve(pid), name=f"persona:{pid}:consumer")
            self._tasks.add(task)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def submit(self, event: ChatMessage) -> Decision:
        """Accept or reject ``event`` at once (never blocks)."""
        pid = event.persona or self.default_persona
        queue = self._queues.get(pid)
        if queue is None:
            return Decision(False, event.trace_id, f"unknown persona {pid!r}")
        try:
            text = clean_viewer_text(event.text, max_chars=self.max_message_chars)
        except InputRejected as e:
            logger.info("rejected %s from %s: %s", event.trace_id, event.viewer.name, e.reason)
            return Decision(False, event.trace_id, e.reason)
        try:
            queue.put_nowait(dataclasses.replace(event, message=text, persona=pid))
        except asyncio.QueueFull:
            return Decision(False, event.trace_id, f"{pid} has too many questions waiting")
        logger.info("accepted %s from %s for %s", event.trace_id, event.viewer.name, pid)
        return Decision(True, event.trace_id)

    async def _serve(self, pid: str) -> None:
        persona = self.personas[pid]
        queue = self._queues[pid]
        while True:
            event = await queue.get()
            try:
                await self._answer(persona, event)
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad reply must not stop the persona
                logger.exception("%s: reply to %s failed", pid, event.trace_id)

    async def _answer(self, persona: PersonaRuntime, event: ChatMessage) -> None:
        pid = persona.id
        user = event.viewer.name
        await self._each_stage("show_chat", persona=pid, user=user, text=event.text)

        async def on_clip(clip) -> None:
            await self._each_stage("play_clip", persona=pid, clip=clip)

        reply = await perform(
            persona, viewer=user, text=event.text, on_clip=on_clip, reply_id=event.trace_id
        )
        t = reply.trace
        logger.info(
            "%s answered %s: first token %.2fs, first clip %.2fs, %d clips: %r",
            pid, event.trace_id, t.since_start("llm_first_token") or -1,
            t.since_start("first_clip") or -1, len(reply.clips), reply.text,
        )
        self.replies = [*self.replies[-49:], reply]
        await self._each_stage("reply_finished", persona=pid, reply_id=reply.reply_id,
                               text=reply.text)

    async def _each_stage(self, method: str, **kwargs) -> None:
        for stage in self.stages:
            try:
                await getattr(stage, method)(**kwargs)
            except Exception:
                logger.exception("stage %s.%s failed", type(stage).__name__, method)
