"""The portrait renderer: one still picture (a Character Card's image, any drawing) brought to
life with a mouth drawn over it from the visemes and, when the eyes are placed, blinking.

A card comes with one picture, not a sprite set. Rather than a second compositor, the picture
is turned into an in-memory :class:`~avatar_engine.renderers.spriteset.SpriteSet` (the picture
is the base; each mouth shape and the closed eyes are drawn as overlays over a patch of the
skin colour found around them) and rendered by the
:class:`~avatar_engine.renderers.sprite.SpriteRenderer`, so a portrait lip-syncs, blinks,
breathes and joins clips exactly as a sprite set does. The rest shapes (``X`` and the closed
``A``) show the picture's own mouth; only speech replaces it.

``python -m avatar_engine.renderers.portrait IMAGE --mouth X Y W --sheet preview.png`` shows
every state to check the mouth's place; ``--sprite-set DIR`` writes the drawn layers as a
sprite-set folder to redraw by hand (docs/cards.md).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, UnidentifiedImageError

from avatar_engine.renderers.sprite import SpriteRenderer
from avatar_engine.renderers.spriteset import BlinkSpec, BreathingSpec, Layer, SpriteSet
from avatar_engine.settings import PortraitSettings
from avatar_engine.visemes import SHAPES
from vstage_core.errors import ConfigError

__all__ = ["PortraitRenderer", "guess_mouth", "portrait_sprites", "write_sprite_set"]

logger = logging.getLogger(__name__)

_SUPER = 4  # drawings are made this many times larger, then scaled down (smooth edges)
_INSIDE = (72, 18, 30)
_TONGUE = (205, 96, 104)
_TEETH = (250, 248, 244)
_LASH = (40, 28, 32)


@dataclass(frozen=True, slots=True)
class _MouthShape:
    """One open mouth, sizes as fractions of the mouth's width."""

    width: float
    height: float
    teeth: float = 0.0  # top band of upper teeth, fraction of the opening's height
    tongue: float = 0.0  # tongue height at the bottom, fraction of the opening's height
    tongue_up: bool = False  # the tongue raised against the teeth (l, th)
    lip: float = 0.07  # outline width
    lower_lip: bool = False  # the lower lip drawn over the opening (f, v)


# The Rhubarb shapes (docs/avatars.md): X and A show the picture's own closed mouth.
_SHAPES: dict[str, _MouthShape] = {
    "B": _MouthShape(0.70, 0.17, teeth=0.55),
    "C": _MouthShape(0.72, 0.32, teeth=0.22, tongue=0.30),
    "D": _MouthShape(0.80, 0.50, teeth=0.16, tongue=0.34),
    "E": _MouthShape(0.52, 0.34, teeth=0.12, tongue=0.25),
    "F": _MouthShape(0.32, 0.27, lip=0.10),
    "G": _MouthShape(0.64, 0.16, teeth=0.80, lower_lip=True),
    "H": _MouthShape(0.70, 0.34, teeth=0.18, tongue=0.45, tongue_up=True),
}


def _face_mouth(rgba: np.ndarray) -> tuple[int, int, int] | None:
    """The mouth of the topmost face in a picture, found by skin colour; None when no
    face-like region is found.

    A face is the first band of rows, from the top, whose longest run of skin-coloured pixels
    is wide enough; it ends at the chin, where the run narrows into the neck (or stops). The
    mouth sits three quarters of the way down the visible face (the forehead is often under
    the fringe) and is about a quarter of the face's width.
    """
    h, w = rgba.shape[:2]
    step = max(1, w // 160)  # about 160 columns are plenty to find a face
    px = rgba[::step, ::step].astype(np.float32)
    r, g, b, a = px[..., 0], px[..., 1], px[..., 2], px[..., 3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cr = 0.5 * r - 0.419 * g - 0.081 * b + 128
    cb = -0.169 * r - 0.331 * g + 0.5 * b + 128
    skin = ((a > 128) & (y > 70) & (cr >= 133) & (cr <= 180) & (cb >= 77) & (cb <= 135)
            & (r >= g) & (r > b + 10))
    rows, cols = skin.shape

    def runs(row: np.ndarray) -> list[tuple[int, int]]:
        edges = np.flatnonzero(np.diff(np.concatenate(([0], row.astype(np.int8), [0]))))
        return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))

    min_w, max_w = max(3, int(0.06 * cols)), int(0.7 * cols)
    top, extent = None, (0, 0)
    for i in range(int(0.8 * rows)):
        wide = [(s0, e0) for s0, e0 in runs(skin[i]) if e0 - s0 >= min_w]
        if wide:
            top, extent = i, max(wide, key=lambda se: se[1] - se[0])
            break
    if top is None:
        return None
    # Grow the face down row by row: its extent is the skin joined to the row above's (eyes
    # and brows inside it do not cut it); it ends where it narrows into the neck, or stops.
    extents = {top: extent}
    widest, chin = extent[1] - extent[0], top
    for i in range(top + 1, rows):
        lo, hi = extents[chin]
        joined = [(s0, e0) for s0, e0 in runs(skin[i]) if s0 < hi and lo < e0]
        if not joined:
            break
        extent = (min(s0 for s0, _ in joined), max(e0 for _, e0 in joined))
        width = extent[1] - extent[0]
        if i > top + 2 and width < 0.62 * widest:
            break
        widest, chin = max(widest, width), i
        extents[i] = extent
    height = chin - top
    if not (min_w <= widest <= max_w) or height < 0.5 * widest:
        return None
    mouth_row = top + round(0.75 * height)
    lo, hi = extents[mouth_row]
    return (round((lo + hi) / 2 * step), round(mouth_row * step + step / 2),
            max(4, round(0.26 * widest * step)))


