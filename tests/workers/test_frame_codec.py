"""Frames packed for the trip back from a RabbitMQ worker: exact, and small for the avatar."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from avatar_engine.performer.codec import pack_frames, unpack_frames
from avatar_engine.performer.render import render_speech
from avatar_engine.renderers.factory import create_renderer
from avatar_engine.settings import AvatarSettings
from avatar_engine.types import Speech

REPO = Path(__file__).resolve().parents[2]


def test_random_changes_round_trip_exactly():
    rng = np.random.default_rng(1)
    frames = np.repeat(rng.integers(0, 256, (1, 24, 32, 4), dtype=np.uint8), 9, axis=0)
    frames[2, 3:7, 5:9] = rng.integers(0, 256, (4, 4, 4), dtype=np.uint8)  # a box changes
    frames[4] = rng.integers(0, 256, (24, 32, 4), dtype=np.uint8)  # everything changes
    frames[5, 23, 31, 3] ^= 1  # one byte of alpha in the corner
    frames[8, 0, 0, 0] ^= 0x80  # one byte, first pixel
    packed = pickle.loads(pickle.dumps(pack_frames(frames)))  # as it crosses the broker
    assert np.array_equal(unpack_frames(packed), frames)


@pytest.mark.parametrize("shape", [(1, 8, 8, 4), (3, 1, 1, 4), (2, 5, 7, 3)])
def test_small_and_odd_shapes_round_trip(shape):
    frames = np.random.default_rng(2).integers(0, 256, shape, dtype=np.uint8)
    assert np.array_equal(unpack_frames(pack_frames(frames)), frames)


def test_no_frames_is_an_error():
    with pytest.raises(ValueError):
        pack_frames(np.zeros((0, 4, 4, 4), np.uint8))


def test_a_spoken_sentence_of_the_sprite_avatar_packs_small():
    renderer = create_renderer(AvatarSettings(sprites=REPO / "config" / "avatars" / "default",
                                              device="cpu"))
    t = np.arange(32000) / 16000
    audio = (0.5 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0))
    frames = render_speech(renderer, Speech("hi", audio.astype(np.float32), 16000), 0)
    packed = pack_frames(frames)
    assert np.array_equal(unpack_frames(packed), frames)
    assert packed.packed_bytes < frames.nbytes / 20, (packed.packed_bytes, frames.nbytes)
