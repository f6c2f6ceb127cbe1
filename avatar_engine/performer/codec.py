"""Frames packed for the trip back from a RabbitMQ worker, and unpacked cheaply here.

A sentence of the flat sprite avatar at 512x512 is about a megabyte per frame raw, and the
broker costs about 3.5 ms per megabyte each way. Consecutive frames differ only where the
mouth, the eyes or the breathing moved: about two frames in three are identical to the one
before, the mouth and eyes change a box of a few thousand pixels, and a breath moves the
whole body up or down a pixel. So a sentence is sent as its first frame plus, for each later
frame, the box that changed since the one before, coded as the difference (XOR) from the
previous frame *moved by a small offset* (a breath becomes a box of zeros but for the mouth).
The first frame and the patches are deflated at level 1, in threads of their own (zlib and
numpy let go of the GIL, so a worker's cores share the packing). Packing and unpacking are
exact; a worker and the app must run the same version of this format.

Unpacking is where the megabytes would be paid again: writing ~100 MB of frames that are
mostly copies of each other costs tens of milliseconds. On Linux, when a frame is a whole
number of memory pages, :func:`unpack_frames` instead writes each distinct page once into a
memory file and maps it at every place in the result where it repeats, copy-on-write: the
result is an ordinary writable ``ndarray`` whose unchanged pages are shared with the frame
before (a write to one frame copies that page first, so frames never alias). Elsewhere it
copies. bench/avatar.py reports the figures.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import mmap
import os
import platform
import sys
import threading
import weakref
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

_SHIFTS: tuple[tuple[int, int], ...] = ((-1, 0), (1, 0), (-2, 0), (2, 0), (0, -1), (0, 1))
"""Offsets ``(dy, dx)`` tried for a large changed box: the previous frame's pixels at
``(y + dy, x + dx)`` moved into it (a breath moves the avatar a pixel or two)."""

_SHIFT_MIN_AREA = 4096
"""Boxes smaller than this (pixels) are only patched, never tried as moves."""

_BOX_FIELDS = 10  # move: y0, y1, x0, x1, dy, dx; patch: y0, y1, x0, x1


@dataclass(frozen=True, slots=True)
class PackedFrames:
    """``uint8`` frames ``[N, H, W, C]``: the first one whole, then each later one as the
    frame before it with a *move* (box ``(y0, y1, x0, x1)`` takes the pixels at offset
    ``(dy, dx)``; empty for most frames) and then a *patch* (a box XORed with data sent)."""

    shape: tuple[int, ...]
    boxes: bytes = field(repr=False)  # int32 [N - 1, 10]: move y0 y1 x0 x1 dy dx, patch y0 y1 x0 x1
    first: bytes = field(repr=False)  # frame 0, deflated
    patches: tuple[bytes, ...] = field(repr=False)
    """Each patch's XOR with the frame under it, in frame order: deflated streams of
    consecutive runs of frames (coded in parallel)."""

    @property
    def raw_bytes(self) -> int:
        return int(np.prod(self.shape))

    @property
    def packed_bytes(self) -> int:
        return len(self.boxes) + len(self.first) + sum(len(p) for p in self.patches)


def _word_view(frames: np.ndarray) -> tuple[np.ndarray, int]:
    """``frames`` as ``[N, H, words]`` of the widest unsigned word a row divides into, and the
    word's size in bytes (fewer, wider elements make the comparison cheaper)."""
    n, h, w, c = frames.shape
    row = w * c
    for size, dtype in ((8, np.uint64), (4, np.uint32), (2, np.uint16)):
        if row % size == 0:
            return frames.reshape(n, h, row).view(dtype), size
    return frames.reshape(n, h, row), 1


def _fits(shape: tuple[int, ...], box: tuple[int, int, int, int], dy: int, dx: int) -> bool:
    y0, y1, x0, x1 = box
    return y0 + dy >= 0 and y1 + dy <= shape[0] and x0 + dx >= 0 and x1 + dx <= shape[1]


