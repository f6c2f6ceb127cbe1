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
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from bots.events import Role

__all__ = [
    "DEFAULT_BLOCKED_WORDS",
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

# What the persona must never say out loud: name -> regex (case-insensitive).
DEFAULT_PERSONAL_INFO: dict[str, str] = {
    "email": r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}",
    "phone": (
        r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])\d{3,4}[\s.-]?\d{3,4}"
        r"(?![\w-])|(?<![\w.,+])\+?\d{10,13}(?![\w.,])"
    ),
    "ip_address": r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])",
    "card_number": r"(?<![\w-])\d{4}(?:[ -]?\d{4}){2}[ -]?\d{1,7}(?![\w-])",
    "id_number": r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])",
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
        0.5, gt=0, le=1, description="...when that run is at least this share of the message"
    )


class OutputSettings(_Model):
    """What the persona may say: each sentence is checked before it is voiced."""

    inherit_blocklist: bool = Field(True, description="the input blocklist applies too")
    words: tuple[str, ...] = Field((), description="blocked in replies only")
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

    @field_validator("words")
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
    output: OutputSettings = OutputSettings()
    audit_log: Path | None = Field(None, description="JSONL file of every decision; None: off")
    audit_allow_every: int = Field(
        1, ge=0, description="write 1 in N input allows (0: none); rejections are all written"
    )

    _compiled: CompiledModeration | None = PrivateAttr(None)

    def model_post_init(self, context: object, /) -> None:
        self._compiled = _compile(self)

    def model_copy(self, *, update=None, deep: bool = False) -> ModerationSettings:
        copy = super().model_copy(update=update, deep=deep)
        copy._compiled = _compile(copy)
        return copy

    @property
    def compiled(self) -> CompiledModeration:
        """The matchers built from these settings (compiled once)."""
        compiled = self._compiled
        if compiled is None:  # e.g. built with model_construct()
            compiled = self._compiled = _compile(self)
        return compiled


# --------------------------------------------------------------------------- compiled form


@dataclass(frozen=True, slots=True)
class WordMatcher:
    """One combined regex over folded text, plus the entries to name the one that matched."""

    combined: re.Pattern[str]
    entries: tuple[tuple[str, re.Pattern[str]], ...]

    def find(self, folded: str) -> str | None:
        """Return the blocklist entry found in ``folded`` (see :func:`fold`), or None."""
        m = self.combined.search(folded)
        if m is None:
            return None
        hit = m.group(0)
        for entry, pattern in self.entries:
            if pattern.search(hit):
                return entry
        return hit  # unreachable in practice: some entry matched


@dataclass(frozen=True, slots=True)
class CompiledModeration:
    """Everything the rules need, compiled once from :class:`ModerationSettings`."""

    banned: frozenset[str]
    words: WordMatcher | None
    patterns: tuple[tuple[str, re.Pattern[str]], ...]
    links: re.Pattern[str]
    char_run: re.Pattern[str]
    repeat: re.Pattern[str]
    out_words: WordMatcher | None
    out_patterns: tuple[tuple[str, re.Pattern[str]], ...]
    personal_info: tuple[tuple[str, re.Pattern[str]], ...]
    name_words: WordMatcher | None  # blocked words inside viewer names (no word boundaries)


# Characters a letter is commonly disguised as. ``*`` stands in for any vowel ("f*ck").
_LOOKALIKES = {
    "a": "a4@*", "b": "b8", "e": "e3*", "g": "g9", "i": "i1!|*", "l": "l1|", "o": "o0*",
    "s": "s5$", "t": "t7+", "u": "uv*",
}
_SEP = r"[\W_]{1,3}"
_WORD_START = r"(?<![^\W_])"
_WORD_END = r"(?![^\W_])"


def _letter(ch: str) -> str:
    alts = _LOOKALIKES.get(ch)
    if alts is None:
        return re.escape(ch)
    return "[" + "".join(re.escape(c) for c in alts) + "]"


def _word_regex(entry: str, *, boundaries: bool = True) -> str:
    """Regex source for one blocklist entry, to run on folded text."""
    body = fold(entry)
    prefix = body.startswith("*")
    suffix = body.endswith("*")
    body = body.strip("*").strip()
    tokens = re.findall(r"[^\W_]+", body)
    # Contiguous form: each letter may repeat ("fuuuck"); words may run together.
    parts = []
    for token in tokens:
        runs = [(m.group(0)[0], len(m.group(0))) for m in re.finditer(r"(.)\1*", token)]
        parts.append("".join(_letter(c) + ("+" if n == 1 else f"{{{n},}}") for c, n in runs))
    forms = [r"[\W_]*".join(parts)]
    # Spaced form of a single word: a separator between every letter ("b.a.d", "s h i t").
    if len(tokens) == 1 and len(tokens[0]) >= 2:
        forms.append(_SEP.join(_letter(c) for c in tokens[0]))
    source = "(?:" + "|".join(forms) + ")"
    if boundaries and not prefix:
        source = _WORD_START + source
    if boundaries and not suffix:
        source = source + _WORD_END
    return source


def _word_matcher(entries: tuple[str, ...], *, boundaries: bool = True) -> WordMatcher | None:
    entries = tuple(dict.fromkeys(entries))
    if not entries:
        return None
    sources = [_word_regex(e, boundaries=boundaries) for e in entries]
    # Entries that start at a word boundary share one look-behind, so the regex engine only
    # tries the alternatives at the start of a word.
    bounded = [s.removeprefix(_WORD_START) for s in sources if s.startswith(_WORD_START)]
    free = [s for s in sources if not s.startswith(_WORD_START)]
    combined = []
    if bounded:
        combined.append(_WORD_START + "(?:" + "|".join(bounded) + ")")
    combined.extend(free)
    return WordMatcher(
        combined=re.compile("|".join(combined)),
        entries=tuple((e, re.compile(s)) for e, s in zip(entries, sources, strict=True)),
    )


def _link_regex(spelled_out: bool) -> re.Pattern[str]:
    tlds = "|".join(sorted(_TLDS, key=len, reverse=True))
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
        char_run=re.compile(rf"(.)\1{{{spam.max_char_run},}}"),
        repeat=re.compile(rf"(\S.{{1,11}}?)(?:\W*\1){{{spam.max_repeats},}}"),
        out_words=_word_matcher(out_words),
        out_patterns=out_patterns,
        personal_info=tuple(
            (name, re.compile(p, re.IGNORECASE)) for name, p in out.personal_info.items()
        ),
        name_words=_word_matcher(name_words, boundaries=False),
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
