"""What OBS shows around a crash, against a real OBS 29 under Xvfb: vstage's items back in their
place after OBS restores an old autosave, the idle scene with the live avatar on every connect,
and long subtitles wrapped inside the canvas."""

from __future__ import annotations

import asyncio
import inspect
import io
import time

import numpy as np
import pytest
from PIL import Image

from overlays.obs.driver import ObsDriver
from overlays.obs.live import OnAir
from overlays.obs.settings import ObsSettings
from overlays.obs.setup import setup_obs
from overlays.obs.stage import ObsStage
from overlays.obs.subtitles import subtitle_transform
from tests.netutil import free_port
from tests.obs.conftest import CANVAS, PASSWORD, settings_for
from tests.obs.headless import HeadlessObs

LONG = ("Thanks for asking, tonight we are going to explore the haunted lighthouse levels "
        "together!")  # 90 characters: 2,390 px on one line at size 48
TOP_LEFT = {"positionX": 0.0, "positionY": 0.0, "alignment": 5, "boundsType": "OBS_BOUNDS_NONE",
            "scaleX": 1.0, "scaleY": 1.0}


@pytest.fixture
def fresh_obs(tmp_path):
    """An OBS of its own for each test (a crash test must not leave the shared one dirty)."""
    obs = HeadlessObs(home=tmp_path / "obs-home", port=free_port(), password=PASSWORD,
                      width=CANVAS[0], height=CANVAS[1])
    obs.start()
    yield obs
    obs.stop()


@pytest.fixture
def settings(fresh_obs: HeadlessObs) -> ObsSettings:
    return settings_for(fresh_obs)


async def _until(predicate, within: float = 10.0, step: float = 0.05) -> None:
    """Wait until ``predicate()`` (a plain or async function) is true."""
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(step)


async def _items(driver: ObsDriver, scene: str) -> dict[str, dict]:
    listed = await driver.call("GetSceneItemList", {"sceneName": scene})
    return {i["sourceName"]: i for i in listed["sceneItems"]}


def _avatar_transform(settings: ObsSettings) -> dict:
    x, y, w, h = settings.avatar_box  # type: ignore[misc]
    return {"positionX": x, "positionY": y, "alignment": 5,
            "boundsType": "OBS_BOUNDS_SCALE_INNER", "boundsWidth": w, "boundsHeight": h}


def _assert_placed(item: dict, wanted: dict) -> None:
    have = item["sceneItemTransform"]
    for key, value in wanted.items():
        if isinstance(value, str):
            assert have[key] == value, (item["sourceName"], key, have[key])
        else:
            assert abs(have[key] - value) <= 0.5, (item["sourceName"], key, have[key], value)


async def _move_to_top_left(driver: ObsDriver, scene: str, source: str) -> None:
    item = (await _items(driver, scene))[source]
    await driver.call("SetSceneItemTransform", {"sceneName": scene,
                                                "sceneItemId": item["sceneItemId"],
                                                "sceneItemTransform": TOP_LEFT})


async def _program(driver: ObsDriver) -> str:
    return (await driver.call("GetCurrentProgramScene"))["currentProgramSceneName"]


