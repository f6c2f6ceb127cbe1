"""The echo guard of a conversation: whether the persona's own voice is loud in the room now.

The page plays the session's stream through the learner's speakers, and a microphone hears
it back; the browser's echo cancellation removes most of it, not all. While the persona's
output is loud (and for a short hang after, which covers the way back through the browser's
jitter buffer and the microphone), the session does not feed the microphone to hearing, so
its own voice never reads as the learner talking over it. The learner is still heard in the
persona's pauses between words and sentences.

Loudness comes from what the session pushed (each sentence's audio envelope, 10 ms windows)
and from when the stream started to play each sentence (:meth:`LiveStream.on_sentence`), so
the guard needs no subscription of its own: a stream nobody watches plays nothing and the
guard stays open.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np

from avatar_engine.types import Performance
from overlays.live.stream import SentenceChange

__all__ = ["EchoGuard"]

_WINDOW_S = 0.01
_KEPT = 64  # sentence envelopes remembered (a reply has a few)


class EchoGuard:
    """Tracks the loudness of one stream's speech against the monotonic clock.

    Args:
        threshold_dbfs: RMS of a 10 ms window, in dB below full scale, that counts as loud.
        hang_s: how long after the last loud window the microphone stays ignored.
    """

    def __init__(self, *, threshold_dbfs: float = -45.0, hang_s: float = 0.2) -> None:
        self.threshold = float(10.0 ** (threshold_dbfs / 20.0))
        self.hang_s = hang_s
        self._envelopes: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._current: tuple[np.ndarray, float] | None = None  # (loud windows, start time)
        self._loud_until = -1e9  # end of the last loud window of sentences no longer on air

    def track(self, performance: Performance) -> None:
        """Remember the loudness of a sentence about to be pushed to the stream."""
        speech = performance.speech
        audio = np.asarray(speech.audio, np.float32).reshape(-1)
        w = max(1, round(speech.sample_rate * _WINDOW_S))
        n = audio.size // w
        if n == 0:
            loud = np.zeros(0, bool)
        else:
            windows = audio[: n * w].reshape(n, w)
            loud = np.sqrt(np.mean(windows * windows, axis=1)) >= self.threshold
        self._envelopes[(performance.reply_id, performance.index)] = loud
        while len(self._envelopes) > _KEPT:
            self._envelopes.popitem(last=False)

    def on_air(self, change: SentenceChange) -> None:
        """The stream started another sentence, or went idle (its ``on_sentence`` hook)."""
        self._close_current(change.at)
        loud = None
        if change.reply_id is not None and change.sentence is not None:
            loud = self._envelopes.get((change.reply_id, change.sentence))
        self._current = (loud, change.at) if loud is not None else None

    def loud(self, now: float | None = None) -> bool:
        """Whether the persona's voice was loud within the last ``hang_s``."""
        now = time.monotonic() if now is None else now
        if now - self._loud_until < self.hang_s:
            return True
        if self._current is None:
            return False
        loud, start = self._current
        last = int((now - start) / _WINDOW_S)
        first = max(0, int((now - self.hang_s - start) / _WINDOW_S))
        return bool(loud[first: last + 1].any())

    def _close_current(self, at: float) -> None:
        """Keep when the sentence leaving the air was last loud (the hang still applies)."""
        if self._current is None:
            return
        loud, start = self._current
        played = loud[: max(0, int((at - start) / _WINDOW_S)) + 1]
        hits = np.flatnonzero(played)
        if hits.size:
            self._loud_until = max(self._loud_until, start + (hits[-1] + 1) * _WINDOW_S)
        self._current = None
