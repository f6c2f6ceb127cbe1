"""Cutting a streamed reply into speakable pieces, and capping its length, in any language.

The first piece may end at a clause (a comma after a few words) so the persona starts
talking sooner; later pieces end at sentence ends. Per language, abbreviations ("z. B.",
"Mme", "p. ej.") and ordinals ("3. Oktober") do not cut; in every language decimals do not,
nothing is cut inside quotes (« », „ ", 「 」) or inside a Spanish ¿...? / ¡...!, and
Chinese and Japanese sentences end at 。！？ with no space after them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from bots.languages import base_language

__all__ = ["CUT_RULES", "CutRules", "ReplyBudget", "SentenceCutter", "cut_rules", "speakable",
           "strip_label"]

@dataclass(frozen=True, slots=True)
class CutRules:
    """Where one language's sentences end, besides the punctuation every language shares.

    Attributes:
        abbreviations: words (lower case, inner dots kept: ``"z.b"``) whose dot never ends a
            sentence; a single letter ("J. R. Tolkien", "z. B.") never does either.
        may_end: abbreviations that end a sentence when the next word does not go on in lower
            case ("etc. The" cuts, "etc. and" does not).
        before_number: abbreviations of "number", "page"...: no cut when a number follows
            ("No. 5"), a cut otherwise ("I said no. Then...").
        ordinal_dot: a number with a dot is an ordinal ("am 3. Oktober") when a month or a
            lower-case word follows, or an article or preposition comes before it ("das 2.
            Buch"); elsewhere it ends a sentence ("Ich bin 30. Und du?").
        ordinal_after: the articles and prepositions for ``ordinal_dot`` (lower case).
        months: month names (lower case) for ``ordinal_dot``.
        extra_ends: more sentence-end marks (Greek ";" is its question mark).
    """

    abbreviations: frozenset[str]
    may_end: frozenset[str] = frozenset()
    before_number: frozenset[str] = frozenset()
    ordinal_dot: bool = False
    months: frozenset[str] = frozenset()
    ordinal_after: frozenset[str] = frozenset()
    extra_ends: str = ""


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_EN = CutRules(
    abbreviations=_words(
        "mr mrs ms dr prof sr jr st vs e.g i.e approx vol fig inc ltd co mt u.s a.m p.m "
        "dept est jan feb mar apr jun jul aug sep sept oct nov dec"),
    may_end=_words("etc"),
    before_number=_words("no nos nr"),
)
_DE = CutRules(
    abbreviations=_words(
        "z.b d.h u.a o.ä u.ä s.o s.u z.t u.u v.a i.d.r bzw ca dr prof nr str evtl ggf inkl "
        "sog vgl hr fr frl bspw allg abs jh jhd mio mrd tel abk zzgl geb gegr bzgl "
        "dt engl franz eigtl ehem gem lt insb ugs"),
    may_end=_words("usw usf etc"),
    before_number=_words("nr s abs art bd kap"),
    ordinal_dot=True,
    months=_words("januar jänner februar märz april mai juni juli august september oktober "
                  "november dezember jahrhundert jh"),
    ordinal_after=_words("der die das dem den des ein eine einem einer eines am im zum zur "
                         "vom beim ab bis seit vor nach ihr ihre sein seine mein meine dein "
                         "deine unser unsere jeder jede jedes"),
)
_FR = CutRules(
    abbreviations=_words(
        "m mm mme mmes mlle mlles dr pr me st ste cf env ex p.ex av bd vol chap éd c.-à-d "
        "c-à-d j.-c apr mgr réf tél hab qqch qqn"),
    may_end=_words("etc"),
    before_number=_words("n no nº p art"),
)
_ES = CutRules(
    abbreviations=_words(
        "sr sra sres sras srta dr dra d dña ud uds vd vds p.ej ej pág págs núm tel av avda "
        "cía lic ing prof aprox admón dpto ee.uu ee uu gral cap fdo atte"),
    may_end=_words("etc"),
    before_number=_words("n nº núm pág art vol"),
)
_IT = CutRules(
    abbreviations=_words(
        "sig sigg sig.ra sig.na dott dott.ssa prof ing avv es p.es ca arch geom pag cap "
        "dr"),
    may_end=_words("ecc etc"),
    before_number=_words("n nr pag vol art"),
)
_PT = CutRules(
    abbreviations=_words(
        "sr sra srta dr dra prof profa p.ex ex pág av v.exa exa cia ltda dto"),
    may_end=_words("etc"),
    before_number=_words("n nº pág vol art"),
)
_NL = CutRules(
    abbreviations=_words(
        "dhr mevr mw dr prof bijv bv o.a d.w.z i.p.v m.b.t blz ca jl mr ir ing drs z.g.a "
        "e.d"),
    may_end=_words("enz etc"),
    before_number=_words("nr blz"),
)
_EL = CutRules(abbreviations=_EN.abbreviations, extra_ends=";")

#: Languages with rules of their own; any other language is cut with the English rules,
#: which hold for every script whose sentences end in . ! ? (or 。 ! ? ।  ؟ ...).
CUT_RULES: dict[str, CutRules] = {
    "en": _EN, "de": _DE, "fr": _FR, "es": _ES, "it": _IT, "pt": _PT, "nl": _NL, "el": _EL,
}


def cut_rules(language: str) -> CutRules:
    """The rules for ``language`` ("de", "de-AT"); English ones for languages without own."""
    return CUT_RULES.get(base_language(language), _EN)

# Sentence-end marks of every script: Latin, CJK full-width, Devanagari danda, Arabic and Urdu,
# Armenian, Ethiopic, Myanmar, Khmer.
_END_MARKS = ".!?…‼⁇⁈⁉。！？｡।॥؟۔։።။។"
# These end a sentence with no space after them (Chinese and Japanese write none).
_NO_SPACE_ENDS = "。！？｡"
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f]")
_CLAUSE_MARKS = ",;:—–،"
_CJK_CLAUSE_MARKS = "、，；："
# Closing marks that stay with the sentence before them when they follow its end directly.
_CLOSERS = "\"'”’)]}»«“‘」』）】"
_SPACES_INSIDE = " \u00a0\u202f"  # French puts a (narrow) space before » ! ? :
# Quote openers and what closes them. ¿ and ¡ open a question or exclamation that its ? or !
# closes (either, as people mix them). „ closes with “ (German), « with », 「 with 」.
_OPENERS: dict[str, str] = {
    '"': '"', "„": "“”\"", "“": "”\"", "«": "»", "‚": "‘’", "「": "」", "『": "』",
    "¿": "?？!！", "¡": "!！?？",
}
_INVERTED_CLOSERS = (_OPENERS["¿"], _OPENERS["¡"])
# "»Hallo«": German books quote the other way round; » opens only right before a letter.
_REVERSED_OPEN, _REVERSED_CLOSE = "»", "«"
_MARKDOWN = re.compile(r"(\*\*|__|\*|`+|^#+\s*|^\s*[-*]\s+)", re.MULTILINE)
_URL = re.compile(r"https?://\S+|www\.\S+")
# Stage directions small models like to add: "(waves)", "*giggles*", "[laughs]".
_DIRECTIONS = re.compile(r"\*[^*\n]{1,80}\*|\([^()\n]{1,80}\)|\[[^\[\]\n]{1,80}\]")
_SPACES = re.compile(r"\s+")
# A speaker label small models put before their lines: "Mika:", "**Mika**:", "Mika (waves):",
# "Assistant:". One to three capitalised words, optional markdown and a parenthesis, a colon.
# Any script: "Élodie:", "ユイ：" (a full-width colon needs no space after it); only known
# names and generic labels are stripped, so the first letter need not be a capital.
_LABEL = re.compile(
    r"^\s*[*_]{0,2}(?P<name>[^\W\d_][\w'.-]{0,24}(?:\s+[^\W\d_][\w'.-]{0,24}){0,2})"
    r"[*_]{0,2}(?:\s*\([^()\n]{0,40}\))?\s*[*_]{0,2}(?::[*_]{0,2}\s+|：[*_]{0,2}\s*)"
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


_NAME_PART = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")


def strip_label(text: str, *, names: tuple[str, ...] = ()) -> str:
    """Remove a leading speaker label ("Mika:", "Assistant:") from one piece of a reply.

    A label is stripped when it is one of ``names`` (the persona, the viewer), a part of one
    (``LunaLofi`` -> ``Luna``) or a generic one; other "Word:" openings ("Note: ...",
    "Fun fact: ...") stay as they are.
    """
    known = {n.casefold() for n in names if n} | _GENERIC_LABELS
    # A part of a handle is a label too: "Luna:" for LunaLofi, "Star:" for star_gazer99.
    known |= {part.casefold() for n in names if n for part in _NAME_PART.findall(n)
              if len(part) >= 3}
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
class _Scan:
    """What one pass over the buffer found."""

    cut: int | None = None  # end of the first finished sentence
    stop: int | None = None  # a sentence may end here but the next characters decide: wait
    clauses: list[int] = field(default_factory=list)  # clause ends outside quotes
    quoted: list[int] = field(default_factory=list)  # sentence ends inside quotes


@dataclass
class SentenceCutter:
    """Feed text deltas with :meth:`push`; collect finished pieces; :meth:`flush` at the end.

    Args:
        first_clause_words: the first piece may end at a clause mark once it has at least
            this many words (0 disables clause cuts). Chinese and Japanese count two
            characters as a word.
        max_piece_chars: a piece with no sentence end is cut past this length: at the last
            sentence end inside quotes, else at the last space or 、.
        first_piece_chars: the same for the first piece, which nothing is said before: a
            long first sentence with no clause mark is cut at its last space before this
            length (0: only ``max_piece_chars``), so voicing starts without waiting for the
            model to finish it.
        language: the reply's language (``"de"``, ``"fr-CA"``): its abbreviations and
            ordinals (:data:`CUT_RULES`); English rules for languages without their own.
    """

    first_clause_words: int = 4
    max_piece_chars: int = 220
    first_piece_chars: int = 100
    language: str = "en"
    _buf: str = ""
    _emitted: int = field(default=0)
    _rules: CutRules = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rules = cut_rules(self.language)

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
        scan = self._scan(buf)
        if scan.cut is not None:
            return self._take(scan.cut)
        if self._emitted == 0 and self.first_clause_words:
            for end in scan.clauses:
                if _word_count(buf[:end]) - (buf[end - 1] == "-") >= self.first_clause_words:
                    piece = self._take(end)
                    return piece.rstrip(" -–—") if piece else piece
        limit = self.max_piece_chars
        if self._emitted == 0 and self.first_piece_chars:
            limit = min(limit, self.first_piece_chars)
        if len(buf) > limit:
            quoted = [q for q in scan.quoted if q <= limit]
            if quoted:
                return self._take(quoted[-1])
            cut = max(buf.rfind(" ", 0, limit), *(buf.rfind(m, 0, limit - 1) + 1
                                                   for m in _CJK_CLAUSE_MARKS))
            return self._take(cut if cut > 0 else limit)
        return None

    def _scan(self, buf: str) -> _Scan:
        """One pass over ``buf`` tracking open quotes: the first sentence end, where to wait,
        and the clause ends before it."""
        scan = _Scan()
        ends = _END_MARKS + self._rules.extra_ends
        stack: list[str] = []  # closers of the open quotes, innermost last
        n = len(buf)
        i = 0
        while i < n:
            c = buf[i]
            if c in ends:
                j = i
                while j < n and buf[j] in ends:
                    if stack and stack[-1] in _INVERTED_CLOSERS and buf[j] in stack[-1]:
                        stack.pop()  # the ? of a ¿...? (or the ! of a ¡...!)
                    j += 1
                k, closed = _closers(buf, j, stack)
                if k == n:
                    scan.stop = i  # "..." or "3.5" or a closing quote may follow
                    return scan
                run, nxt = buf[i:j], buf[k]
                no_space = any(ch in _NO_SPACE_ENDS for ch in run) or (
                    run[-1] in "!?" and _CJK.match(nxt) is not None)
                if nxt.isspace() or no_space:
                    if stack:
                        scan.quoted.append(k)
                    else:
                        decision = self._sentence_ends(buf, i, run, k, closed, no_space)
                        if decision is None:
                            scan.stop = i
                            return scan
                        if decision and any(ch.isalnum() for ch in buf[:k]):
                            scan.cut = k
                            return scan
                i = k
                continue
            if c in _CLAUSE_MARKS or (c == "-" and 0 < i and buf[i - 1].isspace()):
                if not stack and i + 1 < n and buf[i + 1].isspace():
                    scan.clauses.append(i + 1)
            elif c in _CJK_CLAUSE_MARKS and not stack:
                scan.clauses.append(i + 1)
            _track_quote(buf, i, stack)
            i += 1
        return scan

    def _sentence_ends(
        self, buf: str, dot: int, run: str, after: int, closed: bool, no_space: bool
    ) -> bool | None:
        """Whether the end mark(s) ``run`` at ``dot`` end a sentence; None: the next word
        decides and has not arrived yet."""
        if no_space:
            # 「本当に？」と聞いた: after a closed quote the sentence goes on, unless a space or
            # another quote follows.
            return not closed or buf[after].isspace() or buf[after] in _OPENERS
        start = after
        while start < len(buf) and buf[start].isspace():
            start += 1
        nxt = buf[start] if start < len(buf) else None
        if run == "." and after == dot + 1:
            word = buf[:dot].rsplit(None, 1)[-1] if buf[:dot].strip() else ""
            word = word.lstrip("([{\"'«»„‚“‘¿¡「『").lower()
            rules = self._rules
            if word in rules.abbreviations or (len(word) == 1 and word.isalpha()):
                return False
            if word in rules.before_number:
                return None if nxt is None else not nxt.isdigit()
            if word in rules.may_end:
                return None if nxt is None else not (nxt.islower() or nxt.isdigit())
            if rules.ordinal_dot and word.isdigit():
                before = buf[:dot].rsplit(None, 2)
                if len(before) >= 2 and before[-2].lower() in rules.ordinal_after:
                    return False
                if nxt is None:
                    return None
                if nxt.islower():
                    return False
                m = _WORD.match(buf, start)
                if m is None or m.end() == len(buf):
                    return None  # the word is still arriving
                return m.group(0).lower() not in rules.months
        if closed:  # '"Go!" then we left': the sentence goes on after its quote
            return None if nxt is None else not nxt.islower()
        return True


_WORD = re.compile(r"\w+")


def _closers(buf: str, j: int, stack: list[str]) -> tuple[int, bool]:
    """Skip the closing marks right after a sentence end at ``j`` (a quote it closes may
    follow a space, as in French "! »"); return where they end and whether a quote closed."""
    closed = False
    n = len(buf)
    while j < n:
        c = buf[j]
        if stack and c in stack[-1] and c not in "?？!！":
            stack.pop()
            closed, j = True, j + 1
        elif c in _CLOSERS:
            j += 1  # a closer with nothing open: keep it with its sentence
        elif (c in _SPACES_INSIDE and j + 1 < n and stack and buf[j + 1] in stack[-1]
              and buf[j + 1] not in "?？!！"):
            j += 1
        else:
            break
    return j, closed


def _track_quote(buf: str, i: int, stack: list[str]) -> None:
    """Update the open quotes for the character at ``i`` (outside sentence ends)."""
    c = buf[i]
    if stack and c in stack[-1] and c not in "?？!！":
        stack.pop()
    elif c == _REVERSED_OPEN:
        nxt = buf[i + 1] if i + 1 < len(buf) else ""
        if nxt.isalpha() and (i == 0 or not buf[i - 1].isalnum()):
            stack.append(_REVERSED_CLOSE)
    elif c in _OPENERS:
        stack.append(_OPENERS[c])


def _word_count(text: str) -> int:
    spaced = len(text.split())
    cjk = len(_CJK.findall(text))
    return max(spaced, cjk // 2)


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
            cut = max(piece.rfind(" ", 0, room), piece.rfind("、", 0, room - 1) + 1)
            piece = (piece[:cut] if cut > 0 else piece[:room]).rstrip(",;:、， ")
            piece += "。" if _CJK.search(piece[-1:]) else "."
        self.pieces += 1
        self.chars += len(piece)
        return piece
