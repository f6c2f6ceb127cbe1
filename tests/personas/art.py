"""A character picture drawn in code for the card and portrait tests: a bust with a face, hair,
two eyes and a closed mouth at known places (what a Character Card's image looks like)."""

from __future__ import annotations

from PIL import Image, ImageDraw

SIZE = (400, 520)
MOUTH = (200, 262, 44)  # x, y of the mouth's middle and its width, in pixels
EYES = ((164, 200, 46), (236, 200, 46))
SKIN = (246, 214, 196)


def draw_character(size: tuple[int, int] = SIZE) -> Image.Image:
    """An opaque RGB bust on a pale background, 4x supersampled then scaled down."""
    k = 4
    w, h = size
    sx, sy = w / SIZE[0], h / SIZE[1]
    im = Image.new("RGB", (w * k, h * k), (188, 206, 232))
    d = ImageDraw.Draw(im)

    def box(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
        return (x0 * sx * k, y0 * sy * k, x1 * sx * k, y1 * sy * k)

    d.ellipse(box(70, 60, 330, 420), fill=(92, 58, 120))  # hair behind
    d.rectangle(box(90, 380, 310, 520), fill=(70, 110, 170))  # shoulders
    d.rectangle(box(170, 290, 230, 390), fill=SKIN)  # neck
    d.ellipse(box(110, 110, 290, 310), fill=SKIN)  # face
    d.chord(box(100, 80, 300, 230), 180, 360, fill=(110, 70, 140))  # fringe
    for ex, ey, ew in EYES:
        r = ew / 2
        d.ellipse(box(ex - r, ey - 0.7 * r, ex + r, ey + 0.7 * r), fill=(255, 255, 255))
        d.ellipse(box(ex - 0.55 * r, ey - 0.65 * r, ex + 0.55 * r, ey + 0.65 * r),
                  fill=(60, 120, 90))
        d.ellipse(box(ex - 0.25 * r, ey - 0.3 * r, ex + 0.25 * r, ey + 0.3 * r), fill=(20, 30, 25))
        d.arc(box(ex - r, ey - 0.75 * r, ex + r, ey + 0.75 * r), 190, 350, fill=(40, 28, 32),
              width=3 * k)
    mx, my, mw = MOUTH
    d.arc(box(mx - mw / 2, my - 14, mx + mw / 2, my + 4), 25, 155, fill=(160, 70, 80),
          width=3 * k)  # a small closed smile
    return im.resize(size, Image.Resampling.LANCZOS)
