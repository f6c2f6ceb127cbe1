"""The local studio's chat box as an adapter: lines typed on the studio page become
:class:`ChatMessage` events from a viewer with the role the streamer chose on the page (so the
link and spam rules can be tried there); refusals come back as notices on the page. The
memory commands (``!memory``, ``!forgetme``, ``!link``) are answered as notices too, as Twitch
chat answers them, and never reach a persona.

It knows nothing of the web server: the app routes the server's chat lines to
:meth:`StudioAdapter.on_chat` and gives the adapter a ``notify`` callable for the page's
notices."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Self

from bots.adapters.base import EventSink
from bots.adapters.commands import (
    MemoryCommandName,
    MemoryCommandSink,
    MemoryRequest,
    parse_memory_command,
    parse_mod_command,
)
from bots.events import ChatMessage, Decision, ModCommand, Outcome, Role, Viewer

logger = logging.getLogger(__name__)

# The roles the studio page offers (``STUDIO_ROLES`` of the server) as platform roles.
ROLES: dict[str, frozenset[Role]] = {
    "viewer": frozenset(),
    "subscriber": frozenset({Role.SUBSCRIBER}),
    "vip": frozenset({Role.VIP}),
    "mod": frozenset({Role.MODERATOR}),
    "broadcaster": frozenset({Role.BROADCASTER}),
}

Notify = Callable[[str | None, str, str], None]
"""``notify(persona, text, level)``: show a status line on the studio page (``level``:
``info`` or ``warn``)."""


class StudioAdapter:
    """Chat typed in the studio, posted as the role chosen on the page: a plain viewer is
    held to the link and spam rules, a mod or the broadcaster may use ``!skip`` and co."""

    platform = "studio"

    def __init__(self, *, notify: Notify) -> None:
        self._notify = notify
        self._sink: EventSink | None = None

    def bind(self, sink: EventSink) -> None:
        self._sink = sink

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def on_chat(
        self, user: str, text: str, persona: str | None, role: str = "viewer"
    ) -> Decision:
        """Submit one line typed in the studio as ``user`` with ``role``: the studio's inbox.

        Returns:
            The orchestrator's decision; ``trace_id`` is ``""`` when it never got there.
        """
        if self._sink is None:
            return Decision(False, "", "the studio is still starting")
        roles = ROLES.get(role)
        if roles is None:  # the server validates it; a direct caller may not
            return Decision(False, "", f"unknown role {role!r}")
        viewer = Viewer(id=f"studio:{user.casefold()}", name=user, roles=roles)
        memory = parse_memory_command(text)
        if memory is not None and isinstance(self._sink, MemoryCommandSink):
            return await self._memory(viewer, persona, *memory)
        command = parse_mod_command(text.strip())
        event: ModCommand | ChatMessage
        if command is not None and not command.argument:  # the whole line is the command
            event = ModCommand(viewer=viewer, persona=persona, platform=self.platform,
                               command=command.command)
        else:
            event = ChatMessage(viewer=viewer, message=text, persona=persona,
                                platform=self.platform)
        d: Decision = self._sink.submit(event)
        if not d.accepted:
            self._notify(persona, f"not answered: {d.reason}", "warn")
        return d

    async def _memory(self, viewer: Viewer, persona: str | None, command: MemoryCommandName,
                      argument: str) -> Decision:
        """Answer a memory command typed in the studio as a notice on the page. The studio
        is the streamer's own page, not a public chat: link codes may be shown there."""
        assert isinstance(self._sink, MemoryCommandSink)
        request = MemoryRequest(command=command, viewer=viewer,
                                platform=self.platform, persona=persona, argument=argument,
                                public=False)
        try:
            answer = await self._sink.memory_command(request)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("studio: could not answer a memory command (%s)", command)
            self._notify(persona, "memory: that did not work; see the log", "warn")
            return Decision(False, "", "the memory command failed")
        if answer:
            self._notify(persona, f"{viewer.name}: {answer}", "info")
        return Decision(True, "", f"memory command {command}")

    async def deliver(self, outcome: Outcome) -> None:
        if outcome.status in ("refused", "failed"):
            self._notify(outcome.event.persona,
                         f"{outcome.event.viewer.name}: not answered ({outcome.reason})", "warn")
        elif outcome.status == "interrupted":
            self._notify(outcome.event.persona, "reply skipped", "info")
