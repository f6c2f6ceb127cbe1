"""Cutting streamed replies into speakable pieces."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bots.brain.sentences import ReplyBudget, SentenceCutter, speakable, strip_label


def cut(text: str, step: int = 1, **kw) -> list[str]:
    c = SentenceCutter(**kw)
    out: list[str] = []
    for i in range(0, len(text), step):
        out += c.push(text[i : i + step])
    if (rest := c.flush()) is not None:
        out.append(rest)
    return out


def test_sentences_and_first_clause():
    text = "Oh hey there chat, welcome back to the stream! How are you? I am great."
    assert cut(text) == [
        "Oh hey there chat,", "welcome back to the stream!", "How are you?", "I am great.",
    ]


def test_short_first_clause_is_not_cut():
    assert cut("Hi, all good? Yes.") == ["Hi, all good?", "Yes."]


def test_abbreviations_initials_and_decimals_do_not_cut():
    text = "Dr. Smith paid 3.50 dollars to J. R. Tolkien fans. Wow!"
    assert cut(text, first_clause_words=0) == [
        "Dr. Smith paid 3.50 dollars to J. R. Tolkien fans.", "Wow!",
    ]


def test_ellipsis_and_closing_quotes_stay_with_their_sentence():
    assert cut('She said "go!" Then... we went.') == ['She said "go!"', "Then...", "we went."]


def test_long_run_without_punctuation_is_cut_at_a_space():
    pieces = cut("word " * 100, max_piece_chars=50)
    assert all(len(p) <= 50 for p in pieces) and len(pieces) > 5


@given(st.text(alphabet="ab .,!?\n", max_size=200), st.integers(1, 7))
def test_cutting_loses_no_words(text, step):
    pieces = cut(text, step=step)
    assert " ".join(pieces).split() == text.split()
    assert all(p == p.strip() and p for p in pieces)


def test_budget_caps_pieces_and_chars():
    b = ReplyBudget(max_pieces=2, max_chars=30)
    assert b.admit("One two three.") == "One two three."
    assert b.admit("Four five six seven eight nine ten.") == "Four five six."
    assert b.exhausted and b.admit("More.") is None


def test_speakable_strips_markdown_links_emoji_and_stage_directions():
    raw = "**Hi** chat! (waves) Check https://example.com/x 🎉 *giggles* `ok`"
    assert speakable(raw) == "Hi chat! Check a link ok"


def test_first_clause_may_end_at_a_spaced_dash():
    assert cut("the game is called Winners - it is a gamble. Fun!") == [
        "the game is called Winners", "it is a gamble.", "Fun!",
    ]


@pytest.mark.parametrize("raw,expected", [
    ("Mika: Hello chat!", "Hello chat!"),
    ("**Mika:** Hello chat!", "Hello chat!"),
    ("Mika (waves): Hello chat!", "Hello chat!"),
    ("Assistant: Mika: Hi!", "Hi!"),
    ("Ann: you asked about tea", "you asked about tea"),
    ("Note: tea is great.", "Note: tea is great."),
    ("Fun fact: cats sleep a lot.", "Fun fact: cats sleep a lot."),
    ("Hello chat! Mika: is here", "Hello chat! Mika: is here"),
    ("nora_plays: Hello!", "Hello!"),
    ("quiet_quinn: I'm so glad you asked.", "I'm so glad you asked."),
    ("A: Luna Lofi is great.", "Luna Lofi is great."),
    ('nara_plays says: "Sounds great!"', '"Sounds great!"'),
    ("I would say: pizza.", "I would say: pizza."),
    ("Just remember: breathe.", "Just remember: breathe."),
])
def test_speaker_labels_are_stripped(raw, expected):
    assert strip_label(raw, names=("Mika", "Ann")) == expected
