"""The portrait renderer (a card's picture with a drawn mouth): it speaks with its mouth only,
shows the picture's own mouth at rest, blinks when its eyes are placed, finds the mouth of
character art by itself, and exports its drawings as a sprite set. Frames are saved to
test-artifacts/ (portrait-*.png) to look at."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from avatar_engine.renderers.factory import create_renderer
from avatar_engine.renderers.portrait import PortraitRenderer, guess_mouth, main, write_sprite_set
from avatar_engine.renderers.sprite import SpriteRenderer
from avatar_engine.renderers.spriteset import SpriteSet, contact_sheet
from avatar_engine.settings import PortraitSettings
from avatar_engine.visemes import SHAPE_CODE, SHAPES
from tests.personas.art import EYES, MOUTH, SIZE, draw_character
from vstage_core.errors import ConfigError

FPS = 25


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("portrait") / "character.png"
    draw_character().save(path)
    return path


def _renderer(picture: Path, **kw: object) -> PortraitRenderer:
    settings = PortraitSettings.model_validate(
        {"image": picture, "mouth": MOUTH, "breathing_px": 0, "fps": FPS, "device": "cpu", **kw})
    return PortraitRenderer(settings=settings)


def _changed(frame: torch.Tensor, base: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the pixels where ``frame`` differs from ``base``; None: nowhere."""
    if torch.equal(frame, torch.from_numpy(base)):
        return None
    diff = (frame.to(torch.int16) - torch.from_numpy(base).to(torch.int16)).abs().amax(-1) > 8
    ys, xs = (t.numpy() for t in torch.nonzero(diff, as_tuple=True))
    return None if xs.size == 0 else (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def _inside(box: tuple[int, int, int, int], spot: tuple[int, int, int], reach: float) -> bool:
    x, y, w = spot
    return (box[0] >= x - reach * w and box[2] <= x + reach * w
            and box[1] >= y - reach * w and box[3] <= y + reach * w)


def _dark(frame: torch.Tensor) -> int:
    """Pixels of the mouth's dark inside."""
    rgb = frame[..., :3].numpy().astype(np.int16)
    return int(((rgb.sum(axis=2) < 200) & (rgb[..., 0] > rgb[..., 2])).sum())


def _strip(frames: list[np.ndarray], box: tuple[int, int, int, int]) -> Image.Image:
    tiles = [Image.fromarray(f).crop(box) for f in frames]
    w, h = tiles[0].size
    out = Image.new("RGBA", (w * len(tiles), h))
    for i, t in enumerate(tiles):
        out.paste(t, (i * w, 0))
    return out


def test_each_mouth_shape_is_drawn_on_the_mouth_and_rest_shows_the_picture(
        picture: Path, artifacts: Path) -> None:
    r = _renderer(picture, eyes=EYES)
    base = np.array(Image.open(picture).convert("RGBA"))
    frames = r.render_codes(np.arange(len(SHAPES), dtype=np.int8))
    assert frames.shape == (len(SHAPES), SIZE[1], SIZE[0], 4) and frames.dtype == torch.uint8
    by_shape = dict(zip(SHAPES, frames, strict=True))
    for shape in ("X", "A"):  # at rest and for m/b/p: the picture's own mouth
        assert _changed(by_shape[shape], base) is None, shape
    drawn = [s for s in SHAPES if s not in ("X", "A")]
    for shape in drawn:
        box = _changed(by_shape[shape], base)
        assert box is not None and _inside(box, MOUTH, 0.8), (shape, box)
    # every open shape is its own drawing, and wider open shows more of the mouth's inside
    assert len({by_shape[s].numpy().tobytes() for s in drawn}) == len(drawn)
    assert _dark(by_shape["D"]) > _dark(by_shape["C"]) > _dark(by_shape["B"]) > 0
    Image.fromarray(contact_sheet(r.sprites, scale=0.5)).save(artifacts / "portrait-sheet.png")


@pytest.mark.models
def test_a_portrait_lip_syncs_real_speech(picture: Path, artifacts: Path) -> None:
    from avatar_engine.settings import VoiceSettings
    from avatar_engine.voice import create_tts

    speech = create_tts(VoiceSettings(), language="en").synthesize(
        "Welcome to my glade, traveller. Rest here until the storm is over.")
    r = _renderer(picture)
    frames = r.render(speech)
    codes = r.mouth_codes(speech)
    assert frames.shape[0] == codes.size > 2 * FPS
    base = np.array(Image.open(picture).convert("RGBA"))
    rest = np.isin(codes, [SHAPE_CODE["X"], SHAPE_CODE["A"]])
    assert 0.3 < 1 - rest.mean() < 0.95  # the mouth moves for most of a sentence, not all
    for i in range(frames.shape[0]):
        box = _changed(frames[i], base)
        if rest[i]:
            assert box is None, i
        else:
            assert box is not None and _inside(box, MOUTH, 0.8), (i, box)
    x, y, w = MOUTH
    picks = [int(i) for i in np.linspace(0, frames.shape[0] - 1, 12)]
    _strip([frames[i].numpy() for i in picks], (x - 2 * w, y - 3 * w, x + 2 * w, y + w)).save(
        artifacts / "portrait-speaking.png")


def test_placed_eyes_blink_and_unplaced_eyes_do_not(picture: Path, artifacts: Path) -> None:
    base = np.array(Image.open(picture).convert("RGBA"))
    still = _renderer(picture).idle(10 * FPS)
    assert all(_changed(f, base) is None for f in still)  # no eyes placed: a still picture
    blinking = _renderer(picture, eyes=EYES).idle(10 * FPS)
    boxes = [_changed(f, base) for f in blinking]
    shut = [i for i, b in enumerate(boxes) if b is not None]
    assert 2 <= len(shut) <= 0.15 * len(boxes)  # a blink every few seconds, briefly
    (lx, ly, lw), (rx, ry, rw) = EYES
    for i in shut:
        x0, y0, x1, y1 = boxes[i]  # type: ignore[misc]
        assert x0 >= lx - lw and x1 <= rx + rw and y0 >= ly - lw and y1 <= ry + rw, boxes[i]
    frames = [blinking[i].numpy() for i in (shut[0] - 1, *shut[:3])]
    _strip(frames, (lx - lw, ly - lw, rx + rw, ry + rw)).save(artifacts / "portrait-blink.png")


def test_a_large_picture_is_scaled_and_breathes(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    draw_character((1200, 1560)).save(path)
    r = PortraitRenderer(settings=PortraitSettings(image=path, mouth=(600, 786, 132),
                                                   max_side=640, device="cpu"))
    assert r.size == (492, 640)
    idle = r.idle(4 * FPS)  # one breath: the picture rises and settles
    assert len({f.numpy().tobytes() for f in idle}) >= 2
    assert torch.equal(idle[0], r.idle(1, start_frame=4 * FPS)[0])


def test_the_factory_builds_it_and_bad_settings_say_what_is_wrong(picture: Path,
                                                                  tmp_path: Path) -> None:
    r = create_renderer(PortraitSettings(image=picture, device="cpu"))
    assert isinstance(r, PortraitRenderer) and r.size == SIZE
    with pytest.raises(ConfigError, match=r"avatar.image: no such picture"):
        create_renderer(PortraitSettings(image=tmp_path / "missing.png"))
    (tmp_path / "junk.png").write_bytes(b"not a picture")
    with pytest.raises(ConfigError, match=r"avatar.image: cannot read the picture"):
        create_renderer(PortraitSettings(image=tmp_path / "junk.png"))
    with pytest.raises(ConfigError, match=r"avatar.mouth: \[500, 100, 40\] lies outside"):
        create_renderer(PortraitSettings(image=picture, mouth=(500, 100, 40)))
    with pytest.raises(ConfigError, match=r"avatar.eyes.1"):
        create_renderer(PortraitSettings(image=picture, eyes=((10, 10, 10), (10, 900, 10))))
    with pytest.raises(ValidationError, match="width >= 4"):
        PortraitSettings(image=picture, mouth=(10, 10, 2))


@pytest.mark.parametrize("size,offset", [((400, 520), (0, 0)), ((200, 260), (0, 0)),
                                         ((800, 1040), (0, 0)), ((300, 600), (0, 0)),
                                         ((400, 520), (380, 90))])
def test_the_mouth_is_found_on_character_art(size: tuple[int, int],
                                             offset: tuple[int, int]) -> None:
    art = draw_character(size)
    canvas = Image.new("RGB", (size[0] + 2 * offset[0], size[1] + 2 * offset[1]),
                       (40, 44, 60))  # the character somewhere on a bigger, darker picture
    canvas.paste(art, offset)
    sx, sy = size[0] / SIZE[0], size[1] / SIZE[1]
    x, y, w = MOUTH[0] * sx + offset[0], MOUTH[1] * sy + offset[1], MOUTH[2] * sx
    gx, gy, gw = guess_mouth(canvas)
    assert abs(gx - x) <= 0.4 * w and abs(gy - y) <= 0.4 * w and 0.6 * w <= gw <= 1.5 * w


def test_without_a_face_the_mouth_guess_is_the_usual_place() -> None:
    assert guess_mouth(Image.new("RGB", (400, 700), (30, 60, 200))) == (200, 189, 30)
    assert guess_mouth(Image.new("RGB", (400, 400), (30, 60, 200))) == (200, 172, 34)


def test_the_drawings_export_as_a_sprite_set_that_renders_the_same(picture: Path,
                                                                   tmp_path: Path) -> None:
    portrait = _renderer(picture, eyes=EYES, breathing_px=2)
    write_sprite_set(portrait.sprites, tmp_path / "set")
    sprites = SpriteRenderer(sprites=SpriteSet.load(tmp_path / "set"), fps=FPS, device="cpu")
    codes = np.tile(np.arange(len(SHAPES), dtype=np.int8), 30)  # 270 frames: blinks included
    assert torch.equal(portrait.render_codes(codes), sprites.render_codes(codes))


def test_the_preview_tool_writes_a_sheet(picture: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    sheet = tmp_path / "sheet.png"
    assert main([str(picture), "--eye", "164", "200", "46", "--eye", "236", "200", "46",
                 "--sheet", str(sheet)]) == 0
    out = capsys.readouterr().out
    assert "(a guess: pass --mouth X Y WIDTH)" in out and "eyes: 2" in out
    with Image.open(sheet) as im:
        assert im.size == (6 * SIZE[0] // 2, 2 * SIZE[1] // 2)
    assert main([str(tmp_path / "none.png")]) == 1


def test_a_render_worker_builds_the_portrait_from_its_settings_payload(picture: Path) -> None:
    from avatar_engine.workers.jobs import avatar_payload, cached_renderer

    settings = PortraitSettings(image=picture, mouth=MOUTH, device="cpu")
    payload = avatar_payload(settings)  # what crosses to a worker: plain JSON
    assert payload["renderer"] == "portrait"
    r = cached_renderer(payload)
    assert isinstance(r, PortraitRenderer) and r.settings == settings
    assert cached_renderer(avatar_payload(settings)) is r  # one per distinct settings
