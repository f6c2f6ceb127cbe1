"""Sample-rate and channel conversions between Discord's 48 kHz stereo s16 PCM, the 16 kHz
mono float32 that VAD and speech-to-text want, and TTS output (22050 Hz mono float32).

A small windowed-sinc polyphase resampler in numpy: no scipy dependency, streaming-safe
(:class:`Downsampler48to16` keeps its filter history between 20 ms frames)."""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np

DISCORD_RATE = 48_000
DISCORD_CHANNELS = 2
FRAME_MS = 20
FRAME_SAMPLES = DISCORD_RATE * FRAME_MS // 1000  # 960 per channel
FRAME_BYTES = FRAME_SAMPLES * DISCORD_CHANNELS * 2  # 3840


@lru_cache(maxsize=16)
def _lowpass(up: int, down: int, half_taps: int = 16) -> np.ndarray:
    """A Kaiser-windowed sinc low-pass for resampling by ``up/down``, scaled by ``up``."""
    cutoff = 0.95 / max(up, down)  # as a fraction of the upsampled Nyquist rate
    n = 2 * half_taps * max(up, down) + 1
    t = np.arange(n) - (n - 1) / 2
    h = cutoff * np.sinc(cutoff * t) * np.kaiser(n, 8.0)
    return h * (up / h.sum())


def resample(audio: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Resample a whole mono float32 signal (polyphase FIR); returns float32."""
    if src_rate == dst_rate or audio.size == 0:
        return audio.astype(np.float32, copy=False)
    ratio = Fraction(dst_rate, src_rate)
    up, down = ratio.numerator, ratio.denominator
    h = _lowpass(up, down)
    out_len = int(np.ceil(audio.size * up / down))
    # Polyphase: output sample k takes input around k*down/up with the filter phase it lands on.
    delay = (h.size - 1) // 2
    k = np.arange(out_len)
    pos = k * down + delay  # position in the zero-stuffed (upsampled) signal
    taps_per_phase = int(np.ceil(h.size / up))
    padded_h = np.zeros(taps_per_phase * up, dtype=np.float64)
    padded_h[: h.size] = h
    phases = padded_h.reshape(taps_per_phase, up).T  # phases[p, j] = h[j*up + p]
    x_index = pos // up  # newest input sample contributing
    phase = pos % up
    j = np.arange(taps_per_phase)
    idx = x_index[:, None] - j[None, :]
    valid = (idx >= 0) & (idx < audio.size)
    vals = np.where(valid, audio[np.clip(idx, 0, audio.size - 1)], 0.0)
    out = np.einsum("kj,kj->k", vals, phases[phase])
    return out.astype(np.float32)


def pcm48_stereo_to_mono(frame: bytes) -> np.ndarray:
    """Discord PCM (s16 little-endian, interleaved stereo) to mono float32 in [-1, 1]."""
    pcm = np.frombuffer(frame, dtype="<i2")
    if pcm.size % 2:
        pcm = pcm[:-1]
    stereo = pcm.reshape(-1, 2).astype(np.float32)
    return stereo.mean(axis=1) / 32768.0


class Downsampler48to16:
    """Streaming 48 kHz -> 16 kHz mono: low-pass FIR, then keep every third sample. Keeps the
    filter history, so feeding 20 ms frames one by one equals filtering the whole stream."""

    def __init__(self) -> None:
        self._h = _lowpass(1, 3).astype(np.float32)
        self._hist = np.zeros(self._h.size - 1, np.float32)
        self._phase = 0  # index of the next kept sample within the next block

    def __call__(self, mono48: np.ndarray) -> np.ndarray:
        x = np.concatenate([self._hist, mono48.astype(np.float32, copy=False)])
        y = np.convolve(x, self._h, mode="valid")  # one output per new input sample
        self._hist = x[-(self._h.size - 1):]
        out = y[self._phase::3]
        self._phase = (self._phase - y.size) % 3
        return out.astype(np.float32, copy=False)


def tts_to_discord_pcm(audio: np.ndarray, sample_rate: int) -> bytes:
    """Mono float32 speech at any rate -> 48 kHz interleaved stereo s16 bytes for Discord."""
    if audio.size == 0:
        return b""
    up = resample(audio.astype(np.float32, copy=False), sample_rate, DISCORD_RATE)
    pcm = (np.clip(up, -1.0, 1.0) * 32767.0).astype("<i2")
    return np.repeat(pcm, 2).tobytes()
