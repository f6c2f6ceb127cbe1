"""The local studio's chat box as an adapter: lines typed on the studio page become
:class:`ChatMessage` events from a viewer with the role the streamer chose on the page (so the
link and spam rules can be tried there); refusals come back as notices on the page."""

from __future__ import annotations

import logging
from typing import Self

from bots.adapters.base import EventSink
from bots.events import ChatMessage, Decision, ModCommand, Outcome, Role, Viewer
from overlays.studio.server import ChatResult, StudioServer

logger = logging.getLogger(__name__)

# The roles the studio page offers (``STUDIO_ROLES`` of the server) as platform roles.
ROLES: dict[str, frozenset[Role]] = {
    "viewer": frozenset(),
    "subscriber": frozenset({Role.SUBSCRIBER}),
    "vip": frozenset({Role.VIP}),
    "mod": frozenset({Role.MODERATOR}),
    "broadcaster": frozenset({Role.BROADCASTER}),
}
_COMMANDS = ("!skip", "!pause", "!resume", "!clear")


class StudioAdapter:
    """Chat typed in the studio, posted as the role chosen on the page: a plain viewer is
    held to the link and spam rules, a mod or the broadcaster may use ``!skip`` and co."""

    platform = "studio"

    def __init__(self, *, server: StudioServer) -> None:
        self._server = server
        self._sink: EventSink | None = None

    def bind(self, sink: EventSink) -> None:
        self._sink = sink

    async def __aenter__(self) -> Self:
        self._server.set_chat_handler(self.on_chat)
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def on_chat(
        self, user: str, text: str, persona: str | None, role: str = "viewer"
    ) -> ChatResult:
        if self._sink is None:
            return ChatResult(accepted=False, reason="the studio is still starting")
        roles = ROLES.get(role)
        if roles is None:  # the server validates it; a direct caller may not
            return ChatResult(accepted=False, reason=f"unknown role {role!r}")
        viewer = Viewer(id=f"studio:{user.casefold()}", name=user, roles=roles)
        command = text.strip().lower()
        event: ModCommand | ChatMessage
        if command in _COMMANDS:
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
