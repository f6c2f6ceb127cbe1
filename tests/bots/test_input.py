"""Viewer input: every odd message gets an answer or a clear reason, never a crash."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bots.moderation.errors import InputRejected
from bots.moderation.input import clean_viewer_text


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "\x00\x01\x1b"])
def test_empty_is_rejected(text):
    with pytest.raises(InputRejected, match="empty"):
        clean_viewer_text(text, max_chars=500)


def test_too_long_is_rejected_with_numbers():
    with pytest.raises(InputRejected, match=r"too long \(10000 characters; limit 500\)"):
        clean_viewer_text("a" * 10_000, max_chars=500)


def test_control_characters_removed_newlines_become_spaces():
    assert clean_viewer_text("hi\x07 there\nchat\x1b[31m", max_chars=500) == "hi there chat[31m"


def test_zalgo_is_thinned_but_kept():
    zalgo = "h" + "\u0301\u0302\u0303\u0304\u0305" * 4 + "i"
    out = clean_viewer_text(zalgo, max_chars=500)
    assert out.startswith("h") and out.endswith("i") and len(out) <= 4


def test_emoji_and_rtl_pass():
    assert clean_viewer_text("🎉🎉", max_chars=500) == "🎉🎉"
    assert clean_viewer_text("שלום עולם", max_chars=500) == "שלום עולם"
    assert clean_viewer_text("مرحبا 👋", max_chars=500) == "مرحبا 👋"


def test_punctuation_only_is_rejected():
    with pytest.raises(InputRejected, match="no words"):
        clean_viewer_text("?!?!...", max_chars=500)


@given(st.text(max_size=600))
def test_never_crashes(text):
    try:
        out = clean_viewer_text(text, max_chars=500)
    except InputRejected as e:
        assert e.reason
    else:
        assert out and len(out) <= 500 and out == out.strip()
