"""Moderator chat commands (``!skip``, ``!pause``, ``!resume``, ``!clear``), parsed the same
way by every adapter that reads chat."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast, get_args

from bots.events import ModCommandName

__all__ = ["MOD_COMMANDS", "ParsedCommand", "parse_mod_command"]

MOD_COMMANDS: frozenset[str] = frozenset(get_args(ModCommandName))


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    """A mod command and what followed it (e.g. the persona it is for); ``""`` if nothing."""

    command: ModCommandName
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
