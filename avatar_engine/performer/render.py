"""The one render function every performer uses: a renderer, a sentence and a frame index in,
the avatar's frames as a CPU ``uint8`` RGBA array out (locally, in the render pool, or on a
RabbitMQ worker: the same call, so local and remote frames are identical)."""

from __future__ import annotations

from typing import Any

import numpy as np

from avatar_engine.renderers.base import Renderer
from avatar_engine.types import Speech


def to_cpu_frames(frames: Any) -> np.ndarray:
    """A renderer's frames (a torch tensor on any device, or an array) as a contiguous CPU
    ``uint8`` array ``[N, H, W, 4]``."""
    if hasattr(frames, "detach"):
        frames = frames.detach().cpu().numpy()
    return np.ascontiguousarray(frames, dtype=np.uint8)


def render_speech(renderer: Renderer, speech: Speech, start_frame: int) -> np.ndarray:
    """Blocking: the avatar saying ``speech``, its first frame at global index
    ``start_frame`` (blinks and breathing carry on from the frame before it).

    Returns:
        ``uint8`` RGBA ``[frame_count(speech.duration, fps), H, W, 4]`` on the CPU.
    """
    return to_cpu_frames(renderer.render(speech, start_frame=start_frame))


def render_idle(renderer: Renderer, n_frames: int, start_frame: int) -> np.ndarray:
    """Blocking: ``n_frames`` of the avatar silent from global index ``start_frame``."""
    return to_cpu_frames(renderer.idle(n_frames, start_frame=start_frame))
