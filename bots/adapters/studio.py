"""The local studio's chat box as an adapter: lines typed on the studio page become
:class:`ChatMessage` events; refusals come back as notices on the page."""

from __future__ import annotations

import logging
from typing import Self

from bots.adapters.base import EventSink
from bots.events import ChatMessage, Decision, Outcome, Role, Viewer
from overlays.studio import ChatResult, StudioServer

logger = logging.getLogger(__name__)


class StudioAdapter:
    """Chat typed in the studio. The person at the studio is the streamer, so ``as_mod``
    (default on) lets them use mod commands such as ``!skip``."""

    platform = "studio"

    def __init__(self, *, server: StudioServer, as_mod: bool = True) -> None:
        self._server = server
        self._sink: EventSink | None = None
        self._roles = frozenset({Role.BROADCASTER}) if as_mod else frozenset()

    def bind(self, sink: EventSink) -> None:
        self._sink = sink

    async def __aenter__(self) -> Self:
        self._server.set_chat_handler(self.on_chat)
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def on_chat(self, user: str, text: str, persona: str | None) -> ChatResult:
        if self._sink is None:
            return ChatResult(accepted=False, reason="the studio is still starting")
        viewer = Viewer(id=f"studio:{user.casefold()}", name=user, roles=self._roles)
        command = text.strip().lower()
        if command in ("!skip", "!pause", "!resume", "!clear"):
            from bots.events import ModCommand

            event = ModCommand(viewer=viewer, persona=persona, platform=self.platform,
                               command=command[1:])  # type: ignore[arg-type]
        else:
            event = ChatMessage(viewer=viewer, message=text, persona=persona,
                                platform=self.platform)
        d: Decision = self._sink.submit(event)
        if not d.accepted:
            self._server.notice(persona, f"not answered: {d.reason}", level="warn")
        return ChatResult(accepted=d.accepted, trace_id=d.trace_id, reason=d.reason)

    async def deliver(self, outcome: Outcome) -> None:
        if outcome.status in ("refused", "failed"):
            self._server.notice(outcome.event.persona,
                                f"{outcome.event.viewer.name}: not answered ({outcome.reason})",
                                level="warn")
        elif outcome.status == "interrupted":
            self._server.notice(outcome.event.persona, "reply skipped", level="info")
