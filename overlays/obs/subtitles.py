"""How a spoken sentence is laid out in the OBS subtitle source: wrapped onto lines of similar
length that fit the subtitle width, and where that source sits on the canvas.

OBS's FreeType text source can wrap by itself (``word_wrap`` with ``custom_width``), but then
the source is always ``custom_width`` wide and draws its text from the left edge, so a short
sentence would sit off-centre. vstage breaks the lines itself instead, from an estimate of the
glyph widths, and gives the scene item a bounding box that only ever shrinks (``MAX_ONLY``):
if the estimate is short for some font, the text is scaled down rather than cut off.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Any

# Average advance of a glyph in ems: DejaVu Sans Bold measures ~0.56 for English text in OBS
# (a 90-character sentence at size 48 is 2,390 px); a little more leaves room for the outline.
_NARROW_EM = 0.6
_WIDE_EM = 1.0  # CJK and other full-width characters

# obs_alignment flags: LEFT=1, RIGHT=2, TOP=4, BOTTOM=8; 0 is the centre.
_ALIGN_BOTTOM = 8
_BOTTOM_MARGIN = 0.04  # of the canvas height
_MAX_HEIGHT = 0.3  # of the canvas height: a bounding box for about four lines at size 48/720


def text_width(text: str) -> float:
    """Estimated width of ``text`` in ems."""
    width = 0.0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += _WIDE_EM if unicodedata.east_asian_width(ch) in ("W", "F") else _NARROW_EM
    return width


def wrap_subtitle(text: str, *, max_width: float, font_size: int) -> str:
    """Break ``text`` into lines of similar length, each at most ``max_width`` pixels wide.

    Args:
        text: the sentence (any whitespace in it is collapsed).
        max_width: widest line allowed, in canvas pixels.
        font_size: the text source's font size in pixels.

    Returns:
        The lines joined with ``\\n``; a word longer than a line is split.
    """
    limit = max(max_width / font_size, _WIDE_EM)  # in ems
    words: list[str] = []
    for word in text.split():
        words.extend(_split_long(word, limit))
    if not words:
        return ""
    total = text_width(" ".join(words))
    needed = math.ceil(total / limit)
    if needed <= 1:
        return " ".join(words)
    # Balanced lines: the shortest line goal that still needs no more lines than necessary.
    goal = total / needed
    while True:
        lines = _fill(words, min(goal, limit))
        if len(lines) <= needed or goal >= limit:
            return "\n".join(lines)
        goal *= 1.04


def _fill(words: list[str], goal: float) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in words:
        candidate = f"{line} {word}" if line else word
        if line and text_width(candidate) > goal:
            lines.append(line)
            line = word
        else:
            line = candidate
    lines.append(line)
    return lines


def _split_long(word: str, limit: float) -> list[str]:
    if text_width(word) <= limit:
        return [word]
    pieces, piece = [], ""
    for ch in word:
        if piece and text_width(piece + ch) > limit:
            pieces.append(piece)
            piece = ""
        piece += ch
    return [*pieces, piece] if piece else pieces


def subtitle_transform(canvas: tuple[int, int], width_share: float) -> dict[str, Any]:
    """The subtitle item's place: bottom centre, inside a box it may shrink into, never grow."""
    w, h = canvas
    return {
        "positionX": w / 2, "positionY": h - h * _BOTTOM_MARGIN, "alignment": _ALIGN_BOTTOM,
        "boundsType": "OBS_BOUNDS_MAX_ONLY", "boundsAlignment": _ALIGN_BOTTOM,
        "boundsWidth": float(max(1, round(w * width_share))),
        "boundsHeight": float(max(1, round(h * _MAX_HEIGHT))),
    }
