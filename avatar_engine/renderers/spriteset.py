"""Sprite sets: a folder of PNGtuber art (a body, eye states, one PNG per mouth shape) described
by ``manifest.yaml``, validated and decoded into arrays a renderer can composite.

The folder format is documented for streamers in ``docs/avatars.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from avatar_engine.visemes import SHAPES
from vstage_core.errors import ConfigError

logger = logging.getLogger(__name__)

MANIFEST = "manifest.yaml"
MAX_SIDE = 4096

REQUIRED_MOUTHS = ("X", "A")
"""Mouth shapes every sprite set must draw; it also needs one of :data:`OPEN_MOUTHS`."""

OPEN_MOUTHS = ("B", "C", "D")

MOUTH_FALLBACKS: dict[str, tuple[str, ...]] = {
    "X": (),
    "A": (),
    "B": ("C", "D"),
    "C": ("B", "D"),
    "D": ("C", "B"),
    "E": ("C", "F", "D", "B"),
    "F": ("E", "B", "C", "D"),
    "G": ("B", "A", "C", "D"),
    "H": ("C", "B", "D"),
}
"""For each mouth shape a set does not draw, the shapes tried instead, nearest first."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LayerSpec(_Spec):
    """One overlay PNG: either a plain file name (drawn full-size) or ``{file, at: [x, y]}``
    for a PNG smaller than the frame placed with its top-left corner at ``(x, y)``."""

    file: str = Field(min_length=1)
    at: tuple[int, int] | None = None

    @model_validator(mode="before")
    @classmethod
    def _plain_file(cls, value: Any) -> Any:
        return {"file": value} if isinstance(value, str) else value


class EyesSpec(_Spec):
    """Eye overlays: ``open`` and ``closed`` are required; ``half`` (half-closed, shown on the
    first and last frame of a blink) is optional."""

    open: LayerSpec
    closed: LayerSpec
    half: LayerSpec | None = None


class BreathingSpec(_Spec):
    """Idle breathing: the figure rises by up to ``amplitude_px`` and settles, once per
    ``period_s``. 0 turns it off."""

    amplitude_px: float = Field(3.0, ge=0, le=32)
    period_s: float = Field(4.0, gt=0.5, le=60)


class BlinkSpec(_Spec):
    """Blinking: one blink every ``interval_s[0]`` to ``interval_s[1]`` seconds (pseudo-random
    from ``seed``), eyes shut for ``duration_s``."""

    interval_s: tuple[float, float] = (2.5, 6.0)
    duration_s: float = Field(0.15, gt=0, le=1.0)
    seed: int = 0

    @field_validator("interval_s")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        lo, hi = value
        if not 0 < lo <= hi:
            raise ValueError("must be [shortest, longest] with 0 < shortest <= longest")
        return value

    @model_validator(mode="after")
    def _fits(self) -> BlinkSpec:
        if self.duration_s >= self.interval_s[0]:
            raise ValueError("duration_s must be shorter than the shortest interval")
        return self


