"""Drive the streamer's real OBS Studio over obs-websocket 5: setup, show control, resilience.

``ObsStage`` is a :class:`~overlays.stage.Stage`; ``setup_obs`` creates what each persona
needs; ``ObsDriver`` is the reconnecting async connection both use. See docs/obs.md.
"""

from .driver import ObsDriver, ObsRequestError, ObsUnavailable
from .settings import ObsSceneNames, ObsSettings, ObsSourceNames
from .setup import SetupReport, setup_obs
from .stage import ObsStage, PlayedClip

__all__ = [
    "ObsDriver",
    "ObsRequestError",
    "ObsSceneNames",
    "ObsSettings",
    "ObsSourceNames",
    "ObsStage",
    "ObsUnavailable",
    "PlayedClip",
    "SetupReport",
    "setup_obs",
]
