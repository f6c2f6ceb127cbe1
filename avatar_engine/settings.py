"""Settings of the performance layer (voice, avatar, clips). Plain pydantic models: the app's
loader (``bots.config``) fills them from YAML and the environment and passes them in."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from vstage_core.settings import FrozenModel


class VoiceSettings(FrozenModel):
    """Which voice a persona speaks with."""

    provider: Literal["piper"] = "piper"
    model: str = Field(
        "embedded",
        description="'embedded' (the Piper voice shipped on PyPI) or a path to a Piper .onnx file",
    )
    speaker: int | None = Field(None, ge=0, description="speaker id for multi-speaker voices")
    speed: float = Field(1.0, gt=0.25, le=4.0, description="1.0 is the voice's own pace")
    threads: int = Field(1, ge=1, le=64, description="CPU threads for synthesis")


class AvatarSettings(FrozenModel):
    """How a persona looks."""

    renderer: Literal["sprite"] = "sprite"
    sprites: Path = Field(
        Path("avatars/default"),
        description="sprite set folder holding manifest.yaml (relative to the config folder)",
    )
    fps: int = Field(25, ge=5, le=60)
    device: str = Field("auto", description="auto (cuda > mps > cpu), cuda, mps or cpu")


DEFAULT_CHECKPOINT = Path("models/wav2lip.pth")


class Wav2LipSettings(FrozenModel):
    """Avatar settings of a Wav2Lip persona (``avatar: {renderer: wav2lip, ...}``).

    Paths are relative to the config folder. ``face_box`` is ``(x, y, width, height)`` in
    pixels of ``avatar_image``: the face from the brows to below the chin, roughly square.
    """

    renderer: Literal["wav2lip"] = "wav2lip"
    checkpoint: Path = Field(
        DEFAULT_CHECKPOINT, description="Wav2Lip generator checkpoint (published .pth format)"
    )
    avatar_image: Path = Field(..., description="still picture of the avatar (PNG, RGB or RGBA)")
    face_box: tuple[int, int, int, int] = Field(
        ..., description="x, y, width, height of the face in avatar_image"
    )
    fps: int = Field(25, ge=5, le=60)
    device: str = Field("auto", description="auto (cuda > mps > cpu), cuda, mps or cpu")
    batch_size: int = Field(16, ge=1, le=512, description="frames per network call")

    @field_validator("face_box")
    @classmethod
    def _positive_box(cls, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        x, y, w, h = box
        if x < 0 or y < 0 or w < 16 or h < 16:
            raise ValueError("face_box is (x, y, width, height) with x, y >= 0 and sides >= 16")
        return box


class ClipSettings(FrozenModel):
    """How performed sentences are encoded."""

    formats: tuple[Literal["webm", "mp4"], ...] = Field(
        ("webm", "mp4"),
        description="webm: VP9 with alpha + Opus for browser overlays; mp4: H.264/AAC for OBS",
        min_length=1,
    )
    keep: int = Field(300, ge=10, description="how many clip files to keep on disk")
