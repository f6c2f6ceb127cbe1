"""A real OBS Studio under Xvfb for the tests of this folder, and quick test clips."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from avatar_engine.clips.encode import encode_clip
from avatar_engine.types import Clip
from overlays.obs.settings import ObsSettings
from tests.netutil import free_port
from tests.obs.headless import HeadlessObs

PASSWORD = "obs-test-password-4242"
CANVAS = (1280, 720)


@pytest.fixture(scope="module")
def obs_studio(tmp_path_factory):
    """OBS 29 with obs-websocket 5.1, running headless; stopped after the module."""
    if shutil.which("obs") is None or shutil.which("xvfb-run") is None:
        pytest.fail("OBS Studio is not installed: run `make install` (apt obs-studio xvfb xauth)")
    home = tmp_path_factory.mktemp("obs-home")
    obs = HeadlessObs(home=home, port=free_port(), password=PASSWORD,
                      width=CANVAS[0], height=CANVAS[1])
    obs.start()
    yield obs
    obs.stop()


@pytest.fixture
def obs_settings(obs_studio: HeadlessObs) -> ObsSettings:
    return ObsSettings(
        enabled=True, port=obs_studio.port, password=PASSWORD,
        avatar_box=(100, 80, 320, 320), reconnect_min_s=0.1, reconnect_max_s=0.5,
        health_interval_s=0.2,
    )


ClipMaker = Callable[..., Clip]


@pytest.fixture
def make_clip(tmp_path: Path) -> ClipMaker:
    """Encode a small MP4 clip (a solid square, a tone) in a few milliseconds; no models."""

    def make(reply_id: str, index: int, text: str, *, seconds: float = 0.5,
             rgb: tuple[int, int, int] = (230, 30, 30), fps: int = 30,
             persona: str = "p") -> Clip:
        n = max(1, round(seconds * fps))
        frames = np.zeros((n, 128, 128, 4), np.uint8)
        frames[..., :3] = rgb
        frames[..., 3] = 255
        t = np.arange(int(seconds * 22050), dtype=np.float32) / 22050
        audio = (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
        files = encode_clip(frames=frames, audio=audio, sample_rate=22050, fps=fps,
                            out_base=tmp_path / persona / f"{reply_id}-{index}",
                            formats=("mp4",))
        return Clip(reply_id=reply_id, index=index, text=text, duration=n / fps, fps=fps,
                    frames=n, files=files)

    return make
