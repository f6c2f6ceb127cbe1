"""Clip encoding: rendered RGBA frames plus a sentence's speech -> WebM (alpha) and MP4 files."""

from avatar_engine.clips.encode import AUDIO_RATE, DEFAULT_BACKGROUND, FORMATS, encode_clip

__all__ = ["AUDIO_RATE", "DEFAULT_BACKGROUND", "FORMATS", "encode_clip"]
