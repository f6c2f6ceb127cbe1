"""Frames packed for the trip back from a RabbitMQ worker.

A sentence of the flat sprite avatar at 512x512 is about a megabyte per frame raw, and the
broker round trip costs about 8 ms per megabyte. Consecutive frames differ only where the
mouth, the eyes or the breathing moved (about three frames in four are identical to the one
before, and the changed box averages a few percent of the frame), so a sentence is sent as its
first frame plus, for each later frame, the box that changed since the one before; the lot is
deflated at level 1. Packing and unpacking are exact. bench/avatar.py reports the figures.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class PackedFrames:
    """``uint8`` frames ``[N, H, W, C]``: the first one whole, then each later one as the box
    ``(y0, y1, x0, x1)`` that changed since the frame before it (empty when none did)."""

    shape: tuple[int, ...]
    boxes: bytes = field(repr=False)  # int32 [N - 1, 4]
    data: bytes = field(repr=False)  # deflated: frame 0, then each box's pixels in order

    @property
    def raw_bytes(self) -> int:
        return int(np.prod(self.shape))

    @property
    def packed_bytes(self) -> int:
        return len(self.boxes) + len(self.data)


def _changed_box(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int, int]:
    """The smallest box outside which frames ``a`` and ``b`` (``[H, W, C]``) are equal."""
    differs = (a != b).any(axis=2)
    rows = np.flatnonzero(differs.any(axis=1))
    if not len(rows):
        return 0, 0, 0, 0
    cols = np.flatnonzero(differs[rows[0]:rows[-1] + 1].any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def pack_frames(frames: np.ndarray, *, level: int = 1) -> PackedFrames:
    """Blocking: pack ``uint8`` frames ``[N, H, W, C]`` (N >= 1)."""
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or not len(frames):
        raise ValueError(f"expected frames [N>=1, H, W, C], got {frames.shape}")
    # Compared as one 32-bit word per RGBA pixel: a quarter of the element-wise work.
    words = frames.view(np.uint32) if frames.shape[3] == 4 else frames
    boxes = np.zeros((len(frames) - 1, 4), np.int32)
    z = zlib.compressobj(level)
    parts = [z.compress(frames[0].data)]
    for i in range(1, len(frames)):
        y0, y1, x0, x1 = boxes[i - 1] = _changed_box(words[i], words[i - 1])
        if y1 > y0:
            parts.append(z.compress(np.ascontiguousarray(frames[i, y0:y1, x0:x1]).data))
    parts.append(z.flush())
    return PackedFrames(shape=tuple(int(s) for s in frames.shape), boxes=boxes.tobytes(),
                        data=b"".join(parts))


def unpack_frames(packed: PackedFrames) -> np.ndarray:
    """Blocking: the frames :func:`pack_frames` packed, bit for bit."""
    n, h, w, c = packed.shape
    raw = memoryview(zlib.decompress(packed.data))
    boxes = np.frombuffer(packed.boxes, np.int32).reshape(-1, 4)
    frames = np.empty(packed.shape, np.uint8)
    at = h * w * c
    frames[0] = np.frombuffer(raw[:at], np.uint8).reshape(h, w, c)
    for i in range(1, n):
        frames[i] = frames[i - 1]
        y0, y1, x0, x1 = (int(v) for v in boxes[i - 1])
        size = (y1 - y0) * (x1 - x0) * c
        if size:
            frames[i, y0:y1, x0:x1] = np.frombuffer(raw[at:at + size], np.uint8).reshape(
                y1 - y0, x1 - x0, c)
            at += size
    if at != len(raw):
        raise ValueError(f"packed frames hold {len(raw)} bytes, the boxes account for {at}")
    return frames
