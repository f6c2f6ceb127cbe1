"""Chat commands, parsed the same way by every adapter that reads chat: moderators' control
commands (``!skip``, ``!pause``, ``!resume``, ``!clear``) and commands any viewer may use
(``!slower``: say the persona's last reply to me again, slower)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast, get_args

from bots.events import ModCommandName

__all__ = [
    "MOD_COMMANDS",
    "VIEWER_COMMANDS",
    "ParsedCommand",
    "ParsedViewerCommand",
    "ViewerCommandName",
    "parse_mod_command",
    "parse_viewer_command",
]

MOD_COMMANDS: frozenset[str] = frozenset(get_args(ModCommandName))

ViewerCommandName = Literal["slower"]
VIEWER_COMMANDS: frozenset[str] = frozenset(get_args(ViewerCommandName))


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
