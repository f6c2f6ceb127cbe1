"""A persona's lorebook: entries put into the prompt when their keywords come up (Character
Card ``character_book``)."""

from __future__ import annotations

from pydantic import Field

from vstage_core.settings import FrozenModel

__all__ = ["LoreEntry", "Lorebook"]


class LoreEntry(FrozenModel):
    """One piece of lore, added to the context when a key appears in the conversation."""

    keys: tuple[str, ...] = Field(default=(), description="words that bring the entry up")
    content: str = Field(min_length=1)
    enabled: bool = True
    constant: bool = Field(False, description="always in the context, keys or not")
    case_sensitive: bool = False
    priority: int = Field(0, description="higher first when the budget is short")
    name: str | None = None


class Lorebook(FrozenModel):
    """The entries and how much of the prompt they may take."""

    entries: tuple[LoreEntry, ...] = ()
    scan_turns: int = Field(2, ge=0, le=20, description="recent turns searched for keys")
    budget_chars: int = Field(800, ge=0, le=20_000, description="lore put in a prompt at most")
