"""Build the renderer an avatar's settings ask for: shared by the app (``bots.personas``) and
the remote render jobs (:mod:`avatar_engine.workers.jobs`), which build their own."""

from __future__ import annotations

from typing import TYPE_CHECKING

from avatar_engine.settings import AnyAvatarSettings, PortraitSettings, Wav2LipSettings

if TYPE_CHECKING:
    from avatar_engine.renderers.base import Renderer


def create_renderer(settings: AnyAvatarSettings) -> Renderer:
    """Blocking: build the avatar renderer ``settings`` ask for (their paths already resolved).

    Raises:
        MissingDependency: a model file the settings name is missing.
        ConfigError: the sprite set is invalid, or the portrait's picture is missing or
            unreadable.
    """
    if isinstance(settings, Wav2LipSettings):
        from avatar_engine.renderers.wav2lip import Wav2LipRenderer

        return Wav2LipRenderer.from_settings(settings)
    if isinstance(settings, PortraitSettings):
        from avatar_engine.renderers.portrait import PortraitRenderer

        return PortraitRenderer(settings=settings)
    from avatar_engine.renderers.sprite import SpriteRenderer
    from avatar_engine.renderers.spriteset import SpriteSet

    return SpriteRenderer(sprites=SpriteSet.load(settings.sprites), fps=settings.fps,
                          device=settings.device)
