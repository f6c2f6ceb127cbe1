"""The clip recorder: a stage that encodes each performed sentence to files (WebM and/or MP4).

Clip files are no longer on a reply's path: the live stream shows performances as they come.
Files are still wanted by the clip player (the fallback of a browser that cannot do WebRTC) and
by recordings, so this stage encodes a performance only when :attr:`ClipRecorder.needed` says
so, in a worker thread, and publishes a :class:`~overlays.stage.ClipReady` for each clip.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from avatar_engine.clips.encode import encode_clip
from avatar_engine.types import Clip, Performance
from overlays.stage import ClipReady, Performed, ReplyCancelled, StageEvent

logger = logging.getLogger(__name__)

__all__ = ["ClipRecorder", "clip_base"]


def clip_base(folder: Path, performance: Performance) -> Path:
    """Where a performance's files go, without suffix: ``<folder>/<reply_id>-<index:02d>``."""
    return folder / f"{performance.reply_id}-{performance.index:02d}"


def encode_performance(performance: Performance, *, folder: Path,
                       formats: Sequence[str]) -> Clip:
    """Blocking: encode ``performance`` into ``folder`` (run it in a thread)."""
    speech = performance.speech
    files = encode_clip(frames=performance.frames, audio=speech.audio,
                        sample_rate=speech.sample_rate, fps=performance.fps,
                        out_base=clip_base(folder, performance), formats=formats)
    return Clip(reply_id=performance.reply_id, index=performance.index, text=performance.text,
                duration=performance.duration, fps=performance.fps,
                frames=performance.n_frames, files=files)


class ClipRecorder:
    """Encodes performances to clip files when someone needs them; a :class:`Stage`.

    Args:
        folders: each persona's clips folder, by persona id (performances of other personas
            are ignored).
        formats: which files to write (``"webm"``, ``"mp4"``).
        publish: where :class:`ClipReady` goes (the bus's ``publish``).
        needed: asked for every performance: encode it? (a clip page is connected, recording
            is on). Always, by default.
    """

    name = "recorder"
    wants: frozenset[type[StageEvent]] = frozenset({Performed, ReplyCancelled})

    def __init__(self, *, folders: Mapping[str, Path], formats: Sequence[str],
                 publish: Callable[[StageEvent], None],
                 needed: Callable[[], bool] = lambda: True) -> None:
        self.folders = dict(folders)
        self.formats = tuple(formats)
        self._publish = publish
        self.needed = needed
        self.encoded = 0
        self.skipped = 0

    async def handle(self, event: StageEvent) -> None:
        # ReplyCancelled needs nothing here: the bus has dropped the reply's queued
        # performances and cancels an encode of it in progress (the thread's file is left).
        if not isinstance(event, Performed):
            return
        performance = event.performance
        folder = self.folders.get(performance.persona)
        if folder is None or not self.needed():
            self.skipped += 1
            return
        # The encoder releases the GIL; the loop and the other stages go on meanwhile.
        clip = await asyncio.to_thread(encode_performance, performance, folder=folder,
                                       formats=self.formats)
        self.encoded += 1
        self._publish(ClipReady(persona=performance.persona, clip=clip))
