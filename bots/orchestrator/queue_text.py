"""Text keys for the reply queue's near-duplicate suppression: a cheap normal form under which
copy-pasta variants collide, and a character-trigram similarity for the optional fuzzy check.
"""

from __future__ import annotations

import operator
import re
import sys
import unicodedata

_REPEATS = re.compile(r"(.)\1+")
_FIRST_GROUP = operator.itemgetter(1)  # a C-level replacement: match -> its group 1
_ASCII_PUNCTUATION = bytes(c for c in range(128) if unicodedata.category(chr(c))[0] == "P")
_punctuation: dict[int, None] | None = None


def _punctuation_table() -> dict[int, None]:
    """Every Unicode punctuation code point (categories P*) mapped to None, built on first use
    (a one-off ~70 ms scan) so that ``str.translate`` strips punctuation in C."""
    global _punctuation
    if _punctuation is None:
        _punctuation = {
            cp: None for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp))[0] == "P"
        }
    return _punctuation


def normalize_text(text: str) -> str:
    """The key under which two messages count as the same message.

    Case-folds, removes punctuation (emoji and other symbols stay, so emoji spam still
    collides), collapses runs of one repeated character (``"soooo"`` -> ``"so"``), collapses
    whitespace and drops a word that repeats the one before it (``"lol lol lol"`` -> ``"lol"``).

    Args:
        text: the message as the viewer sent it.

    Returns:
        The normal form; empty when the text has nothing but punctuation and spaces.
    """
    if text.isascii():  # the common case: bytes.translate is ~5x faster than a dict table
        stripped = text.lower().encode("ascii").translate(None, _ASCII_PUNCTUATION).decode("ascii")
    else:
        stripped = text.casefold().translate(_punctuation_table())
    folded = _REPEATS.sub(_FIRST_GROUP, stripped)
    words: list[str] = []
    for word in folded.split():
        if not words or words[-1] != word:
            words.append(word)
    return " ".join(words)


def trigrams(normalized: str) -> frozenset[str]:
    """The set of character trigrams of an already normalised text (padded, so short texts
    still have some)."""
    padded = f"  {normalized} "
    return frozenset(padded[i : i + 3] for i in range(len(padded) - 2))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of two trigram sets: 1.0 for identical sets, 0.0 for disjoint ones."""
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)
