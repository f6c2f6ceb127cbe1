"""Audio features of the Wav2Lip renderer: the published model's normalised log-mel spectrogram
and its per-video-frame windows, computed with torch alone (no librosa, no scipy).

The numbers follow the published hyperparameters (``hparams.py`` of Wav2Lip): 16 kHz audio,
pre-emphasis 0.97, an 800-point STFT with hop 200 and a Hann window of 800, an 80-band Slaney
mel filterbank from 55 to 7600 Hz, amplitudes in dB less a 20 dB reference level, floored at
-100 dB and mapped symmetrically onto [-4, 4]. A checkpoint trained on those features only
lip-syncs on those features, so none of this is configurable.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MelParams:
    """The published Wav2Lip audio hyperparameters."""

    sample_rate: int = 16000
    n_fft: int = 800
    hop: int = 200
    win: int = 800
    n_mels: int = 80
    fmin: float = 55.0
    fmax: float = 7600.0
    preemphasis: float = 0.97
    ref_level_db: float = 20.0
    min_level_db: float = -100.0
    max_abs_value: float = 4.0
    window_steps: int = 16
    """Mel steps fed to the network per video frame (0.2 s of audio)."""

    @property
    def steps_per_second(self) -> float:
        return self.sample_rate / self.hop  # 80 mel steps per second


WAV2LIP_MEL = MelParams()


# --- mel filterbank (Slaney scale and area normalisation, as librosa's default) -----------

_F_SP = 200.0 / 3  # Hz per mel below the break
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOG_STEP = math.log(6.4) / 27.0


def hz_to_mel(hz: npt.ArrayLike) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / _F_SP
    log_part = _MIN_LOG_MEL + np.log(np.maximum(hz, 1e-10) / _MIN_LOG_HZ) / _LOG_STEP
    return np.where(hz >= _MIN_LOG_HZ, log_part, mel)


def mel_to_hz(mel: npt.ArrayLike) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * _F_SP
    log_part = _MIN_LOG_HZ * np.exp(_LOG_STEP * (mel - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log_part, hz)


def mel_filterbank(p: MelParams = WAV2LIP_MEL) -> torch.Tensor:
    """Triangular mel filters ``[n_mels, n_fft // 2 + 1]`` (float32), each normalised to unit
    area (Slaney), matching ``librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax)``."""
    if p.fmax > p.sample_rate / 2:
        raise ValueError("fmax must not exceed the Nyquist frequency")
    fft_freqs = np.linspace(0.0, p.sample_rate / 2, p.n_fft // 2 + 1)
    mel_pts = np.linspace(hz_to_mel(p.fmin), hz_to_mel(p.fmax), p.n_mels + 2)
    hz_pts = mel_to_hz(mel_pts)
    widths = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_pts[2:] - hz_pts[:-2]))[:, None]
    return torch.from_numpy(weights.astype(np.float32))


# --- resampling ----------------------------------------------------------------------------


def resample(audio: torch.Tensor, src_rate: int, dst_rate: int, *, taps: int = 16) -> torch.Tensor:
    """Band-limited resampling of mono audio with a Hann-windowed sinc.

    Args:
        audio: 1-D float tensor.
        src_rate: its sample rate.
        dst_rate: the wanted rate.
        taps: half-width of the filter in input samples (at the lower of the two rates).

    Returns:
        1-D float32 tensor of ``round(len * dst_rate / src_rate)`` samples.
    """
    audio = audio.to(torch.float32).reshape(-1)
    if src_rate == dst_rate or audio.numel() == 0:
        return audio.clone()
    n_out = max(1, round(audio.numel() * dst_rate / src_rate))
    ratio = src_rate / dst_rate
    cutoff = min(1.0, 1.0 / ratio) * 0.97  # of the input Nyquist: below the output's
    half = math.ceil(taps / min(1.0, 1.0 / ratio))
    t = torch.arange(n_out, dtype=torch.float64) * ratio
    base = torch.floor(t).to(torch.int64)
    offsets = torch.arange(-half + 1, half + 1, dtype=torch.int64)
    idx = base[:, None] + offsets[None, :]
    dist = (t[:, None] - idx.to(torch.float64)).to(torch.float32)
    window = 0.5 + 0.5 * torch.cos(math.pi * dist / (half + 1))
    weights = cutoff * torch.sinc(cutoff * dist) * window
    valid = (idx >= 0) & (idx < audio.numel())
    samples = audio[idx.clamp(0, audio.numel() - 1)] * valid
    return (samples * weights).sum(dim=1)


# --- spectrogram -----------------------------------------------------------------------------


class MelSpectrogram:
    """The Wav2Lip mel spectrogram and its windows; reusable and thread-safe (read-only state).

    Args:
        params: audio hyperparameters (the published ones by default).
    """

    def __init__(self, params: MelParams = WAV2LIP_MEL) -> None:
        self.params = params
        self._basis = mel_filterbank(params)
        self._window = torch.hann_window(params.win, periodic=True, dtype=torch.float32)

    def __call__(self, audio: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Normalised log-mel spectrogram of mono audio.

        Args:
            audio: samples in [-1, 1] at ``sample_rate`` (resampled to 16 kHz when different).
            sample_rate: rate of ``audio``.

        Returns:
            float32 ``[n_mels, T]`` in ``[-max_abs_value, max_abs_value]``,
            ``T = len16k // hop + 1``.
        """
        p = self.params
        x = torch.as_tensor(np.asarray(audio, dtype=np.float32)).reshape(-1)
        x = resample(x, sample_rate, p.sample_rate)
        if x.numel() == 0:
            x = torch.zeros(1)
        # Pre-emphasis y[n] = x[n] - k x[n-1] (the first sample passes unchanged).
        x = torch.cat([x[:1], x[1:] - p.preemphasis * x[:-1]])
        # Centred frames with reflect padding, as librosa did for the published model; short
        # clips that cannot be reflected are zero padded instead.
        pad_mode = "reflect" if x.numel() > p.n_fft // 2 else "constant"
        spec = torch.stft(
            x,
            n_fft=p.n_fft,
            hop_length=p.hop,
            win_length=p.win,
            window=self._window,
            center=True,
            pad_mode=pad_mode,
            return_complex=True,
        ).abs()
        mel = self._basis @ spec
        min_level = 10.0 ** (p.min_level_db / 20.0)
        db = 20.0 * torch.log10(mel.clamp_min(min_level)) - p.ref_level_db
        scaled = (2 * p.max_abs_value) * ((db - p.min_level_db) / -p.min_level_db)
        return (scaled - p.max_abs_value).clamp(-p.max_abs_value, p.max_abs_value)

    def windows(self, mel: torch.Tensor, n_frames: int, fps: int) -> torch.Tensor:
        """The mel window of each video frame, as the published inference cuts them.

        Frame ``i`` sees ``window_steps`` mel steps from ``int(80 * i / fps)``; windows that
        would run past the end are taken from the last ``window_steps`` steps, and a
        spectrogram shorter than one window is padded with silence (the minimum level).

        Returns:
            float32 ``[n_frames, 1, n_mels, window_steps]``.
        """
        p = self.params
        steps = p.window_steps
        if mel.shape[1] < steps:
            pad = torch.full((mel.shape[0], steps - mel.shape[1]), -p.max_abs_value)
            mel = torch.cat([mel, pad.to(mel)], dim=1)
        last = mel.shape[1] - steps
        starts = [min(int(p.steps_per_second * i / fps), last) for i in range(n_frames)]
        idx = torch.tensor(starts, dtype=torch.int64)[:, None] + torch.arange(steps)[None, :]
        return mel[:, idx].permute(1, 0, 2).unsqueeze(1).contiguous()
