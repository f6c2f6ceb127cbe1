"""Output check: each sentence the LLM writes is checked here before it is voiced.

A blocked sentence is never spoken; the caller drops it or says a neutral line instead. The
check catches blocked words (the input blocklist too, by default, so the persona cannot be
talked into saying what chat may not), links, personal information (e-mail addresses, phone
numbers, ...), over-long sentences, and the persona repeating a viewer's name that contains
a blocked word.
"""

from __future__ import annotations

from bots.events import Viewer
from bots.moderation.rules import Verdict, find_link
from bots.moderation.settings import ModerationSettings, fold

__all__ = ["OUTPUT_REASONS", "check_output", "name_is_blocked"]

# For moderators and logs; nothing of this is spoken.
OUTPUT_REASONS: dict[str, str] = {
    "blocked_word": "reply contains a blocked word",
    "blocked_pattern": "reply contains blocked content",
    "personal_info": "reply contains personal information",
    "links": "reply contains a link",
    "viewer_name": "reply says a viewer name that contains a blocked word",
    "too_long": "reply sentence is too long",
}


def check_output(
    text: str, settings: ModerationSettings, *, viewer: Viewer | None = None
) -> Verdict:
    """Decide whether the persona may say ``text`` (one sentence). Never raises.

    Args:
        text: the sentence, as the LLM wrote it.
        settings: the persona's moderation settings (``settings.output``).
        viewer: the viewer being answered, if any: their name is not to be said when it
            contains a blocked word.

    Returns:
        The verdict; ``text`` is the sentence unchanged either way.
    """
    if not isinstance(text, str) or not text.strip():
        return Verdict(True, None, None, text if isinstance(text, str) else "")
    out = settings.output
    compiled = settings.compiled

    def block(rule: str, detail: str | None) -> Verdict:
        return Verdict(False, rule, OUTPUT_REASONS[rule], text, detail)

    if len(text) > out.max_chars:  # first: the regexes below need not see a huge text
        return block("too_long", f"{len(text)} > {out.max_chars} characters")
    folded = fold(text)
    if compiled.out_words is not None:
        entry = compiled.out_words.find(folded)
        if entry is not None:
            return block("blocked_word", entry)
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
    if out.block_viewer_names and viewer is not None and name_is_blocked(viewer.name, settings):
        if fold(viewer.name) in folded:
            return block("viewer_name", viewer.name)
    return Verdict(True, None, None, text)


def name_is_blocked(name: str, settings: ModerationSettings) -> bool:
    """Whether a viewer's display name holds a blocked word anywhere ("xXsh1tXx").

    Inside names only entries of four or more letters count, so "Cassandra" and
    "classic_gamer" are fine.
    """
    matcher = settings.compiled.name_words
    return matcher is not None and bool(name) and matcher.find(fold(name)) is not None
