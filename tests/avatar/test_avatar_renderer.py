"""The sprite renderer on the committed default art: output format, lip-sync in the mouth box,
blinking, breathing, determinism across clips, compositing correctness and device fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from avatar_helpers import HELLO, REPO, synth_speech
from PIL import Image

from avatar_engine.renderers import Renderer, SpriteRenderer
from avatar_engine.renderers.sprite import EYES_CLOSED, EYES_HALF, EYES_OPEN
from avatar_engine.renderers.spriteset import SpriteSet
from avatar_engine.settings import AvatarSettings
from avatar_engine.types import frame_count
from avatar_engine.visemes import SHAPE_CODE

X = SHAPE_CODE["X"]
SPEECH = [
    ("^", 0.4),
    ("h", 0.06),
    ("ˈ", 0.03),
    ("a", 0.25),
    ("m", 0.05),
    ("o", 0.2),
    ("ʊ", 0.12),
    (".", 0.05),
    ("$", 0.4),
]


@pytest.fixture(scope="module")
def renderer(default_sprites: SpriteSet) -> SpriteRenderer:
    return SpriteRenderer(sprites=default_sprites, fps=25, device="cpu")


def box_of(frames: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    x, y, w, h = box
    return frames[..., y : y + h, x : x + w, :]


def test_is_a_renderer(renderer: SpriteRenderer) -> None:
    assert isinstance(renderer, Renderer)
    assert renderer.size == (512, 512) and renderer.fps == 25


@pytest.mark.parametrize("with_phonemes", [True, False])
def test_output_format(renderer: SpriteRenderer, with_phonemes: bool) -> None:
    speech = synth_speech(SPEECH, with_phonemes=with_phonemes)
    frames = renderer.render(speech, start_frame=7)
    n = frame_count(speech.duration, 25)
    assert frames.shape == (n, 512, 512, 4)
    assert frames.dtype == torch.uint8
    assert frames.device.type == "cpu"
    corners = frames[:, [0, 0, -1], [0, -1, 0], 3]  # the bottom corners lie beside the torso
    assert (corners == 0).all()
    assert renderer.idle(0).shape == (0, 512, 512, 4)


@pytest.mark.parametrize("with_phonemes", [True, False])
def test_mouth_moves_only_when_speaking(renderer: SpriteRenderer, with_phonemes: bool) -> None:
    speech = synth_speech(SPEECH, with_phonemes=with_phonemes)
    start = 123
    frames = renderer.render(speech, start_frame=start)
    idle = renderer.idle(frames.shape[0], start_frame=start)
    codes = renderer.mouth_codes(speech)
    assert (codes[:8] == X).all() and (codes != X).sum() >= 10
    # Breathing lifts the figure by up to 3 px: widen the box so the mouth stays inside it.
    x, y, w, h = renderer.sprites.mouth_box
    box = (x, y - 3, w, h + 3)
    same = (box_of(frames, box) == box_of(idle, box)).flatten(1).all(dim=1).numpy()
    assert (same == (codes == X)).all()
    # Outside the mouth box a speaking frame is exactly the idle frame.
    outside = frames.clone()
    outside[:, box[1] : box[1] + box[3], box[0] : box[0] + box[2]] = 0
    idle_outside = idle.clone()
    idle_outside[:, box[1] : box[1] + box[3], box[0] : box[0] + box[2]] = 0
    assert torch.equal(outside, idle_outside)


def test_mouth_codes_source(renderer: SpriteRenderer) -> None:
    with_timings = synth_speech(HELLO)
    assert renderer.mouth_codes(with_timings).shape == (frame_count(with_timings.duration, 25),)
    codes = renderer.mouth_codes(with_timings)
    assert SHAPE_CODE["H"] in codes  # only the phoneme path knows about tongues
    without = synth_speech(HELLO, with_phonemes=False)
    assert SHAPE_CODE["H"] not in renderer.mouth_codes(without)


@pytest.mark.parametrize("start", [0, 1_000, 3_600 * 25, 10_000_000])
def test_blinks_within_six_seconds(renderer: SpriteRenderer, start: int) -> None:
    eyes = renderer.eye_states(start, 6 * 25)
    assert (eyes == EYES_CLOSED).any()
    assert (eyes == EYES_OPEN).mean() > 0.85


def test_blink_intervals_follow_the_manifest(renderer: SpriteRenderer) -> None:
    eyes = renderer.eye_states(0, 10 * 60 * 25)  # ten minutes
    shut = eyes != EYES_OPEN
    onsets = np.flatnonzero(shut[1:] & ~shut[:-1]) + 1
    gaps = np.diff(onsets) / 25
    lo, hi = renderer.sprites.blink.interval_s
    assert gaps.min() >= lo - 0.08 and gaps.max() <= hi + 0.08
    assert len(onsets) > 600 / hi
    assert (eyes == EYES_HALF).any()  # the default set eases in and out of blinks


def test_blink_is_visible(renderer: SpriteRenderer) -> None:
    eyes = renderer.eye_states(0, 150)
    frames = renderer.idle(150)
    i_open = int(np.flatnonzero(eyes == EYES_OPEN)[0])
    i_shut = int(np.flatnonzero(eyes == EYES_CLOSED)[0])
    box = renderer.sprites.eyes["open"].box
    assert not torch.equal(box_of(frames[i_open], box), box_of(frames[i_shut], box))


def test_breathing_moves_the_figure(renderer: SpriteRenderer) -> None:
    n = round(renderer.sprites.breathing.period_s * 25)
    lifts = renderer.breath_offsets(0, n)
    assert lifts.min() == 0 and lifts.max() == 3
    frames = renderer.idle(n)
    eyes = renderer.eye_states(0, n)
    rest = int(np.flatnonzero((lifts == 0) & (eyes == EYES_OPEN))[0])
    top = int(np.flatnonzero((lifts == 3) & (eyes == EYES_OPEN))[0])
    assert not torch.equal(frames[rest], frames[top])
    # The whole figure rises: row y of the lifted frame is row y + 3 of the resting one.
    assert torch.equal(frames[top][:-3], frames[rest][3:])
    assert torch.equal(frames[top][-1], frames[rest][-1])  # the cut-off torso stays attached
    distinct = {bytes(f[::16, ::16].numpy().tobytes()) for f in frames}
    assert len(distinct) >= 4  # the idle loop never looks frozen


def test_same_global_frame_same_pixels(default_sprites: SpriteSet) -> None:
    a = SpriteRenderer(sprites=default_sprites, fps=25, device="cpu")
    b = SpriteRenderer(sprites=default_sprites, fps=25, device="cpu")
    whole = a.idle(80, start_frame=500)
    assert torch.equal(b.idle(30, start_frame=550), whole[50:])
    speech = synth_speech(SPEECH)
    first = a.render(speech, start_frame=40)
    b.idle(10)  # a different cache history must not matter
    assert torch.equal(b.render(speech, start_frame=40), first)
    # A clip that follows idle frames continues their blink/breath timeline exactly.
    silent = synth_speech([("^", 1.0)])
    assert torch.equal(a.render(silent, start_frame=500)[:25], whole[:25])


def test_cold_and_warm_cache_agree(renderer: SpriteRenderer) -> None:
    codes = np.arange(75, dtype=np.int8) % 9
    warm = renderer.render_codes(codes, start_frame=3)
    renderer.clear_cache()
    assert torch.equal(renderer.render_codes(codes, start_frame=3), warm)


def test_compositing_matches_pillow(renderer: SpriteRenderer) -> None:
    root = renderer.sprites.root
    # Frame 0 has no breathing lift and open eyes.
    assert renderer.breath_offsets(0, 1)[0] == 0 and renderer.eye_states(0, 1)[0] == EYES_OPEN
    for shape in ("X", "D", "H"):
        expected = Image.open(root / "base.png").convert("RGBA")
        for name in ("eyes_open.png", f"mouth_{shape}.png"):
            expected.alpha_composite(Image.open(root / name).convert("RGBA"))
        want = np.asarray(expected).astype(int)
        got = renderer.render_codes(np.array([SHAPE_CODE[shape]]))[0].numpy().astype(int)
        opaque = want[..., 3] > 16  # colour is meaningless where nearly transparent
        assert np.abs(got[..., 3] - want[..., 3]).max() <= 1
        assert np.abs(got[opaque][:, :3] - want[opaque][:, :3]).max() <= 2


def test_rejects_bad_codes(renderer: SpriteRenderer) -> None:
    with pytest.raises(ValueError):
        renderer.render_codes(np.array([9]))


def test_cuda_falls_back_to_cpu(default_sprites: SpriteSet) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    r = SpriteRenderer(sprites=default_sprites, fps=25, device="cuda")
    assert r.device.type == "cpu"
    assert r.idle(3).device.type == "cpu"


def test_from_settings() -> None:
    settings = AvatarSettings(sprites=Path("avatars/default"), fps=30, device="cpu")
    r = SpriteRenderer.from_settings(settings, config_dir=REPO / "config")
    assert r.fps == 30 and r.sprites.name == "Vee"
    speech = synth_speech(SPEECH)
    assert r.render(speech).shape[0] == frame_count(speech.duration, 30)
