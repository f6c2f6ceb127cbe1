"""Avatar renderers: the :class:`Renderer` capability, sprite sets (PNGtuber art folders) and
the sprite renderer that lip-syncs them.

Names are imported lazily so ``python -m avatar_engine.renderers.<module>`` tools run without
importing torch or their own module twice.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from avatar_engine.renderers.base import Renderer
    from avatar_engine.renderers.sprite import SpriteRenderer
    from avatar_engine.renderers.spriteset import Layer, SpriteSet
    from avatar_engine.renderers.wav2lip import Wav2LipRenderer

_EXPORTS = {
    "Renderer": "avatar_engine.renderers.base",
    "SpriteRenderer": "avatar_engine.renderers.sprite",
    "Layer": "avatar_engine.renderers.spriteset",
    "SpriteSet": "avatar_engine.renderers.spriteset",
    "Wav2LipRenderer": "avatar_engine.renderers.wav2lip",
}

__all__ = ["Layer", "Renderer", "SpriteRenderer", "SpriteSet", "Wav2LipRenderer"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
