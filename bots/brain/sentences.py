"""Cutting a streamed reply into speakable pieces, and capping its length.

The first piece may end at a clause (a comma after a few words) so the persona starts
talking sooner; later pieces end at sentence ends. Abbreviations and decimals do not cut.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "approx",
    "no", "vol", "fig", "inc", "ltd", "co", "mt", "u.s", "a.m", "p.m",
}
_CLOSERS = "\"'”’)]}»"
_SENTENCE_END = re.compile(r"([.!?…。！？]+)([" + re.escape(_CLOSERS) + r"]*)(\s+|$)")
_CLAUSE_END = re.compile(r"([,;:—–]|\s-)(\s+)")
_MARKDOWN = re.compile(r"(\*\*|__|\*|`+|^#+\s*|^\s*[-*]\s+)", re.MULTILINE)
_URL = re.compile(r"https?://\S+|www\.\S+")
# Stage directions small models like to add: "(waves)", "*giggles*", "[laughs]".
_DIRECTIONS = re.compile(r"\*[^*\n]{1,80}\*|\([^()\n]{1,80}\)|\[[^\[\]\n]{1,80}\]")
_SPACES = re.compile(r"\s+")
# A speaker label small models put before their lines: "Mika:", "**Mika**:", "Mika (waves):",
# "Assistant:". One to three capitalised words, optional markdown and a parenthesis, a colon.
_LABEL = re.compile(
    r"^\s*[*_]{0,2}(?P<name>[A-Z][\w'.-]{0,24}(?:\s+[A-Z][\w'.-]{0,24}){0,2})[*_]{0,2}"
    r"(?:\s*\([^()\n]{0,40}\))?\s*[*_]{0,2}:[*_]{0,2}\s+"
)
_GENERIC_LABELS = {"assistant", "streamer", "ai", "bot", "answer", "reply", "response", "a", "q",
                   "user", "viewer", "chat"}
# A chat handle as a label ("nora_plays:", "knight42:"): one token with an underscore or a
# digit, any case. Ordinary words ("Note:") have neither.
_HANDLE_LABEL = re.compile(r"^\s*[*_]{0,2}(?=[\w.-]*[_\d])[A-Za-z][\w.-]{1,24}[*_]{0,2}:\s+")
# The prompt's own quoting read back: 'nora_plays says: "..."'.
_SAYS = re.compile(r"^\s*[\w.-]{1,32}(?:\s+[\w.-]{1,32})?\s+says:\s*")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([!?.,;:])")


def _is_emoji_or_symbol(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat in ("So", "Sk", "Cs", "Co") or ch in "\u200d\ufe0f"


def strip_label(text: str, *, names: tuple[str, ...] = ()) -> str:
    """Remove a leading speaker label ("Mika:", "Assistant:") from one piece of a reply.

    A label is stripped when it is one of ``names`` (the persona, the viewer) or a generic
    one; other "Word:" openings ("Note: ...", "Fun fact: ...") stay as they are.
    """
    known = {n.casefold() for n in names if n} | _GENERIC_LABELS
    while True:
        m = _LABEL.match(text)
        if m is not None and m.group("name").casefold() in known:
            text = text[m.end():]
        elif (m := _HANDLE_LABEL.match(text) or _SAYS.match(text)) is not None:
            text = text[m.end():]
        else:
            return text


def speakable(text: str) -> str:
    """Clean LLM output for the voice and the subtitles: no markdown, links or emoji."""
    text = _URL.sub("a link", text)
    text = text.replace("**", "").replace("__", "")  # bold first, so *actions* stand out
    text = _DIRECTIONS.sub(" ", text)
    text = _MARKDOWN.sub("", text)
    text = "".join(ch for ch in text if not _is_emoji_or_symbol(ch))
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", _SPACES.sub(" ", text))
    return text.strip().strip('"').strip()


@dataclass
class SentenceCutter:
    """Feed text deltas with :meth:`push`; collect finished pieces; :meth:`flush` at the end.

    Args:
        first_clause_words: the first piece may end at a clause mark once it has at least
            this many words (0 disables clause cuts).
        max_piece_chars: a piece with no punctuation is cut at a space past this length.
    """

    first_clause_words: int = 4
    max_piece_chars: int = 220
    _buf: str = ""
    _emitted: int = field(default=0)

    def push(self, delta: str) -> list[str]:
        self._buf += delta
        out: list[str] = []
        while True:
            piece = self._cut_once()
            if piece is None:
                return out
            out.append(piece)

    def flush(self) -> str | None:
        rest, self._buf = self._buf.strip(), ""
        if rest:
            self._emitted += 1
            return rest
        return None

    def _take(self, end: int) -> str | None:
        piece, self._buf = self._buf[:end].strip(), self._buf[end:].lstrip()
        if not piece:
            return None
        self._emitted += 1
        return piece

    def _cut_once(self) -> str | None:
        buf = self._buf
        for m in _SENTENCE_END.finditer(buf):
            if m.end(3) == len(buf) and not m.group(3):
                break  # punctuation at the very end: wait, more may follow ("..." or "3.5")
            if m.group(1) == "." and self._abbreviation_before(m.start(1)):
                continue
            piece = self._take(m.end(2))
            if piece is not None:
                return piece
        if self._emitted == 0 and self.first_clause_words:
            for m in _CLAUSE_END.finditer(buf):
                if len(buf[: m.start()].split()) >= self.first_clause_words:
                    piece = self._take(m.end(1))
                    return piece.rstrip(" -–—") if piece else piece
        if len(buf) > self.max_piece_chars:
            cut = buf.rfind(" ", 0, self.max_piece_chars)
            return self._take(cut if cut > 0 else self.max_piece_chars)
        return None

    def _abbreviation_before(self, dot: int) -> bool:
        word = self._buf[:dot].rsplit(None, 1)[-1] if self._buf[:dot].strip() else ""
        word = word.lstrip("(\"'").lower()
        return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


@dataclass
class ReplyBudget:
    """Caps a reply at ``max_pieces`` pieces and ``max_chars`` characters."""

    max_pieces: int
    max_chars: int
    pieces: int = 0
    chars: int = 0

    @property
    def exhausted(self) -> bool:
        return self.pieces >= self.max_pieces or self.chars >= self.max_chars

    def admit(self, piece: str) -> str | None:
        """Return the piece (possibly shortened at a word) or None when the budget is spent."""
        if self.exhausted:
            return None
        room = self.max_chars - self.chars
        if len(piece) > room:
            cut = piece.rfind(" ", 0, room)
            piece = (piece[:cut] if cut > 0 else piece[:room]).rstrip(",;: ") + "."
        self.pieces += 1
        self.chars += len(piece)
        return piece
