"""Phoneme timings to a per-frame mouth track, with the coarticulation a viewer expects:
shapes held long enough to read, lips that visibly close on p/b/m, and shapes that move a
little before the sound they belong to."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence

import numpy as np

from avatar_engine.types import PhonemeTiming
from avatar_engine.visemes import SHAPE_CODE
from avatar_engine.visemes.phonemes import shape_segments

logger = logging.getLogger(__name__)

_X = SHAPE_CODE["X"]
_A = SHAPE_CODE["A"]


def min_hold_frames(min_hold_s: float, fps: int) -> int:
    """Shortest run, in frames, a shape is held: ``min_hold_s`` but never under 2 frames."""
    return max(2, round(min_hold_s * fps))


def enforce_min_hold(
    codes: np.ndarray, min_frames: int, *, keep: Iterable[int] = (_A,)
) -> np.ndarray:
    """Merge runs shorter than ``min_frames`` into a neighbouring run.

    Runs of a shape in ``keep`` (closures) and rest (``X``) runs at either edge are kept
    however short. A short run is absorbed by the neighbour that is a spoken shape rather than
    rest or a closure, the longer one when both are, the following one on a tie (the mouth
    anticipates).

    Args:
        codes: 1-D array of shape codes.
        min_frames: shortest run to keep.
        keep: shape codes whose runs are never merged away.

    Returns:
        A new ``int8`` array of the same length.
    """
    codes = np.asarray(codes, dtype=np.int8)
    if codes.size == 0 or min_frames <= 1:
        return codes.copy()
    keep_set = frozenset(int(k) for k in keep)
    change = np.flatnonzero(np.diff(codes)) + 1
    starts = np.concatenate(([0], change))
    lengths = np.diff(np.concatenate((starts, [codes.size])))
    runs: list[list[int]] = [[int(codes[s]), int(n)] for s, n in zip(starts, lengths, strict=True)]

    def protected(i: int) -> bool:
        code = runs[i][0]
        return code in keep_set or (code == _X and (i == 0 or i == len(runs) - 1))

    def rank(j: int) -> tuple[int, int]:
        code = runs[j][0]
        tier = 2 if code in keep_set else 1 if code == _X else 0
        return (tier, -runs[j][1])

    while len(runs) > 1:
        short = [i for i in range(len(runs)) if runs[i][1] < min_frames and not protected(i)]
        if not short:
            break
        i = min(short, key=lambda k: runs[k][1])
        neighbours = [j for j in (i + 1, i - 1) if 0 <= j < len(runs)]  # right first: ties
        j = min(neighbours, key=rank)
        runs[j][1] += runs[i][1]
        del runs[i]
        # Removing run i made runs i-1 and i (formerly i+1) adjacent: join them if equal.
        if 0 < i < len(runs) and runs[i - 1][0] == runs[i][0]:
            runs[i - 1][1] += runs[i][1]
            del runs[i]
    return np.repeat(np.array([r[0] for r in runs], dtype=np.int8), [r[1] for r in runs]).astype(
        np.int8
    )


def mouth_track(
    phonemes: Sequence[PhonemeTiming],
    *,
    n_frames: int,
    fps: int,
    anticipation_s: float = 0.03,
    min_hold_s: float = 0.08,
    pause_close_s: float = 0.12,
    contacts: str = "AG",
) -> np.ndarray:
    """Mouth shape of every video frame, from the voice's phoneme timings.

    The timeline is sampled at frame centres (``(i + 0.5) / fps``) after these adjustments:

    * stress/length marks folded in and pauses handled as in
      :func:`~avatar_engine.visemes.phonemes.shape_segments`;
    * anticipation: every change to a spoken shape happens ``anticipation_s`` earlier (never
      taking more than half of the previous segment); closing to rest is not anticipated;
    * contacts: every ``A`` (lips closed on p/b/m) and ``G`` (teeth on lip for f/v) shows on
      at least one frame, even when shorter than a frame, and may last a single frame;
    * smoothing: no other shape is held for less than ``min_hold_s`` (at least 2 frames);
    * frames before the first and after the last phoneme are rest (``X``).

    Args:
        phonemes: phoneme timings in seconds from the start of the sentence.
        n_frames: number of frames to produce (usually ``frame_count(duration, fps)``).
        fps: video frame rate.
        anticipation_s: how early the mouth moves to the coming shape.
        min_hold_s: shortest time any non-closure shape is held.
        pause_close_s: pauses inside speech up to this long keep the mouth moving.
        contacts: shape letters that always show and may last one frame.

    Returns:
        ``int8`` array of ``n_frames`` codes into :data:`avatar_engine.visemes.SHAPES`.
    """
    if n_frames <= 0:
        return np.zeros(0, dtype=np.int8)
    codes = np.full(n_frames, _X, dtype=np.int8)
    segments = shape_segments(phonemes, pause_close_s=pause_close_s)
    if not segments:
        return codes

    starts = np.array([s.start for s in segments], dtype=np.float64)
    ends = np.array([s.end for s in segments], dtype=np.float64)
    shapes = np.array([SHAPE_CODE[s.shape] for s in segments], dtype=np.int8)

    # Anticipation: move each onset of a spoken shape a little earlier.
    if anticipation_s > 0 and len(segments) > 1:
        for i in range(1, len(segments)):
            if shapes[i] == _X:
                continue
            earliest = starts[i - 1] + 0.5 * (ends[i - 1] - starts[i - 1])
            starts[i] = max(starts[i] - anticipation_s, earliest)
            ends[i - 1] = starts[i]

    centres = (np.arange(n_frames, dtype=np.float64) + 0.5) / fps
    idx = np.searchsorted(starts, centres, side="right") - 1
    inside = (idx >= 0) & (centres < ends[-1])
    codes[inside] = shapes[idx[inside]]

    # Contacts: a p/b/m (or f/v) shorter than a frame may fall between two frame centres; put
    # it on the frame it overlaps most so the lips visibly meet.
    keep = [SHAPE_CODE[c] for c in contacts]
    for c in np.flatnonzero(np.isin(shapes, keep)):
        f0 = max(0, math.floor(starts[c] * fps))
        f1 = min(n_frames, math.ceil(ends[c] * fps))
        if f0 >= n_frames or f1 <= f0 or (codes[f0:f1] == shapes[c]).any():
            continue
        frames = np.arange(f0, f1)
        overlap = np.minimum(ends[c], (frames + 1) / fps) - np.maximum(starts[c], frames / fps)
        codes[frames[int(np.argmax(overlap))]] = shapes[c]

    return enforce_min_hold(codes, min_hold_frames(min_hold_s, fps), keep=keep)
