"""Output check: a sentence the persona must not say is caught before it is voiced."""

from __future__ import annotations

from typing import Any

import pytest

from bots.events import Viewer
from bots.moderation.matchers import CompiledModeration, compile_moderation
from bots.moderation.output import OUTPUT_REASONS, check_output, name_is_blocked
from bots.moderation.settings import ModerationSettings


def compiled(**settings: Any) -> CompiledModeration:
    """The matchers of ``ModerationSettings(**settings)``, as the Moderator builds them."""
    return compile_moderation(ModerationSettings(**settings))


DEFAULTS = compiled()


def rule(text: str, settings: ModerationSettings = DEFAULTS, viewer: Viewer | None = None):
    return check_output(text, settings, viewer=viewer).rule


@pytest.mark.parametrize("text", [
    "What a great question! Let's play something cozy tonight.",
    "I scored 3.5 points in 2024, not bad!",
    "Call it a classic, Scunthorpe fans.",
    "The year 1999 was wild.",
    "It costs 1,000,000 coins.",
    "Version 2.0.1 is out.",
    "",
])
def test_ordinary_sentences_are_spoken(text):
    v = check_output(text, DEFAULTS)
    assert v.allowed and v.text == text


@pytest.mark.parametrize("text,expected,detail", [
    ("Well, shit happens.", "blocked_word", "shit"),
    ("That's f.u.c.k.i.n.g wild.", "blocked_word", "*fuck*"),
    ("Write to me at mika@example.com!", "personal_info", "email"),
    ("My number is 555-123-4567.", "personal_info", "phone"),
    ("Call +44 20 7946 0958 now.", "personal_info", "phone"),
    ("Call (555) 123 4567.", "personal_info", "phone"),
    ("Ring 5551234567 today.", "personal_info", "phone"),
    ("The server is 192.168.1.20 by the way.", "personal_info", "ip_address"),
    ("Card 4111 1111 1111 1111 works.", "personal_info", "card_number"),
    ("SSN 078-05-1120 is famous.", "personal_info", "id_number"),
    ("Check out https://example.com for more.", "links", "https://example.com"),
    ("Go to example dot com.", "links", "example dot com"),
    ("Join discord.gg/mika today.", "links", "discord.gg/mika"),
])
def test_blocked_sentences(text, expected, detail):
    v = check_output(text, DEFAULTS)
    assert (v.allowed, v.rule, v.detail) == (False, expected, detail), v
    assert v.reason == OUTPUT_REASONS[expected]
    assert v.text == text


def test_too_long():
    assert rule("word " * 120) == "too_long"
    assert rule("word " * 10, compiled(output={"max_chars": 20})) == "too_long"


def test_output_blocklist_inherits_and_adds():
    settings = compiled(
        blocklist={"words": ["pineapple"]}, output={"words": ["homework"], "patterns": [r"\bAI\b"]}
    )
    assert rule("I love pineapple pizza.", settings) == "blocked_word"  # viewer list applies
    assert rule("Do your homework!", settings) == "blocked_word"
    assert rule("As an AI, I cannot.", settings) == "blocked_pattern"
    assert check_output("Homework is due.", compiled()).allowed  # output-only word
    separate = compiled(
        blocklist={"words": ["pineapple"]}, output={"inherit_blocklist": False}
    )
    assert check_output("I love pineapple pizza.", separate).allowed


def test_links_and_personal_info_can_be_turned_off():
    settings = compiled(output={"block_links": False, "personal_info": {}})
    assert check_output("Mail me@example.com or see example.com.", settings).allowed
    allowed = compiled(links={"allowed_domains": ["twitch.tv"]})
    assert check_output("Follow me on twitch.tv/mika!", allowed).allowed


def test_llm_repeating_a_viewers_blocked_name_is_caught():
    rude = Viewer(id="1", name="xXsh1tlordXx")
    assert name_is_blocked(rude.name, DEFAULTS)
    assert rule("Thanks for the follow, xXsh1tlordXx!", viewer=rude) == "viewer_name"
    assert rule("Thanks for the follow, XXSH1TLORDXX!", viewer=rude) == "viewer_name"
    assert check_output("Thanks for the follow!", DEFAULTS, viewer=rude).allowed
    fine = Viewer(id="2", name="ClassicCassandra")
    assert not name_is_blocked(fine.name, DEFAULTS)  # "ass" inside names does not count
    assert check_output("Hi ClassicCassandra!", DEFAULTS, viewer=fine).allowed
    off = compiled(output={"block_viewer_names": False})
    assert check_output("Hi xXsh1tlordXx!", off, viewer=rude).allowed


def test_never_raises_on_odd_input():
    for text in ("\x00\x01", "\ud800", "🎉" * 1000, "a" * 100_000, " \n "):
        check_output(text, DEFAULTS)
    assert check_output(None, DEFAULTS).allowed  # type: ignore[arg-type]
