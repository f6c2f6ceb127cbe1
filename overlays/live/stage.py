"""The live stream as a stage on the bus: performed sentences go into the persona's
:class:`~overlays.live.stream.LiveStream`, cancelled replies come out of it."""

from __future__ import annotations

import logging

from overlays.live.stream import LiveStream
from overlays.stage import Performed, ReplyCancelled, StageEvent

logger = logging.getLogger(__name__)


class LiveStage:
    """A :class:`~overlays.stage.Stage` feeding each persona's live stream.

    Args:
        streams: the live stream of each persona, by persona id. Events of a persona without
            a stream are ignored (logged once).
    """

    name = "live"
    wants: frozenset[type[StageEvent]] = frozenset({Performed, ReplyCancelled})

    def __init__(self, streams: dict[str, LiveStream]) -> None:
        self.streams = streams
        self._unknown: set[str] = set()

    async def handle(self, event: StageEvent) -> None:
        if isinstance(event, Performed):
            stream = self.streams.get(event.persona)
            if stream is None:
                self._missing(event.persona)
                return
            stream.push(event.performance)
        elif isinstance(event, ReplyCancelled):
            stream = self.streams.get(event.persona)
            if stream is not None:
                stream.cancel(event.reply_id)

    def _missing(self, persona: str) -> None:
        if persona not in self._unknown:
            self._unknown.add(persona)
            logger.warning("live stage: persona %s has no live stream", persona)
