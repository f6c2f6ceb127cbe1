"""Frames packed for the trip back from a RabbitMQ worker.

A sentence of the flat sprite avatar at 512x512 is about a megabyte per frame raw, and the
broker round trip costs about 8 ms per megabyte; consecutive frames differ only where the
mouth, the eyes or the breathing moved, so each frame is sent as its difference from the one
before (byte-wise, modulo 256) and the whole run is deflated at level 1: mostly zeros, it
packs to a few percent and deflates fast. See bench/avatar.py for the figures.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class PackedFrames:
    """``uint8`` frames ``[N, H, W, C]`` as deflated frame-to-frame differences."""

    shape: tuple[int, ...]
    data: bytes = field(repr=False)

    @property
    def raw_bytes(self) -> int:
        return int(np.prod(self.shape))


def pack_frames(frames: np.ndarray, *, level: int = 1) -> PackedFrames:
    """Blocking: pack ``uint8`` frames ``[N, ...]``."""
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    deltas = frames.copy()
    if len(frames) > 1:
        np.subtract(frames[1:], frames[:-1], out=deltas[1:])  # wraps modulo 256
    return PackedFrames(shape=tuple(int(s) for s in frames.shape),
                        data=zlib.compress(deltas.data, level))


def unpack_frames(packed: PackedFrames) -> np.ndarray:
    """Blocking: the frames :func:`pack_frames` packed, bit for bit."""
    raw = zlib.decompress(packed.data, bufsize=max(packed.raw_bytes, 1))
    frames = np.frombuffer(raw, dtype=np.uint8).reshape(packed.shape).copy()
    if len(frames) > 1:
        np.cumsum(frames, axis=0, dtype=np.uint8, out=frames)  # undoes the wrapped differences
    return frames
