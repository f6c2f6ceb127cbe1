"""A real OBS Studio under Xvfb for the tests of this folder, and the default avatar "Vee"
live: her sprite renderer, her live stream (overlays.live) and its output to OBS."""

from __future__ import annotations

import shutil
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import numpy as np
import pytest

from avatar_engine.types import Performance, Speech
from overlays.obs.keying import KeyColour, choose_key
from overlays.obs.live import ObsLiveOutput, OnAir
from overlays.obs.settings import ObsSettings
from tests.conftest import REPO
from tests.netutil import free_port
from tests.obs.headless import HeadlessObs

PASSWORD = "obs-test-password-4242"
CANVAS = (1280, 720)
VEE = REPO / "config" / "avatars" / "default"


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def settings_for(obs: HeadlessObs) -> ObsSettings:
    return ObsSettings(
        enabled=True, port=obs.port, password=PASSWORD,
        avatar_box=(100, 80, 320, 320), reconnect_min_s=0.1, reconnect_max_s=0.5,
        health_interval_s=0.2, live_port_base=free_udp_port(),
    )


@pytest.fixture
def obs_settings(obs_studio: HeadlessObs) -> ObsSettings:
    return settings_for(obs_studio)


@pytest.fixture(scope="session")
def vee():
    """The default avatar's sprite renderer (CPU, 25 fps, 512x512)."""
    from avatar_engine.renderers.sprite import SpriteRenderer
    from avatar_engine.renderers.spriteset import SpriteSet

    return SpriteRenderer(sprites=SpriteSet.load(VEE), fps=25, device="cpu")


@pytest.fixture(scope="session")
def vee_key() -> KeyColour:
    return choose_key(VEE)


def mouth_frames(renderer, shapes: str, *, start_frame: int = 0) -> np.ndarray:
    """Speech frames whose mouth takes the given shapes (one letter per frame)."""
    from avatar_engine.visemes import SHAPE_CODE

    codes = np.array([SHAPE_CODE[s] for s in shapes], np.int8)
    return renderer.render_codes(codes, start_frame=start_frame).numpy()


def tone(seconds: float, hz: float = 220.0, rate: int = 48000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def performance(frames: np.ndarray, text: str, *, reply_id: str, index: int,
                persona: str = "vee", fps: int = 25) -> Performance:
    """A sentence performed: the given frames with a tone as its speech."""
    audio = tone(len(frames) / fps).astype(np.float32) / 32768
    return Performance(persona=persona, reply_id=reply_id, index=index,
                       speech=Speech(text=text, audio=audio, sample_rate=48000),
                       frames=frames, fps=fps, start_frame=0)


@pytest.fixture
def live_vee(vee, vee_key):
    """``async with live_vee(url, on_air) as (stream, output)``: Vee's real
    :class:`~overlays.live.stream.LiveStream` (idle motion from her performer) sent to ``url``
    as OBS reads it."""
    from avatar_engine.performer.local import LocalPerformer
    from overlays.live.stream import LiveStream

    @asynccontextmanager
    async def run(url: str, on_air: Callable[[OnAir], None] | None = None,
                  persona: str = "vee") -> AsyncIterator[tuple[LiveStream, ObsLiveOutput]]:
        performer = LocalPerformer(persona=persona, renderer=vee)
        async with LiveStream(persona=persona, performer=performer) as stream, \
                ObsLiveOutput(stream=stream, url=url, key_colour=vee_key.rgb,
                              on_air=on_air) as output:
            yield stream, output

    return run
