"""A persona's lorebook: entries put into the prompt when their keywords come up (Character
Card ``character_book``).

An entry's keys are matched against the viewer's new line and the last few turns of that
viewer's own conversation; the entries found (plus the ``constant`` ones) are put into the
system prompt as background facts, the most important first when they do not all fit in the
budget. A viewer can only *bring up* lore the streamer wrote, never add to it.

Literal keys match whole words ("cat" is not found in "category"). Regex keys (a card's
``use_regex``) are compiled when the persona loads; a pattern that could take exponential time
on a crafted chat line (a repeated group that itself repeats, like ``(a+)+``) is refused then,
because viewers choose the text it runs on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cached_property
from typing import Any, Literal

from pydantic import Field, model_validator

from vstage_core.settings import FrozenModel

__all__ = ["LoreEntry", "Lorebook"]

# A group closed and then repeated, whose body repeats too: (a+)+, (\w*)*, (x{2,})+ ...
_NESTED_REPEAT = re.compile(r"\((?:[^()\\]|\\.)*[*+}](?:[^()\\]|\\.)*\)\s*[*+{]")
_SLASHED = re.compile(r"^/(.+)/([a-z]*)$", re.DOTALL)


def _regex_problem(key: str) -> str | None:
    """Why ``key`` cannot be used as a regex key, or None."""
    m = _SLASHED.match(key)
    pattern = m.group(1) if m else key
    if _NESTED_REPEAT.search(pattern):
        return (f"regex key {key!r} repeats a group that itself repeats; such a pattern can "
                "take minutes on a crafted chat line. Rewrite it without the nesting")
    try:
        re.compile(pattern)
    except re.error as e:
        return f"regex key {key!r} is not a valid regular expression: {e}"
    return None


class LoreEntry(FrozenModel):
    """One piece of lore, added to the context when a key appears in the conversation."""

    # Optional switches are None when not set (they then act as false, or 0): a card that
    # does not spell one out is written back without it.
    keys: tuple[str, ...] = Field(default=(), description="words that bring the entry up")
    content: str = Field("", description="what the persona is told when the entry comes up")
    enabled: bool = True
    constant: bool | None = Field(None, description="always in the context, keys or not")
    case_sensitive: bool | None = None
    priority: int | None = Field(None, description="higher first when the budget is short "
                                 "(unset: 0)")
    name: str | None = None
    secondary_keys: tuple[str, ...] | None = Field(
        None, description="with selective: one of these must come up as well")
    selective: bool | None = Field(None, description="needs a key and a secondary key")
    insertion_order: int = Field(0, description="lower is put earlier in the prompt")
    use_regex: bool | None = Field(None, description="keys are regular expressions")
    position: Literal["before_char", "after_char"] | None = Field(
        None, description="before or after the persona's description (default after)")
    card: dict[str, Any] | None = Field(
        None, description="the card entry's other fields (id, comment, extensions), for export")

    @model_validator(mode="after")
    def _safe_patterns(self) -> LoreEntry:
        if self.use_regex:
            for key in (*self.keys, *(self.secondary_keys or ())):
                problem = _regex_problem(key) if key.strip() else None
                if problem is not None:
                    raise ValueError(problem)
        return self

    @cached_property
    def _matchers(self) -> tuple[tuple[re.Pattern[str], ...], tuple[re.Pattern[str], ...]]:
        """The compiled keys and secondary keys (blank keys never match)."""
        return (tuple(self._compile(k) for k in self.keys if k.strip()),
                tuple(self._compile(k) for k in self.secondary_keys or () if k.strip()))

    def _compile(self, key: str) -> re.Pattern[str]:
        flags = 0 if self.case_sensitive else re.IGNORECASE
        if self.use_regex:
            m = _SLASHED.match(key)
            if m:  # the /pattern/flags form some editors write
                key = m.group(1)
                flags |= re.IGNORECASE if "i" in m.group(2) else 0
            return re.compile(key, flags)
        text = key.strip()
        before = r"(?<!\w)" if re.match(r"\w", text) else ""
        after = r"(?!\w)" if re.search(r"\w$", text) else ""
        return re.compile(before + re.escape(text) + after, flags)

    def triggered_by(self, text: str) -> bool:
        """Whether ``text`` brings this entry up (enabled, and constant or a key found)."""
        if not self.enabled:
            return False
        if self.constant:
            return True
        primary, secondary = self._matchers
        if not any(p.search(text) for p in primary):
            return False
        return not (self.selective and secondary) or any(p.search(text) for p in secondary)


class Lorebook(FrozenModel):
    """The entries and how much of the prompt they may take."""

    entries: tuple[LoreEntry, ...] = Field((), max_length=2000)
    scan_turns: int = Field(2, ge=0, le=20, description="recent turns searched for keys")
    budget_chars: int = Field(800, ge=0, le=20_000, description="lore put in a prompt at most")
    recursive_scanning: bool | None = Field(
        None, description="entries brought up may bring up others with their own text "
        "(unset: no)")
    name: str | None = None
    description: str | None = None
    card: dict[str, Any] | None = Field(
        None, description="the card book's other fields (extensions, scan_depth, token_budget), "
        "for export")

    def select(self, texts: Sequence[str]) -> list[LoreEntry]:
        """The entries ``texts`` (the new line and recent turns) bring up, in prompt order.

        When they do not all fit in :attr:`budget_chars`, the lowest ``priority`` ones are left
        out first (the later ``insertion_order`` first among equals); the rest are ordered by
        ``insertion_order``.
        """
        haystack = "\n".join(texts)
        chosen: dict[int, LoreEntry] = {}
        rounds = 3 if self.recursive_scanning else 1
        for _ in range(rounds):
            found = {i: e for i, e in enumerate(self.entries)
                     if i not in chosen and e.content.strip() and e.triggered_by(haystack)}
            if not found:
                break
            chosen.update(found)
            haystack = "\n".join(e.content for e in found.values())  # recursion: their text
        ranked = sorted(chosen.items(), key=lambda ie: (-(ie[1].priority or 0),
                                                        ie[1].insertion_order, ie[0]))
        kept: list[tuple[int, LoreEntry]] = []
        used = 0
        for i, entry in ranked:
            size = len(entry.content.strip())
            if used + size > self.budget_chars:
                continue  # a shorter, less important one may still fit
            kept.append((i, entry))
            used += size
        return [e for _, e in sorted(kept, key=lambda ie: (ie[1].insertion_order, ie[0]))]
