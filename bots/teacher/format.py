"""The teacher's reply format, parsed while it streams: the spoken answer apart from the notes
that only go to the transcript.

The prompt (:mod:`bots.teacher.prompt`) asks the model for one item per line::

    [correction] Ich habe Hunger.
    Super! Ich habe auch Hunger. Was isst du gern?
    [gloss] Great! I'm hungry too. What do you like to eat?

Untagged text is the answer. Models are sloppy, so the parser also takes a tag anywhere in a
line (``Super! [gloss] Great!``), a label at the start of a line or after a sentence
(``Korrektur:``, ``**Traduction :**``, ``Gloss:``), a tag on the answer itself
(``[answer]``, ``Antwort:``), and a model that ignores the format entirely (then everything
is the answer). A tag is never spoken: text that could still become a tag is held back
(a few characters) until it is one or cannot be one. A note lasts until the end of its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Channel", "TeacherStream", "split_reply"]

Channel = Literal["answer", "correction", "gloss"]

# Tag words, casefolded, in the languages a teacher is likely to write them in.
_ALIASES: dict[str, Channel] = {
    **dict.fromkeys(
        ("correction", "korrektur", "verbesserung", "corrección", "correccion", "correzione",
         "correção", "correcao", "fix"), "correction"),
    **dict.fromkeys(
        ("gloss", "translation", "übersetzung", "traduction", "traducción", "traduccion",
         "traduzione", "tradução", "traducao", "meaning", "bedeutung", "signification",
         "significado", "english", "englisch", "anglais", "inglés", "ingles", "inglese"),
        "gloss"),
    **dict.fromkeys(
        ("answer", "antwort", "réponse", "reponse", "respuesta", "risposta", "resposta",
         "reply"), "answer"),
}
_LONGEST = max(len(a) for a in _ALIASES)

# "[gloss]" anywhere; the word may still be coming ("[glo"), or its "]" ("[gloss ").
# At a line start markup may come first ("- [correction]", "**[gloss]**").
_BRACKET_FULL = re.compile(r"[\s*_#>\-]*\[\s*(\w+)\s*\]")
_BRACKET_PART = re.compile(r"[\s*_#>\-]*\[\s*(\w*)\s*")
# "Korrektur:", "**Gloss:**", "- Traduction :" at the start of a line or after a sentence.
_LABEL_FULL = re.compile(r"[\s*_#>\-]*(\w+)[*_]*\s?:[*_]*")
_LABEL_PART = re.compile(r"[\s*_#>\-]*(\w*)([*_]*\s?)")
_MARKUP = set(" \t*_#>-")
_LEAD = set(":*_")  # what may follow a tag before its text ("[gloss]:", "**Gloss:**")
_SENTENCE_END = set(".!?…。！？")


def _is_alias_prefix(word: str) -> bool:
    w = word.casefold()
    return len(w) <= _LONGEST and any(a.startswith(w) for a in _ALIASES)


@dataclass
class TeacherStream:
    """Feed the model's text deltas to :meth:`push`; each call returns the answer text it could
    settle (to be cut into sentences and spoken); :meth:`flush` at the end returns the rest.
    Corrections and glosses collect in :attr:`corrections` and :attr:`glosses`.
    """

    corrections: list[str] = field(default_factory=list)
    glosses: list[str] = field(default_factory=list)
    _channel: Channel = "answer"
    _pending: str = ""  # text that may still be a tag, held back
    _pending_kind: Literal["", "bracket", "label"] = ""
    _note: str = ""  # the note being written (correction or gloss)
    _at_start: bool = True  # at a line start or after a sentence: a label may begin here
    _skip_lead: bool = False  # just after a tag: drop the ":" and spaces that follow it
    _last: str = "\n"

    @property
    def correction(self) -> str | None:
        """Every correction of the reply, as one line (None: none)."""
        return " ".join(self.corrections) or None

    @property
    def gloss(self) -> str | None:
        """Every gloss of the reply, as one line (None: none)."""
        return " ".join(self.glosses) or None

    def push(self, delta: str) -> str:
        """Take one streamed delta; return the answer text it settles (maybe ``""``)."""
        out: list[str] = []
        for ch in delta:
            self._feed(ch, out)
        return "".join(out)

    def flush(self) -> str:
        """The stream has ended: release what was held back, close the open note."""
        out: list[str] = []
        if self._pending:
            self._release(out)
        self._end_note()
        return "".join(out)

    # ------------------------------------------------------------------ internals

    def _feed(self, ch: str, out: list[str]) -> None:
        if self._pending:
            self._pending += ch
            self._classify(out)
            return
        if ch == "\n":
            self._newline(out)
            return
        if self._skip_lead and (ch.isspace() or ch in _LEAD):
            return
        if ch == "[":
            self._pending, self._pending_kind = ch, "bracket"
            self._classify(out)
            return
        if self._at_start and (ch in _MARKUP or ch.isalpha()):
            self._pending, self._pending_kind = ch, "label"
            self._classify(out)
            return
        self._emit(ch, out)

    def _classify(self, out: list[str]) -> None:
        """Decide what the held-back text is: a whole tag, maybe a tag, or plain text."""
        p = self._pending
        if self._pending_kind == "label" and p.endswith("[") and not p[:-1].strip(" \t*_#>-"):
            self._pending_kind = "bracket"  # "- [correction]": markup, then a bracket tag
        if self._pending_kind == "bracket":
            full, part = _BRACKET_FULL.fullmatch(p), _BRACKET_PART.fullmatch(p)
        else:
            full, part = _LABEL_FULL.fullmatch(p), _LABEL_PART.fullmatch(p)
        if full is not None and full.group(1).casefold() in _ALIASES:
            self._pending = ""
            self._switch(_ALIASES[full.group(1).casefold()])
            return
        if part is not None and len(p) <= _LONGEST + 12:
            word = part.group(1)
            complete = word.casefold() in _ALIASES
            if not word or _is_alias_prefix(word):
                # A label word is done once a space, "*" or ":" follows; one more is allowed.
                if self._pending_kind == "bracket" or complete or not part.group(2):
                    return  # still a possible tag: keep holding
        self._release(out)

    def _release(self, out: list[str]) -> None:
        """The held-back text is no tag: it is plain text of the current channel."""
        text = self._pending
        self._pending, self._pending_kind = "", ""
        # Its first character could not start a tag here; the rest is fed again, since a
        # tag may begin inside it ("Hallo [gloss] ...", "- [correction] ...").
        first, rest = text[0], text[1:]
        if first == "\n":
            self._newline(out)
        elif not (self._skip_lead and (first.isspace() or first in _LEAD)):
            self._emit(first, out)
        for ch in rest:
            self._feed(ch, out)

    def _switch(self, channel: Channel) -> None:
        self._end_note()
        self._channel = channel
        self._skip_lead = True
        self._at_start = False

    def _newline(self, out: list[str]) -> None:
        if self._channel == "answer":
            out.append("\n")
        self._end_note()
        self._channel = "answer"  # a note lasts one line
        self._at_start = True
        self._skip_lead = False
        self._last = "\n"

    def _emit(self, ch: str, out: list[str]) -> None:
        self._skip_lead = False
        if self._channel == "answer":
            out.append(ch)
        else:
            self._note += ch
        if ch in _SENTENCE_END:
            self._at_start = False
        elif ch.isspace():
            # After a sentence's end a label may start ("Gut gemacht! Gloss: Well done!").
            self._at_start = self._at_start or self._last in _SENTENCE_END
        elif ch not in _MARKUP:
            self._at_start = False
        self._last = ch

    def _end_note(self) -> None:
        note = " ".join(self._note.split()).strip(" *_")
        self._note = ""
        if not note:
            return
        if self._channel == "correction":
            self.corrections.append(note)
        elif self._channel == "gloss":
            self.glosses.append(note)


def split_reply(text: str) -> tuple[str, str | None, str | None]:
    """A whole reply at once: ``(answer, correction, gloss)``."""
    stream = TeacherStream()
    answer = stream.push(text) + stream.flush()
    return answer, stream.correction, stream.gloss
