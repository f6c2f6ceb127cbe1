"""The sprite (PNGtuber) renderer: composites a sprite set's body, eyes and mouth shapes in torch,
lip-synced from phoneme timings or the audio loudness, with deterministic blinking and
breathing so consecutive clips and the idle loop join seamlessly.

Every frame is one of a few states (mouth shape x eye state) shifted up by a whole-pixel
breathing offset. Each state is composited once, batched, into an atlas kept on the device;
a clip is then a single row gather from that atlas, which also applies the breathing shift.
"""

from __future__ import annotations

import ctypes
import logging
import math
import sys
import threading
from pathlib import Path

import numpy as np
import torch

from avatar_engine.device import pick_device
from avatar_engine.renderers.spriteset import SpriteSet
from avatar_engine.settings import AvatarSettings
from avatar_engine.types import Speech, frame_count
from avatar_engine.visemes import SHAPE_CODE, SHAPES
from avatar_engine.visemes.envelope import envelope_track
from avatar_engine.visemes.track import mouth_track
from vstage_core.errors import ConfigError

logger = logging.getLogger(__name__)

EYES_OPEN, EYES_CLOSED, EYES_HALF = 0, 1, 2
"""Eye states returned by :meth:`SpriteRenderer.eye_states`."""

_HUGE_PAGE = 2 << 20
_MADV_HUGEPAGE = 14
_libc_madvise = None
if sys.platform.startswith("linux"):
    try:
        _libc_madvise = ctypes.CDLL(None, use_errno=True).madvise
        _libc_madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        _libc_madvise.restype = ctypes.c_int
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        _libc_madvise = None


