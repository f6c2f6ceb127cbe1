"""Helpers of the voice tests: the mouth track a renderer would draw for a Speech (from its
phoneme timings, else from its loudness), how much that mouth moves, and test sentences."""

from __future__ import annotations

import numpy as np

from avatar_engine.types import Speech, frame_count
from avatar_engine.visemes import SHAPE_CODE, SHAPES, envelope_track, mouth_track

FPS = 25

GERMAN = "Guten Morgen! Möchtest du heute über das Wetter in München sprechen?"
FRENCH = "Bonjour tout le monde, on va parler du temps qu'il fait à Paris."
SPANISH = "Buenos días, señor. ¿Vamos a hablar del tiempo en Madrid?"


def mouth_of(speech: Speech, fps: int = FPS) -> np.ndarray:
    """What the sprite renderer shows for ``speech`` (SpriteRenderer.mouth_codes' rule)."""
    n = frame_count(speech.duration, fps)
    if speech.phonemes is not None:
        return mouth_track(speech.phonemes, n_frames=n, fps=fps)
    return envelope_track(speech.audio, speech.sample_rate, n_frames=n, fps=fps)


def assert_mouth_moves(codes: np.ndarray) -> None:
    """A talking mouth: several shapes, many changes, open most of the time, rest at the end."""
    letters = "".join(SHAPES[c] for c in codes.tolist())
    changes = int((np.diff(codes) != 0).sum())
    spoken = float((codes != SHAPE_CODE["X"]).mean())
    assert len(set(letters)) >= 4, letters
    assert changes >= max(6, len(codes) // 12), letters
    assert spoken > 0.5, letters
    assert letters[-1] in "XA", letters
