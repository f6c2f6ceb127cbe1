"""Silero VAD on onnxruntime with one recurrent state per audio stream.

The model file comes from the ``silero-vad`` package, located without importing it:
``import silero_vad`` imports torch and calls ``torch.set_num_threads(1)`` for the whole
process. One onnxruntime session is shared (its ``run`` is thread-safe); each speaker gets its
own :class:`VadStream` holding the model's state and 64-sample context.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np

from vstage_core.errors import MissingDependency
from vstage_core.extras import install_hint

logger = logging.getLogger(__name__)

VAD_RATE = 16_000
WINDOW = 512  # samples per VAD step at 16 kHz (32 ms)
_CONTEXT = 64


def silero_model_path() -> Path:
    """Where the ``silero-vad`` package keeps its ONNX model."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency(f"silero-vad is not installed: {install_hint('discord')}")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise MissingDependency(f"the Silero VAD model is missing: {path}")
    return path


class SileroVAD:
    """The Silero VAD model, loaded once; make a :meth:`stream` per speaker."""

    def __init__(self, *, path: Path | None = None, threads: int = 1) -> None:
        try:
            import onnxruntime
        except ImportError as e:
            raise MissingDependency("onnxruntime is not installed: run `make install`") from e
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(
            str(path or silero_model_path()), sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        self._sr = np.array(VAD_RATE, dtype=np.int64)

    def stream(self, *, floor_dbfs: float | None = None) -> VadStream:
        """A stream of one speaker's audio; windows quieter than ``floor_dbfs`` (RMS, full
        scale = 0 dB) are silence without running the model."""
        return VadStream(self, floor_dbfs=floor_dbfs)

    def _step(self, window: np.ndarray, state: np.ndarray) -> tuple[float, np.ndarray]:
        out, new_state = self._session.run(
            None, {"input": window[None, :], "state": state, "sr": self._sr})
        return float(out[0, 0]), new_state


class VadStream:
    """Speech probabilities for one continuous 16 kHz stream, one per 512-sample window.

    A browser keeps sending its microphone when nobody talks; with many listeners, the model
    run on every window of room tone is most of hearing's cost. Windows under the floor are
    scored 0 without the model (and its state starts afresh, as after a long pause).
    """

    def __init__(self, vad: SileroVAD, *, floor_dbfs: float | None = None) -> None:
        self._vad = vad
        # Compared with the window's mean square, so no square root per window.
        self._floor_ms = None if floor_dbfs is None else 10.0 ** (floor_dbfs / 10.0)
        self.skipped = 0  # windows scored silent by the floor alone
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), np.float32)
        self._context = np.zeros(_CONTEXT, np.float32)
        self._pending = np.zeros(0, np.float32)

    def feed(self, audio16k: np.ndarray) -> list[float]:
        """Push audio; returns the probability of each complete window it finished."""
        buf = np.concatenate([self._pending, audio16k.astype(np.float32, copy=False)])
        probs: list[float] = []
        n = buf.size // WINDOW
        for i in range(n):
            window = buf[i * WINDOW:(i + 1) * WINDOW]
            if self._floor_ms is not None and float(np.dot(window, window)) < (
                    self._floor_ms * WINDOW):
                self.skipped += 1
                self._state = np.zeros_like(self._state)
                self._context = window[-_CONTEXT:]
                probs.append(0.0)
                continue
            p, self._state = self._vad._step(np.concatenate([self._context, window]), self._state)
            self._context = window[-_CONTEXT:]
            probs.append(p)
        self._pending = buf[n * WINDOW:].copy()
        return probs
