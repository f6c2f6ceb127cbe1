"""Moderation settings of one persona (the ``moderation:`` section of its file), and the
matchers compiled from them once at load.

The defaults suit a family-friendly stream: common profanity is blocked, links are refused
except from moderators and VIPs, caps, symbol and repetition spam are refused, and the
persona never says a link, an e-mail address or a phone number. See ``docs/moderation.md``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bots.events import Role

__all__ = [
    "DEFAULT_BLOCKED_WORDS",
    "DEFAULT_INJECTION_PATTERNS",
    "DEFAULT_INSULTS",
    "InjectionSettings",
    "DEFAULT_PERSONAL_INFO",
    "BlocklistSettings",
    "CompiledModeration",
    "LinkSettings",
    "ModerationSettings",
    "OutputSettings",
    "SpamSettings",
    "fold",
]

# Whole words, matched case-insensitively and through simple disguises (l33t, "b.a.d",
# "baaad"). A trailing ``*`` also matches longer words ("fuck*" -> "fucking"); a leading one
# also matches inside words ("*fuck*" -> "motherfucker"). Kept to words with no innocent
# reading; add your community's slurs and terms, in every language you stream in, per persona.
DEFAULT_BLOCKED_WORDS: tuple[str, ...] = (
    "*fuck*",
    "shit", "shits", "shitty", "shite", "shithead", "shitting", "bullshit",
    "bitch*",
    "cunt*",
    "ass", "asses", "asshole*", "arsehole*", "dickhead*",
    "bastard*",
    "twat*",
    "wank*",
    "whore*",
    "slut*",
    "porn*",
    "dildo*",
    "jizz",
    "nudes",
    "retard", "retards", "retarded",
    "kys", "kill yourself", "kill urself",
)

# Words the persona itself never says to anyone, even when a viewer may type them ("is this
# game stupid?" is a fine question; the persona calling chat stupid is not).
DEFAULT_INSULTS: tuple[str, ...] = (
    "idiot*", "stupid*", "moron*", "loser*", "imbecile*", "dumbass*", "cretin*", "scum*",
    "pathetic", "worthless", "shut up", "hate you", "hate all of you", "you suck", "ugly",
)

# Viewer lines that try to give the persona instructions instead of talking to it
# (case-insensitive regexes). Viewer text is never obeyed anyway (it is quoted as speech in
# the prompt); refusing these keeps them out of every context and out of the show.
DEFAULT_INJECTION_PATTERNS: tuple[str, ...] = (
    r"\b(?:ignore|disregard|forget|override|bypass)\b.{0,40}\b(?:instructions?|rules|"
    r"prompts?|guidelines|programming|directives?|filters?)\b",
    r"\b(?:system|developer|initial|hidden|original)\s+(?:prompt|message|instructions?)\b",
    r"\b(?:you\s+are\s+now|from\s+now\s+on,?\s+(?:you|act|be|respond|answer|only|always)"
    r"|pretend\s+(?:to\s+be|you(?:'re|\s+are))|act\s+as\s+(?:if|an?|my)|roleplay\s+as)\b",
    r"\b(?:repeat\s+after\s+me|say\s+(?:exactly|verbatim|this\s+word\s+for\s+word)|"
    r"repeat\s+(?:this|the\s+following|exactly|verbatim)|say\s+the\s+following)\b",
    r"\b(?:new|updated|real)\s+instructions?\b|\bjail\s*break|\bDAN\s+mode\b",
    r"(?:^|\s)(?:system|assistant)\s*:",
)

# What the persona must never say out loud: name -> regex (case-insensitive).
DEFAULT_PERSONAL_INFO: dict[str, str] = {
    "email": r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}",
    "card_number": r"(?<![\w-])\d{4}(?:[ -]?\d{4}){2}[ -]?\d{1,7}(?![\w-])",
    "id_number": r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])",
    "ip_address": r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])",
    "phone": (
        r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])\d{3,4}[\s.-]?\d{3,4}"
        r"(?![\w-])|(?<![\w.,+])\+?\d{10,13}(?![\w.,])"
    ),
}

# Top-level domains that appear in chat links. A closed list keeps "e.g.", "i.e." and
# "lol.jk" from counting as links.
_TLDS = (
    "com net org io gg tv ly xyz info biz app dev live link site online shop store club top "
    "stream chat social lol ru uk de fr jp cn us ca au nl co me cc ws su tk ml ai gl sh to be"
).split()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_patterns(patterns: tuple[str, ...]) -> tuple[str, ...]:
    for pattern in patterns:
        try:
            compiled = re.compile(pattern, re.IGNORECASE)
        except re.error as e:
            raise ValueError(f"invalid regex {pattern!r}: {e}") from None
        if compiled.search(""):
            raise ValueError(f"regex {pattern!r} matches empty text, so it would block everything")
    return patterns


def _check_words(words: tuple[str, ...]) -> tuple[str, ...]:
    out = []
    for word in words:
        word = " ".join(word.split())
        if not any(ch.isalnum() for ch in word):
            raise ValueError(f"blocked word {word!r} has no letters or digits in it")
        if len(word) > 64:
            raise ValueError(f"blocked word {word[:20]!r}... is longer than 64 characters")
        out.append(word)
    return tuple(out)


class BlocklistSettings(_Model):
    """Words and regexes a viewer's message must not contain. Mods never bypass these."""

    defaults: bool = Field(True, description="also block DEFAULT_BLOCKED_WORDS")
    words: tuple[str, ...] = Field(
        (), description="whole words or phrases; 'word*' also matches longer words"
    )
    patterns: tuple[str, ...] = Field((), description="regexes, case-insensitive")

    @field_validator("words")
    @classmethod
    def _words(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_words(v)

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_patterns(v)


class LinkSettings(_Model):
    """Who may post links. ``policy``: ``allow`` (anyone), ``block`` (nobody but exempt mods),
    ``roles`` (only viewers holding one of ``roles``, and exempt mods)."""

    policy: Literal["allow", "block", "roles"] = "roles"
    roles: frozenset[Role] = frozenset({Role.VIP})
    mods_exempt: bool = Field(True, description="moderators and the broadcaster may post links")
    allowed_domains: tuple[str, ...] = Field(
        (), description="always fine, with their subdomains, e.g. twitch.tv"
    )
    spelled_out: bool = Field(True, description="also catch 'example dot com', 'example[.]com'")

    @field_validator("allowed_domains")
    @classmethod
    def _domains(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(d.strip().lower().removeprefix("www.").strip(".") for d in v if d.strip())


class SpamSettings(_Model):
    """Heuristics against caps, symbol and repetition spam."""

    enabled: bool = True
    mods_exempt: bool = Field(True, description="moderators and the broadcaster are not checked")
    caps_min_letters: int = Field(12, ge=1, description="shorter messages are not checked")
    caps_max_ratio: float = Field(0.7, gt=0, le=1, description="capitals / cased letters")
    symbols_min_chars: int = Field(10, ge=1, description="shorter messages are not checked")
    symbols_max_ratio: float = Field(
        0.5, gt=0, le=1, description="symbols / non-space characters; emoji are not symbols"
    )
    max_char_run: int = Field(10, ge=2, description="the same character more often in a row")
    max_repeats: int = Field(
        3, ge=1, description="a word or fragment repeated more often in a row, e.g. 'lolololol'"
    )
    repeat_min_share: float = Field(
        0.5, gt=0, le=1, description="a repeated run counts when it is this share of the message"
    )


class InjectionSettings(_Model):
    """Refuse viewer lines that try to instruct the persona ("ignore your instructions")."""

    enabled: bool = True
    patterns: tuple[str, ...] = Field(
        DEFAULT_INJECTION_PATTERNS, description="case-insensitive regexes; extend per persona"
    )
    broadcaster_exempt: bool = Field(
        True, description="the broadcaster may set scenes up ('pretend to be a pirate')"
    )

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_patterns(v)


class OutputSettings(_Model):
    """What the persona may say: each sentence is checked before it is voiced."""

    inherit_blocklist: bool = Field(True, description="the input blocklist applies too")
    words: tuple[str, ...] = Field((), description="blocked in replies only")
    insults: tuple[str, ...] = Field(
        DEFAULT_INSULTS, description="insults the persona never says (() to turn off)"
    )
    block_domains: bool = Field(
        True, description="with block_links: also anything shaped like a domain, any TLD"
    )
    block_instructions: bool = Field(
        True, description="never recite its own instructions (6+ words in a row)"
    )
    block_quotes: bool = Field(
        True,
        description="never quote a refused viewer message, nor read the viewer's own line "
        "back word for word",
    )
    patterns: tuple[str, ...] = Field((), description="regexes blocked in replies only")
    block_links: bool = Field(True, description="never say a link (allowed_domains excepted)")
    max_chars: int = Field(500, ge=20, le=10_000, description="longest sentence voiced")
    personal_info: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_PERSONAL_INFO),
        description="name -> regex of things never to say; {} to turn off",
    )
    block_viewer_names: bool = Field(
        True, description="never say a viewer's name that contains a blocked word"
    )

    @field_validator("words", "insults")
    @classmethod
    def _words(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_words(v)

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_patterns(v)

    @field_validator("personal_info")
    @classmethod
    def _personal(cls, v: dict[str, str]) -> dict[str, str]:
        _check_patterns(tuple(v.values()))
        return v


class ModerationSettings(_Model):
    """Moderation of one persona: the ``moderation:`` section of its file."""

    max_chars: int = Field(300, ge=1, le=10_000, description="longest viewer message accepted")
    banned_users: tuple[str, ...] = Field(
        (), description="ids or names (case-insensitive), or 'platform:id'"
    )
    mod_only: bool = Field(False, description="only moderators and the broadcaster are answered")
    mod_only_allow_vips: bool = Field(False, description="in mod-only mode, VIPs are answered too")
    blocklist: BlocklistSettings = BlocklistSettings()
    links: LinkSettings = LinkSettings()
    spam: SpamSettings = SpamSettings()
    injection: InjectionSettings = InjectionSettings()
    output: OutputSettings = OutputSettings()
    audit_allow_every: int = Field(
        1, ge=0, description="write 1 in N input allows (0: none); rejections are all written"
    )

    def model_post_init(self, context: object, /) -> None:
        self.compiled  # noqa: B018 - compile now, so a problem shows at load

    def model_copy(self, *, update=None, deep: bool = False) -> ModerationSettings:
        copy = super().model_copy(update=update, deep=deep)
        copy.__dict__.pop("compiled", None)  # recompiled from the updated fields
        return copy

    @cached_property
    def compiled(self) -> CompiledModeration:
        """The matchers built from these settings, compiled once (a plain attribute read)."""
        return _compile(self)


# --------------------------------------------------------------------------- compiled form


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
    """Everything the rules need, compiled once from :class:`ModerationSettings`."""

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
            cls, n = _QUANTIFIED.fullmatch(key).groups()
            rest = "*" if n is None else f"{{{int(n) - 1},}}"
            alts.append(f"{cls}(?<!{cls}.){cls}{rest}" + _emit(child))
        else:
            alts.append(key + _emit(child))
    return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"


_QUANTIFIED = re.compile(r"(.+?)(?:\+|\{(\d+),\})")


def _word_matcher(entries: tuple[str, ...], *, boundaries: bool = True) -> WordMatcher | None:
    entries = tuple(dict.fromkeys(entries))
    if not entries:
        return None
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


def _compile(settings: ModerationSettings) -> CompiledModeration:
    block = settings.blocklist
    words = (*(DEFAULT_BLOCKED_WORDS if block.defaults else ()), *block.words)
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
        insults=_word_matcher(out.insults),
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
    low = unicodedata.normalize("NFKD", low)
    return _INVISIBLE_AND_MARKS.sub("", low).translate(_CONFUSABLES).lower()