def guess_mouth(picture: Image.Image) -> tuple[int, int, int]:
    """Where the mouth of a character picture probably is: ``(x, y, width)`` in its pixels.

    The topmost face found by skin colour when there is one, else a place typical of upright
    character art (a tall picture has the face high up, a squarer one, a bust, nearer the
    middle). Only a starting point: the streamer checks it with the preview and sets
    ``avatar.mouth``.
    """
    found = _face_mouth(np.asarray(picture.convert("RGBA"), dtype=np.uint8))
    if found is not None:
        return found
    w, h = picture.size
    if h > 1.25 * w:
        return round(0.5 * w), round(0.27 * h), max(4, round(0.075 * w))
    return round(0.5 * w), round(0.43 * h), max(4, round(0.085 * w))


def _load_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGBA")
    except FileNotFoundError as e:
        raise ConfigError(f"avatar.image: no such picture: {path}") from e
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise ConfigError(f"avatar.image: cannot read the picture {path}: {e}") from e


def _surround_colour(rgba: np.ndarray, cx: float, cy: float, rx: float, ry: float,
                     *, darkest: bool = False) -> tuple[int, int, int]:
    """The typical colour of the ring between ellipses ``(rx, ry)`` and ``1.7 x`` that around
    ``(cx, cy)``: the skin a patch must match (its median), or, with ``darkest``, the colour
    of the darkest tenth inside the inner ellipse (an eye's lashes)."""
    h, w = rgba.shape[:2]
    x0, x1 = max(0, int(cx - 1.7 * rx)), min(w, int(cx + 1.7 * rx) + 1)
    y0, y1 = max(0, int(cy - 1.7 * ry)), min(h, int(cy + 1.7 * ry) + 1)
    ys, xs = np.mgrid[y0:y1, x0:x1]
    d = ((xs - cx) / max(rx, 1.0)) ** 2 + ((ys - cy) / max(ry, 1.0)) ** 2
    block = rgba[y0:y1, x0:x1]
    opaque = block[..., 3] > 160
    pick = (d <= 1.0) & opaque if darkest else (d > 1.0) & (d <= 1.7**2) & opaque
    pixels = block[pick][:, :3].astype(np.float64)
    if pixels.size == 0:
        return _LASH if darkest else (232, 196, 180)
    if darkest:
        luma = pixels @ np.array([0.299, 0.587, 0.114])
        pixels = pixels[luma <= np.quantile(luma, 0.1)]
    r, g, b = (int(v) for v in np.median(pixels, axis=0))
    return r, g, b


def _lip_colour(skin: tuple[int, int, int]) -> tuple[int, int, int]:
    """A lip outline that belongs to the skin: darker and redder."""
    r, g, b = skin
    return (int(0.45 * r + 70), int(0.35 * g + 18), int(0.38 * b + 26))


def _feathered_patch(size: tuple[int, int], box: tuple[float, float, float, float],
                     colour: tuple[int, int, int], blur: float) -> Image.Image:
    """A soft-edged ellipse of ``colour`` (at ``_SUPER`` scale) hiding what is under it."""
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(blur))
    patch = Image.new("RGBA", size, (*colour, 0))
    patch.putalpha(mask)
    return patch