def _empty_frames(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """An uninitialised uint8 tensor for a clip's frames.

    A 10 s clip is ~260 MB; on Linux, first-touch page faults on fresh memory cost more than
    the gather that fills it. Asking for transparent huge pages on the buffer (what torch does
    itself under ``THP_MEM_ALLOC_ENABLE=1``) cuts that cost several-fold. Only a hint: where
    it is refused, nothing changes.
    """
    out = torch.empty(shape, dtype=torch.uint8, device=device)
    if _libc_madvise is not None and device.type == "cpu" and out.numel() >= 2 * _HUGE_PAGE:
        begin = -(-out.data_ptr() // _HUGE_PAGE) * _HUGE_PAGE
        end = (out.data_ptr() + out.numel()) // _HUGE_PAGE * _HUGE_PAGE
        if end > begin:
            _libc_madvise(begin, end - begin, _MADV_HUGEPAGE)
    return out


def _hash_unit(seed: int, k: np.ndarray) -> np.ndarray:
    """Deterministic uniform numbers in [0, 1) for integer keys ``k`` (splitmix64)."""
    with np.errstate(over="ignore"):
        z = k.astype(np.int64).view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = z + np.uint64((seed * 0xD1B54A32D192ED03 + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


class SpriteRenderer:
    """Renders a :class:`SpriteSet` performing speech; implements
    :class:`~avatar_engine.renderers.base.Renderer`.

    Args:
        sprites: the loaded sprite set.
        fps: frames per second of the output.
        device: ``"auto"`` (cuda > mps > cpu), ``"cuda"``, ``"mps"`` or ``"cpu"``; an
            unavailable device falls back to the CPU.

    The renderer is thread-safe; ``render`` and ``idle`` block and belong off the event loop.
    """

    def __init__(self, *, sprites: SpriteSet, fps: int = 25, device: str = "auto") -> None:
        if fps <= 0:
            raise ConfigError(f"fps must be positive, got {fps}")
        self.sprites = sprites
        self.fps = int(fps)
        self.device: torch.device = pick_device(device)
        self.size: tuple[int, int] = sprites.size
        width, height = sprites.size
        self._lock = threading.Lock()

        # Distinct mouth drawings: shapes a set does not draw share their substitute's slot.
        drawn = sorted({sprites.mouth_substitutes[s] for s in SHAPES}, key=SHAPE_CODE.__getitem__)
        self._mouth_layer_of_shape = np.array(
            [drawn.index(sprites.mouth_substitutes[s]) for s in SHAPES], dtype=np.int64
        )
        eye_names = ["open", "closed"] + (["half"] if "half" in sprites.eyes else [])
        self._n_eyes = len(eye_names)
        self._n_states = len(drawn) * self._n_eyes

        # Everything that changes between states lies in one region: composite only there.
        eye_layers = [sprites.eyes[n] for n in eye_names]
        mouth_layers = [sprites.mouths[s] for s in drawn]
        boxes = [layer.box for layer in eye_layers + mouth_layers]
        rx0, ry0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        rx1, ry1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
        self._region = (rx0, ry0, rx1 - rx0, ry1 - ry0)

        def stack(layers) -> torch.Tensor:
            out = np.zeros((len(layers), ry1 - ry0, rx1 - rx0, 4), dtype=np.float32)
            for i, layer in enumerate(layers):
                h, w = layer.pixels.shape[:2]
                x, y = layer.x - rx0, layer.y - ry0
                out[i, y : y + h, x : x + w] = layer.pixels
            return _premultiply(torch.from_numpy(out).to(self.device))

        base = torch.from_numpy(np.ascontiguousarray(sprites.base)).to(self.device)
        self._base = base
        # Eyes composited over the base once per eye state; a state then only adds its mouth.
        eyes = stack(eye_layers)
        base_region = _premultiply(base[ry0:ry1, rx0:rx1])
        self._eyes_over_base = eyes + base_region * (1.0 - eyes[..., 3:])
        self._mouths = stack(mouth_layers)

        # Atlas of composited states, filled on first use (untouched CPU pages cost nothing).
        self._atlas = torch.empty(
            (self._n_states, height, width, 4), dtype=torch.uint8, device=self.device
        )
        self._filled = np.zeros(self._n_states, dtype=bool)

        # Breathing: rows of the source frame for each whole-pixel lift.
        max_lift = math.ceil(sprites.breathing.amplitude_px)
        rows = torch.arange(height, device=self.device)
        self._rowmaps = torch.stack(
            [torch.clamp(rows + lift, max=height - 1) for lift in range(max_lift + 1)]
        )
        logger.debug(
            "sprite renderer %r: %dx%d @ %d fps on %s, %d states, region %s",
            sprites.name,
            width,
            height,
            self.fps,
            self.device,
            self._n_states,
            self._region,
        )

    @classmethod
    def from_settings(
        cls, settings: AvatarSettings, *, config_dir: str | Path = "."
    ) -> SpriteRenderer:
        """Build a renderer from a persona's avatar settings.

        Args:
            settings: the avatar settings; a relative ``sprites`` path is taken from
                ``config_dir``.
            config_dir: the config folder.

        Raises:
            ConfigError: the sprite set is invalid (see :meth:`SpriteSet.load`).
        """
        folder = Path(settings.sprites)
        if not folder.is_absolute():
            folder = Path(config_dir) / folder
        return cls(sprites=SpriteSet.load(folder), fps=settings.fps, device=settings.device)

    # --- per-frame state -------------------------------------------------------------------

    def mouth_codes(self, speech: Speech, n_frames: int | None = None) -> np.ndarray:
        """Mouth shape of each frame of ``speech``: from its phoneme timings when it has them,
        otherwise from its loudness.

        Args:
            speech: the voiced sentence.
            n_frames: frames to produce; default ``frame_count(speech.duration, fps)``.

        Returns:
            ``int8`` codes into :data:`avatar_engine.visemes.SHAPES`.
        """
        if n_frames is None:
            n_frames = frame_count(speech.duration, self.fps)
        if speech.phonemes is not None:
            return mouth_track(speech.phonemes, n_frames=n_frames, fps=self.fps)
        return envelope_track(speech.audio, speech.sample_rate, n_frames=n_frames, fps=self.fps)

    def eye_states(self, start_frame: int, n_frames: int) -> np.ndarray:
        """Eye state (:data:`EYES_OPEN`, :data:`EYES_CLOSED`, :data:`EYES_HALF`) of global
        frames ``start_frame .. start_frame + n_frames - 1``.

        Blink ``k`` starts at ``(k + 0.5) * mean + jitter_k`` seconds, the jitter drawn from the
        set's seed and ``k``, so gaps between blinks stay within ``blink.interval_s`` and any
        frame's state is known without replaying the stream. The eyes are half closed at the
        edges of a blink when the set draws a ``half`` state.
        """
        blink = self.sprites.blink
        lo, hi = blink.interval_s
        mean, jitter = 0.5 * (lo + hi), 0.25 * (hi - lo)
        t = (np.arange(start_frame, start_frame + n_frames, dtype=np.float64) + 0.5) / self.fps
        k = np.floor(t / mean - 0.5).astype(np.int64)[:, None] + np.arange(-2, 3)
        starts = (k + 0.5) * mean + jitter * (2.0 * _hash_unit(blink.seed, k) - 1.0)
        phase = (t[:, None] - starts) / blink.duration_s
        inside = (phase >= 0) & (phase < 1)
        closure = np.where(inside, np.sin(np.pi * np.clip(phase, 0, 1)), 0.0).max(axis=1)
        states = np.where(inside.any(axis=1), EYES_CLOSED, EYES_OPEN)
        if self._n_eyes > 2:
            states = np.where((states == EYES_CLOSED) & (closure < 0.7), EYES_HALF, states)
        return states.astype(np.int8)

    def breath_offsets(self, start_frame: int, n_frames: int) -> np.ndarray:
        """Upward shift in whole pixels (``0 .. ceil(amplitude_px)``) of global frames
        ``start_frame .. start_frame + n_frames - 1``: a slow raised-cosine rise and fall."""
        spec = self.sprites.breathing
        t = np.arange(start_frame, start_frame + n_frames, dtype=np.float64) / self.fps
        lift = spec.amplitude_px * 0.5 * (1.0 - np.cos(2.0 * np.pi * t / spec.period_s))
        return np.rint(lift).astype(np.int64)

    # --- rendering -------------------------------------------------------------------------

    def render(self, speech: Speech, *, start_frame: int = 0) -> torch.Tensor:
        """Frames of the avatar saying ``speech``; see
        :meth:`~avatar_engine.renderers.base.Renderer.render`."""
        return self.render_codes(self.mouth_codes(speech), start_frame=start_frame)

    def idle(self, n_frames: int, *, start_frame: int = 0) -> torch.Tensor:
        """Frames of the avatar silent; see :meth:`~avatar_engine.renderers.base.Renderer.idle`."""
        codes = np.full(max(0, n_frames), SHAPE_CODE["X"], dtype=np.int8)
        return self.render_codes(codes, start_frame=start_frame)

    @torch.no_grad()
    def render_codes(self, codes: np.ndarray, *, start_frame: int = 0) -> torch.Tensor:
        """Frames for a given mouth track.

        Args:
            codes: one mouth-shape code per frame (into :data:`avatar_engine.visemes.SHAPES`).
            start_frame: global index of the first frame.

        Returns:
            ``uint8`` RGBA tensor ``[len(codes), H, W, 4]`` on :attr:`device`.
        """
        width, height = self.size
        codes = np.asarray(codes, dtype=np.int64)
        n = codes.size
        if n == 0:
            return torch.empty((0, height, width, 4), dtype=torch.uint8, device=self.device)
        if codes.min() < 0 or codes.max() >= len(SHAPES):
            raise ValueError(f"mouth codes must lie in [0, {len(SHAPES)})")
        states = self._mouth_layer_of_shape[codes] * self._n_eyes + self.eye_states(
            start_frame, n
        ).astype(np.int64)
        self._ensure(np.unique(states))
        lifts = torch.from_numpy(self.breath_offsets(start_frame, n)).to(self.device)
        slots = torch.from_numpy(states).to(self.device)
        rows = (slots[:, None] * height + self._rowmaps[lifts]).reshape(-1)
        flat = self._atlas.view(self._n_states * height, width * 4)
        out = _empty_frames((n, height, width, 4), self.device)
        torch.index_select(flat, 0, rows, out=out.view(n * height, width * 4))
        return out

    def clear_cache(self) -> None:
        """Forget every composited state (they are rebuilt on next use). For benchmarks and
        tests; not to be called while another thread is rendering."""
        with self._lock:
            self._filled[:] = False

    def _ensure(self, states: np.ndarray) -> None:
        """Composite the states of ``states`` not in the atlas yet, in one batch."""
        missing = states[~self._filled[states]]
        if missing.size == 0:
            return
        with self._lock:
            missing = missing[~self._filled[missing]]
            if missing.size == 0:
                return
            idx = torch.from_numpy(missing).to(self.device)
            mouths = self._mouths[idx // self._n_eyes]
            out = self._eyes_over_base[idx % self._n_eyes]
            out.mul_(1.0 - mouths[..., 3:]).add_(mouths)
            region = _unpremultiply_(out)
            rx, ry, rw, rh = self._region
            for i, state in enumerate(missing.tolist()):
                self._atlas[state].copy_(self._base)
                self._atlas[state, ry : ry + rh, rx : rx + rw].copy_(region[i])
            self._filled[missing] = True


def _premultiply(rgba: torch.Tensor) -> torch.Tensor:
    """uint8-valued straight RGBA (any float/int dtype) -> float premultiplied in [0, 1]."""
    x = rgba.float() / 255.0
    return torch.cat([x[..., :3] * x[..., 3:], x[..., 3:]], dim=-1)


def _unpremultiply_(x: torch.Tensor) -> torch.Tensor:
    """Float premultiplied RGBA in [0, 1] -> uint8 straight RGBA (overwrites ``x``)."""
    # Where alpha is 0 the colour is 0 too, so dividing by a tiny alpha leaves it 0.
    x[..., :3].div_(x[..., 3:].clamp_min(1e-8))
    return x.clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
