"""Settings of the live stream: pacing, the shared video encoder and the WebRTC side."""

from __future__ import annotations

from pydantic import Field

from vstage_core.settings import FrozenModel


class LiveSettings(FrozenModel):
    """How each persona's live stream is paced, encoded and sent to browsers."""

    enabled: bool = Field(True, description="stream each persona live (WebRTC, OBS); "
                                            "off: the pages play clip files")
    sample_rate: int = Field(48000, description="audio rate of the stream (WebRTC's Opus rate)")
    lead_frames: int = Field(1, ge=0, le=10,
                             description="ticks prepared ahead of their release")
    idle_batch: int = Field(4, ge=1, le=50,
                            description="idle frames rendered per batch, in a thread")
    max_late_s: float = Field(0.5, gt=0, description="a stream this far behind its schedule "
                              "(loop stalled) restarts its clock instead of bursting")
    keyframe_s: float = Field(1.0, gt=0, le=10,
                              description="seconds between keyframes (how long a new viewer "
                                          "waits for a picture, at most)")
    bitrate: int = Field(2_500_000, ge=100_000, description="VP8 target bits per second")
    cpu_used: int = Field(12, ge=-16, le=16,
                          description="libvpx speed (higher: faster, lower quality)")
    idle_cache_packets: int = Field(4000, ge=0,
                                    description="encoded idle frames kept for replay "
                                                "(0: encode every frame)")
    viewer_queue: int = Field(8, ge=2, description="encoded ticks queued per viewer before "
                                                    "the oldest are dropped")
    answer_timeout_s: float = Field(10.0, gt=0, description="ICE gathering limit per answer")
