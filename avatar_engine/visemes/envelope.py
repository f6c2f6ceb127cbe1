"""Loudness to a per-frame mouth track, for voices that give no phoneme timings: the louder the
frame, the wider the mouth (rest -> B -> C -> D), with a noise gate and hysteresis so the mouth
neither flutters on noise nor chatters between two shapes."""

from __future__ import annotations

import logging

import numpy as np

from avatar_engine.visemes import SHAPE_CODE
from avatar_engine.visemes.track import enforce_min_hold, min_hold_frames

logger = logging.getLogger(__name__)

_X, _A, _B = SHAPE_CODE["X"], SHAPE_CODE["A"], SHAPE_CODE["B"]

# (switch up above, switch down below) on the normalised level, one pair per step
# rest -> B -> C -> D. The gap between the two is the hysteresis.
_STEPS: tuple[tuple[float, float], ...] = ((0.05, 0.0), (0.6, 0.5), (0.88, 0.8))


def frame_rms(audio: np.ndarray, sample_rate: int, *, n_frames: int, fps: int) -> np.ndarray:
    """RMS of the samples under each video frame (0 past the end of the audio).

    Args:
        audio: mono samples, float in [-1, 1] or integer PCM; a 2-D ``[samples, channels]``
            array is averaged to mono.
        sample_rate: samples per second.
        n_frames: number of frames.
        fps: video frame rate.

    Returns:
        ``float64`` array of ``n_frames`` RMS values in full-scale units.
    """
    x = np.asarray(audio)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float64) / float(np.iinfo(x.dtype).max)
    else:
        x = x.astype(np.float64, copy=False)
    if x.ndim == 2:
        x = x.mean(axis=1)
    elif x.ndim != 1:
        raise ValueError(f"audio must be 1-D (mono) or [samples, channels], got {x.shape}")
    energy = np.concatenate(([0.0], np.cumsum(x * x)))
    bounds = np.round(np.arange(n_frames + 1) * (sample_rate / fps)).astype(np.int64)
    bounds = np.clip(bounds, 0, x.size)
    counts = np.diff(bounds)
    sums = energy[bounds[1:]] - energy[bounds[:-1]]
    return np.sqrt(np.maximum(sums, 0.0) / np.maximum(counts, 1))


def _hysteresis(level: np.ndarray, up: float, down: float) -> np.ndarray:
    """Boolean state that turns on above ``up``, off below ``down`` and otherwise holds."""
    decided = (level > up) | (level < down)
    last = np.maximum.accumulate(np.where(decided, np.arange(level.size), -1))
    return np.where(last >= 0, level[np.maximum(last, 0)] > up, False)


def envelope_track(
    audio: np.ndarray,
    sample_rate: int,
    *,
    n_frames: int,
    fps: int,
    gate_db: float = -50.0,
    range_db: float = 30.0,
    min_hold_s: float = 0.08,
    pause_close_s: float = 0.12,
) -> np.ndarray:
    """Mouth shape of every video frame, from the loudness of the audio.

    Each frame's RMS is converted to dB, lightly smoothed and normalised between a noise gate
    and the clip's loud level (its 90th percentile of voiced frames): the gate is
    ``max(gate_db, loud - range_db)``. The level then picks rest, ``B``, ``C`` or ``D`` with
    hysteresis. Silent frames are rest (``X``), except short silences (``<= pause_close_s``)
    between voiced frames, which close the lips (``A``) like a consonant would. Shapes are
    held at least ``min_hold_s``.

    Args:
        audio: mono samples (float in [-1, 1] or integer PCM).
        sample_rate: samples per second.
        n_frames: number of frames to produce.
        fps: video frame rate.
        gate_db: absolute noise gate in dBFS; quieter frames are silent.
        range_db: loudness range mapped from closed to wide open.
        min_hold_s: shortest time a shape is held (at least 2 frames).
        pause_close_s: silences inside speech up to this long show closed lips instead of rest.

    Returns:
        ``int8`` array of ``n_frames`` codes into :data:`avatar_engine.visemes.SHAPES`.
    """
    if n_frames <= 0:
        return np.zeros(0, dtype=np.int8)
    rms = frame_rms(audio, sample_rate, n_frames=n_frames, fps=fps)
    raw_db = 20.0 * np.log10(np.maximum(rms, 1e-10))
    voiced = raw_db > gate_db
    if not voiced.any():
        return np.full(n_frames, _X, dtype=np.int8)
    loud = float(np.percentile(raw_db[voiced], 90))
    gate = max(gate_db, loud - range_db)
    loud = max(loud, gate + 6.0)  # a near-silent clip must not be blown up to a wide mouth

    # Smooth in dB with silence floored just under the gate: a one-frame dip is bridged, a
    # real gap of two frames or more still closes the mouth.
    db = np.maximum(raw_db, gate - 10.0)
    padded = np.pad(db, 1, mode="edge")
    db = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
    level = (db - gate) / (loud - gate)

    steps = sum(_hysteresis(level, up, down).astype(np.int8) for up, down in _STEPS)
    codes = np.where(steps > 0, _B + steps - 1, _X).astype(np.int8)

    # Short silences between voiced frames close the lips instead of resting.
    silent = codes == _X
    edges = np.flatnonzero(np.diff(np.concatenate(([0], silent.astype(np.int8), [0]))))
    run_starts, run_ends = edges[::2], edges[1::2]
    max_gap = max(1, round(pause_close_s * fps))
    inner = (run_starts > 0) & (run_ends < n_frames) & (run_ends - run_starts <= max_gap)
    marks = np.zeros(n_frames + 1, dtype=np.int32)
    np.add.at(marks, run_starts[inner], 1)
    np.add.at(marks, run_ends[inner], -1)
    codes[np.cumsum(marks[:-1]) > 0] = _A
    return enforce_min_hold(codes, min_hold_frames(min_hold_s, fps))
