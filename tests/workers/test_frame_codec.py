"""Frames packed for the trip back from a RabbitMQ worker: exact, small for the avatar, and
unpacked here into a writable array whose frames never alias, whichever way it was built."""

from __future__ import annotations

import dataclasses
import gc
import pickle
import zlib
from pathlib import Path

import numpy as np
import pytest

from avatar_engine.performer import codec
from avatar_engine.performer.codec import PackedFrames, pack_frames, unpack_frames
from avatar_engine.performer.render import render_speech
from avatar_engine.renderers.factory import create_renderer
from avatar_engine.settings import AvatarSettings
from avatar_engine.types import Speech

REPO = Path(__file__).resolve().parents[2]
MAPPED = codec._PageMapper.usable((2, 32, 32, 4))  # Linux on x86-64/arm64: the mapped path


def both_ways(packed: PackedFrames) -> list[np.ndarray]:
    """Unpacked with shared pages (where the platform allows) and by copying."""
    return [unpack_frames(packed), unpack_frames(packed, share_pages=False)]


def test_random_changes_round_trip_exactly():
    rng = np.random.default_rng(1)
    frames = np.repeat(rng.integers(0, 256, (1, 24, 32, 4), dtype=np.uint8), 9, axis=0)
    frames[2, 3:7, 5:9] = rng.integers(0, 256, (4, 4, 4), dtype=np.uint8)  # a box changes
    frames[4] = rng.integers(0, 256, (24, 32, 4), dtype=np.uint8)  # everything changes
    frames[5, 23, 31, 3] ^= 1  # one byte of alpha in the corner
    frames[8, 0, 0, 0] ^= 0x80  # one byte, first pixel
    packed = pickle.loads(pickle.dumps(pack_frames(frames)))  # as it crosses the broker
    for out in both_ways(packed):
        assert np.array_equal(out, frames)


@pytest.mark.parametrize("shape", [(1, 8, 8, 4), (3, 1, 1, 4), (2, 5, 7, 3), (4, 3, 5, 1)])
def test_small_and_odd_shapes_round_trip(shape):
    frames = np.random.default_rng(2).integers(0, 256, shape, dtype=np.uint8)
    frames[-1] = frames[0]  # and a frame that returns to an earlier one
    for out in both_ways(pack_frames(frames)):
        assert np.array_equal(out, frames)


def test_no_frames_is_an_error():
    with pytest.raises(ValueError, match="expected frames"):
        pack_frames(np.zeros((0, 4, 4, 4), np.uint8))


def breathing(n: int = 12) -> np.ndarray:
    """A sprite-like figure on a transparent background that moves up and down a pixel or two
    (a breath) while a small mouth box changes: page-sized frames (128x128 RGBA = 16 pages)."""
    rng = np.random.default_rng(3)
    figure = rng.integers(1, 256, (80, 60, 4), dtype=np.uint8)
    frames = np.zeros((n, 128, 128, 4), np.uint8)
    for i, lift in enumerate([0, 0, 1, 1, 2, 2, 1, 1, 0, 0, 1, 2][:n]):
        frames[i, 30 - lift:110 - lift, 34:94] = figure
        frames[i, 90 - lift:94 - lift, 60:68] = (i % 3) * 60  # the mouth
    return frames


def test_a_breath_is_sent_as_a_move_and_a_small_patch():
    frames = breathing()
    packed = pack_frames(frames, level=0)  # stored, not deflated: the bytes show the coding
    boxes = np.frombuffer(packed.boxes, np.int32).reshape(-1, 10)
    moved = boxes[:, 4] != 0
    assert moved.sum() >= 4, boxes  # each change of lift is a move of the rows by one pixel
    patch_area = (boxes[moved, 7] - boxes[moved, 6]) * (boxes[moved, 9] - boxes[moved, 8])
    assert (patch_area <= 4 * 8).all(), boxes[moved]  # what is left: the mouth
    for out in both_ways(packed):
        assert np.array_equal(out, frames)


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_packing_in_threads_codes_the_same_boxes(threads):
    frames = breathing()
    serial, parallel = pack_frames(frames, threads=1), pack_frames(frames, threads=threads)
    assert serial.boxes == parallel.boxes and serial.first == parallel.first
    assert len(parallel.patches) == threads
    assert np.array_equal(unpack_frames(parallel), frames)


