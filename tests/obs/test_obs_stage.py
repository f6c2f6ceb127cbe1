"""The OBS stage against a real OBS 29 / obs-websocket 5.1 under Xvfb: setup, scenes and
subtitles driven by what the live stream carries (``OnAir``) and by stage events."""

from __future__ import annotations

import asyncio
import time

from overlays.obs.driver import ObsDriver
from overlays.obs.keying import KeyColour
from overlays.obs.live import OnAir
from overlays.obs.settings import ObsSettings
from overlays.obs.setup import AVATAR_KIND, SUBTITLE_KIND, setup_obs
from overlays.obs.stage import ObsStage
from overlays.stage import Performed, ReplyCancelled, ReplyFinished, ShowDegraded
from tests.obs.conftest import CANVAS


async def _until(predicate, within: float = 10.0, step: float = 0.05) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(step)


async def _text(driver: ObsDriver, name: str) -> str:
    data = await driver.call("GetInputSettings", {"inputName": name})
    return data["inputSettings"].get("text", "")


async def _program(driver: ObsDriver) -> str:
    return (await driver.call("GetCurrentProgramScene"))["currentProgramSceneName"]


def _air(persona: str, reply_id: str | None, sentence: int | None = None,
         text: str | None = None) -> OnAir:
    return OnAir(persona, reply_id, sentence, text, time.monotonic())


async def test_setup_creates_scenes_and_inputs_and_is_idempotent(obs_settings):
    keys = {"ana": KeyColour((255, 0, 255), 0.5), "ben": KeyColour((0, 255, 0), 0.36)}
    async with ObsDriver(settings=obs_settings) as driver:
        assert await driver.wait_ready(10)
        first = await setup_obs(driver, obs_settings, ["ana", "ben"], keys)
        assert first.canvas == CANVAS
        scenes = {s["sceneName"] for s in (await driver.call("GetSceneList"))["scenes"]}
        assert {"vstage idle", "vstage brb", "vstage ana", "vstage ben"} <= scenes
        inputs = {i["inputName"]: i["inputKind"]
                  for i in (await driver.call("GetInputList"))["inputs"]}
        for n, p in enumerate(("ana", "ben")):
            assert inputs[f"vstage {p} avatar"] == AVATAR_KIND
            assert inputs[f"vstage {p} subtitles"] == SUBTITLE_KIND
            talking = await driver.call("GetSceneItemList", {"sceneName": f"vstage {p}"})
            assert {i["sourceName"] for i in talking["sceneItems"]} == {
                f"vstage {p} avatar", f"vstage {p} subtitles"}
            avatar = (await driver.call("GetInputSettings", {"inputName": f"vstage {p} avatar"})
                      )["inputSettings"]
            # One network media source per persona, on its own port.
            assert avatar["is_local_file"] is False and avatar["input_format"] == "mpegts"
            assert avatar["input"].startswith(
                f"udp://127.0.0.1:{obs_settings.live_port_base + n}?")
            assert avatar["close_when_inactive"] is False
            filters = await driver.call("GetSourceFilterList",
                                        {"sourceName": f"vstage {p} avatar"})
            (chroma,) = filters["filters"]
            assert chroma["filterName"] == "vstage chroma key"
            assert chroma["filterKind"] == "chroma_key_filter_v2"
            assert chroma["filterSettings"] == chroma["filterSettings"] | \
                keys[p].filter_settings()
        idle = await driver.call("GetSceneItemList", {"sceneName": "vstage idle"})
        assert {i["sourceName"] for i in idle["sceneItems"]} >= {
            "vstage ana avatar", "vstage ben avatar"}

        before = await _snapshot(driver)
        again = await setup_obs(driver, obs_settings, ["ana", "ben"], keys)
        assert again.created == [] and again.repaired == [] and again.warnings == []
        assert await _snapshot(driver) == before


async def _snapshot(driver: ObsDriver):
    scenes = sorted(s["sceneName"] for s in (await driver.call("GetSceneList"))["scenes"])
    items = {}
    for scene in scenes:
        listed = await driver.call("GetSceneItemList", {"sceneName": scene})
        items[scene] = sorted((i["sourceName"], i["sceneItemTransform"]["positionX"],
                               i["sceneItemTransform"]["positionY"])
                              for i in listed["sceneItems"])
    inputs = sorted(i["inputName"] for i in (await driver.call("GetInputList"))["inputs"])
    return scenes, items, inputs


