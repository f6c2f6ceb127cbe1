"""Choose a persona's performer: on RabbitMQ workers when the render pool is remote, else here."""

from __future__ import annotations

from avatar_engine.performer.base import Performer
from avatar_engine.performer.local import LocalPerformer
from avatar_engine.performer.remote import RemotePerformer
from avatar_engine.renderers.base import Renderer
from avatar_engine.workers.jobs import AnyAvatarSettings
from avatar_engine.workers.pool import RemoteRenderPool, RenderPool


def create_performer(
    *, persona: str, renderer: Renderer, avatar: AnyAvatarSettings,
    pool: RenderPool | None = None, start_frame: int = 0,
) -> Performer:
    """The performer for one persona.

    Args:
        persona: the persona's id.
        renderer: the persona's local renderer (speech when rendering here; idle frames always).
        avatar: the avatar settings a remote worker builds its own renderer from.
        pool: the shared render pool; a :class:`RemoteRenderPool` sends speech to workers.
        start_frame: the frame clock's first value.
    """
    if isinstance(pool, RemoteRenderPool):
        return RemotePerformer(persona=persona, renderer=renderer, avatar=avatar, pool=pool,
                               start_frame=start_frame)
    return LocalPerformer(persona=persona, renderer=renderer, pool=pool, start_frame=start_frame)