def _draw_mouth(shape: _MouthShape, mouth_w: float, skin: tuple[int, int, int]) -> Image.Image:
    """An open mouth over a skin patch, on a transparent canvas ``1.6 x 1.3`` mouth widths
    (at ``_SUPER`` scale) whose middle is the mouth's middle."""
    k = _SUPER
    cw, ch = math.ceil(1.6 * mouth_w) * k, math.ceil(1.3 * mouth_w) * k
    ow, oh = shape.width * mouth_w * k, max(shape.height * mouth_w * k, 2.0 * k)
    # The jaw drops: the upper lip stays near the picture's mouth line.
    mx, my = cw / 2, ch / 2 + 0.2 * oh
    # The patch hides the picture's own mouth (its corners may curve up or down by a fraction
    # of its width), so it is wider and taller than the opening and centred on the mouth line.
    pw, ph = max(1.4 * mouth_w * k, 1.3 * ow), max(0.7 * mouth_w * k, 1.4 * oh + 0.4 * oh)
    py = ch / 2 + 0.1 * oh
    canvas = _feathered_patch((cw, ch), (mx - pw / 2, py - ph / 2, mx + pw / 2, py + ph / 2),
                              skin, blur=0.04 * mouth_w * k)
    box = (mx - ow / 2, my - oh / 2, mx + ow / 2, my + oh / 2)
    inside = Image.new("RGBA", (cw, ch), (*_INSIDE, 255))
    draw = ImageDraw.Draw(inside)
    if shape.tongue:
        th = shape.tongue * oh
        top = my - oh / 2 + (0.15 * oh if shape.tongue_up else oh - th)
        draw.ellipse((mx - 0.36 * ow, top, mx + 0.36 * ow, top + 2 * th), fill=(*_TONGUE, 255))
    if shape.teeth:
        draw.rectangle((0, 0, cw, my - oh / 2 + shape.teeth * oh), fill=(*_TEETH, 255))
    mask = Image.new("L", (cw, ch), 0)
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    canvas.paste(inside, (0, 0), mask)
    lip = _lip_colour(skin)
    outline = ImageDraw.Draw(canvas)
    outline.ellipse(box, outline=(*lip, 255), width=max(k, round(shape.lip * mouth_w * k)))
    if shape.lower_lip:  # f, v: the lower lip tucked under the upper teeth
        lw = max(k, round(0.09 * mouth_w * k))
        outline.arc((box[0], my - oh / 2, box[2], my + oh / 2 + 2 * lw), 20, 160,
                    fill=(*lip, 255), width=lw)
    return canvas.resize((cw // k, ch // k), Image.Resampling.LANCZOS)


def _draw_closed_eye(eye_w: float, skin: tuple[int, int, int], lash: tuple[int, int, int],
                     *, half: bool) -> Image.Image:
    """A shut (or half-shut) eye: the lid, a patch of skin, with the lashes' line along its
    lower edge, on a canvas ``1.6 x 1.4`` eye widths whose middle is the eye's middle."""
    k = _SUPER
    cw, ch = math.ceil(1.6 * eye_w) * k, math.ceil(1.4 * eye_w) * k
    cx, cy = cw / 2, ch / 2
    rx, ry = 0.62 * eye_w * k, 0.55 * eye_w * k
    lid_bottom = cy + (-0.05 if half else 0.12) * eye_w * k
    canvas = _feathered_patch((cw, ch), (cx - rx, cy - ry, cx + rx, cy + ry), skin,
                              blur=0.05 * eye_w * k)
    if half:  # only the upper lid comes down: cut the patch off below it
        alpha = np.asarray(canvas.getchannel("A")).copy()
        alpha[int(lid_bottom) + k :] = 0
        canvas.putalpha(Image.fromarray(alpha))
    line = ImageDraw.Draw(canvas)
    sag = (0.10 if half else 0.16) * eye_w * k  # the lashes' line curves down a little
    line.arc((cx - 0.48 * eye_w * k, lid_bottom - 2 * sag, cx + 0.48 * eye_w * k, lid_bottom),
             10, 170, fill=(*lash, 255), width=max(k, round(0.07 * eye_w * k)))
    return canvas.resize((cw // k, ch // k), Image.Resampling.LANCZOS)


def _layer(drawing: Image.Image, centre: tuple[float, float], frame: tuple[int, int],
           source: Path) -> Layer:
    """A drawing placed with its middle at ``centre``, cut to the frame and to its visible
    pixels (an invisible drawing becomes a transparent pixel at ``centre``)."""
    w, h = frame
    x0, y0 = round(centre[0] - drawing.width / 2), round(centre[1] - drawing.height / 2)
    rgba = np.asarray(drawing, dtype=np.uint8)
    cx0, cy0 = max(0, -x0), max(0, -y0)
    cx1, cy1 = min(drawing.width, w - x0), min(drawing.height, h - y0)
    if cx1 > cx0 and cy1 > cy0:
        rgba = rgba[cy0:cy1, cx0:cx1]
        rows = np.flatnonzero(rgba[..., 3].any(axis=1))
        cols = np.flatnonzero(rgba[..., 3].any(axis=0))
        if rows.size:
            pixels = np.ascontiguousarray(rgba[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
            return Layer(pixels, x0 + cx0 + int(cols[0]), y0 + cy0 + int(rows[0]), source)
    px = min(max(0, round(centre[0])), w - 1), min(max(0, round(centre[1])), h - 1)
    return Layer(np.zeros((1, 1, 4), np.uint8), px[0], px[1], source)


def _check_inside(what: str, spot: Sequence[int], size: tuple[int, int], path: Path) -> None:
    x, y, width = spot
    w, h = size
    if x >= w or y >= h or width > w:
        raise ConfigError(f"{what}: {list(spot)} lies outside the {w}x{h} picture {path} "
                          "([x, y, width] in pixels of the picture as it is on disk)")


def portrait_sprites(settings: PortraitSettings, *, config_dir: str | Path = ".") -> SpriteSet:
    """Blocking: the sprite set a portrait's settings describe.

    Args:
        settings: the avatar settings; a relative ``image`` is taken from ``config_dir``.
        config_dir: the config folder.

    Raises:
        ConfigError: the picture is missing or unreadable, or the mouth or an eye lies
            outside it.
    """
    path = Path(settings.image)
    if not path.is_absolute():
        path = Path(config_dir) / path
    picture = _load_image(path)
    mouth = settings.mouth or guess_mouth(picture)
    _check_inside("avatar.mouth", mouth, picture.size, path)
    for i, eye in enumerate(settings.eyes):
        _check_inside(f"avatar.eyes.{i}", eye, picture.size, path)
    scale = min(1.0, settings.max_side / max(picture.size))
    size = (max(16, round(picture.width * scale)), max(16, round(picture.height * scale)))
    if size != picture.size:
        picture = picture.resize(size, Image.Resampling.LANCZOS)
    base = np.array(picture, dtype=np.uint8)  # a writable copy: torch borrows it

    mx, my, mw = mouth[0] * scale, mouth[1] * scale, max(4.0, mouth[2] * scale)
    skin = _surround_colour(base, mx, my, 0.6 * mw, 0.3 * mw)
    rest = _layer(Image.new("RGBA", (1, 1)), (mx, my), size, path)
    mouths = {"X": rest, "A": rest}  # the picture's own closed mouth
    for name, shape in _SHAPES.items():
        mouths[name] = _layer(_draw_mouth(shape, mw, skin), (mx, my), size, path)

    eyes: dict[str, Layer] = {"open": rest, "closed": rest}
    for state in ("closed", "half") if settings.eyes else ():
        drawings = []
        for ex, ey, ew in settings.eyes:
            cx, cy, w = ex * scale, ey * scale, max(4.0, ew * scale)
            eye_skin = _surround_colour(base, cx, cy, 0.62 * w, 0.55 * w)
            lash = _surround_colour(base, cx, cy, 0.5 * w, 0.4 * w, darkest=True)
            drawings.append((_draw_closed_eye(w, eye_skin, lash, half=state == "half"), cx, cy))
        eyes[state] = _merge([_layer(d, (cx, cy), size, path) for d, cx, cy in drawings], size)
    xs = [mx - 0.75 * mw, mx + 0.75 * mw]
    ys = [my - 0.6 * mw, my + 0.6 * mw]
    box = (max(0, int(min(xs))), max(0, int(min(ys))), 0, 0)
    box = (box[0], box[1], min(size[0], math.ceil(max(xs))) - box[0],
           min(size[1], math.ceil(max(ys))) - box[1])
    logger.info("portrait %s: %dx%d, mouth at %s (width %d)%s", path.name, *size,
                (round(mx), round(my)), round(mw), ", eyes blink" if settings.eyes else "")
    return SpriteSet(
        name=path.stem, root=path.parent, size=size, base=base, eyes=eyes, mouths=mouths,
        mouth_substitutes={s: "X" if s == "A" else s for s in SHAPES}, mouth_box=box,
        breathing=BreathingSpec(amplitude_px=settings.breathing_px),
        blink=BlinkSpec(seed=settings.blink_seed),
    )


def _merge(layers: Sequence[Layer], size: tuple[int, int]) -> Layer:
    """Several layers (both eyes) as one: the overlay of their union's box."""
    x0 = min(lay.x for lay in layers)
    y0 = min(lay.y for lay in layers)
    x1 = max(lay.x + lay.pixels.shape[1] for lay in layers)
    y1 = max(lay.y + lay.pixels.shape[0] for lay in layers)
    canvas = Image.new("RGBA", (x1 - x0, y1 - y0))
    for lay in layers:
        canvas.alpha_composite(Image.fromarray(lay.pixels), (lay.x - x0, lay.y - y0))
    return Layer(np.asarray(canvas, dtype=np.uint8).copy(), x0, y0, layers[0].source)


class PortraitRenderer(SpriteRenderer):
    """Renders a still picture performing speech; implements
    :class:`~avatar_engine.renderers.base.Renderer` (see the module docstring).

    Args:
        settings: the avatar settings.
        config_dir: the folder a relative ``settings.image`` is taken from.
    """

    def __init__(self, *, settings: PortraitSettings, config_dir: str | Path = ".") -> None:
        super().__init__(sprites=portrait_sprites(settings, config_dir=config_dir),
                         fps=settings.fps, device=settings.device)
        self.settings = settings


def write_sprite_set(sprites: SpriteSet, folder: Path) -> Path:
    """Write ``sprites`` as a sprite-set folder (``manifest.yaml`` and PNGs, see
    docs/avatars.md): a portrait's drawn layers become a starting point to redraw by hand.

    Returns:
        the manifest's path.
    """
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sprites.base).save(folder / "base.png")

    def save(name: str, layer: Layer) -> dict[str, object]:
        Image.fromarray(layer.pixels).save(folder / f"{name}.png")
        return {"file": f"{name}.png", "at": [layer.x, layer.y]}

    manifest = {
        "name": sprites.name,
        "size": list(sprites.size),
        "base": "base.png",
        "eyes": {state: save(f"eyes_{state}", layer) for state, layer in sprites.eyes.items()},
        "mouths": {s: save(f"mouth_{s}", sprites.mouths[s]) for s in SHAPES},
        "mouth_box": list(sprites.mouth_box),
        "breathing": sprites.breathing.model_dump(),
        "blink": {**sprites.blink.model_dump(), "interval_s": list(sprites.blink.interval_s)},
    }
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m avatar_engine.renderers.portrait IMAGE [--mouth X Y W] [--eye X Y W]...
    [--sheet PNG] [--sprite-set DIR]``: check where the mouth (and eyes) go on a picture."""
    import argparse
    import sys

    from avatar_engine.renderers.spriteset import contact_sheet

    parser = argparse.ArgumentParser(description="Preview a portrait avatar.")
    parser.add_argument("image", type=Path)
    parser.add_argument("--mouth", type=int, nargs=3, metavar=("X", "Y", "WIDTH"))
    parser.add_argument("--eye", type=int, nargs=3, action="append", default=[],
                        metavar=("X", "Y", "WIDTH"), help="once per eye")
    parser.add_argument("--max-side", type=int, default=640)
    parser.add_argument("--sheet", type=Path, help="write a preview of every state to this PNG")
    parser.add_argument("--sprite-set", type=Path,
                        help="write the drawn layers as a sprite-set folder to redraw by hand")
    args = parser.parse_args(argv)
    try:
        settings = PortraitSettings(
            image=args.image, mouth=tuple(args.mouth) if args.mouth else None,
            eyes=tuple(tuple(e) for e in args.eye), max_side=args.max_side)
        sprites = portrait_sprites(settings)
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    with Image.open(args.image) as im:
        mouth = settings.mouth or guess_mouth(im)
    guessed = "" if settings.mouth else " (a guess: pass --mouth X Y WIDTH)"
    print(f"{args.image}: {sprites.size[0]}x{sprites.size[1]} frames; mouth {list(mouth)}"
          f"{guessed}; eyes: {len(settings.eyes) or 'not placed (no blinking)'}")
    if args.sheet:
        Image.fromarray(contact_sheet(sprites)).save(args.sheet)
        print(f"wrote {args.sheet}")
    if args.sprite_set:
        print(f"wrote {write_sprite_set(sprites, args.sprite_set)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
