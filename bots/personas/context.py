"""Short-term conversation context of one persona: each viewer's own recent exchanges, and a
note of what the persona itself last said on stage.

Each viewer's turns also live in long-term memory (:mod:`bots.memory`) when the persona has
it: after a restart, a viewer's first reply loads their last turns back (:meth:`restore`).

A persona talks to many viewers at once. Putting the whole show's recent turns into every
prompt makes a small model parrot one viewer's answer to everyone and lets one jailbreak line
colour every later reply, so each viewer gets only their own turns. The stage note keeps the
persona coherent ("as I just said...") without carrying any viewer's words: sentences of the
persona's reply that repeat the prompting viewer's words (a run of three, or any longer word
of theirs: a name, a topic) are left out of it.
"""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Conversations", "Exchange", "shares_words"]

_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE = re.compile(r"(?<=[.!?…])\s+")
_OWN_WORD_CHARS = 5  # a viewer's word this long (a name, a topic) keeps a sentence out


@dataclass(frozen=True, slots=True)
class Exchange:
    """One turn of a viewer's conversation with the persona."""

    said: str
    replied: str


def words(text: str) -> list[str]:
    """The words of ``text``, lower-cased, punctuation dropped."""
    return _WORD.findall(text.casefold())


def _split_name(name: str) -> str:
    """A handle cut into its parts: "LunaLofi_99" -> "Luna Lofi 99 LunaLofi_99"."""
    parts = re.sub(r"([a-z])([A-Z])", r"\1 \2", name).replace("_", " ")
    return f"{parts} {name}"


def shares_words(a: str, b: str, *, run: int) -> bool:
    """Whether ``a`` and ``b`` share a run of ``run`` consecutive words."""
    wa, wb = words(a), words(b)
    if len(wa) < run or len(wb) < run:
        return False
    grams = {tuple(wb[i : i + run]) for i in range(len(wb) - run + 1)}
    return any(tuple(wa[i : i + run]) in grams for i in range(len(wa) - run + 1))


class Conversations:
    """Per-viewer histories of one persona, bounded in turns and in viewers.

    Args:
        turns: exchanges kept per viewer at most (0: none); when full, the oldest half is
            dropped at once (between ``turns // 2 + 1`` and ``turns`` are kept).
        max_viewers: viewers remembered; the least recently heard is forgotten first.
        note_chars: the longest stage note.
    """

    def __init__(self, *, turns: int, max_viewers: int = 5000, note_chars: int = 200) -> None:
        self.turns = turns
        self.max_viewers = max_viewers
        self.note_chars = note_chars
        self._by_viewer: OrderedDict[str, deque[Exchange]] = OrderedDict()
        self._note: str | None = None

    def __len__(self) -> int:
        return len(self._by_viewer)

    def history(self, key: str) -> tuple[Exchange, ...]:
        """The viewer's own recent exchanges, oldest first."""
        turns = self._by_viewer.get(key)
        return tuple(turns) if turns else ()

    def remember(self, key: str, said: str, replied: str, *, viewer: str = "") -> None:
        """Record an answered turn of viewer ``key`` (shown as ``viewer``) and note what the
        persona said."""
        self._note_stage(said, replied, viewer)
        if not self.turns:
            return
        turns = self._by_viewer.pop(key, None)
        if turns is None:
            turns = deque(maxlen=self.turns)
        if len(turns) >= self.turns:
            # Full: the oldest half goes at once, not one exchange per turn. A window sliding
            # by one would change the prompt's start every turn, and the model would read the
            # whole history again each time; this way the kept turns stay the start of the
            # next prompts (a prefix the model has already read) for turns / 2 turns.
            for _ in range(max(1, self.turns // 2)):
                turns.popleft()
        turns.append(Exchange(said, replied))
        self._by_viewer[key] = turns  # most recent last
        while len(self._by_viewer) > self.max_viewers:
            self._by_viewer.popitem(last=False)

    def restore(self, key: str, exchanges: Sequence[Exchange]) -> bool:
        """Load viewer ``key``'s earlier exchanges (from long-term memory, after a restart)
        when none of theirs are kept here; the stage note is left alone. True if loaded."""
        if not self.turns or not exchanges or self._by_viewer.get(key):
            return False
        self._by_viewer[key] = deque(exchanges[-self.turns:], maxlen=self.turns)
        while len(self._by_viewer) > self.max_viewers:
            self._by_viewer.popitem(last=False)
        return True

    def forget(self, key: str) -> None:
        """Drop everything kept about viewer ``key``."""
        self._by_viewer.pop(key, None)

    def clear(self) -> None:
        self._by_viewer.clear()
        self._note = None

    @property
    def stage_note(self) -> str | None:
        """What the persona last said on stage, free of any viewer's words."""
        return self._note

    def _note_stage(self, said: str, replied: str, viewer: str) -> None:
        # Their longer words, and every part of their name ("Luna" of "LunaLofi" too).
        theirs = {w for w in words(said) if len(w) >= _OWN_WORD_CHARS}
        theirs |= {w for w in words(_split_name(viewer)) if len(w) >= 3}
        own = [s for s in _SENTENCE.split(replied.strip()) if s
               and not shares_words(s, said, run=3)
               and not theirs & set(words(s)) and not theirs & set(words(_split_name(s)))]
        note = " ".join(own)
        if len(note) > self.note_chars:
            cut = note.rfind(" ", 0, self.note_chars)
            note = note[: cut if cut > 0 else self.note_chars] + "…"
        self._note = note or None
