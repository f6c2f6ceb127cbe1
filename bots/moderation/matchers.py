"""The matchers compiled from a persona's validated :class:`ModerationSettings`: one
trie-shaped regex per word list, the link and spam regexes, and :func:`fold`, which undoes
text disguises before matching. The ``Moderator`` builds them once with
:func:`compile_moderation` and again on every (validated) live change of settings.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from bots.moderation.languages import lists_for
from bots.moderation.settings import DEFAULT_BLOCKED_WORDS, ModerationSettings

__all__ = ["CompiledModeration", "WordMatcher", "compile_moderation", "fold", "fold_pattern"]

# Top-level domains that appear in chat links. A closed list keeps "e.g.", "i.e." and
# "lol.jk" from counting as links.
_TLDS = (
    "com net org io gg tv ly xyz info biz app dev live link site online shop store club top "
    "stream chat social lol ru uk de fr jp cn us ca au nl co me cc ws su tk ml ai gl sh to be"
).split()


@dataclass(frozen=True, slots=True)
class WordMatcher:
    """Blocklist entries as one trie-shaped regex over folded text (see :func:`fold`), plus
    one regex per entry to name the entry that matched."""

    combined: re.Pattern[str]
    entries: tuple[tuple[str, re.Pattern[str]], ...]

    def find(self, folded: str) -> str | None:
        """Return the blocklist entry found in ``folded`` text, or None."""
        m = self.combined.search(folded)
        if m is not None:
            return self._name(m.group(0))
        # Spelled out letter by letter ("b.a.d", "s h i t"): join the letters, look again.
        if len(folded) >= 5:
            for run in _SPACED_RUN.finditer(folded):
                joined = _SPACED_SEP.sub("", run.group(0))
                m = self.combined.search(joined)
                if m is not None:
                    return self._name(m.group(0))
        return None

    def _name(self, hit: str) -> str:
        for entry, pattern in self.entries:
            if pattern.search(hit):
                return entry
        return hit  # not reached: the combined regex is the union of the entries

@dataclass(frozen=True, slots=True)
class CompiledModeration:
    """Everything the rules need, compiled once from :class:`ModerationSettings`, with the
    settings they were compiled from."""

    settings: ModerationSettings
    banned: frozenset[str]
    words: WordMatcher | None
    patterns: tuple[tuple[str, re.Pattern[str]], ...]
    links: re.Pattern[str]
    link_hint: re.Pattern[str]  # cheap necessary condition for ``links``
    char_run: re.Pattern[str]
    repeat: re.Pattern[str]
    out_words: WordMatcher | None
    out_patterns: tuple[tuple[str, re.Pattern[str]], ...]
    personal_info: tuple[tuple[str, re.Pattern[str]], ...]
    name_words: WordMatcher | None  # blocked words inside viewer names (no word boundaries)
    injection: tuple[tuple[str, re.Pattern[str]], ...] = ()
    insults: WordMatcher | None = None
    # The built-in injection phrases of the persona's languages, matched on folded text.
    injection_folded: tuple[tuple[str, re.Pattern[str]], ...] = ()
    domain: re.Pattern[str] | None = None  # any domain-shaped token, on unfolded text


# Characters a letter is commonly disguised as. ``*`` stands in for any vowel ("f*ck").
_LOOKALIKES = {
    "a": "a4@*", "b": "b8", "e": "e3*", "g": "g9", "i": "i1!|*", "l": "l1|", "o": "o0*",
    "s": "s5$", "t": "t7+", "u": "uv*",
}
_WORD_START = r"(?<![^\W_])"
_WORD_END = r"(?![^\W_])"
_END, _END_AT_BOUNDARY = "", "\x00"  # trie keys marking where an entry ends
# A run of at least three single letters (or look-alikes) with separators between them.
_LETTERISH = r"(?:[^\W_]|[@$!|*+])"
_SPACED_SEP = re.compile(r"(?:[^\w@$!|*+]|_)")
_SPACED_RUN = re.compile(
    rf"(?<![^\W_]){_LETTERISH}(?:(?:[^\w@$!|*+]|_){{1,3}}{_LETTERISH}){{2,}}(?![^\W_])"
)


def _letter(ch: str) -> str:
    alts = _LOOKALIKES.get(ch)
    if alts is None:
        return re.escape(ch)
    return "[" + "".join(re.escape(c) for c in alts) + "]"


def _atoms(entry: str) -> tuple[list[str], bool, bool]:
    """Regex atoms of one entry (each letter may repeat: "fuuuck"; the words of a phrase may
    run together: "killyourself"), and whether it starts and ends at a word boundary."""
    body = fold(entry)
    anywhere_before, anywhere_after = body.startswith("*"), body.endswith("*")
    atoms: list[str] = []
    for i, token in enumerate(re.findall(r"[^\W_]+", body)):
        if i:
            atoms.append(r"[\W_]*")
        for m in re.finditer(r"(.)\1*", token):
            n = len(m.group(0))
            atoms.append(_letter(m.group(1)) + ("+" if n == 1 else f"{{{n},}}"))
    return atoms, not anywhere_before, not anywhere_after


def _emit(node: dict, *, top: bool = False) -> str:
    if _END in node:
        return ""  # an entry is complete here; longer ones need not be tried
    alts = []
    for key, child in node.items():
        if key == _END_AT_BOUNDARY:
            alts.append(_WORD_END)
        elif top:
            # Start only where a run of the first letter starts: in "a@a@a@..." every position
            # would otherwise be tried, each scanning the rest of the run (quadratic). The
            # check follows the first letter so the engine's quick first-letter test stays.
            quantified = _QUANTIFIED.fullmatch(key)
            assert quantified is not None, key  # every first letter is a quantified class
            cls, n = quantified.groups()
            rest = "*" if n is None else f"{{{int(n) - 1},}}"
            alts.append(f"{cls}(?<!{cls}.){cls}{rest}" + _emit(child))
        else:
            alts.append(key + _emit(child))
    return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"


_QUANTIFIED = re.compile(r"(.+?)(?:\+|\{(\d+),\})")


# Scripts written without spaces between words: their entries match inside text. A katakana
# word is a run of katakana (with its voicing marks after folding), so a katakana entry only
# matches a whole run: バカ is not inside バカンス.
_NO_SPACES = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KATAKANA = "\u30a0-\u30ff\u3099\u309a"


def _unspaced_source(entry: str) -> str:
    body = fold(entry).replace(" ", "")
    source = "".join(re.escape(ch) + "+" for ch in body)
    if re.match(f"[{_KATAKANA}]", body):
        source = f"(?<![{_KATAKANA}])" + source
    if re.search(f"[{_KATAKANA}]$", body):
        source += f"(?![{_KATAKANA}])"
    return source


def _word_matcher(entries: tuple[str, ...], *, boundaries: bool = True) -> WordMatcher | None:
    entries = tuple(dict.fromkeys(entries))
    if not entries:
        return None
    unspaced = tuple(e for e in entries if _NO_SPACES.search(fold(e)))
    entries = tuple(e for e in entries if e not in unspaced)
    # One trie per kind of start, so at each position the regex engine tries each distinct
    # first letter once instead of every entry; entries starting at a word boundary share one
    # look-behind, so inside words nothing is tried at all.
    at_start: dict = {}
    anywhere: dict = {}
    named = []
    for entry in entries:
        atoms, start, end = _atoms(entry)
        start, end = start and boundaries, end and boundaries
        node = at_start if start else anywhere
        for atom in atoms:
            node = node.setdefault(atom, {})
        node[_END_AT_BOUNDARY if end else _END] = {}
        source = "".join(atoms)
        source = (_WORD_START if start else "") + source + (_WORD_END if end else "")
        named.append((entry, re.compile(source)))
    parts = []
    if at_start:
        parts.append(_WORD_START + _emit(at_start, top=True))
    if anywhere:
        parts.append(_emit(anywhere, top=True))
    for entry in unspaced:
        source = _unspaced_source(entry)
        parts.append(source)
        named.append((entry, re.compile(source)))
    return WordMatcher(combined=re.compile("|".join(parts)), entries=tuple(named))


_TLD_ALTS = "|".join(sorted(_TLDS, key=len, reverse=True))
# Every link form holds "://", or "." or "dot" before a TLD; starting each branch with a
# literal lets the regex engine skip straight to those characters.
_LINK_HINT = re.compile(
    rf"\.\s*[)\]}}>]?\s*(?:{_TLD_ALTS})(?![\w-])|://|dot\s*[)\]}}>]?\s*(?:{_TLD_ALTS})(?![\w-])"
)


def _link_regex(spelled_out: bool) -> re.Pattern[str]:
    tlds = _TLD_ALTS
    forms = [
        r"(?<![\w-])(?:https?|ftp)://\S+",
        r"(?<![\w.-])www\.[^\s.]\S*",
        rf"(?<![\w.-])(?:[a-z0-9][a-z0-9-]*\.)+(?:{tlds})(?![\w-])(?:[/:?#]\S*)?",
    ]
    if spelled_out:
        dot = r"(?:\s*[(\[{<]\s*(?:dot|\.)\s*[)\]}>]\s*|\s+dot\s+)"
        forms.append(
            rf"(?<![\w-])(?!(?:the|a|an|one|that|this|polka)\b)[a-z0-9][a-z0-9-]*{dot}"
            rf"(?:{tlds})(?![\w-])"
        )
    return re.compile("|".join(forms))


def compile_moderation(settings: ModerationSettings) -> CompiledModeration:
    """Build the matchers of ``settings``; they must be validated (a model, not a copy made
    with ``model_copy(update=...)``, which skips validation)."""
    block = settings.blocklist
    lang = lists_for(settings.languages)
    words = (*(DEFAULT_BLOCKED_WORDS + lang.blocked if block.defaults else ()), *block.words)
    patterns = tuple((p, re.compile(p, re.IGNORECASE)) for p in block.patterns)
    out = settings.output
    out_words = (*(words if out.inherit_blocklist else ()), *out.words)
    out_patterns = (
        *(patterns if out.inherit_blocklist else ()),
        *((p, re.compile(p, re.IGNORECASE)) for p in out.patterns),
    )
    # Inside names, only words of 4+ letters: "ass" would flag "Cassandra" and "classic".
    name_words = tuple(w for w in out_words if sum(c.isalnum() for c in w) >= 4)
    spam = settings.spam
    return CompiledModeration(
        settings=settings,
        banned=frozenset(u.strip().casefold() for u in settings.banned_users if u.strip()),
        words=_word_matcher(words),
        patterns=patterns,
        links=_link_regex(settings.links.spelled_out),
        link_hint=_LINK_HINT,
        char_run=re.compile(rf"(.)\1{{{spam.max_char_run},}}"),
        repeat=re.compile(rf"(\S.{{1,11}}?)(?:\W*\1){{{spam.max_repeats},}}"),
        out_words=_word_matcher(out_words),
        out_patterns=out_patterns,
        personal_info=tuple(
            (name, re.compile(p, re.IGNORECASE)) for name, p in out.personal_info.items()
        ),
        name_words=_word_matcher(name_words, boundaries=False),
        injection=tuple(
            (p, re.compile(p, re.IGNORECASE)) for p in settings.injection.patterns
        ) if settings.injection.enabled else (),
        insults=_word_matcher((*out.insults, *lang.insults) if out.insults else ()),
        injection_folded=tuple(
            (p, re.compile(fold_pattern(p), re.IGNORECASE)) for p in lang.injection
        ) if settings.injection.enabled else (),
        domain=_ANY_DOMAIN if out.block_domains else None,
    )


# Labels then a lower-case TLD of 2-24 letters ("free-gifts.zz", "Evil.example"), with an
# optional path. Case-sensitive on the TLD so a missing space between sentences ("fun.Let's")
# is not a domain; "e.g." and "3.5" have no 2-letter label + TLD shape.
_ANY_DOMAIN = re.compile(
    r"(?<![\w@.-])(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[a-z]{2,24}(?![\w-])"
    r"|\b\w{2,}\s*[\[(]\s*(?:\.|dot)\s*[\])]\s*[a-z]{2,24}\b"
)


# --------------------------------------------------------------------------- folding

_INVISIBLE_AND_MARKS = re.compile(
    "[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
    "\u00ad\u200b-\u200f\u2060\ufeff\ufe00-\ufe0f]"
)
# Letters NFKD does not take apart, spelled as people type them without the key.
_LIGATURES = str.maketrans({"ß": "ss", "ẞ": "ss", "œ": "oe", "æ": "ae", "ø": "o", "ł": "l",
                            "đ": "d", "ı": "i", "þ": "th"})
# Cyrillic and Greek letters that look like Latin ones.
_CONFUSABLES = str.maketrans(
    "аеорсхуіјѕԁһкмтвнαεικνορτυχ",
    "aeopcxyijsdhkmtbhaeikvoptux",
)


def fold(text: str) -> str:
    """Lower-case ``text`` and undo disguises that do not change how it reads: accents,
    full-width and styled letters, invisible characters and Cyrillic look-alikes.

    Only for matching; what is shown or spoken is never folded.
    """
    low = text.lower()
    if low.isascii():
        return low
    low = unicodedata.normalize("NFKD", low.translate(_LIGATURES))
    return _INVISIBLE_AND_MARKS.sub("", low).translate(_CONFUSABLES).lower()


def fold_pattern(source: str) -> str:
    """A regex written for folded text, folded the same way where :func:`fold` would change
    its letters (katakana voicing marks, ligatures); its escapes (``\\S``) stay as written, so
    compile it case-insensitively."""
    if source.isascii():
        return source
    return _INVISIBLE_AND_MARKS.sub("", unicodedata.normalize("NFKD", source.translate(_LIGATURES)))
