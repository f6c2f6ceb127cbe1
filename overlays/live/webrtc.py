"""WebRTC for the pages: answers a browser's offer with the persona's live stream (aiortc).

Each connection gets one video track (the persona's shared VP8 packets, colour and alpha side
by side) and one audio track (20 ms Opus frames cut from the same ticks). Both are timed from
the tick index and sent the moment the encoder hands a tick out, so the browser's lip sync
keeps them together. Signalling is not trickled: the answer is returned once ICE gathering is
complete, so one HTTP request and response (``POST /api/live/offer``) sets a connection up. A
connection that fails or closes is forgotten; the stream and the other viewers go on, and a
new offer from the same page (a reconnect, a renegotiation) simply makes a new connection.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from overlays.live.encoder import LiveViewer, SharedVideoEncoder
from overlays.live.settings import LiveSettings
from overlays.live.stream import LiveStream
from vstage_core.errors import MissingDependency, require
from vstage_core.tasks import cancel_and_wait

logger = logging.getLogger(__name__)


def _aiortc() -> Any:
    return require("aiortc", hint="pip install 'aiortc>=1.9'")


def _tracks(viewer: LiveViewer) -> tuple[Any, Any]:
    """aiortc tracks reading ``viewer``: ``(video, audio)``."""
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

    class LiveVideoTrack(MediaStreamTrack):
        kind = "video"

        async def recv(self) -> Any:
            try:
                return await viewer.next_packet()
            except ConnectionError as e:
                raise MediaStreamError from e

        def stop(self) -> None:
            super().stop()
            viewer.close()

    class LiveAudioTrack(MediaStreamTrack):
        kind = "audio"

        async def recv(self) -> Any:
            try:
                return await viewer.next_audio()
            except ConnectionError as e:
                raise MediaStreamError from e

        def stop(self) -> None:
            super().stop()
            viewer.close()

    return LiveVideoTrack(), LiveAudioTrack()


async def answer_offer(pc: Any, offer_sdp: str, offer_type: str,
                       add_viewer: Callable[[], LiveViewer]) -> LiveViewer:
    """Answer a browser's offer on ``pc`` with a live stream's video and audio: take the
    offer, add a viewer's tracks (VP8 only for video: the packets are VP8, the browser must not
    pick another codec), and set the answer (aiortc gathers every candidate there).

    Returns:
        The viewer whose tracks were added (the caller closes it with the connection).
    """
    aiortc = _aiortc()
    await pc.setRemoteDescription(aiortc.RTCSessionDescription(sdp=offer_sdp, type=offer_type))
    viewer = add_viewer()
    for track in _tracks(viewer):
        pc.addTrack(track)
    vp8 = [c for c in aiortc.RTCRtpSender.getCapabilities("video").codecs
           if c.mimeType in ("video/VP8", "video/rtx")]
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences(vp8)
    await pc.setLocalDescription(await pc.createAnswer())
    return viewer


@dataclass(slots=True, eq=False)
class _Connection:
    id: str
    persona: str
    pc: Any  # aiortc.RTCPeerConnection
    viewer: LiveViewer | None = None


class LiveRTC:
    """Answers WebRTC offers for the personas' live streams; one per app, ``async with``.

    Args:
        streams: each persona's live stream, by persona id.
        settings: encoder and viewer settings.
    """

    def __init__(self, streams: dict[str, LiveStream], *,
                 settings: LiveSettings | None = None) -> None:
        self.streams = streams
        self.settings = settings or LiveSettings()
        self.encoders: dict[str, SharedVideoEncoder] = {}
        self._connections: dict[str, _Connection] = {}
        self._closing: set[asyncio.Task] = set()
        self._ids = itertools.count(1)
        self._started = False

    async def __aenter__(self) -> LiveRTC:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._started:
            return
        _aiortc()
        for persona, stream in self.streams.items():
            encoder = SharedVideoEncoder(stream=stream, settings=self.settings)
            await encoder.start()
            self.encoders[persona] = encoder
        self._started = True

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        await asyncio.gather(*(self._close(c, "shutting down")
                               for c in list(self._connections.values())))
        await cancel_and_wait(list(self._closing))
        for encoder in self.encoders.values():
            await encoder.stop()
        self.encoders.clear()

    @property
    def connections(self) -> int:
        """Open connections, all personas together."""
        return len(self._connections)

    async def answer(self, persona: str, offer_sdp: str, offer_type: str) -> tuple[str, str]:
        """Answer a browser's offer (receive-only video and audio) for ``persona``'s stream.

        Returns:
            ``(sdp, type)`` of the answer, with every ICE candidate in it.

        Raises:
            KeyError: no live stream for ``persona``.
            ValueError: the offer cannot be answered (not an offer, no VP8, bad SDP).
        """
        if not self._started:
            raise RuntimeError("LiveRTC is not started")
        encoder = self.encoders[persona]
        aiortc = _aiortc()
        if offer_type != "offer":
            raise ValueError(f"expected an offer, got {offer_type!r}")
        conn = _Connection(f"{persona}-{next(self._ids)}", persona, aiortc.RTCPeerConnection())
        pc = conn.pc
        self._connections[conn.id] = conn

        @pc.on("connectionstatechange")
        async def _state() -> None:
            state = pc.connectionState
            logger.info("live %s: connection %s %s", persona, conn.id, state)
            if state in ("failed", "closed"):
                self._close_later(conn, state)

        try:
            async with asyncio.timeout(self.settings.answer_timeout_s):
                conn.viewer = await answer_offer(pc, offer_sdp, offer_type,
                                                 lambda: encoder.add_viewer(conn.id))
        except MissingDependency:
            await self._close(conn, "failed to answer")
            raise
        except (TimeoutError, asyncio.CancelledError):
            await self._close(conn, "no answer in time")
            raise
        except Exception as e:
            await self._close(conn, f"failed to answer: {e}")
            raise ValueError(f"cannot answer the offer: {e}") from e
        logger.info("live %s: connection %s answered (%d open)", persona, conn.id,
                    self.connections)
        local = pc.localDescription
        return local.sdp, local.type

    def _close_later(self, conn: _Connection, why: str) -> None:
        if conn.id not in self._connections:
            return
        task = asyncio.create_task(self._close(conn, why), name=f"live:{conn.id}:close")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, conn: _Connection, why: str) -> None:
        if self._connections.pop(conn.id, None) is None:
            return
        if conn.viewer is not None:
            conn.viewer.close()
        try:
            await conn.pc.close()
        except Exception:
            logger.exception("live %s: closing connection %s failed", conn.persona, conn.id)
        logger.info("live %s: connection %s gone (%s); %d open", conn.persona, conn.id, why,
                    self.connections)