async def test_scenes_and_subtitles_follow_the_stream(obs_settings):
    async with ObsStage(settings=obs_settings, personas=["cleo"], idle_after_s=0.6) as stage:
        driver = stage.driver
        assert await driver.wait_ready(10)
        assert await _program(driver) == "vstage idle"
        subtitles = "vstage cleo subtitles"

        stage.on_air(_air("cleo", "r1", 0, "Hello there."))

        async def talking() -> bool:
            return (await _program(driver) == "vstage cleo"
                    and await _text(driver, subtitles) == "Hello there.")

        await _until(talking)
        # A pause between sentences keeps the words and the scene up...
        stage.on_air(_air("cleo", None))
        stage.on_air(_air("cleo", "r1", 1, "Second one."))

        async def second() -> bool:
            return await _text(driver, subtitles) == "Second one."

        await _until(second)
        assert await _program(driver) == "vstage cleo"
        # ...the reply finished while its last sentence plays: idle once the stream is.
        await stage.handle(ReplyFinished(persona="cleo", reply_id="r1", text="..."))
        await asyncio.sleep(0.2)
        assert await _program(driver) == "vstage cleo"
        stage.on_air(_air("cleo", None))

        async def idle() -> bool:
            return (await _program(driver) == "vstage idle"
                    and await _text(driver, subtitles) == "")

        await _until(idle, within=3)

        # A reply whose renderer stalls (no more sentences, not finished) goes idle too.
        stage.on_air(_air("cleo", "r2", 0, "I was saying"))
        await _until(talking_about(driver, subtitles, "I was saying"))
        stage.on_air(_air("cleo", None))
        await _until(idle, within=3)


def talking_about(driver: ObsDriver, subtitles: str, text: str):
    async def check() -> bool:
        return await _text(driver, subtitles) == text

    return check


async def test_cancelled_reply_leaves_at_once_and_late_frames_are_ignored(obs_settings):
    async with ObsStage(settings=obs_settings, personas=["dora"]) as stage:
        driver = stage.driver
        assert await driver.wait_ready(10)
        stage.on_air(_air("dora", "rc", 0, "Skip me."))
        await _until(talking_about(driver, "vstage dora subtitles", "Skip me."))
        await stage.handle(ReplyCancelled(persona="dora", reply_id="rc"))
        # The stream's last frame of the skipped reply may still be reported: no effect.
        stage.on_air(_air("dora", "rc", 1, "Nothing of me."))

        async def idle() -> bool:
            return await _program(driver) == "vstage idle"

        await _until(idle, within=3)
        await asyncio.sleep(0.3)
        assert await _text(driver, "vstage dora subtitles") == ""
        assert await _program(driver) == "vstage idle"


async def test_show_degraded_switches_to_be_right_back_and_back(obs_settings):
    async with ObsStage(settings=obs_settings, personas=["hal"]) as stage:
        assert await stage.driver.wait_ready(10)
        assert stage.wants == {Performed, ReplyFinished, ReplyCancelled, ShowDegraded}
        for on, scene in ((True, "vstage brb"), (False, "vstage idle")):
            await stage.handle(ShowDegraded(on=on))

            async def shown(scene: str = scene) -> bool:
                return await _program(stage.driver) == scene

            await _until(shown, within=3)


async def test_wrong_password_never_ready_and_handle_returns_at_once(obs_settings):
    bad = ObsSettings.model_validate(obs_settings.model_dump() | {"password": "wrong"})
    async with ObsStage(settings=bad, personas=["gus"]) as stage:
        assert not await stage.driver.wait_ready(1.5)
        t0 = time.perf_counter()
        stage.on_air(_air("gus", "x", 0, "x"))
        await stage.handle(ReplyFinished(persona="gus", reply_id="x", text="x"))
        await stage.handle(ShowDegraded(on=True))
        assert time.perf_counter() - t0 < 0.05
        await asyncio.sleep(0.2)  # the stage's task skips OBS while it is away, quietly
        assert stage._task is not None and not stage._task.done()
