"""The persona's voice in a Discord voice channel: a :class:`discord.AudioSource` that plays
one reply sentence by sentence while the rest is still being written and voiced.

discord.py's player thread calls :meth:`ReplyAudio.read` every 20 ms and expects 3840 bytes
(48 kHz, stereo, s16). Sentences are appended from the event loop as TTS finishes them; while
the next one is not ready yet the source plays silence instead of ending, and after
:meth:`ReplyAudio.finish` it ends when the buffer runs dry. :meth:`ReplyAudio.stop` (a skip, a
barge-in) ends it at the next frame and drops the rest of the reply.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import discord
import numpy as np

from bots.hearing.audio import FRAME_BYTES, tts_to_discord_pcm

logger = logging.getLogger(__name__)

SILENCE = bytes(FRAME_BYTES)


class ReplyAudio(discord.AudioSource):
    """One reply's audio for discord.py's player. Thread-safe between the loop (append,
    finish, stop) and the player thread (read).

    Args:
        reply_id: the reply this voices (for logs and cancellation).
        max_wait_s: how long to fill gaps with silence waiting for the next sentence before
            giving up (a stuck pipeline must not hold the channel open forever).
        on_first_frame: called (from the player thread) when the first real audio frame goes
            out, with the monotonic time.
        clock: monotonic clock.
    """

    def __init__(self, *, reply_id: str, max_wait_s: float = 10.0,
                 on_first_frame: Callable[[float], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.reply_id = reply_id
        self._buf = bytearray()
        self._pos = 0
        self._lock = threading.Lock()
        self._finished = False
        self._stopped = False
        self._max_wait_s = max_wait_s
        self._waiting_since: float | None = None
        self._on_first_frame = on_first_frame
        self._clock = clock
        self.first_frame_at: float | None = None
        self.frames_out = 0
        self.silence_out = 0
        self.sentences = 0

    # ------------------------------------------------------------------ producer side

    def append_pcm(self, pcm: bytes) -> None:
        """Add Discord PCM (48 kHz stereo s16) to the end of the reply."""
        with self._lock:
            if self._stopped or self._finished:
                return
            self._buf += pcm
            self.sentences += 1

    def append_speech(self, audio: np.ndarray, sample_rate: int) -> None:
        """Add one voiced sentence (mono float32 at any rate, e.g. Piper's 22050 Hz)."""
        self.append_pcm(tts_to_discord_pcm(audio, sample_rate))

    def finish(self) -> None:
        """No more sentences: end after what is buffered."""
        with self._lock:
            self._finished = True

    def stop(self) -> None:
        """Barge-in or skip: the next :meth:`read` ends playback; the rest is dropped."""
        with self._lock:
            self._stopped = True
            self._buf = bytearray()
            self._pos = 0

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def done(self) -> bool:
        with self._lock:
            return self._stopped or (self._finished and self._pos >= len(self._buf))

    @property
    def buffered_s(self) -> float:
        with self._lock:
            return (len(self._buf) - self._pos) / (FRAME_BYTES * 50)

    # ------------------------------------------------------------------ discord.AudioSource

    def is_opus(self) -> bool:
        return False

    def read(self) -> bytes:
        with self._lock:
            if self._stopped:
                return b""
            remaining = len(self._buf) - self._pos
            if remaining >= FRAME_BYTES or (self._finished and remaining > 0):
                frame = bytes(self._buf[self._pos:self._pos + FRAME_BYTES])
                self._pos += len(frame)
                if self._pos > 1 << 20:  # compact now and then; keeps memory flat
                    del self._buf[: self._pos]
                    self._pos = 0
                self._waiting_since = None
                first_at = None  # set on the reply's first frame only
                if self.first_frame_at is None:
                    first_at = self.first_frame_at = self._clock()
                self.frames_out += 1
            elif self._finished:
                return b""
            else:  # the next sentence is not voiced yet: hold the channel with silence
                now = self._clock()
                if self._waiting_since is None:
                    self._waiting_since = now
                elif now - self._waiting_since > self._max_wait_s:
                    logger.warning("reply %s: no audio for %.1fs, ending playback",
                                   self.reply_id, self._max_wait_s)
                    return b""
                self.silence_out += 1
                return SILENCE
        if len(frame) < FRAME_BYTES:
            frame += bytes(FRAME_BYTES - len(frame))
        if first_at is not None and self._on_first_frame is not None:
            try:
                self._on_first_frame(first_at)
            except Exception:
                logger.exception("on_first_frame failed")
        return frame

    def cleanup(self) -> None:
        self.stop()
