"""Sprite set loading: the committed default set, fallbacks for shapes a set does not draw,
smaller overlays placed with ``at``, and errors that name the file, the line and the field."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avatar_engine.renderers.spriteset import SpriteSet
from avatar_engine.visemes import SHAPES
from vstage_core.errors import ConfigError

SIZE = 64


def png(path: Path, size: tuple[int, int] = (SIZE, SIZE), box=None, color=(200, 50, 50)) -> None:
    """A transparent PNG with an opaque rectangle ``box`` (x0, y0, x1, y1)."""
    arr = np.zeros((size[1], size[0], 4), dtype=np.uint8)
    if box is not None:
        x0, y0, x1, y1 = box
        arr[y0:y1, x0:x1] = (*color, 255)
    Image.fromarray(arr).save(path)


def make_set(root: Path, *, mouths: str = "XAC", manifest: str | None = None) -> Path:
    """A tiny sprite set: a body, two eye states and the given mouth shapes."""
    root.mkdir(parents=True, exist_ok=True)
    png(root / "base.png", box=(8, 8, 56, 64), color=(240, 200, 180))
    png(root / "eyes_open.png", box=(20, 20, 44, 26), color=(20, 20, 20))
    png(root / "eyes_closed.png", box=(20, 24, 44, 26), color=(20, 20, 20))
    for i, s in enumerate(mouths):
        png(root / f"mouth_{s}.png", box=(26, 40, 38, 42 + 2 * i), color=(120, 10, 10))
    if manifest is None:
        lines = "\n".join(f"  {s}: mouth_{s}.png" for s in mouths)
        manifest = (
            "name: Tiny\n"
            f"size: [{SIZE}, {SIZE}]\n"
            "base: base.png\n"
            "eyes:\n"
            "  open: eyes_open.png\n"
            "  closed: eyes_closed.png\n"
            f"mouths:\n{lines}\n"
        )
    (root / "manifest.yaml").write_text(manifest, encoding="utf-8")
    return root


def error_of(folder: Path) -> str:
    with pytest.raises(ConfigError) as info:
        SpriteSet.load(folder)
    return str(info.value)


def test_default_set_loads(default_sprites: SpriteSet) -> None:
    s = default_sprites
    assert s.size == (512, 512)
    assert s.base.shape == (512, 512, 4) and s.base.dtype == np.uint8
    assert set(s.mouths) == set(SHAPES)
    assert all(s.mouth_substitutes[k] == k for k in SHAPES)  # draws all nine
    assert set(s.eyes) == {"open", "closed", "half"}
    x, y, w, h = s.mouth_box
    for layer in s.mouths.values():  # every mouth drawing lies inside the mouth box
        lx, ly, lw, lh = layer.box
        assert x <= lx and y <= ly and lx + lw <= x + w and ly + lh <= y + h
    assert s.base[0, 0, 3] == 0 and s.base[0, -1, 3] == 0  # transparent background


def test_minimal_set_and_fallbacks(tmp_path: Path) -> None:
    s = SpriteSet.load(make_set(tmp_path / "tiny", mouths="XAC"))
    assert s.name == "Tiny"
    assert s.mouth_substitutes == {
        "X": "X",
        "A": "A",
        "B": "C",
        "C": "C",
        "D": "C",
        "E": "C",
        "F": "C",
        "G": "A",
        "H": "C",
    }
    assert s.mouths["D"] is s.mouths["C"]
    assert s.mouth_box == (26, 40, 12, 6)  # union of the drawn mouths
    assert "half" not in s.eyes


def test_layers_are_cropped_to_visible_pixels(tmp_path: Path) -> None:
    s = SpriteSet.load(make_set(tmp_path / "tiny"))
    assert s.eyes["open"].box == (20, 20, 24, 6)
    assert s.eyes["open"].pixels.shape == (6, 24, 4)


def test_smaller_overlay_placed_with_at(tmp_path: Path) -> None:
    root = make_set(tmp_path / "tiny")
    png(root / "small_mouth.png", size=(12, 8), box=(0, 0, 12, 8))
    text = (
        (root / "manifest.yaml")
        .read_text()
        .replace("  C: mouth_C.png", "  C: {file: small_mouth.png, at: [26, 40]}")
    )
    (root / "manifest.yaml").write_text(text)
    s = SpriteSet.load(root / "manifest.yaml")
    assert s.mouths["C"].box == (26, 40, 12, 8)


def test_missing_manifest(tmp_path: Path) -> None:
    msg = error_of(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere" / "manifest.yaml") in msg


def test_missing_png_names_file_field_and_line(tmp_path: Path) -> None:
    root = make_set(tmp_path / "tiny")
    (root / "mouth_C.png").unlink()
    msg = error_of(root)
    assert str(root / "manifest.yaml") in msg
    assert "mouths.C" in msg
    assert "line 10" in msg  # the line of "  C: mouth_C.png"
    assert "mouth_C.png" in msg and "not found" in msg


def test_unreadable_png(tmp_path: Path) -> None:
    root = make_set(tmp_path / "tiny")
    (root / "eyes_closed.png").write_bytes(b"not a png at all")
    msg = error_of(root)
    assert "eyes.closed" in msg and "line 6" in msg and "cannot read PNG" in msg


def test_bad_field_names_file_field_and_line(tmp_path: Path) -> None:
    root = make_set(tmp_path / "tiny")
    text = (
        (root / "manifest.yaml").read_text().replace(f"size: [{SIZE}, {SIZE}]", "size: [64, big]")
    )
    (root / "manifest.yaml").write_text(text)
    msg = error_of(root)
    assert str(root / "manifest.yaml") in msg
    assert re.search(r"line 2\b", msg)
    assert "size" in msg


def test_bad_nested_field(tmp_path: Path) -> None:
    root = make_set(tmp_path / "tiny")
    with (root / "manifest.yaml").open("a") as f:
        f.write("blink:\n  duration_s: 0.1\n  interval_s: [6.0, 2.0]\n")
    msg = error_of(root)
    assert "blink.interval_s" in msg and "line 13" in msg


def test_unknown_key_and_unknown_shape(tmp_path: Path) -> None:
    root = make_set(tmp_path / "tiny")
    with (root / "manifest.yaml").open("a") as f:
        f.write("sparkles: true\n")
    msg = error_of(root)
    assert "sparkles" in msg and "line 11" in msg

    root = make_set(tmp_path / "tiny2")
    text = (root / "manifest.yaml").read_text().replace("  C: mouth_C.png", "  Q: mouth_C.png")
    (root / "manifest.yaml").write_text(text)
    msg = error_of(root)
    assert "mouths" in msg and "line 7" in msg and "Q" in msg


def test_required_mouths(tmp_path: Path) -> None:
    assert "missing required mouth shape" in error_of(make_set(tmp_path / "a", mouths="XC"))
    assert "open mouth shape" in error_of(make_set(tmp_path / "b", mouths="XAEF"))


def test_overlay_size_must_match_or_be_placed(tmp_path: Path) -> None:
    root = make_set(tmp_path / "tiny")
    png(root / "mouth_C.png", size=(12, 8), box=(0, 0, 12, 8))
    msg = error_of(root)
    assert "mouths.C" in msg and "at: [x, y]" in msg

    text = (
        (root / "manifest.yaml")
        .read_text()
        .replace("  C: mouth_C.png", "  C: {file: mouth_C.png, at: [60, 60]}")
    )
    (root / "manifest.yaml").write_text(text)
    assert "does not fit" in error_of(root)


def test_base_must_be_frame_size(tmp_path: Path) -> None:
    root = make_set(tmp_path / "tiny")
    png(root / "base.png", size=(32, 32), box=(0, 0, 32, 32))
    msg = error_of(root)
    assert "field 'base'" in msg and "line 3" in msg and "64x64" in msg


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    root = make_set(tmp_path / "tiny")
    (root / "manifest.yaml").write_text("name: Tiny\nsize: [64, 64\nbase: base.png\n")
    msg = error_of(root)
    assert "invalid YAML" in msg and re.search(r"line \d", msg)


def test_files_must_stay_inside_the_folder(tmp_path: Path) -> None:
    root = make_set(tmp_path / "tiny")
    png(tmp_path / "elsewhere.png")
    text = (root / "manifest.yaml").read_text().replace("base: base.png", "base: ../elsewhere.png")
    (root / "manifest.yaml").write_text(text)
    assert "outside the sprite set folder" in error_of(root)
