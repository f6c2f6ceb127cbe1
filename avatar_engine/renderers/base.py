"""The renderer capability: turn one voiced sentence into RGBA video frames of the avatar."""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

import torch

from avatar_engine.types import Speech

logger = logging.getLogger(__name__)


@runtime_checkable
class Renderer(Protocol):
    """Draws the avatar performing speech, and idling between sentences.

    Both methods block (they composite on the CPU or the GPU); callers run them off the event
    loop (``asyncio.to_thread`` or a worker). Frames are a pure function of the speech and the
    global frame index, so a clip rendered with ``start_frame=k`` continues seamlessly from
    one that ended at frame ``k - 1``, whether it is speech or idle.

    Attributes:
        size: ``(width, height)`` of a frame in pixels.
        fps: frames per second.
        device: the torch device frames are composited on and returned on.
    """

    size: tuple[int, int]
    fps: int
    device: torch.device

    def render(self, speech: Speech, *, start_frame: int = 0) -> torch.Tensor:
        """Frames of the avatar saying ``speech``.

        Args:
            speech: the voiced sentence (audio, and phoneme timings when the voice has them).
            start_frame: global index of the first frame (drives blinking and breathing).

        Returns:
            ``uint8`` RGBA tensor ``[N, H, W, 4]`` on :attr:`device`, straight alpha,
            ``N = frame_count(speech.duration, fps)``.
        """
        ...

    def idle(self, n_frames: int, *, start_frame: int = 0) -> torch.Tensor:
        """``n_frames`` frames of the avatar silent (still blinking and breathing).

        Returns:
            ``uint8`` RGBA tensor ``[n_frames, H, W, 4]`` on :attr:`device`.
        """
        ...
