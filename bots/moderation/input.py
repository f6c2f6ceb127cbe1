"""First gate for viewer text: normalise what can be normalised, reject the rest with a reason.

Control characters are removed, piles of combining marks (zalgo) are thinned, emoji and
right-to-left scripts pass untouched. Empty and over-long messages are refused with a
reason a viewer can read.
"""

from __future__ import annotations

import re
import unicodedata

from bots.moderation.errors import InputRejected

_MAX_MARKS_PER_CHAR = 2
_SPACES = re.compile(r"\s+")


def clean_viewer_text(text: str, *, max_chars: int) -> str:
    """Return the text a persona will read, or raise :class:`InputRejected`.

    Args:
        text: what the viewer sent.
        max_chars: the longest message accepted (after cleaning).
    """
    if not isinstance(text, str):
        raise InputRejected("not_text", "message must be text")
    text = unicodedata.normalize("NFC", text)
    out: list[str] = []
    marks = 0
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf") and ch not in "\u200d\u200f\u200e":  # keep ZWJ and bidi marks
            out.append(" " if ch in "\t\n\r\x0b\x0c" else "")
            continue
        if cat.startswith("M"):
            marks += 1
            if marks > _MAX_MARKS_PER_CHAR:
                continue
        else:
            marks = 0
        out.append(ch)
    cleaned = _SPACES.sub(" ", "".join(out)).strip()
    if not cleaned:
        raise InputRejected("empty", "message is empty")
    if not any(unicodedata.category(ch)[0] in "LN" or ch.isalnum() for ch in cleaned):
        # Emoji-only is fine to answer; pure punctuation is not worth a reply.
        if not any(unicodedata.category(ch) == "So" for ch in cleaned):
            raise InputRejected("no_words", "message has no words in it")
    if len(cleaned) > max_chars:
        raise InputRejected(
            "too_long", f"message is too long ({len(cleaned)} characters; limit {max_chars})"
        )
    return cleaned
