"""Values that flow through the performance pipeline: speech, mouth tracks and clips."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True, slots=True)
class PhonemeTiming:
    """One phoneme as the voice spoke it, in seconds from the start of its sentence."""

    phoneme: str
    start: float
    end: float


@dataclass(frozen=True, slots=True, eq=False)
class Speech:
    """One sentence voiced: mono float32 audio in [-1, 1] and, when the voice knows them,
    the phoneme timings that drive the mouth."""

    text: str
    audio: np.ndarray
    sample_rate: int
    phonemes: tuple[PhonemeTiming, ...] | None = None

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


@dataclass(frozen=True, slots=True)
class ClipFile:
    """One encoded file of a clip."""

    format: str  # "mp4" or "webm"
    path: Path


@dataclass(frozen=True, slots=True)
class Clip:
    """One sentence performed: encoded video with audio, plus what a stage needs to show it."""

    reply_id: str
    index: int
    text: str
    duration: float
    fps: int
    frames: int
    files: tuple[ClipFile, ...] = field(default=())

    def path(self, fmt: str) -> Path | None:
        for f in self.files:
            if f.format == fmt:
                return f.path
        return None


def frame_count(duration: float, fps: int) -> int:
    """Number of video frames that cover ``duration`` seconds: the renderer makes this many and
    the encoder pads the audio with silence up to ``frames / fps``, so both streams agree."""
    import math

    return max(1, math.ceil(duration * fps - 1e-6))


@dataclass(frozen=True, slots=True, eq=False)
class Performance:
    """One sentence performed by a persona: its speech and the avatar's frames for it.

    What a :class:`~avatar_engine.performer.Performer` returns and what every stage receives
    (the live stream shows the frames and plays the audio, Discord plays the audio, the clip
    recorder encodes both). Frame ``i`` covers the audio from ``i / fps`` to ``(i + 1) / fps``
    seconds; the audio is padded with silence (by whoever plays it) up to ``len(frames) / fps``.
    """

    persona: str
    reply_id: str
    index: int
    speech: Speech
    frames: np.ndarray = field(repr=False)  # uint8 RGBA [N, H, W, 4] on the CPU, straight alpha
    fps: int
    start_frame: int  # the persona's frame clock at the first frame (blinks, breathing)

    @property
    def text(self) -> str:
        return self.speech.text

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps
