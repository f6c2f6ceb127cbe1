"""Fixtures of the Wav2Lip tests: randomly initialised generator weights saved in the published
checkpoint format, and a synthetic avatar picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from avatar_engine.renderers.wav2lip import Wav2LipNet
from tests.wav2lip.helpers import random_net


@pytest.fixture(scope="session")
def net() -> Wav2LipNet:
    return random_net()


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, net: Wav2LipNet) -> Path:
    """Saved as the published training script does: DataParallel keys, optimizer, counters."""
    path = tmp_path_factory.mktemp("w2l") / "wav2lip.pth"
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    torch.save({"state_dict": state, "optimizer": {}, "global_step": 7, "global_epoch": 1}, path)
    return path


@pytest.fixture(scope="session")
def checkpoint_plain(tmp_path_factory: pytest.TempPathFactory, net: Wav2LipNet) -> Path:
    path = tmp_path_factory.mktemp("w2l") / "wav2lip_plain.pth"
    torch.save({"state_dict": net.state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def avatar_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(1)
    img = (rng.random((128, 160, 4)) * 255).astype(np.uint8)
    img[..., 3] = rng.integers(0, 256, size=(128, 160), dtype=np.uint8)
    path = tmp_path_factory.mktemp("w2l") / "avatar.png"
    Image.fromarray(img, "RGBA").save(path)
    return path
