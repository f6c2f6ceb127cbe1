"""`vstage obs setup` puts vstage's items back in place, against the real headless OBS."""

from __future__ import annotations

import asyncio

from overlays.obs.driver import ObsDriver
from overlays.obs.settings import ObsSettings
from overlays.obs.subtitles import subtitle_transform
from tests.obs.conftest import CANVAS, PASSWORD
from tests.obs.test_obs_cli import _setup


async def _subtitle_item(settings: ObsSettings) -> dict:
    async with ObsDriver(settings=settings) as driver:
        assert await driver.wait_ready(10)
        listed = await driver.call("GetSceneItemList", {"sceneName": "vstage mika"})
        return next(i for i in listed["sceneItems"]
                    if i["sourceName"] == "vstage mika subtitles")


async def _move_to_top_left(settings: ObsSettings, item: dict) -> None:
    async with ObsDriver(settings=settings) as driver:
        assert await driver.wait_ready(10)
        await driver.call("SetSceneItemTransform", {
            "sceneName": "vstage mika", "sceneItemId": item["sceneItemId"],
            "sceneItemTransform": {"positionX": 0.0, "positionY": 0.0, "alignment": 5,
                                   "boundsType": "OBS_BOUNDS_NONE"}})


def test_obs_setup_command_puts_a_moved_subtitle_back(obs_studio, config_copy):
    settings = ObsSettings(enabled=True, port=obs_studio.port, password=PASSWORD)
    first = _setup(config_copy, obs_studio.port)
    assert first.returncode == 0, first.stderr[-2000:]
    asyncio.run(_move_to_top_left(settings, asyncio.run(_subtitle_item(settings))))
    assert asyncio.run(_subtitle_item(settings))["sceneItemTransform"]["positionX"] == 0.0

    again = _setup(config_copy, obs_studio.port)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "put back in place: vstage mika subtitles in vstage mika" in again.stderr
    have = asyncio.run(_subtitle_item(settings))["sceneItemTransform"]
    for key, value in subtitle_transform(CANVAS, settings.subtitle_width).items():
        if isinstance(value, str):
            assert have[key] == value, key
        else:
            assert abs(have[key] - value) < 0.5, (key, have[key], value)
