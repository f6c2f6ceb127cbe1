"""Settings of the OBS stage: how to reach the streamer's OBS and what vstage names in it.

Names may contain ``{persona}`` (the persona id); a scene name without it is shared by every
persona. Inputs (sources) are global in OBS, so the avatar and subtitle names must keep
``{persona}`` when more than one persona is on the show.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from vstage_core.settings import FrozenModel


class ObsSceneNames(FrozenModel):
    """The scene shown for each persona state (``{persona}`` is replaced by the persona id)."""

    idle: str = Field("vstage idle", description="nobody speaks: the avatar idles")
    talking: str = Field("vstage {persona}", description="the persona speaks, with subtitles")
    brb: str = Field("vstage brb", description="'be right back': renderer stalled or LLM down")

    def name(self, state: str, persona: str) -> str:
        return getattr(self, state).format(persona=persona)


class ObsSourceNames(FrozenModel):
    """Names of the inputs vstage creates and drives."""

    avatar: str = Field("vstage {persona} avatar",
                        description="media source reading the persona's live stream")
    subtitles: str = Field("vstage {persona} subtitles", description="text source")
    brb_image: str = Field("vstage brb image", description="image on the 'be right back' scene")

    def name(self, kind: str, persona: str) -> str:
        return getattr(self, kind).format(persona=persona)


class ObsSettings(FrozenModel):
    """The streamer's OBS (obs-websocket 5.x; OBS 28 or newer). See docs/obs.md."""

    enabled: bool = Field(False, description="drive OBS in addition to the browser overlays")
    host: str = "127.0.0.1"
    port: int = Field(4455, ge=1, le=65535)
    password: SecretStr | None = Field(
        None, description="obs-websocket server password; set VSTAGE_OBS__PASSWORD"
    )
    scenes: ObsSceneNames = ObsSceneNames()
    sources: ObsSourceNames = ObsSourceNames()
    switch_scenes: bool = Field(True, description="switch the program scene by persona state")
    brb_image: Path | None = Field(None, description="picture for the 'be right back' scene")
    avatar_box: tuple[int, int, int, int] | None = Field(
        None,
        description="where the avatar goes on the canvas: x, y, width, height in pixels; "
        "unset: a square of 80% of the canvas height, centred, at the bottom",
    )
    chroma_key: bool = Field(
        True, description="key out the colour the live stream's avatar is composited over"
    )
    key_colour: tuple[int, int, int] | None = Field(
        None,
        description="RGB behind the avatar in the stream to OBS; unset: picked per avatar, "
        "the colour farthest from every colour of its art (overlays/obs/keying.py)",
    )
    live_host: str = Field("127.0.0.1", description="where OBS reads the live streams (UDP)")
    live_port_base: int = Field(
        47600, ge=1024, le=65000,
        description="UDP port of the first persona's live stream; the persona listed n-th "
        "(config order, from 0) uses live_port_base + n",
    )
    live_buffering_mb: int = Field(
        0, ge=0, le=16, description="the media source's network buffer (0: show frames as "
        "they arrive, the lowest latency)",
    )
    keep_placement: bool = Field(
        False,
        description="leave vstage's items where they are in OBS (set it after arranging them "
        "by hand); by default every setup puts them back in their configured place, which "
        "also repairs the layout OBS restores from an older autosave after a crash",
    )
    subtitle_font: str = "DejaVu Sans"
    subtitle_size: int = Field(48, ge=8, le=400)
    subtitle_width: float = Field(
        0.9, gt=0, le=1,
        description="widest a subtitle may be, as a share of the canvas width: longer "
        "sentences wrap onto more lines, and the text source's bounding box shrinks anything "
        "still wider",
    )
    def live_url(self, index: int) -> str:
        """UDP URL of the live stream of the persona listed ``index``-th (from 0)."""
        return f"udp://{self.live_host}:{self.live_port_base + index}?pkt_size=1316"

    request_timeout_s: float = Field(3.0, gt=0, description="one request's time limit")
    reconnect_min_s: float = Field(0.25, ge=0, description="first wait before reconnecting")
    reconnect_max_s: float = Field(2.0, ge=0, description="longest wait between reconnects")
    health_interval_s: float = Field(
        0.5, gt=0, description="how often an idle connection is checked"
    )
