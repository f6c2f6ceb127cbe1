"""The OBS stage: plays each persona's sentence clips in its media source, in order, with the
spoken sentence in its subtitle source, and switches scenes by persona state.

Gapless playback swaps the file of one ``ffmpeg_source`` the moment OBS reports the previous
clip ended (``MediaInputPlaybackEnded``); the source keeps its last frame meanwhile, so the
picture never blanks. Measured on OBS 29 (bench/stage.py): tens of milliseconds between one
clip's end and the next one's start. While OBS is away every Stage call returns at once and
nothing is raised into the orchestrator; the browser overlays keep playing the replies. On
every connect, the first and each one after OBS restarted, the program shows the idle scene
with the idle loop playing, not whatever scene OBS happened to load.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avatar_engine.types import Clip
from vstage_core.tasks import cancel_and_wait

from .driver import ObsDriver, ObsRequestError, ObsUnavailable
from .settings import ObsSettings
from .setup import SetupReport, scenes_for, setup_obs
from .subtitles import wrap_subtitle

logger = logging.getLogger(__name__)

_START_TIMEOUT_S = 2.0  # OBS opens a local MP4 in well under this
_END_SLACK_S = 1.5  # beyond the clip's duration before we stop waiting for its end event
_IDLE_AFTER_S = 5.0  # an unfinished reply with no next clip for this long: back to idle


@dataclass(slots=True)
class PlayedClip:
    """One clip as OBS plays it (monotonic times of its media events; None if missed or not
    yet seen): handed to ``on_clip`` when requested, ``started``/``ended`` filled in later."""

    persona: str
    reply_id: str
    index: int
    requested: float
    started: float | None = None
    ended: float | None = None


@dataclass(slots=True)
class _Persona:
    id: str
    avatar: str
    subtitles: str
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    finished: set[str] = field(default_factory=set)
    cancelled: set[str] = field(default_factory=set)
    current: Clip | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    started_at: float | None = None
    ended_at: float | None = None
    on_stage: bool = False
    idle_file: Path | None = None
    task: asyncio.Task | None = None


class ObsStage:
    """A :class:`~overlays.stage.Stage` on the streamer's OBS; ``async with ObsStage(...)``.

    Args:
        settings: connection, names and placement.
        personas: the persona ids on the show (their scenes and sources are set up).
        driver: an existing driver to use (its lifecycle stays the caller's); by default the
            stage makes and owns one.
        on_clip: called with each clip's :class:`PlayedClip` as it is put on (tests and
            benchmarks measure gaps with it); the stage keeps no history of its own.
    """

    def __init__(
        self, *, settings: ObsSettings, personas: Sequence[str], driver: ObsDriver | None = None,
        on_clip: Callable[[PlayedClip], None] | None = None,
    ) -> None:
        self.settings = settings
        self.driver = driver or ObsDriver(settings=settings)
        self._owns_driver = driver is None
        self._personas = {
            p: _Persona(id=p, avatar=settings.sources.name("avatar", p),
                        subtitles=settings.sources.name("subtitles", p))
            for p in personas
        }
        self._by_input = {st.avatar: st for st in self._personas.values()}
        self._scene: str | None = None
        self._brb = False
        self._warned = False
        self._on_clip = on_clip
        self.last_setup: SetupReport | None = None
        self.driver.add_connect_hook(self._on_connect)
        self.driver.add_disconnect_hook(self._on_disconnect)
        self.driver.on_event("MediaInputPlaybackStarted", self._on_started)
        self.driver.on_event("MediaInputPlaybackEnded", self._on_ended)
        self.driver.on_event("CurrentProgramSceneChanged", self._on_scene)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> ObsStage:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        for st in self._personas.values():
            if st.task is None:
                st.task = asyncio.create_task(self._player(st), name=f"obs:{st.id}:player")
        if self._owns_driver:
            await self.driver.start()

    async def stop(self) -> None:
        tasks = [st.task for st in self._personas.values() if st.task is not None]
        for st in self._personas.values():
            st.task = None
        await cancel_and_wait(tasks)
        if self._owns_driver:
            await self.driver.stop()

    # ------------------------------------------------------------------ Stage interface

    async def show_chat(self, *, persona: str, user: str, text: str) -> None:
        # The question itself is shown by the chat overlay; OBS shows only the answer.
        return None

    async def play_clip(self, *, persona: str, clip: Clip) -> None:
        st = self._personas.get(persona)
        if st is None or clip.path("mp4") is None or not self._available():
            return
        if clip.reply_id not in st.cancelled:
            st.queue.put_nowait(clip)

    async def reply_finished(self, *, persona: str, reply_id: str, text: str) -> None:
        st = self._personas.get(persona)
        if st is not None:
            st.finished.add(reply_id)
            if st.current is None and st.queue.empty():
                st.queue.put_nowait(_WAKE)

    async def reply_cancelled(self, *, persona: str, reply_id: str) -> None:
        st = self._personas.get(persona)
        if st is None:
            return
        st.cancelled.add(reply_id)
        _drop(st.queue, lambda c: c.reply_id == reply_id)
        if st.current is not None and st.current.reply_id == reply_id and self.driver.ready:
            with contextlib.suppress(ObsUnavailable, ObsRequestError):
                await self.driver.call(
                    "TriggerMediaInputAction",
                    {"inputName": st.avatar,
                     "mediaAction": "OBS_WEBSOCKET_MEDIA_INPUT_ACTION_STOP"},
                )
            st.ended.set()

    # ------------------------------------------------------------------ extras for the app

    def set_idle(self, persona: str, path: Path) -> None:
        """An idle loop (MP4) the avatar source plays, looping, when the persona is silent."""
        st = self._personas.get(persona)
        if st is None:
            return
        st.idle_file = Path(path)
        if self.driver.ready and not st.on_stage and st.task is not None:
            st.queue.put_nowait(_IDLE)  # connected and silent: start the loop now

    async def be_right_back(self, on: bool = True) -> None:
        """Show the 'be right back' scene (renderer stalled, LLM down); ``False`` leaves it."""
        self._brb = on
        if self._available():
            name = scenes_for(self.settings, next(iter(self._personas), ""))
            try:
                await self._switch(name["brb"] if on else name["idle"])
            except ObsUnavailable:
                self._warn_away()

    def _wrap(self, text: str) -> str:
        canvas = self.last_setup.canvas if self.last_setup is not None else (1920, 1080)
        return wrap_subtitle(text, max_width=canvas[0] * self.settings.subtitle_width,
                             font_size=self.settings.subtitle_size)

    # ------------------------------------------------------------------ the player

    async def _player(self, st: _Persona) -> None:
        while True:
            try:
                try:
                    # Between sentences of an unfinished reply the last frame stays up; a
                    # reply that stops sending clips goes back to idle after a while.
                    # (asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
                    # that arrives as a clip does, and this loop would never stop)
                    async with asyncio.timeout(_IDLE_AFTER_S if st.on_stage else None):
                        clip = await st.queue.get()
                except TimeoutError:
                    await self._go_idle(st)
                    continue
                if clip is _WAKE:
                    if st.on_stage:
                        await self._go_idle(st)
                    continue
                if clip is _IDLE:
                    if not st.on_stage and self._available():
                        await self._show_idle(st)
                    continue
                await self._play(st, clip)
                done = clip.reply_id in st.finished or clip.reply_id in st.cancelled
                if st.queue.empty() and done:
                    await self._go_idle(st)
            except asyncio.CancelledError:
                raise
            except ObsUnavailable:
                self._warn_away()
                st.current = None
                st.on_stage = False
                _drop(st.queue, lambda c: True)
            except Exception:
                logger.exception("OBS stage: playing for %s failed", st.id)
                st.current = None

    async def _play(self, st: _Persona, clip: Clip) -> None:
        if clip.reply_id in st.cancelled:
            return
        path = clip.path("mp4")
        assert path is not None
        st.current = clip
        st.started.clear()
        st.ended.clear()
        record = PlayedClip(st.id, clip.reply_id, clip.index, time.monotonic())
        if self._on_clip is not None:
            self._on_clip(record)
        await self.driver.call(
            "SetInputSettings",
            {"inputName": st.avatar,
             "inputSettings": {"local_file": str(path.resolve()), "looping": False}},
        )
        await self.driver.call(
            "SetInputSettings",
            {"inputName": st.subtitles, "inputSettings": {"text": self._wrap(clip.text)}},
        )
        st.on_stage = True
        self._brb = False  # clips are coming again: the show is back
        await self._switch(scenes_for(self.settings, st.id)["talking"])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(st.started.wait(), _START_TIMEOUT_S)
        record.started = self._event_time(st, "started")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(st.ended.wait(), clip.duration + _END_SLACK_S)
        record.ended = self._event_time(st, "ended")
        st.current = None
        if not self.driver.ready:
            raise ObsUnavailable("OBS went away during a clip")

    async def _go_idle(self, st: _Persona) -> None:
        st.on_stage = False
        st.finished.clear()
        st.cancelled.clear()
        if not self._available():
            return
        await self._show_idle(st)

    async def _show_idle(self, st: _Persona) -> None:
        """Subtitles cleared, the idle loop in the avatar source, the idle (or brb) scene.

        Calls OBS directly: it also runs from the connect hook, before the driver is ready.
        """
        await self.driver.call(
            "SetInputSettings", {"inputName": st.subtitles, "inputSettings": {"text": ""}}
        )
        if st.idle_file is not None:
            await self.driver.call(
                "SetInputSettings",
                {"inputName": st.avatar,
                 "inputSettings": {"local_file": str(st.idle_file.resolve()), "looping": True}},
            )
        scenes = scenes_for(self.settings, st.id)
        await self._switch(scenes["brb"] if self._brb else scenes["idle"])

    async def _switch(self, scene: str) -> None:
        if self.settings.switch_scenes and scene != self._scene:
            await self.driver.call("SetCurrentProgramScene", {"sceneName": scene})
            self._scene = scene

    async def _call(self, request: str, data: dict) -> None:
        if not self._available():
            return
        try:
            await self.driver.call(request, data)
        except ObsUnavailable:
            self._warn_away()

    # ------------------------------------------------------------------ driver callbacks

    async def _on_connect(self) -> None:
        self._scene = None
        self.last_setup = await setup_obs(self.driver, self.settings, list(self._personas))
        current = await self.driver.call("GetCurrentProgramScene")
        self._scene = current.get("currentProgramSceneName") or current.get("sceneName")
        # Whatever OBS loaded (its empty default scene after a crash), the show starts idle:
        # nobody is on stage right after a connect (clips are skipped while OBS is away).
        for st in self._personas.values():
            if not st.on_stage:
                await self._show_idle(st)
        if self._warned:
            logger.info("OBS is back; the OBS stage plays again")
        self._warned = False

    def _on_disconnect(self) -> None:
        self._scene = None
        for st in self._personas.values():
            st.started.set()
            st.ended.set()

    def _on_started(self, data: dict) -> None:
        st = self._by_input.get(data.get("inputName", ""))
        if st is not None and st.current is not None:
            st.started_at = data["_received"]
            st.started.set()

    def _on_ended(self, data: dict) -> None:
        st = self._by_input.get(data.get("inputName", ""))
        # An end without a start after our request is a stale one (the previous file).
        if st is not None and st.current is not None and st.started.is_set():
            st.ended_at = data["_received"]
            st.ended.set()

    def _on_scene(self, data: dict) -> None:
        self._scene = data.get("sceneName")

    def _event_time(self, st: _Persona, which: str) -> float | None:
        event = st.started if which == "started" else st.ended
        return getattr(st, f"{which}_at", None) if event.is_set() else None

    def _available(self) -> bool:
        if self.driver.ready:
            return True
        self._warn_away()
        return False

    def _warn_away(self) -> None:
        if not self._warned:
            self._warned = True
            logger.warning("OBS is not connected: the OBS stage skips clips until it is back "
                           "(the browser overlays still play them)")


_WAKE: Any = object()
"""Queued to wake an idle player when a reply finished with nothing left to play."""
_IDLE: Any = object()
"""Queued to (re)start the idle loop of a silent persona (an idle loop registered late)."""


def _drop(queue: asyncio.Queue, predicate) -> None:
    kept = []
    while not queue.empty():
        item = queue.get_nowait()
        if not isinstance(item, Clip) or not predicate(item):
            kept.append(item)
    for item in kept:
        queue.put_nowait(item)

