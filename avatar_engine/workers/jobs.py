"""Render jobs that can cross machines: ``render_frames`` renders one sentence on a worker and
sends the frames back packed (:mod:`avatar_engine.performer.codec`).

Both the app and the workers import this module (``vstage worker`` does it for you), so the
kind ``render_frames`` means the same code everywhere. Its arguments are plain data: the
avatar's settings, the :class:`~avatar_engine.types.Speech`, and the avatar's frame index to
start at. The worker builds the renderer itself (once per distinct settings) from those
settings, so every path in them (sprite folder, Wav2Lip checkpoint and image) must exist at
the same place on the worker machine. It renders with the very function a local performer
uses (:func:`~avatar_engine.performer.render.render_speech`), so the frames are the same.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from avatar_engine.settings import AnyAvatarSettings as AnyAvatarSettings  # the performer's
from avatar_engine.settings import AvatarChoice
from avatar_engine.types import Speech
from avatar_engine.workers.worker import job

if TYPE_CHECKING:
    # Imported where used: the performer package imports this module for its remote path.
    from avatar_engine.performer.codec import PackedFrames

logger = logging.getLogger(__name__)

RENDERERS_KEPT = 4
"""Renderers a worker keeps loaded, one per distinct avatar settings (least recently used
goes first)."""

_SETTINGS: TypeAdapter[AnyAvatarSettings] = TypeAdapter(AvatarChoice)


@dataclass(frozen=True, slots=True)
class RenderedFrames:
    """What ``render_frames`` sends back: one sentence's frames, packed."""

    frames: PackedFrames
    fps: int
    render_s: float = 0.0
    """Seconds the worker spent rendering: the rest of a job's round trip (packing included)
    is the cost of running it remotely (what ``bench/avatar.py`` reports)."""
    pack_s: float = 0.0

    @property
    def n_frames(self) -> int:
        return self.frames.shape[0]


def avatar_payload(settings: AnyAvatarSettings) -> dict[str, Any]:
    """The avatar settings as plain JSON-able data, for :func:`render_frames`'s first argument."""
    return settings.model_dump(mode="json")


_renderers: OrderedDict[str, Any] = OrderedDict()
_renderers_lock = threading.Lock()


def cached_renderer(settings: AnyAvatarSettings | Mapping[str, Any]) -> Any:
    """The renderer for ``settings``, built on first use and kept for the next jobs.

    Blocking (loads the sprite set or the model). Keyed by the settings' JSON, so equal settings
    sent by any number of callers share one renderer.
    """
    from avatar_engine.renderers.factory import create_renderer

    # The key of a job's payload is its JSON as sent, so a hit costs no validation; a model
    # passed in is keyed by the same JSON (``avatar_payload``).
    payload = avatar_payload(settings) if isinstance(settings, AnyAvatarSettings) else settings
    key = json.dumps(payload, sort_keys=True, default=str)
    # One lock for look-up and load: a worker runs one job at a time, and two threads building
    # the same model at once would only waste memory.
    with _renderers_lock:
        renderer = _renderers.get(key)
        if renderer is None:
            model = (settings if isinstance(settings, AnyAvatarSettings)
                     else _SETTINGS.validate_python(dict(settings)))
            logger.info("loading a %s renderer for %s", model.renderer, key)
            renderer = create_renderer(model)
            _renderers[key] = renderer
            while len(_renderers) > RENDERERS_KEPT:
                _renderers.popitem(last=False)
        else:
            _renderers.move_to_end(key)
        return renderer


@job("render_frames")
def render_frames(
    avatar: AnyAvatarSettings | Mapping[str, Any], speech: Speech, start_frame: int
) -> RenderedFrames:
    """Blocking: render one sentence from ``start_frame`` on and pack the frames.

    Args:
        avatar: the persona's avatar settings (model or :func:`avatar_payload`); their paths
            must exist on this machine.
        speech: the sentence voiced.
        start_frame: the avatar's global frame index of the first frame, so blinks and
            breathing carry on from the frame before it.
    """
    from avatar_engine.performer.codec import pack_frames
    from avatar_engine.performer.render import render_speech

    renderer = cached_renderer(avatar)
    t0 = time.perf_counter()
    frames = render_speech(renderer, speech, start_frame)
    t1 = time.perf_counter()
    packed = pack_frames(frames)
    return RenderedFrames(frames=packed, fps=renderer.fps, render_s=t1 - t0,
                          pack_s=time.perf_counter() - t1)