async def _avatar_shows(driver: ObsDriver, box: tuple[int, int, int, int]) -> bool:
    """The live avatar is on the program, opaque in the middle of its box (her face)."""
    png = await driver.screenshot("vstage idle", width=CANVAS[0], height=CANVAS[1])
    img = Image.open(io.BytesIO(png)).convert("RGBA")
    x, y, w, h = box
    r, g, b, a = img.getpixel((x + w // 2, y + h // 2))
    return a > 200 and r > 200 and g > 180  # skin


async def test_setup_puts_moved_items_back_unless_told_to_keep_them(settings):
    async with ObsDriver(settings=settings) as driver:
        assert await driver.wait_ready(10)
        await setup_obs(driver, settings, ["ivy"])
        moved = (("vstage ivy", "vstage ivy subtitles"), ("vstage ivy", "vstage ivy avatar"),
                 ("vstage idle", "vstage ivy avatar"))
        for scene, source in moved:
            await _move_to_top_left(driver, scene, source)

        report = await setup_obs(driver, settings, ["ivy"])
        assert report.created == []
        assert sorted(report.repaired) == sorted(f"{source} in {scene}"
                                                 for scene, source in moved)
        talking = await _items(driver, "vstage ivy")
        _assert_placed(talking["vstage ivy subtitles"],
                       subtitle_transform(CANVAS, settings.subtitle_width))
        _assert_placed(talking["vstage ivy avatar"], _avatar_transform(settings))
        _assert_placed((await _items(driver, "vstage idle"))["vstage ivy avatar"],
                       _avatar_transform(settings))
        again = await setup_obs(driver, settings, ["ivy"])
        assert again.created == [] and again.repaired == [] and again.warnings == []

        # A streamer who arranged things by hand keeps them where they put them.
        await _move_to_top_left(driver, "vstage ivy", "vstage ivy subtitles")
        keep = ObsSettings.model_validate(settings.model_dump() | {"keep_placement": True})
        kept = await setup_obs(driver, keep, ["ivy"])
        assert kept.created == [] and kept.repaired == []
        _assert_placed((await _items(driver, "vstage ivy"))["vstage ivy subtitles"], TOP_LEFT)


async def test_after_a_crash_items_are_in_place_and_the_live_avatar_shows(
        fresh_obs, settings, vee_key, live_vee, artifacts):
    avatar, subtitles = "vstage vee avatar", "vstage vee subtitles"
    box = settings.avatar_box
    assert box is not None
    async with ObsStage(settings=settings, personas=["vee"], keys={"vee": vee_key}) as stage, \
            live_vee(settings.live_url(0), stage.on_air):
        driver = stage.driver
        assert await driver.wait_ready(10)
        # First connect: not OBS's empty default scene, the idle scene with the live avatar.
        assert await _program(driver) == "vstage idle"
        await _until(lambda: _avatar_shows(driver, box), within=15)
        png = await driver.screenshot("vstage idle", width=CANVAS[0], height=CANVAS[1])
        (artifacts / "obs-idle-first-connect.png").write_bytes(png)

        # What a crash leaves behind: OBS's last autosave has the items at the top-left (it
        # saved right after creating them, before they were placed) and its default scene.
        await _move_to_top_left(driver, "vstage vee", subtitles)
        await _move_to_top_left(driver, "vstage vee", avatar)
        await driver.call("SetCurrentProgramScene", {"sceneName": "Scene"})
        await driver.call("CreateScene", {"sceneName": "streamer's new scene"})  # autosaves
        await asyncio.sleep(1.0)
        fresh_obs.kill()
        await _until(lambda: not driver.ready, within=5)
        fresh_obs.start()
        assert await driver.wait_ready(10)
        assert driver.connects == 2
        assert await _program(driver) == "vstage idle"
        talking = await _items(driver, "vstage vee")
        _assert_placed(talking[subtitles], subtitle_transform(CANVAS, settings.subtitle_width))
        _assert_placed(talking[avatar], _avatar_transform(settings))
        await _until(lambda: _avatar_shows(driver, box), within=15)
        png = await driver.screenshot("vstage idle", width=CANVAS[0], height=CANVAS[1])
        (artifacts / "obs-idle-after-restart.png").write_bytes(png)


async def test_long_subtitle_wraps_inside_the_canvas(settings, artifacts):
    assert len(LONG) == 90
    async with ObsStage(settings=settings, personas=["lena"]) as stage:
        driver = stage.driver
        assert await driver.wait_ready(10)
        stage.on_air(OnAir("lena", "long", 0, LONG, time.monotonic()))

        async def shown_text() -> str:
            return (await driver.call("GetInputSettings", {"inputName": "vstage lena subtitles"})
                    )["inputSettings"]["text"]

        await _until(shown_text)
        await asyncio.sleep(0.3)
        shown = await shown_text()
        item = (await _items(driver, "vstage lena"))["vstage lena subtitles"]
        png = await driver.screenshot("vstage lena", width=CANVAS[0], height=CANVAS[1])
    (artifacts / "obs-long-subtitle.png").write_bytes(png)
    assert shown.replace("\n", " ") == LONG and shown.count("\n") >= 1
    t = item["sceneItemTransform"]
    max_width = CANVAS[0] * settings.subtitle_width
    assert t["boundsType"] == "OBS_BOUNDS_MAX_ONLY" and t["boundsWidth"] <= max_width + 0.5
    # The text itself wraps (a source narrower than the box), so it is not shrunk unreadably.
    assert 0 < t["sourceWidth"] <= max_width, t
    assert abs(t["width"] - t["sourceWidth"]) < 1, t
    # On the rendered frame: the subtitle spans several lines, inside the canvas, centred.
    alpha = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))[..., 3]
    below_avatar = alpha[420:]
    cols = np.flatnonzero(below_avatar.max(axis=0) > 0)
    rows = np.flatnonzero(below_avatar.max(axis=1) > 0)
    assert cols.size and rows.size
    left, right = int(cols[0]), int(cols[-1])
    assert left > 20 and right < CANVAS[0] - 20, (left, right)
    assert abs((left + right) / 2 - CANVAS[0] / 2) < 60, (left, right)
    height = int(rows[-1] - rows[0])
    assert height > 1.6 * settings.subtitle_size, height  # two lines or more
    assert 420 + rows[-1] < CANVAS[1], rows[-1]
