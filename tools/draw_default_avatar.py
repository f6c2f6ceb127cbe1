"""Draws the default avatar ("Vee"), an original character, as a sprite set folder: a base
(hair, face, headphones, hoodie), three eye states and the nine mouth shapes.

Run ``python tools/draw_default_avatar.py OUT_DIR``; the committed copy lives in
``config/avatars/default``. Variants of the same art with their own colours and hair are
``--look lena`` (the German teacher: blonde braids, a blue cardigan; ``config/avatars/lena``)
and ``--look camille`` (the French teacher: a chestnut bun, a red top;
``config/avatars/camille``). Everything is drawn with Pillow at 4x and downsampled, so edges are
anti-aliased; shapes are cubic Bezier outlines.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

logger = logging.getLogger(__name__)

SIZE = 512
SS = 4  # supersampling factor
Point = tuple[float, float]
RGBA = tuple[int, int, int, int]

# Palette.
OUTLINE = (74, 44, 58, 255)
SKIN = (255, 226, 208, 255)
SKIN_SHADE = (246, 192, 172, 255)
HAIR = (134, 116, 230, 255)
HAIR_DARK = (92, 74, 186, 255)
HAIR_BACK = (104, 86, 200, 255)
HAIR_LIGHT = (184, 170, 255, 255)
HOODIE = (92, 214, 181, 255)
HOODIE_DARK = (58, 170, 146, 255)
HOODIE_LIGHT = (150, 236, 210, 255)
PHONES = (52, 50, 70, 255)
PHONES_LIGHT = (86, 84, 110, 255)
ACCENT = (255, 140, 170, 255)
STAR = (255, 214, 102, 255)
IRIS = (44, 186, 196, 255)
IRIS_DARK = (24, 104, 128, 255)
IRIS_LIGHT = (140, 236, 226, 255)
PUPIL = (30, 36, 58, 255)
WHITE = (255, 255, 255, 255)
BLUSH = (255, 128, 150, 95)
LIP = (150, 62, 72, 255)
MOUTH = (104, 30, 52, 255)
TONGUE = (255, 118, 136, 255)
TEETH = (255, 253, 250, 255)


@dataclass(frozen=True, slots=True)
class Look:
    """Who is drawn: the colours that differ between characters, and the hair style
    (``bob``: Vee's, with a strand sticking up; ``braids``: two braids over the shoulders;
    ``bun``: a chin-length bob gathered into a bun on top)."""

    name: str
    hair: RGBA
    hair_dark: RGBA
    hair_back: RGBA
    hair_light: RGBA
    top: RGBA
    top_dark: RGBA
    top_light: RGBA
    iris: RGBA
    iris_dark: RGBA
    iris_light: RGBA
    accent: RGBA
    star: RGBA
    hair_style: Literal["bob", "braids", "bun"] = "bob"


VEE = Look(
    name="Vee",
    hair=HAIR,
    hair_dark=HAIR_DARK,
    hair_back=HAIR_BACK,
    hair_light=HAIR_LIGHT,
    top=HOODIE,
    top_dark=HOODIE_DARK,
    top_light=HOODIE_LIGHT,
    iris=IRIS,
    iris_dark=IRIS_DARK,
    iris_light=IRIS_LIGHT,
    accent=ACCENT,
    star=STAR,
)
LENA = Look(
    name="Lena",
    hair=(238, 196, 96, 255),
    hair_dark=(190, 140, 52, 255),
    hair_back=(214, 168, 72, 255),
    hair_light=(255, 234, 166, 255),
    top=(72, 106, 170, 255),
    top_dark=(48, 74, 132, 255),
    top_light=(124, 160, 216, 255),
    iris=(76, 136, 204, 255),
    iris_dark=(36, 72, 132, 255),
    iris_light=(164, 204, 242, 255),
    accent=(236, 88, 78, 255),
    star=STAR,
    hair_style="braids",
)
CAMILLE = Look(
    name="Camille",
    hair=(122, 70, 54, 255),
    hair_dark=(84, 44, 36, 255),
    hair_back=(102, 58, 46, 255),
    hair_light=(180, 122, 100, 255),
    top=(198, 62, 80, 255),
    top_dark=(150, 38, 58, 255),
    top_light=(234, 124, 136, 255),
    iris=(92, 162, 98, 255),
    iris_dark=(44, 100, 60, 255),
    iris_light=(172, 222, 162, 255),
    accent=(62, 82, 164, 255),
    star=(250, 246, 232, 255),
    hair_style="bun",
)
LOOKS: dict[str, Look] = {"vee": VEE, "lena": LENA, "camille": CAMILLE}


EYE_L: Point = (209.0, 290.0)
EYE_R: Point = (303.0, 290.0)
MOUTH_C: Point = (256.0, 350.0)


# --- drawing helpers -----------------------------------------------------------------------


def cubic(p0: Point, c1: Point, c2: Point, p1: Point, n: int = 48) -> list[Point]:
    """Points along a cubic Bezier curve (excluding ``p0``)."""
    t = np.linspace(0.0, 1.0, n + 1)[1:, None]
    pts = (
        (1 - t) ** 3 * np.array(p0)
        + 3 * (1 - t) ** 2 * t * np.array(c1)
        + 3 * (1 - t) * t**2 * np.array(c2)
        + t**3 * np.array(p1)
    )
    return [(float(x), float(y)) for x, y in pts]


def path(start: Point, *parts: Point | tuple[Point, Point, Point]) -> list[Point]:
    """A polyline: ``start``, then for each part a point (straight line) or ``(c1, c2, end)``."""
    pts = [start]
    for part in parts:
        if isinstance(part[0], tuple):
            c1, c2, end = part
            pts.extend(cubic(pts[-1], c1, c2, end))
        else:
            pts.append(part)
    return pts


def mirror(pts: Sequence[Point], cx: float = SIZE / 2) -> list[Point]:
    return [(2 * cx - x, y) for x, y in pts]


def ellipse_pts(cx: float, cy: float, rx: float, ry: float, n: int = 96) -> list[Point]:
    a = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return [(cx + rx * math.cos(t), cy + ry * math.sin(t)) for t in a]


class Canvas:
    """A supersampled RGBA drawing surface in 512-pixel coordinates."""

    def __init__(self) -> None:
        self.im = Image.new("RGBA", (SIZE * SS, SIZE * SS), (0, 0, 0, 0))
        self.draw = ImageDraw.Draw(self.im)

    @staticmethod
    def _s(pts: Sequence[Point]) -> list[tuple[float, float]]:
        return [(x * SS, y * SS) for x, y in pts]

    def _paint(self, color: RGBA, strokes) -> None:
        """Run ``strokes(draw, color)``; translucent colours are blended, not written."""
        if color[3] == 255:
            strokes(self.draw, color)
            return
        tmp = Image.new("RGBA", self.im.size, (0, 0, 0, 0))
        strokes(ImageDraw.Draw(tmp), color[:3] + (255,))
        tmp.putalpha(tmp.getchannel("A").point(lambda a: a * color[3] // 255))
        self.im.alpha_composite(tmp)

    def poly(
        self, pts: Sequence[Point], fill: RGBA, outline: RGBA | None = None, width: float = 3.0
    ) -> None:
        scaled = self._s(pts)
        self._paint(fill, lambda d, col: d.polygon(scaled, fill=col))
        if outline is not None:
            self.line(list(pts) + [pts[0], pts[1]], outline, width)

    def erase(self, pts: Sequence[Point]) -> None:
        """Make the polygon ``pts`` fully transparent."""
        self.draw.polygon(self._s(pts), fill=(0, 0, 0, 0))

    def line(
        self, pts: Sequence[Point], color: RGBA, width: float = 3.0, caps: bool = True
    ) -> None:
        w = max(1, round(width * SS))
        scaled = self._s(pts)
        r = width * SS / 2

        def strokes(d: ImageDraw.ImageDraw, col: RGBA) -> None:
            d.line(scaled, fill=col, width=w, joint="curve")
            if caps:
                for x, y in (scaled[0], scaled[-1]):
                    d.ellipse((x - r, y - r, x + r, y + r), fill=col)

        self._paint(color, strokes)

    def ellipse(
        self,
        cx: float,
        cy: float,
        rx: float,
        ry: float,
        fill: RGBA,
        outline: RGBA | None = None,
        width: float = 3.0,
    ) -> None:
        self.poly(ellipse_pts(cx, cy, rx, ry), fill, outline, width)

    def layer(self, other: Canvas, mask: Canvas | None = None) -> None:
        """Draw ``other`` on top, optionally only where ``mask`` is opaque."""
        src = other.im
        if mask is not None:
            src = src.copy()
            src.putalpha(ImageChops.multiply(src.getchannel("A"), mask.im.getchannel("A")))
        self.im.alpha_composite(src)

    def soft(self, radius: float) -> Canvas:
        """A blurred copy (for soft shading)."""
        out = Canvas()
        out.im = self.im.filter(ImageFilter.GaussianBlur(radius * SS))
        out.draw = ImageDraw.Draw(out.im)
        return out

    def image(self) -> Image.Image:
        return self.im.resize((SIZE, SIZE), Image.Resampling.LANCZOS)


# --- the character -------------------------------------------------------------------------


def face_outline() -> list[Point]:
    left = path(
        (256, 96),
        ((196, 96), (156, 130), (154, 196)),
        ((152, 262), (162, 318), (204, 362)),
        ((226, 384), (244, 392), (256, 393)),
    )
    return left + mirror(left[::-1])[1:]


def back_hair(c: Canvas, look: Look) -> None:
    if look.hair_style in ("bun", "braids"):
        # Chin length at the back: the rest is gathered into the bun or the braids.
        left = path(
            (256, 58),
            ((180, 58), (118, 110), (116, 210)),
            ((114, 282), (118, 330), (126, 366)),
            ((150, 376), (176, 378), (204, 372)),
            (256, 372),
        )
        c.poly(left + mirror(left[::-1])[1:], look.hair_back, OUTLINE, 3.2)
        return
    left = path(
        (256, 58),
        ((180, 58), (118, 110), (116, 210)),
        ((114, 300), (108, 370), (92, 430)),
        ((118, 424), (132, 414), (140, 400)),
        ((146, 424), (164, 432), (178, 436)),
        ((178, 420), (190, 426), (204, 430)),
        (256, 430),
    )
    pts = left + mirror(left[::-1])[1:]
    c.poly(pts, look.hair_back, OUTLINE, 3.2)


def body(c: Canvas, look: Look) -> None:
    # Neck with the chin's shadow.
    neck = path((230, 340), (282, 340), (284, 430), (228, 430))
    c.poly(neck, SKIN, OUTLINE, 3.0)
    shade = Canvas()
    shade.poly(
        path(
            (226, 356),
            ((240, 384), (272, 384), (286, 356)),
            (286, 398),
            ((270, 404), (242, 404), (226, 398)),
        ),
        SKIN_SHADE,
    )
    c.layer(shade, mask=_mask(neck))

    # Hoodie: shoulders running off the bottom edge.
    left = path(
        (256, 432),
        ((232, 432), (214, 420), (206, 414)),
        ((150, 426), (96, 440), (74, 478)),
        ((66, 492), (62, 504), (60, 520)),
        (256, 520),
    )
    hoodie = left + mirror(left[::-1])[1:]
    c.poly(hoodie, look.top, OUTLINE, 3.4)
    folds = Canvas()
    fold = path((60, 520), (74, 478), ((92, 470), (112, 472), (128, 520)))
    folds.poly(fold, look.top_dark)
    folds.poly(mirror(fold), look.top_dark)
    folds.poly(
        path(
            (150, 440), ((190, 428), (214, 430), (226, 440)), ((200, 446), (176, 446), (150, 440))
        ),
        look.top_light,
    )
    c.layer(folds, mask=_mask(hoodie))

    # Hood collar around the neck.
    collar_l = path(
        (256, 452),
        ((230, 452), (206, 438), (198, 412)),
        ((212, 404), (222, 420), (256, 424)),
    )
    collar = collar_l + mirror(collar_l[::-1])[1:]
    c.poly(collar, look.top_dark, OUTLINE, 3.0)

    # Drawstrings with pink tips, and a little star on the chest.
    for x0, x1 in ((238, 232), (274, 282)):
        c.line(path((x0, 446), ((x0 - 2, 466), (x1, 476), (x1, 494))), WHITE, 3.4)
        c.ellipse(x1, 498, 4.2, 6.0, look.accent, OUTLINE, 1.6)
    star(c, 330, 478, 14, look.star, OUTLINE)


def star(c: Canvas, cx: float, cy: float, r: float, fill: RGBA, outline: RGBA | None) -> None:
    pts = []
    for i in range(10):
        a = -math.pi / 2 + i * math.pi / 5
        rr = r if i % 2 == 0 else r * 0.46
        pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    c.poly(pts, fill, outline, 2.0)


def face(c: Canvas, look: Look) -> None:
    outline = face_outline()
    c.poly(outline, SKIN, OUTLINE, 3.4)
    # Shadow the bangs cast on the forehead and the cheeks' soft blush.
    shade = Canvas()
    shade.poly(
        path((140, 180), ((200, 250), (312, 250), (372, 180)), (372, 120), (140, 120)), SKIN_SHADE
    )
    c.layer(shade.soft(2.0), mask=_mask(outline))
    blush = Canvas()
    blush.ellipse(184, 330, 22, 11, BLUSH)
    blush.ellipse(328, 330, 22, 11, BLUSH)
    c.layer(blush.soft(3.0), mask=_mask(outline))
    for x in (178, 186, 194):
        c.line([(x + 2, 325), (x - 3, 334)], (240, 110, 130, 150), 1.6)
        c.line([(x + 136, 325), (x + 131, 334)], (240, 110, 130, 150), 1.6)
    # Nose: a tiny shaded tick.
    c.line(path((258, 312), ((261, 318), (259, 322), (254, 323))), SKIN_SHADE, 3.0)
    # Eyebrows, soft and a little raised: friendly.
    c.line(path((180, 244), ((192, 236), (212, 234), (228, 240))), look.hair_dark, 4.2)
    c.line(mirror(path((180, 244), ((192, 236), (212, 234), (228, 240)))), look.hair_dark, 4.2)


def front_hair(c: Canvas, look: Look) -> None:
    # The crown and fringe as one shape whose lower edge is a row of curved locks.
    crown = path(
        (138, 262),
        ((128, 150), (176, 72), (256, 70)),
        ((336, 72), (384, 150), (374, 262)),
    )
    # Lock tips (x, y) from right to left, each joined by curves that swing to the left.
    fringe = path(
        (374, 262),
        ((366, 236), (356, 214), (344, 200)),
        ((346, 216), (348, 230), (342, 246)),
        ((330, 222), (318, 206), (304, 196)),
        ((306, 214), (304, 230), (296, 240)),
        ((282, 214), (268, 202), (254, 194)),
        ((254, 212), (248, 228), (238, 240)),
        ((226, 214), (212, 202), (198, 196)),
        ((198, 214), (192, 230), (180, 246)),
        ((176, 222), (168, 206), (160, 198)),
        ((156, 224), (150, 246), (138, 262)),
    )
    hair = crown + fringe[1:]
    c.poly(hair, look.hair, OUTLINE, 3.4)
    # Shading along the fringe and a glossy "angel ring".
    detail = Canvas()
    detail.poly(
        path((130, 230), ((190, 186), (320, 186), (382, 230)), (382, 280), (130, 280)),
        look.hair_dark,
    )
    ring = path(
        (170, 140), ((210, 112), (300, 112), (342, 140)), ((300, 126), (210, 126), (170, 140))
    )
    c.layer(detail.soft(1.0), mask=_mask(hair))
    shine = Canvas()
    shine.poly(ring, look.hair_light)
    for x in (214, 256, 298):  # strands break the ring
        shine.erase([(x - 3, 100), (x + 3, 100), (x + 1, 150), (x - 5, 150)])
    gloss = shine.soft(1.2)
    c.layer(gloss, mask=_mask(hair))
    for x0, y0, x1, y1 in (
        (226, 150, 212, 196),
        (288, 150, 300, 192),
        (172, 170, 166, 204),
        (340, 170, 348, 206),
    ):
        c.line(path((x0, y0), ((x0, y0 + 14), (x1, y1 - 14), (x1, y1))), look.hair_dark, 2.0)

    # Side locks framing the cheeks.
    side_l = path(
        (146, 214),
        ((136, 270), (142, 330), (160, 392)),
        ((164, 374), (167, 362), (170, 354)),
        ((174, 362), (178, 370), (184, 378)),
        ((174, 322), (166, 262), (168, 214)),
    )
    c.poly(side_l, look.hair, OUTLINE, 3.0)
    c.poly(mirror(side_l), look.hair, OUTLINE, 3.0)

    if look.hair_style == "bob":
        # A cheeky strand sticking up from the crown.
        ahoge = path(
            (250, 74), ((244, 40), (270, 22), (296, 34)), ((276, 36), (264, 50), (262, 74))
        )
        c.poly(ahoge, look.hair, OUTLINE, 3.0)


def braids(c: Canvas, look: Look) -> None:
    """Two braids from behind the ears over the shoulders, each tied with a band."""
    for side in (-1, 1):
        x0 = 256 + side * 110
        for i in range(7):  # plaited segments, alternating a little left and right
            y = 352 + i * 19
            x = x0 + side * (i * 2.0) + (3 if i % 2 else -3)
            c.ellipse(x, y, 17 - i * 0.6, 13, look.hair, OUTLINE, 2.6)
            c.line(
                path((x - 10, y - 4), ((x - 4, y + 2), (x + 4, y + 4), (x + 10, y + 2))),
                look.hair_dark,
                2.0,
            )
        tip_x, tip_y = x0 + side * 14, 352 + 7 * 19
        c.ellipse(tip_x, tip_y - 4, 9, 6, look.accent, OUTLINE, 2.0)  # the hair band
        tuft = path(
            (tip_x - 9, tip_y),
            ((tip_x - 12, tip_y + 14), (tip_x - 4, tip_y + 22), (tip_x, tip_y + 24)),
            ((tip_x + 4, tip_y + 22), (tip_x + 12, tip_y + 14), (tip_x + 9, tip_y)),
        )
        c.poly(tuft, look.hair, OUTLINE, 2.4)


def bun(c: Canvas, look: Look) -> None:
    """A round bun on top of the head, behind the crown."""
    c.ellipse(256, 50, 40, 34, look.hair_back, OUTLINE, 3.2)
    c.line(path((226, 40), ((238, 26), (270, 22), (284, 36))), look.hair_light, 3.0)
    c.line(path((232, 60), ((246, 48), (270, 48), (282, 60))), look.hair_dark, 2.0)


def offset(pts: Sequence[Point], d: float) -> list[Point]:
    """``pts`` moved ``d`` pixels along their normals (to the left of the direction of travel)."""
    a = np.array(pts)
    tangent = np.gradient(a, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True) + 1e-9
    normal = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
    return [(float(x), float(y)) for x, y in a + d * normal]


def headphones(c: Canvas, look: Look) -> None:
    band = path((146, 236), ((126, 120), (190, 60), (256, 60)), ((322, 60), (386, 120), (366, 236)))
    c.line(band, OUTLINE, 16.0)
    c.line(band, PHONES, 11.0)
    shine = offset(band, 2.6)
    c.line(shine[30:80], PHONES_LIGHT, 2.6)
    for side in (-1, 1):
        cx = 256 + side * 122
        c.ellipse(cx, 268, 30, 44, PHONES, OUTLINE, 3.4)
        c.ellipse(cx + side * 6, 268, 20, 34, PHONES_LIGHT)
        c.ellipse(cx + side * 8, 268, 14, 27, look.accent, OUTLINE, 2.2)
        star(c, cx + side * 8, 268, 10, look.star, None)


def base_layer(look: Look | None = None) -> Image.Image:
    look = look or VEE
    c = Canvas()
    if look.hair_style == "bun":
        bun(c, look)
    back_hair(c, look)
    body(c, look)
    if look.hair_style == "braids":
        braids(c, look)
    face(c, look)
    front_hair(c, look)
    headphones(c, look)
    return c.image()


def _mask(pts: Sequence[Point]) -> Canvas:
    m = Canvas()
    m.poly(pts, (255, 255, 255, 255))
    return m


# --- eyes ----------------------------------------------------------------------------------


def _eye_outline(cx: float, cy: float) -> list[Point]:
    # Rounded, slightly taller than wide; the outer corner sits a little higher.
    return path(
        (cx - 25, cy - 6),
        ((cx - 22, cy - 30), (cx + 20, cy - 34), (cx + 26, cy - 10)),
        ((cx + 30, cy + 16), (cx + 16, cy + 30), (cx, cy + 30)),
        ((cx - 18, cy + 30), (cx - 28, cy + 16), (cx - 25, cy - 6)),
    )


def open_eye(c: Canvas, cx: float, cy: float, side: int, look: Look) -> None:
    shape = _eye_outline(cx, cy) if side < 0 else mirror(_eye_outline(2 * 256 - cx, cy))
    c.poly(shape, WHITE)
    iris = Canvas()
    iris.ellipse(cx, cy + 3, 19, 25, look.iris_dark)
    iris.ellipse(cx, cy + 9, 16, 18, look.iris)
    iris.ellipse(cx, cy + 16, 12, 9, look.iris_light)
    iris.ellipse(cx, cy + 3, 8, 11, PUPIL)
    iris.poly(
        path(
            (cx - 30, cy - 40),
            (cx + 30, cy - 40),
            (cx + 30, cy - 12),
            ((cx + 10, cy - 20), (cx - 10, cy - 20), (cx - 30, cy - 12)),
        ),
        (40, 30, 60, 80),
    )
    iris.ellipse(cx + side * -7, cy - 7, 7, 8, WHITE)
    iris.ellipse(cx + side * 7, cy + 14, 3.2, 3.2, WHITE)
    c.layer(iris, mask=_mask(shape))
    # Upper lash line, heavier at the outer corner, with a flick.
    ox = cx + side * 27
    lash = path(
        (cx - side * 27, cy - 4),
        ((cx - side * 20, cy - 30), (cx + side * 16, cy - 36), (ox, cy - 12)),
    )
    c.line(lash, OUTLINE, 5.0)
    c.line(
        path(
            (ox - side * 2, cy - 14),
            ((ox + side * 2, cy - 17), (ox + side * 4, cy - 19), (ox + side * 7, cy - 20)),
        ),
        OUTLINE,
        3.4,
    )
    c.line(
        path(
            (cx - side * 12, cy + 30),
            ((cx - side * 4, cy + 32), (cx + side * 8, cy + 31), (cx + side * 16, cy + 27)),
        ),
        OUTLINE,
        1.8,
    )


def closed_eye(c: Canvas, cx: float, cy: float, side: int, look: Look) -> None:
    # A soft downward arc with a lash flick at the outer corner: a relaxed blink.
    arc = path((cx - 26, cy + 4), ((cx - 14, cy + 18), (cx + 14, cy + 18), (cx + 26, cy + 4)))
    c.line(arc, OUTLINE, 4.6)
    ox = cx + side * 26
    c.line(
        path(
            (ox - side * 1, cy + 5),
            ((ox + side * 2, cy + 4), (ox + side * 4, cy + 2), (ox + side * 6, cy)),
        ),
        OUTLINE,
        3.0,
    )


def half_eye(c: Canvas, cx: float, cy: float, side: int, look: Look) -> None:
    lid_y = cy + 6
    eye = Canvas()
    open_eye(eye, cx, cy, side, look)
    keep = Canvas()
    keep.poly([(cx - 40, lid_y), (cx + 40, lid_y), (cx + 40, cy + 50), (cx - 40, cy + 50)], WHITE)
    c.layer(eye, mask=keep)
    lid = path(
        (cx - 27, lid_y + 2), ((cx - 12, lid_y - 4), (cx + 12, lid_y - 4), (cx + 27, lid_y + 1))
    )
    c.line(lid, OUTLINE, 5.0)


def eyes_layer(kind: str, look: Look | None = None) -> Image.Image:
    look = look or VEE
    c = Canvas()
    draw = {"open": open_eye, "closed": closed_eye, "half": half_eye}[kind]
    draw(c, *EYE_L, -1, look)
    draw(c, *EYE_R, 1, look)
    return c.image()


# --- mouths --------------------------------------------------------------------------------


def _open_mouth(
    w: float,
    h: float,
    *,
    top: float = 2.0,
    y: float = 0.0,
    teeth: float = 0.0,
    tongue: float = 0.0,
    tongue_up: bool = False,
    round_: bool = False,
) -> Canvas:
    """An open mouth: dark inside, optional upper teeth and tongue, lip outline."""
    cx, cy = MOUTH_C[0], MOUTH_C[1] + y
    if round_:
        shape = ellipse_pts(cx, cy + h / 2 - 4, w / 2, h / 2)
    else:
        shape = path(
            (cx - w / 2, cy),
            ((cx - w / 4, cy - top), (cx + w / 4, cy - top), (cx + w / 2, cy)),
            ((cx + w / 2, cy + h * 0.7), (cx + w / 4, cy + h), (cx, cy + h)),
            ((cx - w / 4, cy + h), (cx - w / 2, cy + h * 0.7), (cx - w / 2, cy)),
        )
    c = Canvas()
    c.poly(shape, MOUTH)
    inside = Canvas()
    if teeth:
        top_y = min(p[1] for p in shape)
        inside.poly(
            [
                (cx - w, top_y - 4),
                (cx + w, top_y - 4),
                (cx + w, top_y + teeth),
                (cx - w, top_y + teeth),
            ],
            TEETH,
        )
    if tongue:
        bottom = max(p[1] for p in shape)
        if tongue_up:
            ty = min(p[1] for p in shape) + (teeth or 2) + tongue * 0.45
            inside.ellipse(cx, ty, w * 0.3, tongue * 0.55, TONGUE)
            inside.poly(
                [
                    (cx - w * 0.3, ty),
                    (cx + w * 0.3, ty),
                    (cx + w * 0.36, bottom + 4),
                    (cx - w * 0.36, bottom + 4),
                ],
                TONGUE,
            )
            inside.line(
                [(cx, ty - tongue * 0.2), (cx, ty + tongue * 0.4)], (220, 86, 110, 255), 1.6
            )
        else:
            inside.ellipse(cx, bottom - tongue * 0.35, w * 0.34, tongue * 0.6, TONGUE)
    c.layer(inside, mask=_mask(shape))
    c.line(list(shape) + [shape[0], shape[1]], LIP, 2.8, caps=False)
    return c


def mouth_layer(shape: str) -> Image.Image:
    cx, cy = MOUTH_C
    c = Canvas()
    if shape == "X":  # rest: a small content smile
        c.line(
            path((cx - 16, cy - 1), ((cx - 8, cy + 7), (cx + 8, cy + 7), (cx + 16, cy - 1))),
            LIP,
            3.4,
        )
    elif shape == "A":  # lips pressed together (M B P)
        c.line(
            path((cx - 18, cy + 3), ((cx - 8, cy + 1), (cx + 8, cy + 1), (cx + 18, cy + 3))),
            LIP,
            4.2,
        )
        c.line(
            path((cx - 7, cy + 10), ((cx - 3, cy + 12), (cx + 3, cy + 12), (cx + 7, cy + 10))),
            (214, 140, 140, 255),
            2.2,
        )
    elif shape == "B":  # slightly open, teeth together
        c.layer(_open_mouth(36, 10, top=1, y=-1, teeth=6))
    elif shape == "C":  # open
        c.layer(_open_mouth(40, 22, top=2, y=-3, teeth=5, tongue=9))
    elif shape == "D":  # wide open
        c.layer(_open_mouth(48, 36, top=3, y=-6, teeth=6, tongue=14))
    elif shape == "E":  # rounded
        c.layer(_open_mouth(28, 26, y=-4, tongue=8, round_=True))
    elif shape == "F":  # puckered
        c.layer(_open_mouth(16, 16, y=-2, round_=True))
        c.line(
            path((cx - 12, cy - 8), ((cx - 16, cy - 2), (cx - 16, cy + 6), (cx - 12, cy + 11))),
            LIP,
            2.0,
        )
        c.line(
            mirror(
                path((cx - 12, cy - 8), ((cx - 16, cy - 2), (cx - 16, cy + 6), (cx - 12, cy + 11)))
            ),
            LIP,
            2.0,
        )
    elif shape == "G":  # upper teeth resting on the tucked-in lower lip (F V)
        lower = path(
            (cx - 16, cy + 4),
            ((cx - 8, cy + 2), (cx + 8, cy + 2), (cx + 16, cy + 4)),
            ((cx + 10, cy + 13), (cx - 10, cy + 13), (cx - 16, cy + 4)),
        )
        c.poly(lower, (236, 128, 138, 255), LIP, 2.2)
        teeth = path(
            (cx - 12, cy - 3),
            (cx + 12, cy - 3),
            ((cx + 12, cy + 4), (cx + 10, cy + 6), (cx + 7, cy + 6)),
            (cx - 7, cy + 6),
            ((cx - 10, cy + 6), (cx - 12, cy + 4), (cx - 12, cy - 3)),
        )
        c.poly(teeth, TEETH, LIP, 1.8)
        c.line([(cx, cy - 2), (cx, cy + 5)], (222, 214, 214, 255), 1.2)
        c.line(
            path((cx - 19, cy - 2), ((cx - 8, cy - 6), (cx + 8, cy - 6), (cx + 19, cy - 2))),
            LIP,
            3.4,
        )
    elif shape == "H":  # tongue raised behind the teeth (L)
        c.layer(_open_mouth(40, 24, top=2, y=-4, teeth=4, tongue=16, tongue_up=True))
    else:  # pragma: no cover - SHAPES is fixed
        raise ValueError(shape)
    return c.image()


# --- output --------------------------------------------------------------------------------

MANIFEST_TEMPLATE = """\
# {title}, drawn by tools/draw_default_avatar.py.
# Regenerate with: python tools/draw_default_avatar.py {regenerate}
name: {name}
size: [{w}, {h}]
base: base.png
eyes:
  open: eyes_open.png
  closed: eyes_closed.png
  half: eyes_half.png
