"""Settings of the performance layer (voice, avatar, clips). Plain pydantic models: the app's
loader (``bots.config``) fills them from YAML and the environment and passes them in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from vstage_core.settings import FrozenModel


class VoiceSettings(FrozenModel):
    """Which voice a persona speaks with (the ``voice:`` section of a persona file).

    One flat model for every provider so that existing files stay valid; fields that belong to
    one provider say so and are ignored by the others (a validator rejects the combinations
    that would silently do nothing). See docs/voices.md.
    """

    provider: Literal["piper", "espeak", "openai"] = Field(
        "piper",
        description="piper (neural, .onnx voices), espeak (espeak-ng, ~100 languages, robotic) "
        "or openai (any OpenAI-compatible /v1/audio/speech server)",
    )
    model: str = Field(
        "embedded",
        description="piper: 'embedded' (the English voice shipped on PyPI) or a path to a Piper "
        ".onnx file (its .onnx.json beside it); openai: the server's model name (tts-1, kokoro); "
        "espeak: unused",
    )
    voice: str | None = Field(
        None,
        description="espeak: language or voice name (de, fr, es, en-gb; default: the persona's "
        "language); openai: the server's voice name (alloy, af_bella)",
    )
    speaker: int | None = Field(None, ge=0, description="piper: speaker id of multi-speaker voices")
    speed: float = Field(1.0, gt=0.25, le=4.0, description="1.0 is the voice's own pace")
    words_per_minute: int | None = Field(
        None, ge=80, le=450,
        description="espeak: words per minute at speed 1.0 (default 175, espeak-ng's own); "
        "the rate is this x speed",
    )
    threads: int = Field(1, ge=1, le=64, description="piper: CPU threads for synthesis")
    base_url: str | None = Field(
        None,
        description="openai: endpoint up to /v1, e.g. http://127.0.0.1:8880/v1 (Kokoro-FastAPI); "
        "default OpenAI's",
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="openai: environment variable holding the API key"
    )
    api_key: SecretStr | None = Field(
        None, exclude=True, description="openai: filled from api_key_env (never in a file)"
    )
    response_format: Literal["wav", "pcm"] = Field(
        "wav", description="openai: wav (any rate) or pcm (raw 16-bit mono at pcm_sample_rate)"
    )
    pcm_sample_rate: int = Field(
        24000, ge=8000, le=96000, description="openai: rate of raw pcm responses (OpenAI: 24 kHz)"
    )
    languages: tuple[str, ...] | None = Field(
        None,
        description="openai: languages the server's voice speaks (for `vstage check`); "
        "unset: unknown, not checked",
    )
    connect_timeout_s: float = Field(5.0, gt=0, description="openai: seconds to connect")
    timeout_s: float = Field(
        60.0, gt=0, description="openai: seconds the whole sentence may take to arrive"
    )

    @model_validator(mode="after")
    def _fields_fit_the_provider(self) -> VoiceSettings:
        if self.provider == "openai" and self.model == "embedded":
            raise ValueError(
                "provider 'openai' needs model: the server's TTS model name "
                "(tts-1 or gpt-4o-mini-tts for OpenAI, kokoro for Kokoro-FastAPI)"
            )
        if self.provider == "openai" and not self.voice:
            raise ValueError(
                "provider 'openai' needs voice: the server's voice name (alloy for OpenAI, "
                "af_bella or ff_siwis for Kokoro-FastAPI)"
            )
        if self.provider == "espeak" and self.model != "embedded":
            raise ValueError(
                "provider 'espeak' has no model file: choose its language with voice: (de, fr, "
                "es, ...); for a Piper .onnx voice use provider: piper"
            )
        if self.provider == "piper" and self.voice is not None:
            raise ValueError(
                "provider 'piper' takes its language from the voice file: set model: to the "
                ".onnx path and drop voice:"
            )
        return self


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


class PortraitSettings(FrozenModel):
    """Avatar settings of a still picture brought to life (``avatar: {renderer: portrait,
    ...}``): a Character Card's image, or any drawing, with a mouth drawn over it from the
    visemes and, when the eyes are placed, blinking. See docs/cards.md.

    Positions are in pixels of ``image`` as it is on disk (before ``max_side`` scales it), so
    a streamer can read them off any image viewer.
    """

    renderer: Literal["portrait"] = "portrait"
    image: Path = Field(..., description="the picture (PNG, JPEG or WebP; relative to the config "
                        "folder)")
    mouth: tuple[int, int, int] | None = Field(
        None,
        description="x, y of the middle of the mouth and its width when open, in pixels of "
        "image; unset: a guess for an upright character picture (check it with the preview, "
        "see docs/cards.md)",
    )
    eyes: tuple[tuple[int, int, int], ...] = Field(
        (), max_length=4,
        description="x, y of the middle of each eye and its width; given: the eyes blink",
    )
    max_side: int = Field(640, ge=64, le=2048,
                          description="the picture is scaled so its longer side is at most this")
    breathing_px: float = Field(1.5, ge=0, le=16,
                                description="how far the picture rises when breathing in; 0: off")
    blink_seed: int = Field(0, description="changes the blink rhythm")
    fps: int = Field(25, ge=5, le=60)
    device: str = Field("auto", description="auto (cuda > mps > cpu), cuda, mps or cpu")

    @field_validator("mouth")
    @classmethod
    def _mouth_size(cls, mouth: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
        if mouth is not None and (mouth[0] < 0 or mouth[1] < 0 or mouth[2] < 4):
            raise ValueError("mouth is [x, y, width] with x, y >= 0 and width >= 4 pixels")
        return mouth

    @field_validator("eyes")
    @classmethod
    def _eye_sizes(cls, eyes: tuple[tuple[int, int, int], ...]) -> tuple[tuple[int, int, int], ...]:
        for eye in eyes:
            if eye[0] < 0 or eye[1] < 0 or eye[2] < 4:
                raise ValueError("each eye is [x, y, width] with x, y >= 0 and width >= 4 pixels")
        return eyes


AnyAvatarSettings = AvatarSettings | Wav2LipSettings | PortraitSettings
"""Any avatar's settings (for ``isinstance`` and type hints)."""

AvatarChoice = Annotated[AnyAvatarSettings, Field(discriminator="renderer")]
"""The ``avatar:`` field of a persona: its ``renderer`` key picks the settings type."""


class ClipSettings(FrozenModel):
    """How performed sentences are encoded."""

    formats: tuple[Literal["webm", "mp4"], ...] = Field(
        ("webm", "mp4"),
        description="webm: VP9 with alpha + Opus for browser overlays; mp4: H.264/AAC for OBS",
        min_length=1,
    )
    keep: int = Field(300, ge=10, description="how many clip files to keep on disk")
