"""Receiving voice: RTP payloads (already transport-decrypted by discord-ext-voice-recv) ->
DAVE end-to-end decryption -> opus decoding -> 20 ms PCM frames per speaker.

discord-ext-voice-recv 0.5 does not undo DAVE, mandatory on Discord voice, so our sink asks for
the opus payloads (``wants_opus``) and does the DAVE step and decoding itself, with one opus
decoder per speaker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from vstage_core.errors import MissingDependency
from vstage_core.extras import install_hint

logger = logging.getLogger(__name__)

OPUS_SILENCE = b"\xf8\xff\xfe"  # the comfort-silence frame; never end-to-end encrypted
# Discord's developer docs, Voice Connections -> Voice Data Interpolation: a client that stops
# transmitting sends five silence frames first, then nothing. The first of them already says
# the voice has stopped; the rest only keep the receiver's decoder from interpolating.
END_OF_TRANSMISSION_FRAMES = 5

OnPcm = Callable[[int, bytes], None]
OnStop = Callable[[int], None]


class DaveStep:
    """The DAVE (E2EE) step for received audio, following the voice connection's state.

    Args:
        connection: discord.py's ``VoiceConnectionState`` (``voice_client._connection``); it
            holds ``dave_session`` and ``dave_protocol_version``, which change as people join
            and leave, so they are read on every packet.
    """

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self.decrypted = 0
        self.passed = 0
        self.failed = 0

    def __call__(self, user_id: int, payload: bytes) -> bytes | None:
        """The opus frame inside ``payload``, or None when it cannot be decrypted (yet)."""
        session = getattr(self._connection, "dave_session", None)
        version = getattr(self._connection, "dave_protocol_version", 0)
        if session is None or version == 0 or payload == OPUS_SILENCE:
            self.passed += 1
            return payload
        try:
            import davey
        except ImportError as e:  # pragma: no cover - comes with discord.py[voice]
            raise MissingDependency(f"DAVE needs davey: {install_hint('discord')}") from e
        if not session.ready:
            # During a transition (someone joined) unencrypted frames may still be allowed.
            if session.can_passthrough(user_id):
                self.passed += 1
                return payload
            self.failed += 1
            return None
        try:
            frame = session.decrypt(user_id, davey.MediaType.audio, payload)
        except Exception as e:
            self.failed += 1
            if self.failed in (1, 10, 100) or self.failed % 1000 == 0:
                logger.warning("DAVE decrypt failed for user %s (%d so far): %s",
                               user_id, self.failed, e)
            return None
        self.decrypted += 1
        return frame


class VoiceReceiver:
    """Turns each speaker's opus payloads into PCM frames. Thread-safe; one opus decoder per
    speaker (opus decoders are stateful).

    Args:
        on_pcm: called with (user id, 3840 bytes of 48 kHz stereo s16) per frame.
        on_stop: called with the user id when their client ends its transmission: at the
            first silence frame of a run, after that frame's PCM, since the client sends them
            only when it stops (the other four are silence too, then no packet follows until
            they talk again). Waiting for the fifth cost 80 ms before the early transcription
            could start; a speaker who goes on talking just sends voice again.
        dave: the DAVE step; None passes payloads through (no E2EE, or tests).
        ignore_ids: user ids never decoded (the bot itself).
    """

    def __init__(self, *, on_pcm: OnPcm, on_stop: OnStop | None = None,
                 dave: Callable[[int, bytes], bytes | None] | None = None,
                 ignore_ids: set[int] | None = None) -> None:
        try:
            from discord import opus
        except ImportError as e:  # pragma: no cover
            raise MissingDependency(
                f"discord.py is not installed: {install_hint('discord')}") from e
        if not opus.is_loaded() and not opus._load_default():
            raise MissingDependency("libopus is missing: apt-get install libopus0")
        self._opus = opus
        self._on_pcm = on_pcm
        self._on_stop = on_stop
        self._silent_run: dict[int, int] = {}  # silence frames in a row, per user
        self.dave = dave
        self.ignore_ids = set(ignore_ids or ())
        self._decoders: dict[int, Any] = {}
        self._lock = threading.Lock()
        self.frames = 0
        self.errors = 0

    def receive(self, user_id: int, payload: bytes | None) -> bytes | None:
        """One RTP payload from ``user_id``; returns the PCM it decoded to (also passed to
        ``on_pcm``). A lost packet (None) is concealed by the decoder."""
        if user_id in self.ignore_ids:
            return None
        silent = payload == OPUS_SILENCE
        if payload is not None and self.dave is not None:
            payload = self.dave(user_id, payload)
            if payload is None:
                return None
        with self._lock:
            decoder = self._decoders.get(user_id)
            if decoder is None:
                decoder = self._decoders[user_id] = self._opus.Decoder()
        try:
            pcm = decoder.decode(payload, fec=False)
        except Exception as e:  # a corrupt frame: drop it, keep the stream
            self.errors += 1
            logger.debug("opus decode failed for %s: %s", user_id, e)
            return None
        self.frames += 1
        self._on_pcm(user_id, pcm)
        run = self._silent_run.get(user_id, 0) + 1 if silent else 0
        self._silent_run[user_id] = run
        if run == 1 and self._on_stop is not None:
            self._on_stop(user_id)
        return pcm

    def forget(self, user_id: int) -> None:
        with self._lock:
            self._decoders.pop(user_id, None)
            self._silent_run.pop(user_id, None)


def make_sink(receiver: VoiceReceiver):
    """A discord-ext-voice-recv sink that hands opus payloads to ``receiver``."""
    try:
        from discord.ext import voice_recv
    except ImportError as e:
        raise MissingDependency(
            f"discord-ext-voice-recv is not installed: {install_hint('discord')}") from e

    class _OpusSink(voice_recv.AudioSink):
        def wants_opus(self) -> bool:
            return True

        def write(self, user, data) -> None:
            if user is None:  # ssrc not mapped to a member yet
                return
            try:
                receiver.receive(user.id, data.opus)
            except Exception:  # the reader thread must survive anything
                logger.exception("voice receive failed")

        def cleanup(self) -> None:
            return None

    return _OpusSink()