mouths:
{mouths}
mouth_box: [{bx}, {by}, {bw}, {bh}]
breathing: {{amplitude_px: 3, period_s: 4.5}}
blink: {{interval_s: [2.5, 6.0], duration_s: 0.16, seed: 7}}
"""


def _bbox(im: Image.Image) -> tuple[int, int, int, int]:
    box = im.getchannel("A").getbbox()
    assert box is not None
    return box


def draw(out_dir: Path, look: Look | None = None) -> list[Path]:
    """Draw every PNG of a sprite set of ``look`` (default: Vee) and its manifest into
    ``out_dir``.

    Returns:
        The files written.
    """
    look = look or VEE
    from avatar_engine.visemes import SHAPES

    out_dir.mkdir(parents=True, exist_ok=True)
    images: dict[str, Image.Image] = {"base.png": base_layer(look)}
    for kind in ("open", "closed", "half"):
        images[f"eyes_{kind}.png"] = eyes_layer(kind, look)
    boxes = []
    for shape in SHAPES:
        im = mouth_layer(shape)
        images[f"mouth_{shape}.png"] = im
        boxes.append(_bbox(im))
    pad = 4
    x0 = min(b[0] for b in boxes) - pad
    y0 = min(b[1] for b in boxes) - pad
    x1 = max(b[2] for b in boxes) + pad
    y1 = max(b[3] for b in boxes) + pad
    written = []
    for name, im in images.items():
        path_ = out_dir / name
        im.save(path_, optimize=True)
        written.append(path_)
    key = next((k for k, v in LOOKS.items() if v == look), "")
    manifest = MANIFEST_TEMPLATE.format(
        title='Default vstage avatar "Vee"'
        if look == VEE
        else f'vstage avatar "{look.name}" (a variant of Vee)',
        regenerate="config/avatars/default"
        if look == VEE
        else f"--look {key} config/avatars/{key}",
        name=look.name,
        w=SIZE,
        h=SIZE,
        bx=x0,
        by=y0,
        bw=x1 - x0,
        bh=y1 - y0,
        mouths="\n".join(f"  {s}: mouth_{s}.png" for s in SHAPES),
    )
    (out_dir / "manifest.yaml").write_text(manifest, encoding="utf-8")
    written.append(out_dir / "manifest.yaml")
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder to write the sprite set into")
    parser.add_argument(
        "--look",
        choices=sorted(LOOKS),
        default="vee",
        help="which character: vee (the default), lena or camille",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for p in draw(args.out_dir, LOOKS[args.look]):
        logger.info("wrote %s", p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