def _best_shift(prev: np.ndarray, new_box: np.ndarray, box: tuple[int, int, int, int]
                ) -> tuple[int, int]:
    """The offset whose moved pixels match ``new_box`` best, judged on every 8th row (cheap);
    ``(0, 0)`` unless a move matches better than the frame as it was."""
    y0, y1, x0, x1 = box
    rows = slice(None, None, 8)
    best, best_misses = (0, 0), int(np.count_nonzero(prev[y0:y1, x0:x1][rows] != new_box[rows]))
    for dy, dx in _SHIFTS:
        if not _fits(prev.shape, box, dy, dx):
            continue
        ref = prev[y0 + dy:y1 + dy, x0 + dx:x1 + dx]
        misses = int(np.count_nonzero(ref[rows] != new_box[rows]))
        if misses < best_misses:
            best, best_misses = (dy, dx), misses
            if misses == 0:
                break
    return best


_PIXEL_WORDS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _pixels_differ(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[h, w]``: where two ``[h, w, C]`` boxes differ (one word per pixel where C allows)."""
    word = _PIXEL_WORDS.get(a.shape[2])
    if word is None:
        return (a != b).any(axis=2)
    return a.view(word)[..., 0] != b.view(word)[..., 0]


def _bounds(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The smallest box ``(y0, y1, x0, x1)`` holding every True of a 2-D mask (empty: zeros)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if not len(rows):
        return 0, 0, 0, 0
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    cols = np.flatnonzero(mask[y0:y1].any(axis=0))
    return y0, y1, int(cols[0]), int(cols[-1]) + 1


def _code_segment(frames: np.ndarray, first: int, stop: int, boxes: np.ndarray, level: int
                  ) -> bytes:
    """Code frames ``first..stop-1`` (each against the one before it) into ``boxes`` (row
    ``i - 1`` for frame ``i``); returns their patches, deflated as one stream."""
    _, _, _, c = frames.shape
    words, word = _word_view(frames)
    z = zlib.compressobj(level)
    parts = []
    differs = np.empty(words.shape[1:], bool)
    for i in range(first, stop):
        np.not_equal(words[i], words[i - 1], out=differs)
        if not np.count_nonzero(differs):  # fast: the same frame again (most of them)
            continue
        y0, y1, c0, c1 = _bounds(differs)
        # Word columns to pixels, rounded outward: a box may hold a few unchanged pixels.
        box = (y0, y1, c0 * word // c, -(-c1 * word // c))
        x0, x1 = box[2:]
        prev, new = frames[i - 1], frames[i, y0:y1, x0:x1]
        dy = dx = 0
        if (y1 - y0) * (x1 - x0) >= _SHIFT_MIN_AREA:
            dy, dx = _best_shift(prev, new, box)
        patch, ref = box, prev[y0:y1, x0:x1]
        if dy or dx:
            moved = prev[y0 + dy:y1 + dy, x0 + dx:x1 + dx]
            py0, py1, px0, px1 = _bounds(_pixels_differ(moved, new))
            if (py1 - py0) * (px1 - px0) < (y1 - y0) * (x1 - x0):  # else the move is no help
                patch = (y0 + py0, y0 + py1, x0 + px0, x0 + px1)
                ref = moved[py0:py1, px0:px1]
                boxes[i - 1, :6] = (*box, dy, dx)
        boxes[i - 1, 6:] = patch
        if patch[1] > patch[0]:
            new_patch = frames[i, patch[0]:patch[1], patch[2]:patch[3]]
            parts.append(z.compress(np.bitwise_xor(new_patch, ref).data))
    parts.append(z.flush())
    return b"".join(parts)


def pack_frames(frames: np.ndarray, *, level: int = 1, threads: int | None = None
                ) -> PackedFrames:
    """Blocking: pack ``uint8`` frames ``[N, H, W, C]`` (N >= 1).

    One comparison per frame against the one before, as 64-bit words where a row allows;
    only frames that changed cost more (a large changed box is tried as a move of a few
    offsets, judged on a sample of its rows; what still differs is the patch). The first
    frame's deflate and the comparisons of consecutive runs of frames go to ``threads``
    threads (zlib and numpy let go of the GIL): default one per CPU, at most 4.

    Raises:
        ValueError: not a 4-D array with at least one frame.
    """
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or not len(frames) or 0 in frames.shape:
        raise ValueError(f"expected frames [N>=1, H>=1, W>=1, C>=1], got {frames.shape}")
    n, h, w, c = frames.shape
    boxes = np.zeros((n - 1, _BOX_FIELDS), np.int32)
    threads = max(1, min(threads or os.cpu_count() or 1, 4))
    edges = np.linspace(1, n, min(threads, n - 1) + 1 if n > 1 else 1).round().astype(int)
    segments = list(itertools.pairwise(edges.tolist()))
    if threads == 1:
        first = zlib.compress(frames[0].data, level)
        patches = [_code_segment(frames, a, b, boxes, level) for a, b in segments]
    else:
        with ThreadPoolExecutor(threads, thread_name_prefix="pack") as pool:
            head = pool.submit(zlib.compress, frames[0].data, level)
            coded = [pool.submit(_code_segment, frames, a, b, boxes, level) for a, b in segments]
            first, patches = head.result(), [f.result() for f in coded]
    return PackedFrames(shape=(n, h, w, c), boxes=boxes.tobytes(), first=first,
                        patches=tuple(patches))


class _Residuals:
    """Reads the decompressed patches in order, checking they hold exactly what the boxes
    say."""

    def __init__(self, packed: PackedFrames) -> None:
        try:
            self.first = zlib.decompress(packed.first)
            self._raw = memoryview(b"".join(zlib.decompress(p) for p in packed.patches))
        except zlib.error as e:
            raise ValueError(f"packed frames: corrupt data ({e})") from e
        n, h, w, c = packed.shape
        if len(self.first) != h * w * c:
            raise ValueError(f"packed frames: the first frame has {len(self.first)} bytes, "
                             f"not {h * w * c}")
        self._at = 0

    def first_frame(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.frombuffer(self.first, np.uint8).reshape(shape)

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        size = int(np.prod(shape))
        if self._at + size > len(self._raw):
            raise ValueError(f"packed frames hold {len(self._raw)} bytes of patches, the boxes "
                             "need more")
        out = np.frombuffer(self._raw[self._at:self._at + size], np.uint8).reshape(shape)
        self._at += size
        return out

    def finish(self) -> None:
        if self._at != len(self._raw):
            raise ValueError(f"packed frames hold {len(self._raw)} bytes of patches, the boxes "
                             f"account for {self._at}")


def _checked_boxes(packed: PackedFrames) -> np.ndarray:
    n, h, w, _ = packed.shape
    try:
        boxes = np.frombuffer(packed.boxes, np.int32).reshape(n - 1, _BOX_FIELDS)
    except ValueError as e:
        raise ValueError(f"packed frames: {len(packed.boxes)} bytes of boxes for {n} frames"
                         ) from e
    my0, my1, mx0, mx1, dy, dx, py0, py1, px0, px1 = boxes.T
    ok = ((0 <= my0) & (my0 <= my1) & (my1 <= h) & (0 <= mx0) & (mx0 <= mx1) & (mx1 <= w)
          & (my0 + dy >= 0) & (my1 + dy <= h) & (mx0 + dx >= 0) & (mx1 + dx <= w)
          & (0 <= py0) & (py0 <= py1) & (py1 <= h) & (0 <= px0) & (px0 <= px1) & (px1 <= w))
    if not ok.all():
        raise ValueError(f"packed frames: box {int(np.flatnonzero(~ok)[0]) + 1} leaves the frame")
    return boxes


def _apply(frame: np.ndarray, box: np.ndarray, residuals: _Residuals) -> None:
    """Turn ``frame`` (the previous frame) into the next one in place."""
    my0, my1, mx0, mx1, dy, dx, py0, py1, px0, px1 = box.tolist()
    if my1 > my0 and mx1 > mx0:
        # A copy first: the source overlaps the box it is written into.
        frame[my0:my1, mx0:mx1] = frame[my0 + dy:my1 + dy, mx0 + dx:mx1 + dx].copy()
    if py1 > py0 and px1 > px0:
        patch = frame[py0:py1, px0:px1]
        np.bitwise_xor(patch, residuals.take(patch.shape), out=patch)


def _changed_rows(box: np.ndarray) -> tuple[int, int]:
    """The rows ``[y0, y1)`` of a frame a box row of :func:`_checked_boxes` writes."""
    my0, my1, mx0, mx1, _, _, py0, py1, px0, px1 = box.tolist()
    spans = [(a, b) for a, b, empty in ((my0, my1, mx1 <= mx0), (py0, py1, px1 <= px0))
             if b > a and not empty]
    if not spans:
        return 0, 0
    return min(a for a, _ in spans), max(b for _, b in spans)


def unpack_frames(packed: PackedFrames, *, share_pages: bool = True) -> np.ndarray:
    """Blocking: the frames :func:`pack_frames` packed, bit for bit, as a writable array.

    Args:
        packed: what :func:`pack_frames` returned.
        share_pages: on Linux, map repeated memory pages instead of copying them (see the
            module's docstring); False always copies.

    Raises:
        ValueError: ``packed`` is corrupt (its boxes and data disagree).
    """
    if len(packed.shape) != 4 or not packed.shape[0] or 0 in packed.shape:
        raise ValueError(f"packed frames: bad shape {packed.shape}")
    boxes = _checked_boxes(packed)
    if share_pages and _PageMapper.usable(packed.shape):
        try:
            return _PageMapper(packed.shape).unpack(boxes, _Residuals(packed))
        except _MapFailed as e:  # out of map areas, or a kernel that refuses: copy instead
            logger.debug("page-shared unpacking failed (%s); copying", e)
    return _unpack_copying(packed.shape, boxes, _Residuals(packed))


def _unpack_copying(shape: tuple[int, ...], boxes: np.ndarray, residuals: _Residuals
                    ) -> np.ndarray:
    n, h, w, c = shape
    frames = np.empty(shape, np.uint8)
    frames[0] = residuals.first_frame((h, w, c))
    for i in range(1, n):
        frames[i] = frames[i - 1]
        _apply(frames[i], boxes[i - 1], residuals)
    residuals.finish()
    return frames


class _MapFailed(Exception):
    pass


class _PageMapper:
    """Builds one unpacked sentence whose repeated pages are mapped, not copied (Linux).

    Frame ``i``'s page ``k`` is either the page ``k`` of frame ``i - 1`` (untouched by the
    box) or a new page written once into a memory file (``memfd``). The result is reserved as
    one anonymous mapping, and each run of consecutive pages is mapped over it from the file,
    private (copy-on-write). Dropping the array unmaps the lot and frees the file.
    """

    MAX_RUNS = 8192
    """Mappings one sentence may take: more than that, and the sentence is copied instead."""

    LIVE_RUNS_SHARE = 0.5
    """Share of the process's map areas (``vm.max_map_count``, ~65k by default) that the
    sentences alive at once may take; beyond it, sentences are copied until some are freed."""

    _MAP_FIXED = 0x10  # <sys/mman.h> on x86-64 and arm64 Linux
    _libc: Any = None
    # The map areas are the process's, so their count is too: one tally for all mappers.
    _live_runs = 0
    _live_lock = threading.Lock()
    _live_budget: int | None = None

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.n, self.h, self.w, self.c = shape
        self.frame_bytes = self.h * self.w * self.c
        self.page = mmap.PAGESIZE
        self.pages_per_frame = self.frame_bytes // self.page

    @classmethod
    def usable(cls, shape: tuple[int, ...]) -> bool:
        n, h, w, c = shape
        return (
            n > 1
            and sys.platform.startswith("linux")
            and platform.machine() in ("x86_64", "aarch64")
            and hasattr(os, "memfd_create")
            and (h * w * c) % mmap.PAGESIZE == 0
        )

    @classmethod
    def _mmap(cls) -> Any:
        if cls._libc is None:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.mmap.restype = ctypes.c_void_p
            libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                                  ctypes.c_int, ctypes.c_long]
            cls._libc = libc
        return cls._libc.mmap

    def _touched_pages(self, box: np.ndarray) -> tuple[int, int]:
        """The pages ``[k0, k1)`` of a frame that hold the rows a box row changes."""
        y0, y1 = _changed_rows(box)
        row = self.w * self.c
        return y0 * row // self.page, -(-y1 * row // self.page)

    def unpack(self, boxes: np.ndarray, residuals: _Residuals) -> np.ndarray:
        ppf = self.pages_per_frame
        touched = [self._touched_pages(b) for b in boxes]
        # Where each page of each frame comes from, as a page index in the memory file.
        source = np.empty((self.n, ppf), np.int64)
        source[0] = np.arange(ppf)
        file_pages = ppf
        for i, (k0, k1) in enumerate(touched, start=1):
            source[i] = source[i - 1]
            source[i, k0:k1] = np.arange(file_pages, file_pages + k1 - k0)
            file_pages += k1 - k0
        flat = source.reshape(-1)
        starts = np.flatnonzero(np.diff(flat) != 1) + 1
        runs = len(starts) + 1
        if runs > self.MAX_RUNS:
            raise _MapFailed(f"{runs} mappings needed")
        self._reserve(runs)
        try:
            return self._build(boxes, residuals, touched, file_pages, flat, starts)
        except BaseException:
            self._release(runs)
            raise

    @classmethod
    def _reserve(cls, runs: int) -> None:
        with cls._live_lock:
            if cls._live_budget is None:
                try:
                    limit = int(Path("/proc/sys/vm/max_map_count").read_text())
                except (OSError, ValueError):
                    limit = 65530
                cls._live_budget = int(limit * cls.LIVE_RUNS_SHARE)
            if cls._live_runs + runs > cls._live_budget:
                raise _MapFailed(f"{cls._live_runs} mappings held by live sentences")
            cls._live_runs += runs

    @classmethod
    def _release(cls, runs: int) -> None:
        with cls._live_lock:
            cls._live_runs -= runs

    def _build(self, boxes: np.ndarray, residuals: _Residuals, touched: list[tuple[int, int]],
               file_pages: int, flat: np.ndarray, starts: np.ndarray) -> np.ndarray:
        page = self.page
        fd = os.memfd_create("vstage-frames", os.MFD_CLOEXEC)
        try:
            # Written with pwrite: the kernel fills the file's pages without page faults.
            current = residuals.first_frame((self.h, self.w, self.c)).copy()  # frame i
            flat_current = current.reshape(-1)
            self._write(fd, flat_current, 0)
            at = self.frame_bytes
            for box, (k0, k1) in zip(boxes, touched, strict=True):
                if k1 > k0:
                    _apply(current, box, residuals)
                    self._write(fd, flat_current[k0 * page:k1 * page], at)
                    at += (k1 - k0) * page
            residuals.finish()
            return self._map(fd, flat, starts)
        finally:
            os.close(fd)

    @staticmethod
    def _write(fd: int, data: np.ndarray, offset: int) -> None:
        view = memoryview(data.data)
        while len(view):
            done = os.pwrite(fd, view, offset)
            view, offset = view[done:], offset + done

    def _map(self, fd: int, flat: np.ndarray, starts: np.ndarray) -> np.ndarray:
        page = self.page
        total = self.n * self.frame_bytes
        region = mmap.mmap(-1, total, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        out = np.frombuffer(region, np.uint8)  # holds the region until the array is dropped
        base = out.ctypes.data
        mmap_ = self._mmap()
        bounds = np.concatenate(([0], starts, [len(flat)])).tolist()
        file_pages = flat[bounds[:-1]].tolist()
        prot, flags = mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | self._MAP_FIXED
        for lo, hi, src in zip(bounds[:-1], bounds[1:], file_pages, strict=True):
            addr = base + lo * page
            got = mmap_(addr, (hi - lo) * page, prot, flags, fd, src * page)
            if got != addr:
                err = ctypes.get_errno()
                del out
                region.close()
                raise _MapFailed(os.strerror(err) if err else "mmap moved the mapping")
        # The region (and every page mapped over it) lives until the last array on it goes.
        weakref.finalize(region, self._release, len(starts) + 1)
        return out.reshape(self.n, self.h, self.w, self.c)
