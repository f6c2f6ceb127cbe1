"""The OBS stage: scenes and subtitles in the streamer's OBS, following each persona's live
stream.

The avatar itself needs nothing from this stage: OBS reads each persona's live stream
continuously (:class:`~overlays.obs.live.ObsLiveOutput`, MPEG-TS over UDP into one media
source set up by :func:`~overlays.obs.setup.setup_obs`), idle motion and speech alike, so
there is no file to swap and no gap between sentences. What this stage does is put the words
and the scenes with it: the output tells it (:meth:`ObsStage.on_air`) the moment the stream
starts carrying a sentence, so the subtitle shows the sentence actually on screen, and the
program switches to the persona's talking scene; when the reply is over (finished and its
last sentence played, or cancelled) the subtitles clear and the idle scene returns.
``ShowDegraded`` shows the 'be right back' scene.

While OBS is away everything returns at once and nothing is raised into the show; on every
connect (the first and each one after OBS restarted) setup runs again and the program shows
the current state, not whatever scene OBS happened to load. The stream needs no reconnect: it
is UDP, and OBS's media source reads it again as soon as OBS is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vstage_core.tasks import cancel_and_wait

from ..stage import Performed, ReplyCancelled, ReplyFinished, ShowDegraded, StageEvent
from .driver import ObsDriver, ObsRequestError, ObsUnavailable
from .keying import KeyColour
from .live import OnAir
from .settings import ObsSettings
from .setup import SetupReport, scenes_for, setup_obs
from .subtitles import wrap_subtitle

logger = logging.getLogger(__name__)

_REMEMBERED = 64  # finished / cancelled reply ids kept per persona


@dataclass(slots=True)
class _Persona:
    id: str
    subtitles: str
    airing: str | None = None  # the reply whose sentence is (or was last) on the stream
    streaming_idle: bool = True  # the stream carries the idle avatar right now
    on_stage: bool = False  # the talking scene and a subtitle are up for this persona
    text: str = ""  # the subtitle shown
    idle_at: float | None = None  # between sentences: back to idle at this time if nothing
    finished: OrderedDict[str, None] = field(default_factory=OrderedDict)
    cancelled: OrderedDict[str, None] = field(default_factory=OrderedDict)


class ObsStage:
    """A :class:`~overlays.stage.Stage` on the streamer's OBS; ``async with ObsStage(...)``.

    Args:
        settings: connection, names and placement.
        personas: the persona ids on the show, in config order (the n-th reads the stream at
            ``settings.live_url(n)``).
        keys: each persona's key colour (``keying.choose_key`` of its avatar art; the same
            one its ``ObsLiveOutput`` composites over).
        driver: an existing driver to use (its lifecycle stays the caller's); by default the
            stage makes and owns one.
        idle_after_s: a reply that has not finished but puts no new sentence on the stream for
            this long goes back to the idle scene (a stalled renderer).
    """

    name = "obs"
    wants: frozenset[type[StageEvent]] = frozenset(
        {Performed, ReplyFinished, ReplyCancelled, ShowDegraded})

    def __init__(
        self, *, settings: ObsSettings, personas: Sequence[str],
        keys: Mapping[str, KeyColour] | None = None, driver: ObsDriver | None = None,
        idle_after_s: float = 5.0,
    ) -> None:
        self.settings = settings
        self.keys = dict(keys or {})
        self.driver = driver or ObsDriver(settings=settings)
        self._owns_driver = driver is None
        self._order = list(personas)
        self._personas = {p: _Persona(id=p, subtitles=settings.sources.name("subtitles", p))
                          for p in personas}
        self._idle_after_s = idle_after_s
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._scene: str | None = None
        self._brb = False
        self._warned = False
        self.last_setup: SetupReport | None = None
        self.driver.add_connect_hook(self._on_connect)
        self.driver.add_disconnect_hook(self._on_disconnect)
        self.driver.on_event("CurrentProgramSceneChanged", self._on_scene)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> ObsStage:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._show(), name="obs:show")
        if self._owns_driver:
            await self.driver.start()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait([task])
        if self._owns_driver:
            await self.driver.stop()

    # ------------------------------------------------------------------ inputs

    async def handle(self, event: StageEvent) -> None:
        """Take one stage event (queued; OBS is driven from the stage's own task)."""
        self._inbox.put_nowait(event)

    def on_air(self, on_air: OnAir) -> None:
        """What a persona's live stream to OBS carries from now on (``ObsLiveOutput``'s
        ``on_air`` hook; called on the loop)."""
        self._inbox.put_nowait(on_air)

    @property
    def scene(self) -> str | None:
        """The program scene as this stage last set or saw it."""
        return self._scene

    # ------------------------------------------------------------------ the show task

    async def _show(self) -> None:
        while True:
            try:
                item = await self._next()
                if item is not None:
                    await self._apply(item)
                await self._expire()
            except asyncio.CancelledError:
                raise
            except ObsUnavailable:
                self._warn_away()
            except ObsRequestError as e:
                logger.warning("OBS stage: %s", e)
            except Exception:
                logger.exception("OBS stage failed on an update; carrying on")

    async def _next(self) -> Any:
        """The next input, or None when a persona's wait between sentences ran out."""
        deadlines = [st.idle_at for st in self._personas.values() if st.idle_at is not None]
        wait = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        try:
            async with asyncio.timeout(wait):
                return await self._inbox.get()
        except TimeoutError:
            return None

    async def _apply(self, item: Any) -> None:
        if isinstance(item, OnAir):
            st = self._personas.get(item.persona)
            if st is not None:
                await self._stream_changed(st, item)
        elif isinstance(item, ReplyFinished):
            st = self._personas.get(item.persona)
            if st is not None:
                _remember(st.finished, item.reply_id)
                if st.airing == item.reply_id and st.streaming_idle:
                    await self._go_idle(st)
        elif isinstance(item, ReplyCancelled):
            st = self._personas.get(item.persona)
            if st is not None:
                _remember(st.cancelled, item.reply_id)
                if st.airing == item.reply_id:
                    await self._go_idle(st)  # the stream stops it at its next frame
        elif isinstance(item, ShowDegraded):
            self._brb = item.on
            await self._show_state()
        # Performed: the sentence reaches the stream (and so this stage) through on_air.

    async def _stream_changed(self, st: _Persona, on_air: OnAir) -> None:
        if on_air.reply_id is None:
            st.streaming_idle = True
            if st.airing is None or not st.on_stage:
                return
            if st.airing in st.finished or st.airing in st.cancelled:
                await self._go_idle(st)
            else:  # between two sentences: keep the last words up a little
                st.idle_at = time.monotonic() + self._idle_after_s
            return
        if on_air.reply_id in st.cancelled:
            return  # the stream's last frame of a skipped reply
        st.streaming_idle = False
        st.airing = on_air.reply_id
        st.idle_at = None
        st.on_stage = True
        st.text = on_air.text or ""
        self._brb = False  # speech is on the stream again: the show is back
        if self._available():
            await self._set_text(st, st.text)
            await self._switch(scenes_for(self.settings, st.id)["talking"])

    async def _expire(self) -> None:
        now = time.monotonic()
        for st in self._personas.values():
            if st.idle_at is not None and st.idle_at <= now:
                await self._go_idle(st)

    async def _go_idle(self, st: _Persona) -> None:
        st.on_stage = False
        st.idle_at = None
        st.text = ""
        if self._available():
            await self._set_text(st, "")
            await self._show_state()

    async def _show_state(self) -> None:
        """The program scene the current state calls for (brb, a speaker's, or idle)."""
        if not self._available():
            return
        speaking = [st for st in self._personas.values() if st.on_stage]
        first = self._order[0] if self._order else ""
        if self._brb:
            scene = scenes_for(self.settings, first)["brb"]
        elif speaking:
            scene = scenes_for(self.settings, speaking[-1].id)["talking"]
        else:
            scene = scenes_for(self.settings, first)["idle"]
        await self._switch(scene)

    async def _set_text(self, st: _Persona, text: str) -> None:
        await self.driver.call(
            "SetInputSettings",
            {"inputName": st.subtitles, "inputSettings": {"text": self._wrap(text)}},
        )

    async def _switch(self, scene: str) -> None:
        if self.settings.switch_scenes and scene != self._scene:
            await self.driver.call("SetCurrentProgramScene", {"sceneName": scene})
            self._scene = scene

    def _wrap(self, text: str) -> str:
        canvas = self.last_setup.canvas if self.last_setup is not None else (1920, 1080)
        return wrap_subtitle(text, max_width=canvas[0] * self.settings.subtitle_width,
                             font_size=self.settings.subtitle_size)

    # ------------------------------------------------------------------ driver callbacks

    async def _on_connect(self) -> None:
        self._scene = None
        self.last_setup = await setup_obs(self.driver, self.settings, self._order, self.keys)
        current = await self.driver.call("GetCurrentProgramScene")
        self._scene = current.get("currentProgramSceneName") or current.get("sceneName")
        # Whatever OBS loaded (its empty default scene after a crash), show the state the show
        # is in now: each persona's subtitle, and the brb, speaker's or idle scene. (Calls OBS
        # directly: this runs before the driver reports ready.)
        for st in self._personas.values():
            await self._set_text(st, st.text if st.on_stage else "")
        speaking = [st for st in self._personas.values() if st.on_stage]
        first = self._order[0] if self._order else ""
        scenes = scenes_for(self.settings, speaking[-1].id if speaking else first)
        await self._switch(scenes["brb"] if self._brb
                           else scenes["talking"] if speaking else scenes["idle"])
        if self._warned:
            logger.info("OBS is back; the OBS stage shows the show again")
        self._warned = False

    def _on_disconnect(self) -> None:
        self._scene = None

    def _on_scene(self, data: dict) -> None:
        self._scene = data.get("sceneName")

    def _available(self) -> bool:
        if self.driver.ready:
            return True
        self._warn_away()
        return False

    def _warn_away(self) -> None:
        if not self._warned:
            self._warned = True
            logger.warning("OBS is not connected: the OBS stage waits for it (the live "
                           "stream and the browser overlays go on)")


def _remember(ids: OrderedDict[str, None], reply_id: str) -> None:
    ids[reply_id] = None
    while len(ids) > _REMEMBERED:
        ids.popitem(last=False)
