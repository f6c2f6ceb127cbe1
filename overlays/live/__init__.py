"""Each persona live: one continuous audio+video stream per persona (:class:`LiveStream`),
encoded once for every WebRTC viewer (:class:`SharedVideoEncoder`, :class:`LiveRTC`), fed
from the stage bus (:class:`LiveStage`). OBS reads the same stream (``overlays.obs.live``)."""

from overlays.live.settings import LiveSettings
from overlays.live.stage import LiveStage
from overlays.live.stream import LiveStream, LiveSubscription, LiveTick, SentenceChange

__all__ = [
    "LiveSettings",
    "LiveStage",
    "LiveStream",
    "LiveSubscription",
    "LiveTick",
    "SentenceChange",
]
