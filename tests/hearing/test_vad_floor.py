"""The VAD's floor: room tone under it costs no model run; anything louder is scored."""

from __future__ import annotations

import numpy as np

from bots.hearing.vad import WINDOW, SileroVAD


def _noise(dbfs: float, windows: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(WINDOW * windows).astype(np.float32)
    return x / np.sqrt(np.mean(x * x)) * 10 ** (dbfs / 20)


def test_quiet_windows_are_silent_without_the_model_and_louder_ones_are_scored() -> None:
    vad = SileroVAD()
    gated = vad.stream(floor_dbfs=-55.0)
    probs = gated.feed(_noise(-62.0, 20))
    assert probs == [0.0] * 20 and gated.skipped == 20
    loud = gated.feed(_noise(-30.0, 10, seed=2))
    assert len(loud) == 10 and gated.skipped == 20  # every loud window went to the model
    ungated = vad.stream()
    ungated.feed(_noise(-62.0, 20))
    assert ungated.skipped == 0
