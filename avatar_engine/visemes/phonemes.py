"""Phonemes to mouth shapes: the IPA symbols Piper and espeak-ng emit, in any language, mapped to
the Rhubarb-style shapes, and a phoneme timeline cleaned into a timeline of shape segments
(stress marks and length marks folded in, pauses absorbed or turned into rest).

The table covers the IPA chart (German ü ö ç x ʁ, French nasal vowels and ɥ, Spanish ɾ β ð ɣ
ɲ, ...); diacritics (nasal tilde, non-syllabic arch, ...) are stripped to their base letter,
and a symbol the table does not know is placed by its class (vowel: open, rounded or not;
consonant: lips, teeth, tongue) from its Unicode name, so no language can crash the mouth.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from avatar_engine.types import PhonemeTiming

logger = logging.getLogger(__name__)


def _table(**groups: str) -> dict[str, str]:
    return {symbol: shape for shape, symbols in groups.items() for symbol in symbols.split()}


PHONEME_SHAPES: dict[str, str] = _table(
    # Lips pressed together (the Spanish β between vowels nearly closes them too).
    A="m b p ɓ ʙ ʘ β ɸ",
    # Slightly open: most consonants and the close front vowels (EE, IH, schwa).
    B=(
        "k ɡ g s z t d n ŋ ɲ ɳ ɴ ʃ ʒ ç x ɣ χ ʁ h ɦ j ʝ r ɹ ɾ ɻ ʀ ʔ c ɟ q ɢ ʂ ʐ ɕ ʑ ħ ʕ"
        " ʈ ɖ ɽ ɠ ʄ ʛ ʡ ʢ ɧ ʜ ʡ ɰ ɗ ʤ ʧ ʦ ʣ ʨ ʥ ǀ ǁ ǃ ǂ i ɪ ɨ ᵻ ə ɘ ɯ ɤ"
    ),
    # Open: EH, AE, AH, AY-onset, the open-mid unrounded vowels.
    C="e ɛ æ ʌ ɐ ɜ ɞ",
    # Wide open: AA.
    D="a ɑ ä ɶ",
    # Rounded: AO, ER, OH.
    E="o ɔ ɒ ɚ ɝ ɵ œ",
    # Puckered: UW, the OW glide, W.
    F="u ʊ w ʍ ɥ y ʏ ø ʉ",
    # Upper teeth on the lower lip.
    G="f v ɱ ʋ ⱱ",
    # Tongue visible: L and TH.
    H="l ɫ ɭ ɬ ɮ ʎ ʟ ɺ θ ð",
)
"""Base IPA symbol -> shape letter. Symbols not listed are placed by their class
(:func:`_shape_by_class`)."""

SILENCE_MARKS = frozenset({"^", "$", "<s>", "</s>", "sil", "SIL", "pau"})
"""Sentence start/end markers: silence."""

STRESS_MARKS = frozenset({"ˈ", "ˌ"})
"""Entries whose time belongs to the next phoneme."""

EXTENDERS = frozenset({"ː", "ˑ", "˞", "ʰ", "ʲ", "ʷ", "ˠ", "ˤ", "_", "‿", "↓", "↑", "→", "↗", "↘"})
"""Entries whose time belongs to the previous phoneme (length marks, secondary articulation,
intonation arrows and Piper's pad symbol ``_``)."""

_MODIFIER_CHARS = STRESS_MARKS | EXTENDERS | {"͡", "͜"}

_LANGUAGE_SWITCH = re.compile(r"^\([a-z0-9-]+\)$")
"""espeak-ng's language switch marker in a phoneme stream (``(en)`` inside German text): no
sound of its own."""


@dataclass(frozen=True, slots=True)
class ShapeSegment:
    """One span of the timeline shown with one mouth shape.

    Attributes:
        shape: shape letter from :data:`avatar_engine.visemes.SHAPES`.
        start: seconds from the start of the sentence.
        end: seconds from the start of the sentence (``end >= start``).
    """

    shape: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def _is_modifier_char(ch: str) -> bool:
    """Stress, length, tie and combining marks; modifier letters (ʰ ʼ ᵊ), tone letters (˥ ˩)
    and tone digits (espeak's Mandarin ``5``): none has a mouth shape of its own."""
    if ch in _MODIFIER_CHARS or unicodedata.combining(ch) != 0:
        return True
    return unicodedata.category(ch) in ("Lm", "Nd", "No", "Mn", "Me") or "\u02e5" <= ch <= "\u02e9"


# The last word of a letter's Unicode name (before "WITH ...") -> its class.
_OPEN_VOWELS = {"A": "D", "ALPHA": "D", "AE": "C"}
_ROUNDED_VOWELS = {"O": "E", "OE": "E", "OMEGA": "F", "U": "F", "UPSILON": "F", "Y": "F"}
_OTHER_VOWELS = {"E": "C", "EPSILON": "C", "I": "B", "IOTA": "B", "SCHWA": "B", "HORN": "B"}
_CONSONANTS = {"M": "A", "B": "A", "P": "A", "PHI": "A", "BETA": "A", "F": "G", "V": "G",
               "L": "H", "THETA": "H", "ETH": "H"}
_NAME_PREFIX = re.compile(
    r"^(LATIN|GREEK|CYRILLIC)( SMALL| CAPITAL)?( LETTER)?( SMALL CAPITAL| SMALL)?\s+"
)


def _shape_by_class(ch: str) -> str:
    """The shape of a letter the table lacks, from its Unicode name: ``LATIN SMALL LETTER
    TURNED OPEN E WITH HOOK`` is an E-class vowel (``C``); unknown consonants are ``B``."""
    name = unicodedata.name(ch, "")
    name = _NAME_PREFIX.sub("", name).split(" WITH ")[0]
    word = name.split()[-1] if name else ""
    for table in (_OPEN_VOWELS, _ROUNDED_VOWELS, _OTHER_VOWELS, _CONSONANTS):
        if word in table:
            return table[word]
    return "B"


def _is_pause(symbol: str) -> bool:
    """Spaces and punctuation (``, . ! ? ;`` ...) are pauses."""
    if symbol in ("", "␠", "|", "‖"):
        return True
    return all(unicodedata.category(ch)[0] in "PZC" for ch in symbol)


def phoneme_shape(symbol: str) -> str | None:
    """The mouth shape of one phoneme symbol.

    Args:
        symbol: one phoneme as the voice emits it (``"m"``, ``"ˈa"``, ``"uː"``, ``"t͡ʃ"``).

    Returns:
        A shape letter; ``"X"`` for silence markers and pauses (spaces, punctuation);
        ``None`` for pure modifiers (stress marks, length marks) that have no shape of their own.
        A symbol the table lacks is placed by its class (a vowel by openness and rounding, a
        consonant by where it is made; anything else ``"B"``, slightly open), logged at debug
        level.
    """
    if symbol in SILENCE_MARKS or _is_pause(symbol):
        return "X"
    if _LANGUAGE_SWITCH.match(symbol):
        return None
    # Decompose so "ã" looks up "a"; drop stress, length and tie marks.
    base = [ch for ch in unicodedata.normalize("NFD", symbol) if not _is_modifier_char(ch)]
    if not base:
        return None
    for ch in base:
        shape = PHONEME_SHAPES.get(ch)
        if shape is not None:
            return shape
    shape = _shape_by_class(base[0])
    logger.debug("unknown phoneme %r; placed by its class as mouth shape %s", symbol, shape)
    return shape


def _kind(symbol: str) -> str:
    """``"stress"``, ``"extend"``, ``"pause"`` or ``"sound"``."""
    if symbol in SILENCE_MARKS:
        return "pause"
    if symbol and all(_is_modifier_char(ch) for ch in symbol):
        return "stress" if all(ch in STRESS_MARKS for ch in symbol) else "extend"
    if _LANGUAGE_SWITCH.match(symbol):
        return "extend"
    if _is_pause(symbol):
        return "pause"
    return "sound"


def shape_segments(
    phonemes: Sequence[PhonemeTiming], *, pause_close_s: float = 0.12
) -> list[ShapeSegment]:
    """Turn a phoneme timeline into a contiguous timeline of mouth-shape segments.

    * ``^`` / ``$`` and leading/trailing pauses are silence: shape ``X``.
    * Stress marks (``ˈ``, ``ˌ``) give their time to the next phoneme; length marks (``ː``) and
      other modifiers extend the previous one.
    * Spaces and punctuation are pauses. A pause inside speech no longer than
      ``pause_close_s`` is split between its neighbours so the mouth does not snap shut for a
      frame; a longer one becomes ``X``. Gaps in the timeline count as pauses.

    Args:
        phonemes: the voice's phonemes in time order, seconds from the sentence start.
        pause_close_s: longest pause inside speech that keeps the mouth moving.

    Returns:
        Segments in time order, each starting where the previous one ends, the first at
        ``0.0`` or at the first phoneme's start if that is earlier.
    """
    # Pass 1: one token per sound or pause, with modifiers folded in.
    # token = [is_pause, shape, start, end]
    tokens: list[list] = []
    pending_start: float | None = None
    for p in sorted(phonemes, key=lambda q: q.start):
        start, end = float(p.start), max(float(p.end), float(p.start))
        kind = _kind(p.phoneme)
        if kind == "stress":
            pending_start = start if pending_start is None else min(pending_start, start)
            continue
        if kind == "extend":
            if tokens:
                tokens[-1][3] = max(tokens[-1][3], end)
            elif pending_start is None:
                pending_start = start
            continue
        if pending_start is not None:
            start = min(start, pending_start)
            pending_start = None
        if tokens and start > tokens[-1][3] + 1e-6:
            tokens.append([True, "X", tokens[-1][3], start])  # a gap is a pause
        elif tokens:
            start = tokens[-1][3]  # overlapping entries: keep the timeline contiguous
        if kind == "pause":
            tokens.append([True, "X", start, end])
        else:
            tokens.append([False, phoneme_shape(p.phoneme) or "B", start, end])
    if not tokens:
        return []
    if tokens[0][2] > 0.0:
        tokens.insert(0, [True, "X", 0.0, tokens[0][2]])

    # Pass 2: merge runs of pauses.
    merged: list[list] = []
    for tok in tokens:
        if merged and tok[0] and merged[-1][0]:
            merged[-1][3] = max(merged[-1][3], tok[3])
        else:
            merged.append(list(tok))

    # Pass 3: short pauses inside speech are split between their neighbours.
    out: list[list] = []
    for i, tok in enumerate(merged):
        is_pause, _shape, start, end = tok
        inner = 0 < i < len(merged) - 1
        if is_pause and inner and end - start <= pause_close_s:
            mid = 0.5 * (start + end)
            out[-1][3] = mid
            merged[i + 1][2] = mid
            continue
        if out:
            tok[2] = out[-1][3]
        out.append(tok)
    return [ShapeSegment(shape, start, max(start, end)) for _, shape, start, end in out]
