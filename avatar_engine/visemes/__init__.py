"""Mouth shapes (visemes): the Rhubarb-style shape set and the two ways to time them, from
phoneme timings (:func:`mouth_track`) or, for voices without timings, from the audio loudness
(:func:`envelope_track`).

A mouth track is an ``int8`` array with one code per video frame; a code indexes
:data:`SHAPES`.
"""

from __future__ import annotations

SHAPES: tuple[str, ...] = ("X", "A", "B", "C", "D", "E", "F", "G", "H")
"""Mouth shapes in code order. ``X`` rest (silence), ``A`` closed (M B P), ``B`` slightly open
(most consonants, EE), ``C`` open (EH AE), ``D`` wide open (AA), ``E`` rounded (AO ER),
``F`` puckered (UW OW W), ``G`` teeth on lip (F V), ``H`` tongue raised (L)."""

SHAPE_CODE: dict[str, int] = {name: code for code, name in enumerate(SHAPES)}
"""Shape letter -> code in a mouth track."""

# The submodules import SHAPES from here, so they are imported after it is defined.
from avatar_engine.visemes.envelope import envelope_track  # noqa: E402
from avatar_engine.visemes.phonemes import ShapeSegment, phoneme_shape, shape_segments  # noqa: E402
from avatar_engine.visemes.track import enforce_min_hold, mouth_track  # noqa: E402

__all__ = [
    "SHAPES",
    "SHAPE_CODE",
    "ShapeSegment",
    "enforce_min_hold",
    "envelope_track",
    "mouth_track",
    "phoneme_shape",
    "shape_segments",
]