@pytest.mark.skipif(not MAPPED, reason="pages are shared only on Linux x86-64/arm64")
def test_frames_sharing_pages_never_alias_and_free_their_mappings():
    frames = breathing()
    before = codec._PageMapper._live_runs
    out = unpack_frames(pack_frames(frames))
    assert out.flags.writeable and out.flags.c_contiguous
    assert codec._PageMapper._live_runs > before  # it did take the mapped path
    out[1, 20, 20] = (1, 2, 3, 4)  # frames 0..1 are identical: their pages are shared
    out[0, 0, 0, 0] = 99
    assert np.array_equal(out[2:], frames[2:])
    assert (out[0, 20, 20] == frames[0, 20, 20]).all() and out[1, 0, 0, 0] == frames[1, 0, 0, 0]
    assert pickle.loads(pickle.dumps(out))[1, 20, 20].tolist() == [1, 2, 3, 4]
    frame = out[3]  # a view keeps the whole mapping alive
    del out
    gc.collect()
    assert codec._PageMapper._live_runs > before
    assert np.array_equal(frame, frames[3])
    del frame
    gc.collect()
    assert codec._PageMapper._live_runs == before


@pytest.mark.skipif(not MAPPED, reason="pages are shared only on Linux x86-64/arm64")
def test_past_the_mapping_budget_sentences_are_copied(monkeypatch):
    frames = breathing()
    packed = pack_frames(frames)
    monkeypatch.setattr(codec._PageMapper, "_live_budget", codec._PageMapper._live_runs + 1)
    before = codec._PageMapper._live_runs
    out = unpack_frames(packed)
    assert codec._PageMapper._live_runs == before
    assert out.flags.owndata and np.array_equal(out, frames)


def corrupt(packed: PackedFrames, **change) -> PackedFrames:
    return dataclasses.replace(packed, **change)


@pytest.mark.parametrize("share_pages", [True, False])
def test_corrupt_packs_raise_a_clear_error_and_leak_nothing(share_pages):
    packed = pack_frames(breathing())
    boxes = np.frombuffer(packed.boxes, np.int32).reshape(-1, 10).copy()
    boxes[3, 6:] = (0, 129, 0, 10)  # a patch below the frame
    cases = {
        "boxes for": corrupt(packed, boxes=packed.boxes[:-4]),
        "leaves the frame": corrupt(packed, boxes=boxes.tobytes()),
        "corrupt data": corrupt(packed, patches=(b"not deflate",)),
        "first frame has": corrupt(packed, first=zlib.compress(bytes(100))),
        "boxes need more": corrupt(packed, patches=(pickle.loads(pickle.dumps(
            pack_frames(breathing()[:2]).patches[0])),)),
    }
    before = codec._PageMapper._live_runs
    for message, bad in cases.items():
        with pytest.raises(ValueError, match=message):
            unpack_frames(bad, share_pages=share_pages)
    gc.collect()
    assert codec._PageMapper._live_runs == before


def test_a_spoken_sentence_of_the_sprite_avatar_round_trips_small():
    renderer = create_renderer(AvatarSettings(sprites=REPO / "config" / "avatars" / "default",
                                              device="cpu"))
    t = np.arange(32000) / 16000
    audio = (0.5 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0))
    # From frame 40: the breath moves the avatar during these frames.
    frames = render_speech(renderer, Speech("hi", audio.astype(np.float32), 16000), 40)
    packed = pickle.loads(pickle.dumps(pack_frames(frames)))
    for out in both_ways(packed):
        assert np.array_equal(out, frames)
    assert packed.packed_bytes < frames.nbytes / 100, (packed.packed_bytes, frames.nbytes)
