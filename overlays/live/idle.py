"""Idle pictures shared by every live stream of one persona renderer (private ``/talk``
conversations: many streams, one avatar).

The sprite avatar's idle frame at a frame index is one of a few pictures, fixed by the eye
state and the breathing lift at that index, both cheap formulas of the index. An
:class:`IdleSource` computes those per index, draws each distinct picture once (and hashes it
once, for the encoders' caches), and hands every stream the same arrays: a stream shows its
own frame indices (its own clock, its own blinks) without rendering or hashing anything. It
also keeps what is derived from the pictures once for all streams (the encoded idle packets
of :class:`~overlays.live.encoder.IdlePacketCache`), in :meth:`IdleSource.shared`.

:class:`SharedIdleRenderer` is the persona's renderer with its idle frames taken from the
source: a session's performer built on it advances its clock for idle frames at the cost of
a lookup (speech is still rendered by the persona's renderer).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
import torch

from avatar_engine.performer.render import to_cpu_frames
from avatar_engine.renderers.base import Renderer
from avatar_engine.types import Speech

__all__ = ["IdleFrame", "IdleKeyed", "IdleSource", "SharedIdleRenderer", "picture_key"]

logger = logging.getLogger(__name__)

IdleFrame = tuple[np.ndarray, int]
"""An idle picture (``uint8`` RGBA ``[H, W, 4]``, shared: read only) and its content key."""

T = TypeVar("T")

_CHUNK = 256  # frame indices whose picture codes are computed together
_CHUNKS_KEPT = 512  # chunks remembered (streams at different clocks use different chunks)
_LIFT_CODES = 1 << 16  # picture code: eye state * _LIFT_CODES + breathing lift


@runtime_checkable
class IdleKeyed(Protocol):
    """A renderer whose idle picture at a frame index is fixed by its eye state and its
    breathing lift there (the sprite renderer and its subclasses): which idle frames look the
    same is known without drawing them."""

    def eye_states(self, start_frame: int, n_frames: int) -> np.ndarray: ...

    def breath_offsets(self, start_frame: int, n_frames: int) -> np.ndarray: ...


@runtime_checkable
class _Closable(Protocol):
    def close(self) -> None: ...


class _KeyedRenderer(Renderer, IdleKeyed, Protocol):
    """What a source needs: a renderer that is :class:`IdleKeyed`."""


def picture_key(rgba: np.ndarray) -> int:
    """The content key of a picture: equal pixels, equal key (a 64-bit BLAKE2b digest)."""
    data = np.ascontiguousarray(rgba)
    return int.from_bytes(hashlib.blake2b(data.data, digest_size=8).digest(), "little")


class IdleSource:
    """The idle pictures of one renderer, drawn once and shared by every stream of it.

    Thread-safe. :meth:`frames_at` never draws (a stream calls it on the event loop);
    :meth:`prepare` draws the pictures a range of indices needs (on a thread).

    Args:
        renderer: the persona's renderer; must be :class:`IdleKeyed`
            (:meth:`for_renderer` says whether one is).
    """

    def __init__(self, renderer: Renderer) -> None:
        if not isinstance(renderer, IdleKeyed):
            raise TypeError(f"{type(renderer).__name__} cannot tell its idle pictures apart "
                            "without drawing them (no eye_states / breath_offsets)")
        self.renderer: _KeyedRenderer = renderer
        self.fps = int(renderer.fps)
        self.size: tuple[int, int] = (int(renderer.size[0]), int(renderer.size[1]))
        self._lock = threading.Lock()
        self._draw_lock = threading.Lock()  # one picture drawn at a time (each drawn once)
        self._codes: OrderedDict[int, np.ndarray] = OrderedDict()  # chunk -> picture codes
        self._pictures: dict[int, IdleFrame] = {}  # picture code -> the picture
        self._shared: dict[Hashable, Any] = {}
        # Counters, for tests and the benchmark.
        self.drawn = 0  # pictures drawn (renderer.idle calls)
        self.served = 0  # frames handed out

    @staticmethod
    def for_renderer(renderer: Renderer) -> IdleSource | None:
        """A source for ``renderer``, or None when its idle pictures cannot be shared."""
        return IdleSource(renderer) if isinstance(renderer, IdleKeyed) else None

    @property
    def pictures(self) -> int:
        """Distinct idle pictures drawn so far."""
        return len(self._pictures)

    def drawn_pictures(self) -> list[IdleFrame]:
        """Every idle picture drawn so far (to warm a cache up front)."""
        with self._draw_lock:
            return list(self._pictures.values())

    # --- picture codes ------------------------------------------------------------------------

    def _chunk(self, q: int) -> np.ndarray:
        with self._lock:
            codes = self._codes.get(q)
            if codes is not None:
                self._codes.move_to_end(q)
                return codes
        start = q * _CHUNK
        eyes = np.asarray(self.renderer.eye_states(start, _CHUNK), np.int64)
        lifts = np.asarray(self.renderer.breath_offsets(start, _CHUNK), np.int64)
        if lifts.size and lifts.min() < 0:
            raise ValueError("breathing lifts must not be negative")
        if lifts.size and (lifts.min() < 0 or lifts.max() >= _LIFT_CODES):
            raise ValueError(f"breathing lifts must lie in 0..{_LIFT_CODES - 1}")
        codes = eyes * _LIFT_CODES + lifts
        with self._lock:
            self._codes[q] = codes
            while len(self._codes) > _CHUNKS_KEPT:
                self._codes.popitem(last=False)
        return codes

    def codes(self, start: int, n: int) -> np.ndarray:
        """The picture code of frames ``start .. start + n - 1`` (equal code: equal picture)."""
        if start < 0 or n < 0:
            raise ValueError(f"frame range must not be negative, got {start} +{n}")
        parts = []
        i, end = start, start + n
        while i < end:
            q, r = divmod(i, _CHUNK)
            take = min(_CHUNK - r, end - i)
            parts.append(self._chunk(q)[r: r + take])
            i += take
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    # --- pictures ----------------------------------------------------------------------------

    def frames_at(self, start: int, n: int = 1) -> list[IdleFrame] | None:
        """The idle frames ``start .. start + n - 1`` if every picture they show is drawn
        already, else None (call :meth:`prepare`). Never draws; cheap."""
        out = []
        for code in self.codes(start, n).tolist():
            picture = self._pictures.get(code)
            if picture is None:
                return None
            out.append(picture)
        self.served += n
        return out

    def prepare(self, start: int, n: int) -> None:
        """Blocking: draw every picture that frames ``start .. start + n - 1`` show and that
        is not drawn yet (each distinct picture is drawn once, whoever asks)."""
        codes = self.codes(start, n)
        uniq, first = np.unique(codes, return_index=True)
        for code, at in zip(uniq.tolist(), first.tolist(), strict=True):
            if code in self._pictures:
                continue
            with self._draw_lock:
                if code in self._pictures:
                    continue
                frames = to_cpu_frames(self.renderer.idle(1, start_frame=start + at))
                rgba = np.array(frames[0], dtype=np.uint8, order="C", copy=True)
                self._pictures[code] = (rgba, picture_key(rgba))
                self.drawn += 1

    def idle(self, n: int, start: int) -> np.ndarray:
        """Blocking: frames ``start .. start + n - 1`` as ``uint8`` RGBA ``[n, H, W, 4]``
        (drawn first when needed). One frame is a view of the shared picture (no copy)."""
        if n <= 0:
            w, h = self.size
            return np.zeros((0, h, w, 4), np.uint8)
        got = self.frames_at(start, n)
        if got is None:
            self.prepare(start, n)
            got = self.frames_at(start, n)
            assert got is not None  # every picture is drawn now, and never forgotten
        if n == 1:
            return got[0][0][None]
        return np.stack([rgba for rgba, _ in got])

    # --- what streams share ------------------------------------------------------------------

    def shared(self, key: Hashable, make: Callable[[], T]) -> T:
        """The one object under ``key`` made from these pictures for every stream (an
        encoder's idle packet cache per encoder settings); ``make()`` runs once per key."""
        with self._lock:
            if key not in self._shared:
                self._shared[key] = make()
            value: T = self._shared[key]
            return value

    def close(self) -> None:
        """Close what was made with :meth:`shared` that has a ``close`` (idempotent)."""
        with self._lock:
            items, self._shared = list(self._shared.values()), {}
        for item in items:
            if isinstance(item, _Closable):
                item.close()


class SharedIdleRenderer:
    """A persona's renderer whose idle frames come from an :class:`IdleSource` (the same
    pixels, looked up instead of drawn); speech is rendered by the source's renderer.

    Implements :class:`~avatar_engine.renderers.base.Renderer`.
    """

    def __init__(self, source: IdleSource) -> None:
        self.source = source
        self.inner: Renderer = source.renderer
        self.size: tuple[int, int] = source.size
        self.fps: int = source.fps
        self.device: torch.device = source.renderer.device

    def render(self, speech: Speech, *, start_frame: int = 0) -> torch.Tensor:
        return self.inner.render(speech, start_frame=start_frame)

    def idle(self, n_frames: int, *, start_frame: int = 0) -> torch.Tensor:
        frames = torch.from_numpy(self.source.idle(max(0, n_frames), start_frame))
        return frames if self.device.type == "cpu" else frames.to(self.device)
