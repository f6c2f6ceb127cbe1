"""The Wav2Lip audio features: spectrogram shape, normalisation, filterbank, windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avatar_engine.renderers.mel import (
    WAV2LIP_MEL,
    MelSpectrogram,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
    resample,
)


def tone(freq: float, seconds: float, rate: int = 16000, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_published_hyperparameters() -> None:
    p = WAV2LIP_MEL
    assert (p.sample_rate, p.n_fft, p.hop, p.win, p.n_mels) == (16000, 800, 200, 800, 80)
    assert (p.fmin, p.fmax, p.preemphasis) == (55, 7600, 0.97)
    assert (p.ref_level_db, p.min_level_db, p.max_abs_value) == (20, -100, 4.0)
    assert p.steps_per_second == 80


def test_mel_scale_round_trips_and_is_slaney() -> None:
    hz = np.array([0.0, 55.0, 500.0, 1000.0, 4000.0, 7600.0])
    assert np.allclose(mel_to_hz(hz_to_mel(hz)), hz)
    assert hz_to_mel(1000.0) == pytest.approx(15.0)  # linear part: 200/3 Hz per mel


def test_filterbank_shape_and_support() -> None:
    fb = mel_filterbank()
    assert fb.shape == (80, 401)
    assert (fb >= 0).all()
    freqs = np.linspace(0, 8000, 401)
    support = freqs[(fb > 0).any(dim=0).numpy()]
    assert support.min() >= 55 and support.max() <= 7600
    assert (fb.sum(dim=1) > 0).all()  # no empty band


def test_spectrogram_shape_and_range() -> None:
    mel = MelSpectrogram()(tone(440, 1.0), 16000)
    assert mel.dtype == torch.float32
    assert mel.shape == (80, 16000 // 200 + 1)
    assert mel.min() >= -4.0 and mel.max() <= 4.0
    assert mel.max() > 0.0  # a loud tone reaches the upper half of the range


def test_silence_is_the_floor() -> None:
    mel = MelSpectrogram()(np.zeros(8000, np.float32), 16000)
    assert torch.all(mel == -4.0)


def test_tone_lands_in_its_band() -> None:
    fb = mel_filterbank()
    freqs = np.linspace(0, 8000, 401)
    expected = int(fb[:, np.argmin(np.abs(freqs - 1000))].argmax())
    mel = MelSpectrogram()(tone(1000, 0.5), 16000)
    assert abs(int(mel[:, 5:-5].mean(dim=1).argmax()) - expected) <= 1


def test_other_sample_rates_are_resampled() -> None:
    at16 = MelSpectrogram()(tone(700, 1.0, 16000), 16000)
    at22 = MelSpectrogram()(tone(700, 1.0, 22050), 22050)
    assert at22.shape == at16.shape
    assert torch.allclose(at16[:, 5:-5].mean(1), at22[:, 5:-5].mean(1), atol=0.15)


def test_resample_keeps_the_frequency() -> None:
    y = resample(torch.from_numpy(tone(440, 1.0, 22050)), 22050, 16000)
    assert y.numel() == 16000
    spectrum = torch.fft.rfft(y).abs()
    assert int(spectrum.argmax()) == 440  # 1 Hz bins over one second


def test_windows_follow_the_published_indexing() -> None:
    m = MelSpectrogram()
    mel = torch.arange(80 * 100, dtype=torch.float32).reshape(80, 100)
    win = m.windows(mel, n_frames=40, fps=25)
    assert win.shape == (40, 1, 80, 16)
    for i in (0, 1, 7, 20):
        start = int(80 * i / 25)
        assert torch.equal(win[i, 0], mel[:, start : start + 16])
    assert torch.equal(win[-1, 0], mel[:, -16:])  # past the end: the last full window


def test_short_audio_is_padded_with_silence() -> None:
    m = MelSpectrogram()
    mel = m(tone(300, 0.05), 16000)
    win = m.windows(mel, n_frames=2, fps=25)
    assert win.shape == (2, 1, 80, 16)
    assert torch.all(win[0, 0, :, mel.shape[1] :] == -4.0)
