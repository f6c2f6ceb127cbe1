"""Subtitle line breaking for the OBS text source (pure Python, no OBS needed)."""

from __future__ import annotations

from overlays.obs.subtitles import text_width, wrap_subtitle

SENTENCE = ("Thanks for asking, tonight we are going to explore the haunted lighthouse levels "
            "together!")


def test_short_sentence_stays_on_one_line():
    assert wrap_subtitle("  Hello   there. ", max_width=1152, font_size=48) == "Hello there."
    assert wrap_subtitle("", max_width=1152, font_size=48) == ""


def test_long_sentence_wraps_into_balanced_lines_that_fit():
    limit_em = 1152 / 48
    lines = wrap_subtitle(SENTENCE, max_width=1152, font_size=48).split("\n")
    assert " ".join(lines) == SENTENCE  # words kept, in order
    assert len(lines) == 3
    widths = [text_width(line) for line in lines]
    assert max(widths) <= limit_em
    assert max(widths) - min(widths) < limit_em / 3, widths  # similar lengths, no orphan
    # A wider canvas needs fewer lines.
    assert len(wrap_subtitle(SENTENCE, max_width=1728, font_size=48).split("\n")) == 2


def test_words_without_spaces_are_split_to_fit():
    cjk = "今日は灯台のステージを一緒に探検しましょう" * 3  # full-width: 1 em each
    lines = wrap_subtitle(cjk, max_width=480, font_size=48).split("\n")
    assert "".join(lines) == cjk
    assert all(text_width(line) <= 10 for line in lines)
    url_like = "x" * 100
    assert all(text_width(line) <= 10
               for line in wrap_subtitle(url_like, max_width=480, font_size=48).split("\n"))
