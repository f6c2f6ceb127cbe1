"""Input rules: whether a viewer's event may reach a persona, and if not, a reason they can read.

Rules run in this order, the first that refuses wins: banned user, mod-only mode, the first
gate (:func:`~bots.moderation.input.clean_viewer_text`: empty or too long), links, blocklist
words and regexes, instructions aimed at the persona (prompt injection; the broadcaster may be
exempt), spam heuristics (repetition, caps, symbols). Moderators may be exempt from
the link and spam rules (configurable), never from the blocklist. A viewer-facing reason never
repeats what was blocked; ``Verdict.detail`` says which entry or pattern matched, for the
audit log only.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from dataclasses import dataclass

from bots.events import ChatMessage, Event, ModCommand, Notice, Role, Utterance
from bots.moderation.errors import InputRejected
from bots.moderation.input import clean_viewer_text
from bots.moderation.matchers import CompiledModeration, fold
from bots.moderation.settings import SpamSettings

__all__ = ["Verdict", "check_input", "find_link", "REASONS"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """A moderation decision.

    Attributes:
        allowed: whether the event may go on (input) or the sentence may be spoken (output).
        rule: the rule that refused it (``"links"``, ``"blocked_word"``, ...); None if allowed.
        reason: why, in words a viewer or moderator can read; never the blocked word itself.
        text: the text to use from here on: cleaned when allowed, as received when refused.
        detail: what matched (the blocklist entry, the pattern, the link), for the audit log
            only; never show it to viewers.
    """

    allowed: bool
    rule: str | None = None
    reason: str | None = None
    text: str = ""
    detail: str | None = None


# Viewer-facing reasons, by rule. The first gate's own reasons are passed through as they are.
REASONS: dict[str, str] = {
    "banned_user": "you are banned from talking to the stream",
    "mod_only": "mod-only mode is on",
    "links": "links are not allowed",
    "blocked_word": "message contains a blocked word",
    "blocked_pattern": "message contains blocked content",
    "repetition": "too much repetition",
    "caps": "too many capital letters",
    "symbols": "too many symbols",
    "injection": "that reads like instructions for the persona; ask or say something instead",
}

_ASCII_ALNUM = re.compile(r"[A-Za-z0-9]")
_ASCII_UPPER = string.ascii_uppercase.encode()
_ASCII_LOWER = string.ascii_lowercase.encode()
_ASCII_SYMBOLS = string.punctuation.encode()
_PUNCT_TO_SPACE = str.maketrans(
    dict.fromkeys(string.punctuation + "\u2019\u201c\u201d\u00bf\u00a1", " ")
)
_ALLOWED = Verdict(True)


def check_input(event: Event, compiled: CompiledModeration) -> Verdict:
    """Decide whether ``event`` may reach its persona. Never raises for any text.

    Args:
        event: any event an adapter emitted. A :class:`~bots.events.ModCommand` is allowed
            only from moderators and the broadcaster; message-less notices (a follow, a sub
            without a message) and redemptions without input have nothing to check.
        compiled: the persona's matchers, compiled from its validated moderation settings
            (:func:`~bots.moderation.matchers.compile_moderation`).

    Returns:
        The verdict; when allowed, ``text`` is the cleaned text to hand to the persona.
    """
    settings = compiled.settings
    viewer = event.viewer
    if compiled.banned and _is_banned(event, compiled.banned):
        return Verdict(False, "banned_user", REASONS["banned_user"], event.text, viewer.id)
    if isinstance(event, ModCommand):
        if viewer.is_mod:
            return _ALLOWED
        return Verdict(False, "mod_command", f"only moderators can use !{event.command}", "")
    raw = event.text
    has_text = isinstance(raw, str) and bool(raw.strip())
    if settings.mod_only and not (isinstance(event, Notice) and not has_text):
        if not (viewer.is_mod or (settings.mod_only_allow_vips and Role.VIP in viewer.roles)):
            return Verdict(False, "mod_only", REASONS["mod_only"], raw if has_text else "")
    if not has_text and not isinstance(event, ChatMessage | Utterance):
        return _ALLOWED  # a follow, a sub without a message, a redemption without input
    try:
        text = _clean(raw, settings.max_chars)
    except InputRejected as e:
        return Verdict(False, e.code, e.reason, raw if isinstance(raw, str) else "")
    folded = fold(text)
    is_mod = viewer.is_mod

    links = settings.links
    if links.policy != "allow" and not (is_mod and links.mods_exempt):
        if not (links.policy == "roles" and viewer.roles & links.roles):
            link = find_link(folded, compiled, links.allowed_domains)
            if link is not None:
                return Verdict(False, "links", REASONS["links"], text, link)

    if compiled.words is not None:
        entry = compiled.words.find(folded)
        if entry is not None:
            return Verdict(False, "blocked_word", REASONS["blocked_word"], text, entry)
    for source, pattern in compiled.patterns:
        if pattern.search(text):
            return Verdict(False, "blocked_pattern", REASONS["blocked_pattern"], text, source)

    if (compiled.injection or compiled.injection_folded) and not (
        settings.injection.broadcaster_exempt and Role.BROADCASTER in viewer.roles
    ):
        for source, pattern in compiled.injection:
            if pattern.search(text):
                return Verdict(False, "injection", REASONS["injection"], text, source)
        for source, pattern in compiled.injection_folded:
            if pattern.search(folded):
                return Verdict(False, "injection", REASONS["injection"], text, source)

    spam = settings.spam
    if spam.enabled and not (is_mod and spam.mods_exempt):
        refused = _spam(text, folded, spam, compiled)
        if refused is not None:
            rule, detail = refused
            return Verdict(False, rule, REASONS[rule], text, detail)
    return Verdict(True, None, None, text)


def find_link(
    folded: str, compiled: CompiledModeration, allowed_domains: tuple[str, ...] = ()
) -> str | None:
    """Return the first link in ``folded`` text that is not on an allowed domain, or None.

    Catches ``https://...``, ``www...``, bare domains on common TLDs (``discord.gg/x``) and,
    when enabled, spelled-out ones (``example dot com``, ``example[.]com``).

    Args:
        folded: the text after :func:`~bots.moderation.matchers.fold`.
        compiled: the persona's compiled matchers.
        allowed_domains: links to these domains and their subdomains do not count.
    """
    if compiled.link_hint.search(folded) is None:
        return None
    for m in compiled.links.finditer(folded):
        link = m.group(0)
        if not allowed_domains or not _on_allowed_domain(link, allowed_domains):
            return link
    return None


# --------------------------------------------------------------------------- helpers

_SPELLED_DOT = re.compile(r"\s*[(\[{<]\s*(?:dot|\.)\s*[)\]}>]\s*|\s+dot\s+")
_SCHEME = re.compile(r"^(?:https?|ftp)://")
_HOST_END = re.compile(r"[/:?#\s]")


def _on_allowed_domain(link: str, allowed: tuple[str, ...]) -> bool:
    host = _SCHEME.sub("", _SPELLED_DOT.sub(".", link))
    host = _HOST_END.split(host, maxsplit=1)[0].rsplit("@", 1)[-1]
    host = host.removeprefix("www.").rstrip(".,!?;)")
    return any(host == d or host.endswith("." + d) for d in allowed)


def _is_banned(event: Event, banned: frozenset[str]) -> bool:
    viewer = event.viewer
    vid = viewer.id.casefold()
    return (
        vid in banned
        or viewer.name.casefold() in banned
        or f"{event.platform.casefold()}:{vid}" in banned
    )


def _clean(text: str, max_chars: int) -> str:
    """:func:`clean_viewer_text`, with a fast path for plain printable ASCII that gives the
    same result (a test checks they agree); anything else, and every refusal, goes through
    the original so the reasons are its own."""
    if isinstance(text, str) and text.isascii() and text.isprintable():
        cleaned = " ".join(text.split())
        if cleaned and len(cleaned) <= max_chars and _ASCII_ALNUM.search(cleaned):
            return cleaned
    return clean_viewer_text(text, max_chars=max_chars)


def _spam(
    text: str, folded: str, spam: SpamSettings, compiled: CompiledModeration
) -> tuple[str, str] | None:
    """Return (rule, detail) for the first spam heuristic that refuses ``text``, or None."""
    run = compiled.char_run.search(folded)
    if run is not None:
        return "repetition", run.group(0)[:40]
    repeated = _repeated_run(folded, spam, compiled)
    if repeated is not None:
        return "repetition", repeated[:40]

    if text.isascii():
        raw = text.encode("ascii")
        upper = len(raw) - len(raw.translate(None, _ASCII_UPPER))
        lower = len(raw) - len(raw.translate(None, _ASCII_LOWER)) if upper else 0
    else:
        upper = sum(map(str.isupper, text))
        lower = sum(map(str.islower, text)) if upper else 0
    cased = upper + lower
    if cased >= spam.caps_min_letters and upper > spam.caps_max_ratio * cased:
        return "caps", f"{upper}/{cased} capitals"

    if len(text) >= spam.symbols_min_chars:
        if text.isascii():
            symbols = len(raw) - len(raw.translate(None, _ASCII_SYMBOLS))
            visible = len(raw) - raw.count(b" ")
        else:
            symbols, visible = _count_symbols(text)
        if visible >= spam.symbols_min_chars and symbols > spam.symbols_max_ratio * visible:
            return "symbols", f"{symbols}/{visible} symbols"
    return None


def _repeated_run(folded: str, spam: SpamSettings, compiled: CompiledModeration) -> str | None:
    """A word or fragment repeated more than ``max_repeats`` times in a row ("lolololol",
    "spam spam spam spam") covering at least ``repeat_min_share`` of the message."""
    min_run = max(math.ceil(spam.repeat_min_share * len(folded)), 2 * (spam.max_repeats + 1))
    if len(folded) < min_run:
        return None
    words = folded.translate(_PUNCT_TO_SPACE).split()
    # The regex is slow-ish (every start, every unit length), so it only runs where a run can
    # be: on the whole text when words repeat, else on single words long enough to hold it.
    candidates: tuple[str, ...]
    if len(words) - len(set(words)) >= spam.max_repeats:
        candidates = (folded,)
    else:
        candidates = tuple(w for w in words if len(w) >= min_run)
    for candidate in candidates:
        for m in compiled.repeat.finditer(candidate):
            unit = m.group(1)
            if len(m.group(0)) >= min_run and unit.count(unit[0]) != len(unit):
                return m.group(0)
    return None


def _is_emoji(cp: int) -> bool:
    return (
        cp >= 0x1F000
        or 0x2600 <= cp <= 0x27BF  # misc symbols, dingbats
        or 0x2B00 <= cp <= 0x2BFF  # arrows and stars (⭐)
        or 0x2190 <= cp <= 0x21FF  # arrows
        or 0x2300 <= cp <= 0x23FF  # ⌚ ⏰
        or cp in (0x00A9, 0x00AE, 0x203C, 0x2049, 0x2122, 0x2139, 0x3030, 0x303D, 0x3297, 0x3299)
    )


def _count_symbols(text: str) -> tuple[int, int]:
    """(symbols, non-space characters) of non-ASCII text: punctuation and symbols count,
    emoji do not, letters of any script do not."""
    symbols = visible = 0
    for ch in text:
        if ch == " ":
            continue
        visible += 1
        cat = unicodedata.category(ch)
        if cat[0] in "PS" and not (cat in ("So", "Sk") and _is_emoji(ord(ch))):
            symbols += 1
    return symbols, visible
