"""Output check: each sentence the LLM writes is checked here before it is voiced.

A blocked sentence is never spoken; the caller drops it or says a neutral line instead. The
check catches blocked words (the input blocklist too, by default, so the persona cannot be
talked into saying what chat may not), insults, links and anything shaped like a domain,
personal information (e-mail addresses, phone numbers, ...), over-long sentences, the persona
repeating a viewer's name that contains a blocked word, and what a jailbreak aims for: the
persona reciting its own instructions, quoting a message moderation refused, or reading the
viewer's line back word for word.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from bots.events import Viewer
from bots.moderation.matchers import CompiledModeration, fold
from bots.moderation.rules import Verdict, find_link

__all__ = ["OUTPUT_REASONS", "OutputContext", "check_output", "name_is_blocked"]

_WORD = re.compile(r"\w+")

# For moderators and logs; nothing of this is spoken.
OUTPUT_REASONS: dict[str, str] = {
    "blocked_word": "reply contains a blocked word",
    "insult": "reply insults someone",
    "blocked_pattern": "reply contains blocked content",
    "personal_info": "reply contains personal information",
    "links": "reply contains a link",
    "domain": "reply contains a domain name",
    "viewer_name": "reply says a viewer name that contains a blocked word",
    "too_long": "reply sentence is too long",
    "instructions": "reply recites the persona's instructions",
    "quotes_refused": "reply quotes a message moderation refused",
    "echo": "reply reads the viewer's message back word for word",
}

INSTRUCTION_RUN = 6  # words in a row shared with the instructions
REFUSED_RUN = 4  # words in a row shared with a refused message
ECHO_RUN = 8  # words in a row read back from the viewer's own line
ECHO_SHARE = 0.8  # ... or this share of the sentence, when it has ECHO_MIN_WORDS or more
ECHO_MIN_WORDS = 4


def words(text: str) -> list[str]:
    """Folded words of ``text``, punctuation dropped."""
    return _WORD.findall(fold(text))


def _grams(tokens: list[str], n: int) -> Iterable[tuple[str, ...]]:
    return (tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


@dataclass
class OutputContext:
    """What a sentence is checked against besides the settings: the persona's own instructions
    and the messages moderation refused recently (kept by the persona's moderator)."""

    instructions: frozenset[tuple[str, ...]] = frozenset()
    refused: deque[frozenset[tuple[str, ...]]] = field(default_factory=lambda: deque(maxlen=200))

    @classmethod
    def for_instructions(cls, texts: Iterable[str]) -> OutputContext:
        grams: set[tuple[str, ...]] = set()
        for text in texts:
            grams.update(_grams(words(text), INSTRUCTION_RUN))
        return cls(instructions=frozenset(grams))

    def add_refused(self, text: str) -> None:
        tokens = words(text)
        if len(tokens) >= REFUSED_RUN:
            self.refused.append(frozenset(_grams(tokens, REFUSED_RUN)))


def _longest_common_run(a: list[str], b: list[str]) -> int:
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def check_output(
    text: str,
    compiled: CompiledModeration,
    *,
    viewer: Viewer | None = None,
    prompt: str | None = None,
    context: OutputContext | None = None,
) -> Verdict:
    """Decide whether the persona may say ``text`` (one sentence). Never raises.

    Args:
        text: the sentence, as the LLM wrote it.
        compiled: the persona's matchers, compiled from its validated moderation settings
            (``compiled.settings.output`` says what is checked).
        viewer: the viewer being answered, if any: their name is not to be said when it
            contains a blocked word.
        prompt: the viewer's line being answered: it is not to be read back word for word.
        context: the persona's instructions and recently refused messages.

    Returns:
        The verdict; ``text`` is the sentence unchanged either way.
    """
    if not isinstance(text, str) or not text.strip():
        return Verdict(True, None, None, text if isinstance(text, str) else "")
    settings = compiled.settings
    out = settings.output

    def block(rule: str, detail: str | None) -> Verdict:
        return Verdict(False, rule, OUTPUT_REASONS[rule], text, detail)

    if len(text) > out.max_chars:  # first: the regexes below need not see a huge text
        return block("too_long", f"{len(text)} > {out.max_chars} characters")
    folded = fold(text)
    if compiled.out_words is not None:
        entry = compiled.out_words.find(folded)
        if entry is not None:
            return block("blocked_word", entry)
    if compiled.insults is not None:
        entry = compiled.insults.find(folded)
        if entry is not None:
            return block("insult", entry)
    for source, pattern in compiled.out_patterns:
        if pattern.search(text):
            return block("blocked_pattern", source)
    for name, pattern in compiled.personal_info:
        if pattern.search(text):
            return block("personal_info", name)
    if out.block_links:
        link = find_link(folded, compiled, settings.links.allowed_domains)
        if link is not None:
            return block("links", link)
    if out.block_links and compiled.domain is not None:
        m = compiled.domain.search(text)
        if m is not None and not _allowed(m.group(0), settings.links.allowed_domains):
            return block("domain", m.group(0))
    if out.block_viewer_names and viewer is not None and name_is_blocked(viewer.name, compiled):
        if fold(viewer.name) in folded:
            return block("viewer_name", viewer.name)
    tokens = words(text)
    if context is not None and out.block_instructions and context.instructions:
        for gram in _grams(tokens, INSTRUCTION_RUN):
            if gram in context.instructions:
                return block("instructions", " ".join(gram))
    if out.block_quotes:
        if context is not None and context.refused:
            grams = set(_grams(tokens, REFUSED_RUN))
            for refused in context.refused:
                shared = grams & refused
                if shared:
                    return block("quotes_refused", " ".join(next(iter(shared))))
        if prompt and len(tokens) >= ECHO_MIN_WORDS:
            run = _longest_common_run(tokens, words(prompt))
            if run >= ECHO_RUN or run >= ECHO_SHARE * len(tokens):
                return block("echo", f"{run} words read back")
    return Verdict(True, None, None, text)


def _allowed(domain: str, allowed: tuple[str, ...]) -> bool:
    host = domain.lower().split("/", 1)[0].removeprefix("www.")
    return any(host == d or host.endswith("." + d) for d in allowed)


def name_is_blocked(name: str, compiled: CompiledModeration) -> bool:
    """Whether a viewer's display name holds a blocked word anywhere ("xXsh1tXx").

    Inside names only entries of four or more letters count, so "Cassandra" and
    "classic_gamer" are fine.
    """
    matcher = compiled.name_words
    return matcher is not None and bool(name) and matcher.find(fold(name)) is not None
