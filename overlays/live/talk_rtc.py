"""WebRTC for private conversations (``/talk``): one peer connection per session, both ways.

The page offers its microphone (send and receive audio) and a receive-only video. The answer
sends the session's own live stream, encoded the way the public stream is (VP8, colour and
alpha side by side, Opus; :class:`~overlays.live.encoder.SharedVideoEncoder` with a single
viewer), and reads the microphone: each decoded ``av.AudioFrame`` becomes mono ``int16`` at
48 kHz and goes to the session's ``hear``. When the mic track ends the session is told
(``mic_ended``).

A session outlives its connections: a page that reloads or loses its network offers again
with the same session id and key, and the new connection replaces the old one. When the
session ends (idle, closed, shut down) its connection and encoder go with it; the session's
``ended`` message is what says so, so this module needs nothing of the session but the small
:class:`TalkPeer` protocol.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from overlays.live.encoder import LiveViewer, SharedVideoEncoder
from overlays.live.settings import LiveSettings
from overlays.live.stream import LiveStream
from overlays.live.webrtc import _aiortc, answer_offer
from vstage_core.errors import MissingDependency
from vstage_core.tasks import cancel_and_wait

__all__ = ["MIC_RATE", "TalkPeer", "TalkRTC", "mono_int16"]

logger = logging.getLogger(__name__)

MIC_RATE = 48000
"""The rate of the samples handed to :meth:`TalkPeer.hear` (WebRTC's Opus rate)."""


class TalkPeer(Protocol):
    """What the WebRTC side needs of a conversation (``bots.talk.session.TalkSession``)."""

    @property
    def id(self) -> str: ...

    @property
    def stream(self) -> LiveStream: ...

    def hear(self, pcm48: np.ndarray) -> None:
        """Mono ``int16`` 48 kHz microphone samples, as they arrive (on the loop)."""

    def mic_ended(self) -> None:
        """The microphone track ended (page closed, connection lost)."""

    def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        """The session's messages to the page; one of type ``ended`` when it ends."""
        ...


def mono_int16(frame: Any, resampler: Any | None = None) -> np.ndarray:
    """One decoded ``av.AudioFrame`` as mono ``int16`` samples at 48 kHz.

    Channels are averaged (identical channels come back unchanged); float, 32-bit and
    8-bit samples are scaled to 16 bits. A frame at another rate needs ``resampler``, an
    ``av.AudioResampler`` to 48 kHz kept across frames (one per track, so no seam is heard
    between frames).

    Raises:
        ValueError: a sample format this does not know, or another rate without a resampler.
    """
    if frame.sample_rate != MIC_RATE:
        if resampler is None:
            raise ValueError(f"microphone audio at {frame.sample_rate} Hz needs a resampler "
                             f"to {MIC_RATE} Hz")
        parts = [mono_int16(f) for f in resampler.resample(frame)]
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)
    fmt = frame.format
    channels = max(1, len(frame.layout.channels))
    data = frame.to_ndarray()
    # Planar: [channels, samples]; packed: [1, samples * channels], interleaved.
    samples = data if fmt.is_planar else data.reshape(-1, channels).T
    name = fmt.name.rstrip("p")
    if name == "s16":
        wide = samples.astype(np.int32)
    elif name == "s32":
        wide = samples.astype(np.int64) >> 16
    elif name == "u8":
        wide = (samples.astype(np.int32) - 128) << 8
    elif name in ("flt", "dbl"):
        wide = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int32)
    else:
        raise ValueError(f"microphone audio in sample format {fmt.name!r} is not supported")
    mono = wide.sum(axis=0) // channels if channels > 1 else wide[0]
    out: np.ndarray = np.clip(mono, -32768, 32767).astype(np.int16)
    return out


@dataclass(slots=True, eq=False)
class _Peer:
    """One session's current connection."""

    session: TalkPeer
    pc: Any  # aiortc.RTCPeerConnection
    name: str
    viewer: LiveViewer | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


