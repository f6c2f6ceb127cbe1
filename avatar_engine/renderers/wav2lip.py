"""The Wav2Lip renderer: lip-syncs a still avatar picture to the speech audio with the published
Wav2Lip generator (Prajwal et al., 2020), pasting the generated 96x96 mouth region back onto
the picture with a feathered mask, so only the lower face ever changes.

No weights ship with vstage: a streamer brings a checkpoint in the published format (a dict
holding ``state_dict``, keys possibly prefixed ``module.``), e.g. ``wav2lip.pth`` or
``wav2lip_gan.pth``. The network below is written to match that checkpoint's key names.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avatar_engine.device import pick_device
from avatar_engine.renderers.mel import WAV2LIP_MEL, MelSpectrogram
from avatar_engine.settings import Wav2LipSettings
from avatar_engine.types import Speech, frame_count
from vstage_core.errors import ConfigError, MissingDependency

logger = logging.getLogger(__name__)

FACE_SIZE = 96
"""Side of the square face crop the published network sees and draws."""

"""Where a persona's checkpoint is looked for when its settings name none (from the config
folder)."""


# --- settings ------------------------------------------------------------------------------


# --- the published generator ---------------------------------------------------------------


class _Conv(nn.Module):
    """Conv + batch norm + ReLU, optionally residual (key names as the published ``Conv2d``)."""

    def __init__(
        self, cin: int, cout: int, k: int, s: int | tuple[int, int], p: int, *, res: bool = False
    ) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, k, s, p), nn.BatchNorm2d(cout))
        self.act = nn.ReLU()
        self.residual = res

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)


class _UpConv(nn.Module):
    """Transposed conv + batch norm + ReLU (key names as the published ``Conv2dTranspose``)."""

    def __init__(self, cin: int, cout: int, k: int, s: int, p: int, op: int = 0) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, k, s, p, op), nn.BatchNorm2d(cout)
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv_block(x))


def _res(channels: int, n: int) -> list[nn.Module]:
    return [_Conv(channels, channels, 3, 1, 1, res=True) for _ in range(n)]


class Wav2LipNet(nn.Module):
    """The Wav2Lip generator for 96x96 faces.

    Input: ``mel [B, 1, 80, 16]`` and ``face [B, 6, 96, 96]`` (the target frame with its lower
    half blacked out, then the reference frame; BGR in [0, 1] as the model was trained).
    Output: ``[B, 3, 96, 96]`` BGR in [0, 1]. The face encoder's features at each scale are
    concatenated onto the decoder's (U-Net skips), the audio embedding seeds the decoder.
    """

    def __init__(self) -> None:
        super().__init__()
        self.face_encoder_blocks = nn.ModuleList(
            [
                nn.Sequential(_Conv(6, 16, 7, 1, 3)),  # 96
                nn.Sequential(_Conv(16, 32, 3, 2, 1), *_res(32, 2)),  # 48
                nn.Sequential(_Conv(32, 64, 3, 2, 1), *_res(64, 3)),  # 24
                nn.Sequential(_Conv(64, 128, 3, 2, 1), *_res(128, 2)),  # 12
                nn.Sequential(_Conv(128, 256, 3, 2, 1), *_res(256, 2)),  # 6
                nn.Sequential(_Conv(256, 512, 3, 2, 1), *_res(512, 1)),  # 3
                nn.Sequential(_Conv(512, 512, 3, 1, 0), _Conv(512, 512, 1, 1, 0)),  # 1
            ]
        )
        # 80x16 mel window -> 27x16 -> 9x6 -> 3x3 -> 1x1, 512 channels.
        self.audio_encoder = nn.Sequential(
            _Conv(1, 32, 3, 1, 1),
            *_res(32, 2),
            _Conv(32, 64, 3, (3, 1), 1),
            *_res(64, 2),
            _Conv(64, 128, 3, 3, 1),
            *_res(128, 2),
            _Conv(128, 256, 3, (3, 2), 1),
            *_res(256, 1),
            _Conv(256, 512, 3, 1, 0),
            _Conv(512, 512, 1, 1, 0),
        )
        self.face_decoder_blocks = nn.ModuleList(
            [
                nn.Sequential(_Conv(512, 512, 1, 1, 0)),  # 1
                nn.Sequential(_UpConv(1024, 512, 3, 1, 0), *_res(512, 1)),  # 3
                nn.Sequential(_UpConv(1024, 512, 3, 2, 1, 1), *_res(512, 2)),  # 6
                nn.Sequential(_UpConv(768, 384, 3, 2, 1, 1), *_res(384, 2)),  # 12
                nn.Sequential(_UpConv(512, 256, 3, 2, 1, 1), *_res(256, 2)),  # 24
                nn.Sequential(_UpConv(320, 128, 3, 2, 1, 1), *_res(128, 2)),  # 48
                nn.Sequential(_UpConv(160, 64, 3, 2, 1, 1), *_res(64, 2)),  # 96
            ]
        )
        self.output_block = nn.Sequential(
            _Conv(80, 32, 3, 1, 1), nn.Conv2d(32, 3, 1, 1, 0), nn.Sigmoid()
        )

    def forward(self, mel: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        skips = []
        x = face
        for block in self.face_encoder_blocks:
            x = block(x)
            skips.append(x)
        x = self.audio_encoder(mel)
        for block in self.face_decoder_blocks:
            x = torch.cat((block(x), skips.pop()), dim=1)
        return self.output_block(x)


def load_checkpoint(path: Path, model: Wav2LipNet | None = None) -> Wav2LipNet:
    """Load a generator checkpoint in the published format.

    Accepts ``{"state_dict": {...}, ...}`` (what the published training script saves, with
    optimizer state and step counters beside it) or a bare state dict; a ``module.`` prefix
    (saved from ``DataParallel``) is stripped. Tensors only are unpickled (``weights_only``).

    Raises:
        MissingDependency: there is no file at ``path``.
        ConfigError: the file is not a Wav2Lip generator checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDependency(
            f"no Wav2Lip checkpoint at {path}: no weights ship with vstage. Put a generator "
            f"checkpoint in the published format (wav2lip.pth or wav2lip_gan.pth) there, or set "
            f"avatar.checkpoint in the persona file; see docs/wav2lip.md"
        )
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(f"{path}: not a readable torch checkpoint ({e})") from e
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: expected a dict with 'state_dict', got {type(blob).__name__}")
    state = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state.items()}
    net = model if model is not None else Wav2LipNet()
    result = net.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ConfigError(
            f"{path}: not a 96x96 Wav2Lip generator checkpoint "
            f"(missing {result.missing_keys[:3]}..., unexpected {result.unexpected_keys[:3]}...)"
        )
    net.eval()
    return net


