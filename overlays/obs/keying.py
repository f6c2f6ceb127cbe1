"""The key colour OBS removes behind the avatar: one the avatar's own art never comes near.

H.264 has no alpha, so the live stream to OBS shows the avatar composited over a flat colour
that OBS's chroma key filter (``chroma_key_filter_v2``) makes transparent again. That filter
compares colours by chroma only (the Cb/Cr of BT.709, luma ignored) and removes everything
within ``similarity`` of the key, fading out over ``smoothness``. A fixed green ate the default
avatar's green-teal hoodie (it lies ~0.38 from green; OBS's default similarity is 0.40), so the
key is chosen per avatar: the candidate whose chroma is farthest from every opaque pixel of its
art, and the filter's similarity is set below that distance (the *margin*) so nothing of the
avatar is keyed, whatever colours it wears.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

RGB = tuple[int, int, int]

# Fully saturated colours round the hue circle; on a tie the earlier one wins (green, blue and
# magenta first: the keys streamers know).
CANDIDATES: tuple[RGB, ...] = (
    (0, 255, 0), (0, 0, 255), (255, 0, 255), (255, 0, 0), (0, 255, 255), (255, 255, 0),
    (255, 128, 0), (0, 255, 128), (128, 0, 255), (255, 0, 128), (0, 128, 255), (128, 255, 0),
)

# Rows of OBS's chroma_key_v2.effect (BT.709, range 0..1 with 0.5 at the centre).
_CB = np.array([-0.100644, -0.338572, 0.439216], np.float32)
_CR = np.array([0.439216, -0.398942, -0.040274], np.float32)
_OPAQUE = 128  # alpha at or above this counts as the avatar (edges blend with the key anyway)
_MAX_PIXELS = 400_000  # enough to see every colour of the art; keeps the choice quick


@dataclass(frozen=True, slots=True)
class KeyColour:
    """The key behind one avatar and how far (in Cb/Cr) its art stays from it.

    Attributes:
        rgb: the key colour, 0-255 per channel.
        margin: smallest chroma distance from any opaque pixel of the art to the key
            (0 .. ~1.2; OBS's default similarity is 0.4).
    """

    rgb: RGB
    margin: float

    def filter_settings(self) -> dict[str, object]:
        """Settings of OBS's ``chroma_key_filter_v2`` for this key: the custom colour, and a
        similarity plus smoothness (and spill reduction) that stop short of the avatar."""
        budget = 0.8 * self.margin  # leave a fifth of the margin for H.264's chroma noise
        smoothness = min(0.08, 0.25 * budget)
        similarity = max(0.05, budget - smoothness)
        r, g, b = self.rgb
        return {
            "key_color_type": "custom",
            "key_color": 0xFF000000 | (b << 16) | (g << 8) | r,  # OBS stores colours as ABGR
            "similarity": round(1000 * similarity),
            "smoothness": round(1000 * smoothness),
            "spill": round(1000 * smoothness),
        }


def chroma(rgb: np.ndarray) -> np.ndarray:
    """``[..., 3]`` RGB (0-255) -> ``[..., 2]`` Cb/Cr as OBS's chroma key computes them."""
    x = rgb.astype(np.float32) / 255.0
    return np.stack([x @ _CB + 0.501961, x @ _CR + 0.501961], axis=-1)


def art_pixels(art: np.ndarray | str | Path) -> np.ndarray:
    """The opaque RGB pixels of an avatar's art, ``[K, 3]`` uint8.

    Args:
        art: RGBA frames (``[N, H, W, 4]`` or ``[H, W, 4]``, straight alpha), an image file,
            or a folder of images (a sprite set: every PNG in it counts).
    """
    if isinstance(art, np.ndarray):
        arrays = [art.reshape(-1, art.shape[-1])]
    else:
        path = Path(art)
        files = sorted(path.glob("*.png")) if path.is_dir() else [path]
        if not files:
            raise ValueError(f"no PNG images in {path}")
        from PIL import Image

        arrays = [np.asarray(Image.open(f).convert("RGBA")).reshape(-1, 4) for f in files]
    pixels = np.concatenate(arrays)
    if pixels.shape[1] == 4:
        pixels = pixels[pixels[:, 3] >= _OPAQUE, :3]
    pixels = np.unique(pixels[:, :3], axis=0)  # every colour once: art has few distinct ones
    if len(pixels) > _MAX_PIXELS:
        pixels = pixels[np.random.default_rng(0).choice(len(pixels), _MAX_PIXELS, False)]
    return pixels


def chroma_margin(art: np.ndarray | str | Path, rgb: RGB) -> float:
    """Smallest chroma distance from an opaque pixel of ``art`` to the colour ``rgb``."""
    pixels = art_pixels(art)
    if len(pixels) == 0:
        return float(np.linalg.norm(chroma(np.array(rgb)) - 0.501961))
    return float(np.linalg.norm(chroma(pixels) - chroma(np.array(rgb)), axis=-1).min())


def choose_key(art: np.ndarray | str | Path, candidates: tuple[RGB, ...] = CANDIDATES
               ) -> KeyColour:
    """The candidate farthest in chroma from every opaque pixel of ``art``, with its margin."""
    pixels = chroma(art_pixels(art))
    best: KeyColour | None = None
    for rgb in candidates:
        key = chroma(np.array(rgb))
        margin = (float(np.linalg.norm(pixels - key, axis=-1).min()) if len(pixels)
                  else float(np.linalg.norm(key - 0.501961)))
        if best is None or margin > best.margin + 1e-6:
            best = KeyColour(rgb=rgb, margin=margin)
    assert best is not None
    return best


def pick_key_colour(art: np.ndarray | str | Path) -> RGB:
    """The key colour for an avatar: ``choose_key(art).rgb`` (see :func:`choose_key`)."""
    return choose_key(art).rgb