class TalkRTC:
    """Answers the talk pages' offers; one per app, ``async with``.

    Args:
        settings: encoder settings (the live stream's: bitrate, keyframes, viewer queue) and
            the ICE gathering limit.
    """

    def __init__(self, *, settings: LiveSettings | None = None) -> None:
        self.settings = settings or LiveSettings()
        self._peers: dict[str, _Peer] = {}
        self._encoders: dict[str, SharedVideoEncoder] = {}
        self._watchers: dict[str, asyncio.Task[Any]] = {}
        self._closing: set[asyncio.Task[Any]] = set()
        self._serial = 0
        self._started = False
        self.mic_frames = 0  # microphone frames handed to sessions, all together
        self.mic_errors = 0  # frames that could not be converted (logged once per track)

    async def __aenter__(self) -> TalkRTC:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Check that aiortc is installed (idempotent)."""
        if self._started:
            return
        _aiortc()
        self._started = True

    async def stop(self) -> None:
        """Close every connection and encoder (idempotent)."""
        if not self._started:
            return
        self._started = False
        watchers = list(self._watchers.values())
        self._watchers.clear()
        await cancel_and_wait(watchers)
        for sid in list(set(self._peers) | set(self._encoders)):
            await self._drop(sid, "shutting down")
        await cancel_and_wait(list(self._closing))

    @property
    def connections(self) -> int:
        """Open peer connections (one per session at most)."""
        return len(self._peers)

    def connected(self, sid: str) -> bool:
        """Whether session ``sid`` has a connection now."""
        return sid in self._peers

    def encoder(self, sid: str) -> SharedVideoEncoder | None:
        """Session ``sid``'s encoder (tests, metrics)."""
        return self._encoders.get(sid)

    async def answer(self, session: TalkPeer, offer_sdp: str,
                     offer_type: str) -> tuple[str, str]:
        """Answer a talk page's offer: send ``session``'s stream, hear its microphone.

        A session's earlier connection is closed first: the newest offer wins (a reload).

        Returns:
            ``(sdp, type)`` of the answer, with every ICE candidate in it.

        Raises:
            ValueError: the offer cannot be answered (not an offer, bad SDP, no VP8).
            RuntimeError: not started.
        """
        if not self._started:
            raise RuntimeError("TalkRTC is not started")
        if offer_type != "offer":
            raise ValueError(f"expected an offer, got {offer_type!r}")
        aiortc = _aiortc()
        sid = session.id
        old = self._peers.pop(sid, None)
        if old is not None:
            await self._close_peer(old, "replaced by a new offer")
        encoder = self._encoders.get(sid)
        if encoder is None:
            encoder = SharedVideoEncoder(stream=session.stream, settings=self.settings)
            await encoder.start()
            self._encoders[sid] = encoder
        self._watch(session)
        self._serial += 1
        peer = _Peer(session, aiortc.RTCPeerConnection(), f"talk:{sid}:{self._serial}")
        pc = peer.pc
        self._peers[sid] = peer

        def _track(track: Any) -> None:
            if track.kind == "audio":
                task = asyncio.create_task(self._read_mic(peer, track), name=f"{peer.name}:mic")
                peer.tasks.add(task)
                task.add_done_callback(peer.tasks.discard)

        async def _state() -> None:
            state = pc.connectionState
            logger.info("talk %s: connection %s", sid, state)
            if state in ("failed", "closed"):
                self._close_later(peer, state)

        pc.on("track", _track)
        pc.on("connectionstatechange", _state)

        try:
            async with asyncio.timeout(self.settings.answer_timeout_s):
                peer.viewer = await answer_offer(pc, offer_sdp, offer_type,
                                                 lambda: encoder.add_viewer(peer.name))
        except MissingDependency:
            await self._close_current(peer, "failed to answer")
            raise
        except (TimeoutError, asyncio.CancelledError):
            await self._close_current(peer, "no answer in time")
            raise
        except Exception as e:
            await self._close_current(peer, f"failed to answer: {e}")
            raise ValueError(f"cannot answer the offer: {e}") from e
        logger.info("talk %s: connection %s answered", sid, peer.name)
        local = pc.localDescription
        return local.sdp, local.type

    async def end(self, sid: str) -> None:
        """Close session ``sid``'s connection and encoder (the session has ended)."""
        watcher = self._watchers.pop(sid, None)
        if watcher is not None and watcher is not asyncio.current_task():
            await cancel_and_wait([watcher])
        await self._drop(sid, "session ended")

    # ------------------------------------------------------------------ internals

    async def _read_mic(self, peer: _Peer, track: Any) -> None:
        """Hand each microphone frame to the session until the track ends."""
        from aiortc.mediastreams import MediaStreamError

        session = peer.session
        resampler: Any = None
        warned = False
        try:
            while True:
                frame = await track.recv()
                if frame.sample_rate != MIC_RATE and resampler is None:
                    import av

                    resampler = av.AudioResampler(format=frame.format.name,
                                                  layout=frame.layout.name, rate=MIC_RATE)
                try:
                    pcm = mono_int16(frame, resampler)
                except ValueError as e:
                    self.mic_errors += 1
                    if not warned:
                        logger.warning("talk %s: microphone frame dropped: %s", session.id, e)
                        warned = True
                    continue
                if len(pcm):
                    self.mic_frames += 1
                    try:
                        session.hear(pcm)
                    except Exception:
                        # Hearing's fault must not stop the microphone: log it, go on.
                        logger.exception("talk %s: hearing a microphone frame failed",
                                         session.id)
        except MediaStreamError:
            pass
        finally:
            # A replaced connection's microphone is not the session's microphone any more.
            if self._peers.get(session.id) in (None, peer):
                try:
                    session.mic_ended()
                except Exception:
                    logger.exception("talk %s: mic_ended failed", session.id)

    def _watch(self, session: TalkPeer) -> None:
        """Follow the session's messages to learn when it ends (once per session)."""
        sid = session.id
        if sid in self._watchers:
            return
        self._watchers[sid] = asyncio.create_task(self._until_ended(session),
                                                  name=f"talk:{sid}:rtc-watch")

    async def _until_ended(self, session: TalkPeer) -> None:
        sid = session.id
        try:
            async for message in session.subscribe():
                if message.get("type") == "ended":
                    break
        except Exception:
            logger.exception("talk %s: following the session failed", sid)
        if self._watchers.get(sid) is asyncio.current_task():
            del self._watchers[sid]
            await self._drop(sid, "session ended")

    async def _drop(self, sid: str, why: str) -> None:
        peer = self._peers.pop(sid, None)
        if peer is not None:
            await self._close_peer(peer, why)
        encoder = self._encoders.pop(sid, None)
        if encoder is not None:
            await encoder.stop()

    def _close_later(self, peer: _Peer, why: str) -> None:
        if self._peers.get(peer.session.id) is not peer:
            return
        task = asyncio.create_task(self._close_current(peer, why), name=f"{peer.name}:close")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_current(self, peer: _Peer, why: str) -> None:
        """Close ``peer`` if it is still its session's connection."""
        if self._peers.get(peer.session.id) is peer:
            del self._peers[peer.session.id]
            await self._close_peer(peer, why)

    async def _close_peer(self, peer: _Peer, why: str) -> None:
        if peer.viewer is not None:
            peer.viewer.close()  # the encoder rests until a new connection
        try:
            await peer.pc.close()
        except Exception:
            logger.exception("talk: closing connection %s failed", peer.name)
        await cancel_and_wait(list(peer.tasks))
        logger.info("talk: connection %s gone (%s); %d open", peer.name, why, self.connections)
