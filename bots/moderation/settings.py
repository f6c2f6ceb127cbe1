"""Moderation settings of one persona (the ``moderation:`` section of its file). The matchers
compiled from them live in :mod:`bots.moderation.matchers`, built by the ``Moderator``.

The defaults suit a family-friendly stream: common profanity is blocked, links are refused
except from moderators and VIPs, caps, symbol and repetition spam are refused, and the
persona never says a link, an e-mail address or a phone number. See ``docs/moderation.md``.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from bots.events import Role
from bots.languages import base_language
from vstage_core.settings import FrozenModel

__all__ = [
    "DEFAULT_BLOCKED_WORDS",
    "DEFAULT_INJECTION_PATTERNS",
    "DEFAULT_INSULTS",
    "InjectionSettings",
    "DEFAULT_PERSONAL_INFO",
    "BlocklistSettings",
    "LinkSettings",
    "ModerationSettings",
    "OutputSettings",
    "SpamSettings",
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


class BlocklistSettings(FrozenModel):
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


class LinkSettings(FrozenModel):
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


class SpamSettings(FrozenModel):
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


class InjectionSettings(FrozenModel):
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


class OutputSettings(FrozenModel):
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


class ModerationSettings(FrozenModel):
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
    languages: tuple[str, ...] = Field(
        (),
        description="languages whose built-in word lists apply besides English (blocked words "
        "with blocklist.defaults, insults unless output.insults is (), injection phrases with "
        "injection.enabled); the persona's own language is added when its file loads",
    )

    @field_validator("languages")
    @classmethod
    def _languages(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        codes = []
        for code in v:
            if not re.fullmatch(r"[A-Za-z]{2,3}(?:[-_][A-Za-z]{2,4})?", code.strip()):
                raise ValueError(f"{code!r} is not a language code (e.g. 'de', 'fr', 'es')")
            codes.append(base_language(code))
        return tuple(dict.fromkeys(codes))