# --- the renderer --------------------------------------------------------------------------


def _smoothstep(t: torch.Tensor) -> torch.Tensor:
    return t * t * (3 - 2 * t)


def _feather_mask(w: int, h: int) -> torch.Tensor:
    """``[h, w, 1]`` blend weight of the generated face: 0 on the box border and its upper
    half, rising smoothly to 1 over the mouth and chin, so the paste leaves no seam."""
    feather = max(2.0, 0.1 * min(w, h))
    ys = torch.arange(h, dtype=torch.float32) + 0.5
    xs = torch.arange(w, dtype=torch.float32) + 0.5
    top = ((ys - 0.5 * h) / feather).clamp(0, 1)
    bottom = ((h - ys) / feather).clamp(0, 1)
    sides = (xs / feather).clamp(0, 1) * ((w - xs) / feather).clamp(0, 1)
    mask = _smoothstep(top * bottom)[:, None] * _smoothstep(sides)[None, :]
    mask[0, :] = mask[-1, :] = 0.0
    mask[:, 0] = mask[:, -1] = 0.0
    return mask[..., None]


class Wav2LipRenderer:
    """Lip-syncs a still avatar with a Wav2Lip generator; implements
    :class:`~avatar_engine.renderers.base.Renderer`.

    Args:
        checkpoint: generator checkpoint in the published format.
        avatar_image: the avatar's picture (RGB or RGBA); its alpha is kept as is.
        face_box: ``(x, y, width, height)`` of the face in the picture.
        fps: frames per second (the mel windows follow it).
        device: ``"auto"`` (cuda > mps > cpu) or an explicit device; an unavailable device
            falls back to the CPU. On CUDA the network runs in half precision.
        batch_size: frames per network call.

    Raises:
        MissingDependency: the checkpoint file does not exist.
        ConfigError: bad checkpoint, unreadable picture, or a face box outside it.

    Thread-safe; ``render`` and ``idle`` block and belong off the event loop.
    """

    def __init__(
        self,
        *,
        checkpoint: Path,
        avatar_image: Path,
        face_box: tuple[int, int, int, int],
        fps: int = 25,
        device: str = "auto",
        batch_size: int = 16,
    ) -> None:
        if fps <= 0:
            raise ConfigError(f"fps must be positive, got {fps}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.fps = int(fps)
        self.batch_size = int(batch_size)
        self.device: torch.device = pick_device(device)
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32

        image = _load_rgba(Path(avatar_image))
        height, width = image.shape[:2]
        self.size: tuple[int, int] = (width, height)
        x, y, w, h = (int(v) for v in face_box)
        if x < 0 or y < 0 or w < 16 or h < 16 or x + w > width or y + h > height:
            raise ConfigError(
                f"face_box {tuple(face_box)} (x, y, width, height) must lie inside the "
                f"{width}x{height} avatar image {avatar_image} with sides >= 16"
            )
        self.face_box = (x, y, w, h)

        self.net = load_checkpoint(Path(checkpoint)).to(self.device, self.dtype)
        self._mel = MelSpectrogram()
        self._lock = threading.Lock()
        self._idle_frame: torch.Tensor | None = None

        # Everything about the picture is fixed: prepare it once.
        self._avatar = torch.from_numpy(image).to(self.device)  # [H, W, 4] uint8
        box = self._avatar[y : y + h, x : x + w, :3].permute(2, 0, 1)[None].float()
        self._box_rgb = box[0].permute(1, 2, 0)  # [h, w, 3] float 0..255
        face = F.interpolate(box, size=(FACE_SIZE, FACE_SIZE), mode="bilinear", antialias=True)
        face = (face / 255.0).flip(1)  # RGB -> BGR, as the published model was trained
        masked = face.clone()
        masked[:, :, FACE_SIZE // 2 :] = 0.0
        self._face_input = torch.cat([masked, face], dim=1).to(self.dtype)  # [1, 6, 96, 96]
        self._mask = _feather_mask(w, h).to(self.device)
        logger.debug(
            "wav2lip renderer: %dx%d @ %d fps on %s (%s), face box %s, batch %d",
            width,
            height,
            self.fps,
            self.device,
            self.dtype,
            self.face_box,
            self.batch_size,
        )

    @classmethod
    def from_settings(
        cls, settings: Wav2LipSettings, *, config_dir: str | Path = "."
    ) -> Wav2LipRenderer:
        """Build a renderer from a persona's Wav2Lip avatar settings; relative paths are taken
        from ``config_dir``."""
        base = Path(config_dir)

        def resolve(p: Path) -> Path:
            return p if p.is_absolute() else base / p

        return cls(
            checkpoint=resolve(settings.checkpoint),
            avatar_image=resolve(settings.avatar_image),
            face_box=settings.face_box,
            fps=settings.fps,
            device=settings.device,
            batch_size=settings.batch_size,
        )

    # --- rendering -------------------------------------------------------------------------

    def mel_windows(self, speech: Speech, n_frames: int | None = None) -> torch.Tensor:
        """The network's audio input for each frame of ``speech``: ``[N, 1, 80, 16]``."""
        if n_frames is None:
            n_frames = frame_count(speech.duration, self.fps)
        mel = self._mel(speech.audio, speech.sample_rate)
        return self._mel.windows(mel, n_frames, self.fps)

    def render(self, speech: Speech, *, start_frame: int = 0) -> torch.Tensor:
        """Frames of the avatar saying ``speech``; see
        :meth:`~avatar_engine.renderers.base.Renderer.render`. Wav2Lip has no notion of time
        beyond the audio, so ``start_frame`` changes nothing."""
        return self.render_windows(self.mel_windows(speech))

    def idle(self, n_frames: int, *, start_frame: int = 0) -> torch.Tensor:
        """The avatar silent: the network's frame for silence, repeated, so speech and idle
        clips show the same closed mouth where they meet."""
        width, height = self.size
        if n_frames <= 0:
            return torch.empty((0, height, width, 4), dtype=torch.uint8, device=self.device)
        if self._idle_frame is None:
            silence = torch.full(
                (1, 1, WAV2LIP_MEL.n_mels, WAV2LIP_MEL.window_steps), -WAV2LIP_MEL.max_abs_value
            )
            self._idle_frame = self.render_windows(silence)[0]
        return self._idle_frame[None].expand(n_frames, -1, -1, -1).clone()

    @torch.inference_mode()
    def render_windows(self, windows: torch.Tensor) -> torch.Tensor:
        """Frames for given mel windows ``[N, 1, 80, 16]``, ``batch_size`` at a time.

        Returns:
            ``uint8`` RGBA ``[N, H, W, 4]`` on :attr:`device`; outside the lower face it is the
            avatar picture, bit for bit.
        """
        width, height = self.size
        n = windows.shape[0]
        out = self._avatar[None].expand(n, -1, -1, -1).clone()
        x, y, w, h = self.face_box
        for lo in range(0, n, self.batch_size):
            mel = windows[lo : lo + self.batch_size].to(self.device, self.dtype)
            face = self._face_input.expand(mel.shape[0], -1, -1, -1)
            pred = self.net(mel, face).float().flip(1) * 255.0  # BGR -> RGB
            pred = F.interpolate(pred, size=(h, w), mode="bilinear", align_corners=False)
            pred = pred.permute(0, 2, 3, 1)  # [b, h, w, 3]
            blended = self._box_rgb + (pred - self._box_rgb) * self._mask
            out[lo : lo + mel.shape[0], y : y + h, x : x + w, :3] = (
                blended.round_().clamp_(0, 255).to(torch.uint8)
            )
        return out


def _load_rgba(path: Path) -> np.ndarray:
    """The picture at ``path`` as ``uint8 [H, W, 4]`` (opaque when it has no alpha)."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            return np.array(im.convert("RGBA"), dtype=np.uint8)
    except FileNotFoundError as e:
        raise ConfigError(f"avatar image {path} does not exist") from e
    except OSError as e:
        raise ConfigError(f"avatar image {path} cannot be read: {e}") from e