class Manifest(_Spec):
    """The parsed ``manifest.yaml`` of a sprite set (paths not yet resolved)."""

    name: str = Field(min_length=1)
    size: tuple[int, int]
    base: LayerSpec
    eyes: EyesSpec
    mouths: dict[str, LayerSpec]
    mouth_box: tuple[int, int, int, int] | None = None
    breathing: BreathingSpec = BreathingSpec()
    blink: BlinkSpec = BlinkSpec()

    @field_validator("size")
    @classmethod
    def _size(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not all(16 <= v <= MAX_SIDE for v in value):
            raise ValueError(f"width and height must be between 16 and {MAX_SIDE}")
        return value

    @field_validator("mouths")
    @classmethod
    def _mouths(cls, value: dict[str, LayerSpec]) -> dict[str, LayerSpec]:
        unknown = sorted(set(value) - set(SHAPES))
        if unknown:
            raise ValueError(f"unknown mouth shape(s) {unknown}; shapes are {list(SHAPES)}")
        missing = [s for s in REQUIRED_MOUTHS if s not in value]
        if missing:
            raise ValueError(f"missing required mouth shape(s) {missing}")
        if not any(s in value for s in OPEN_MOUTHS):
            raise ValueError(f"needs at least one open mouth shape of {list(OPEN_MOUTHS)}")
        return value

    @model_validator(mode="after")
    def _box_inside(self) -> Manifest:
        if self.mouth_box is not None:
            x, y, w, h = self.mouth_box
            width, height = self.size
            if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
                raise ValueError(f"mouth_box {list(self.mouth_box)} must lie inside size")
        return self


@dataclass(frozen=True, slots=True)
class Layer:
    """A decoded overlay, cropped to its visible pixels.

    Attributes:
        pixels: ``uint8`` RGBA ``[h, w, 4]``, straight (not premultiplied) alpha.
        x: left edge in the frame.
        y: top edge in the frame.
        source: the PNG it came from.
    """

    pixels: np.ndarray
    x: int
    y: int
    source: Path

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(x, y, w, h)`` of the layer in the frame."""
        return (self.x, self.y, self.pixels.shape[1], self.pixels.shape[0])


@dataclass(frozen=True)
class SpriteSet:
    """A loaded, validated sprite set.

    Attributes:
        name: display name.
        root: the folder it was loaded from.
        size: ``(width, height)`` of the output frames.
        base: ``uint8`` RGBA ``[height, width, 4]``, the figure without eyes and mouth.
        eyes: eye overlays by state: ``open``, ``closed`` and, if drawn, ``half``.
        mouths: one overlay for every shape in :data:`~avatar_engine.visemes.SHAPES`
            (shapes the set does not draw reuse the nearest one it does).
        mouth_substitutes: for each shape, the shape actually drawn for it.
        mouth_box: ``(x, y, w, h)`` of the mouth region (from the manifest, else the union of
            the mouth overlays).
        breathing: idle breathing settings.
        blink: blinking settings.
    """

    name: str
    root: Path
    size: tuple[int, int]
    base: np.ndarray
    eyes: Mapping[str, Layer]
    mouths: Mapping[str, Layer]
    mouth_substitutes: Mapping[str, str]
    mouth_box: tuple[int, int, int, int]
    breathing: BreathingSpec
    blink: BlinkSpec

    @classmethod
    def load(cls, path: str | Path) -> SpriteSet:
        """Load a sprite set folder (or its ``manifest.yaml``).

        Raises:
            ConfigError: the manifest is missing, is not valid YAML, fails validation, or names
                a PNG that is missing, unreadable, the wrong size or outside the frame. The
                message names the file, the line and the field.
        """
        path = Path(path)
        manifest_path = path / MANIFEST if path.is_dir() or path.suffix == "" else path
        root = manifest_path.parent
        try:
            text = manifest_path.read_text(encoding="utf-8")
        except FileNotFoundError as e:
            raise ConfigError(f"{manifest_path}: sprite set manifest not found") from e
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{manifest_path}: cannot read sprite set manifest: {e}") from e
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f", line {mark.line + 1}" if mark is not None else ""
            problem = getattr(e, "problem", None) or str(e)
            raise ConfigError(f"{manifest_path}{where}: invalid YAML: {problem}") from e
        if not isinstance(data, dict):
            raise ConfigError(f"{manifest_path}, line 1: the manifest must be a YAML mapping")
        try:
            manifest = Manifest.model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
            raise ConfigError(
                _where(manifest_path, node, loc)
                + f": {err['msg']}"
                + (f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else "")
            ) from e

        def layer(spec: LayerSpec, loc: tuple[str | int, ...], *, full: bool = False) -> Layer:
            return _load_layer(spec, root, manifest.size, manifest_path, node, loc, full=full)

        base = layer(manifest.base, ("base",), full=True)
        eyes = {"open": layer(manifest.eyes.open, ("eyes", "open"))}
        eyes["closed"] = layer(manifest.eyes.closed, ("eyes", "closed"))
        if manifest.eyes.half is not None:
            eyes["half"] = layer(manifest.eyes.half, ("eyes", "half"))
        drawn = {s: layer(spec, ("mouths", s)) for s, spec in manifest.mouths.items()}
        substitutes = {
            s: s if s in drawn else next(f for f in MOUTH_FALLBACKS[s] if f in drawn)
            for s in SHAPES
        }
        mouths = {s: drawn[substitutes[s]] for s in SHAPES}
        box = manifest.mouth_box or _union(d.box for d in drawn.values())
        logger.info(
            "sprite set %r loaded from %s (%dx%d, mouths drawn: %s)",
            manifest.name,
            root,
            *manifest.size,
            "".join(sorted(drawn)),
        )
        return cls(
            name=manifest.name,
            root=root,
            size=manifest.size,
            base=base.pixels,
            eyes=eyes,
            mouths=mouths,
            mouth_substitutes=substitutes,
            mouth_box=box,
            breathing=manifest.breathing,
            blink=manifest.blink,
        )


def _line_of(node: yaml.Node | None, loc: tuple[str | int, ...]) -> int | None:
    """Line (1-based) of the deepest YAML node along ``loc`` that exists."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    # Point at the key's line: for a nested block that is the field's name.
                    line = key.start_mark.line + 1
                    child = value
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                child = node.value[part]
                line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _where(path: Path, node: yaml.Node | None, loc: tuple[str | int, ...]) -> str:
    line = _line_of(node, loc)
    field = ".".join(str(p) for p in loc) or "(top level)"
    return f"{path}" + (f", line {line}" if line else "") + f", field '{field}'"


def _load_layer(
    spec: LayerSpec,
    root: Path,
    size: tuple[int, int],
    manifest_path: Path,
    node: yaml.Node | None,
    loc: tuple[str | int, ...],
    *,
    full: bool,
) -> Layer:
    from PIL import Image, UnidentifiedImageError

    where = _where(manifest_path, node, loc)
    file = (root / spec.file).resolve()
    if not file.is_relative_to(root.resolve()):
        raise ConfigError(f"{where}: {spec.file!r} is outside the sprite set folder {root}")
    width, height = size
    try:
        with Image.open(file) as im:
            w, h = im.size
            if full and (w, h) != (width, height):
                raise ConfigError(
                    f"{where}: {file} is {w}x{h}, expected the frame size {width}x{height}"
                )
            if spec.at is None and (w, h) != (width, height):
                raise ConfigError(
                    f"{where}: {file} is {w}x{h} but the frame is {width}x{height}; "
                    "give a full-size PNG or its position with 'at: [x, y]'"
                )
            x, y = spec.at or (0, 0)
            if x < 0 or y < 0 or x + w > width or y + h > height:
                raise ConfigError(
                    f"{where}: {file} ({w}x{h}) at [{x}, {y}] does not fit in the "
                    f"{width}x{height} frame"
                )
            im.load()
            rgba = np.asarray(im.convert("RGBA"), dtype=np.uint8).copy()
    except FileNotFoundError as e:
        raise ConfigError(f"{where}: file not found: {file}") from e
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise ConfigError(f"{where}: cannot read PNG {file}: {e}") from e
    if full:
        return Layer(rgba, 0, 0, file)
    # Crop to the visible pixels: compositing then touches only the region that changes.
    alpha = rgba[..., 3]
    rows = np.flatnonzero(alpha.any(axis=1))
    cols = np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        logger.warning("%s: %s is fully transparent", where, file)
        return Layer(np.zeros((1, 1, 4), np.uint8), x, y, file)
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return Layer(np.ascontiguousarray(rgba[y0:y1, x0:x1]), x + int(x0), y + int(y0), file)


def _union(boxes) -> tuple[int, int, int, int]:
    boxes = list(boxes)
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return (x0, y0, x1 - x0, y1 - y0)


def contact_sheet(sprites: SpriteSet, *, scale: float = 0.5) -> np.ndarray:
    """A preview of every state side by side: the eye states, then each mouth shape.

    Args:
        sprites: the sprite set.
        scale: size of each tile relative to the frame.

    Returns:
        ``uint8`` RGBA image ``[rows * h, 6 * w, 4]`` on a grey background.
    """
    from PIL import Image

    def over(dst: Image.Image, layer: Layer) -> None:
        dst.alpha_composite(Image.fromarray(layer.pixels), (layer.x, layer.y))

    tiles = []
    for eyes, mouth in [(e, "X") for e in sprites.eyes] + [("open", s) for s in SHAPES]:
        im = Image.new("RGBA", sprites.size, (96, 100, 112, 255))
        im.alpha_composite(Image.fromarray(sprites.base))
        over(im, sprites.eyes[eyes])
        over(im, sprites.mouths[mouth])
        w, h = (max(1, round(v * scale)) for v in sprites.size)
        tiles.append(np.asarray(im.resize((w, h), Image.Resampling.LANCZOS)))
    cols = 6
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i : i + cols], axis=1) for i in range(0, len(tiles), cols)]
    return np.concatenate(rows, axis=0)


def main(argv: list[str] | None = None) -> int:
    """``python -m avatar_engine.renderers.spriteset FOLDER [--sheet PNG]``: check a sprite set
    folder, print what it draws, and optionally write a contact sheet of all its states."""
    import argparse
    import sys

    from PIL import Image

    parser = argparse.ArgumentParser(description="Check a vstage sprite set folder.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--sheet", type=Path, help="write a preview of every state to this PNG")
    args = parser.parse_args(argv)
    try:
        sprites = SpriteSet.load(args.folder)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    subs = sprites.mouth_substitutes
    print(f"{sprites.name}: {sprites.size[0]}x{sprites.size[1]}, eyes: {', '.join(sprites.eyes)}")
    for shape in SHAPES:
        note = "" if subs[shape] == shape else f"  (not drawn: shows {subs[shape]})"
        print(f"  mouth {shape}: {sprites.mouths[shape].source.name}{note}")
    print(f"  mouth_box: {list(sprites.mouth_box)}")
    if args.sheet:
        Image.fromarray(contact_sheet(sprites)).save(args.sheet)
        print(f"wrote {args.sheet}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
