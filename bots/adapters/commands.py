"""Chat commands, parsed the same way by every adapter that reads chat: moderators' control
commands (``!skip``, ``!pause``, ``!resume``, ``!clear``), commands any viewer may use
(``!slower``: say the persona's last reply to me again, slower) and a viewer's memory
controls (``!memory``, ``!forgetme``, ``!link [CODE]``; Discord's ``/memory``, ``/forget``,
``/link``).

Memory controls never reach a persona's queue or its model: the adapter hands them to a sink
that can answer them (:class:`MemoryCommandSink`, the orchestrator) and posts the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, cast, get_args, runtime_checkable

from bots.events import ModCommandName, Viewer

__all__ = [
    "MEMORY_COMMANDS",
    "MOD_COMMANDS",
    "MemoryCommandName",
    "MemoryCommandSink",
    "MemoryRequest",
    "VIEWER_COMMANDS",
    "ParsedCommand",
    "ParsedViewerCommand",
    "ViewerCommandName",
    "parse_memory_command",
    "parse_mod_command",
    "parse_viewer_command",
]

MOD_COMMANDS: frozenset[str] = frozenset(get_args(ModCommandName))

ViewerCommandName = Literal["slower"]
VIEWER_COMMANDS: frozenset[str] = frozenset(get_args(ViewerCommandName))

MemoryCommandName = Literal["memory", "forget", "link"]
"""What is kept about me, forget me, link my accounts (the names Discord's commands have)."""
MEMORY_COMMANDS: dict[str, MemoryCommandName] = {
    "memory": "memory", "forgetme": "forget", "forget": "forget", "link": "link",
}
"""Chat spellings (after ``!``) of the memory commands."""


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    """A mod command and what followed it (e.g. the persona it is for); ``""`` if nothing."""

    command: ModCommandName
    argument: str = ""


@dataclass(frozen=True, slots=True)
class ParsedViewerCommand:
    """A viewer command and what followed it; ``""`` if nothing."""

    command: ViewerCommandName
    argument: str = ""


def parse_mod_command(text: str) -> ParsedCommand | None:
    """The mod command ``text`` starts with (``"!skip mika"`` -> ``skip``, ``"mika"``), or None.

    The command word is matched case-insensitively; ``text`` is not stripped first, so a
    line starting with a space is chat.
    """
    head, _, rest = text.partition(" ")
    name = head.casefold()
    if not name.startswith("!") or name[1:] not in MOD_COMMANDS:
        return None
    return ParsedCommand(cast(ModCommandName, name[1:]), rest.strip())


def parse_viewer_command(text: str) -> ParsedViewerCommand | None:
    """The viewer command ``text`` starts with (``"!slower"`` -> ``slower``), or None.

    Viewer commands stay chat messages on their way through the adapters (moderation and
    the queue treat them as any line); the orchestrator recognises them when it answers.
    """
    head, _, rest = text.partition(" ")
    name = head.casefold()
    if not name.startswith("!") or name[1:] not in VIEWER_COMMANDS:
        return None
    return ParsedViewerCommand(cast(ViewerCommandName, name[1:]), rest.strip())


@dataclass(frozen=True, slots=True)
class MemoryRequest:
    """A viewer's memory command, as an adapter hands it on.

    Attributes:
        command: ``memory`` (what is kept), ``forget`` (erase it all) or ``link`` (without
            ``argument``: a one-time code to type elsewhere; with it: redeem that code).
        viewer: who asked (the platform's viewer, as in their events).
        platform: where they asked (``twitch``, ``discord``, ``studio``).
        persona: the persona addressed (None: the default one).
        argument: what followed the command (a link code), stripped.
        public: the answer is posted where everyone reads it (Twitch chat): it then shows
            only what was said in that place, and no link code is handed out there.
    """

    command: MemoryCommandName
    viewer: Viewer
    platform: str
    persona: str | None = None
    argument: str = ""
    public: bool = True


@runtime_checkable
class MemoryCommandSink(Protocol):
    """A sink that answers memory commands (the orchestrator, when memory is set up)."""

    async def memory_command(self, request: MemoryRequest) -> str:
        """Carry out ``request``; the text to answer the viewer with."""
        ...


def parse_memory_command(text: str) -> tuple[MemoryCommandName, str] | None:
    """The memory command ``text`` is (``"!link ab12cd34"`` -> ``("link", "ab12cd34")``),
    or None. The whole line is the command: ``"!memory is great"`` is chat, not a request
    (only ``!link`` takes an argument: the code)."""
    head, _, rest = text.strip().partition(" ")
    name = head.casefold()
    command = MEMORY_COMMANDS.get(name[1:]) if name.startswith("!") else None
    rest = rest.strip()
    if command is None or (rest and command != "link") or len(rest) > 32:
        return None
    return command, rest
