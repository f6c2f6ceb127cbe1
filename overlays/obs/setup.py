"""Create, idempotently, what each persona needs in the streamer's OBS.

Per persona: the idle, talking and 'be right back' scenes (created only if missing, so an
existing scene of the streamer's can be named instead), a media source for the avatar (in the
idle and talking scenes, with a chroma-key filter for the green behind MP4 clips), a text
source for subtitles (talking scene), and an optional image on the brb scene. Only what is
missing is created, so re-running setup creates nothing. Items that exist but are out of place
are put back (an OBS that crashed restores its last autosave, which may predate the placement:
subtitles at the top-left); ``keep_placement`` leaves them where the streamer moved them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from .driver import ObsDriver, ObsRequestError
from .settings import ObsSettings
from .subtitles import subtitle_transform

logger = logging.getLogger(__name__)

AVATAR_KIND = "ffmpeg_source"
SUBTITLE_KIND = "text_ft2_source_v2"
IMAGE_KIND = "image_source"
CHROMA_FILTER = "vstage chroma key"
CHROMA_KIND = "chroma_key_filter_v2"

# obs_alignment flags: LEFT=1, RIGHT=2, TOP=4, BOTTOM=8; 0 is the centre.
_ALIGN_TOP_LEFT = 5

AVATAR_SETTINGS = {
    "is_local_file": True,
    "looping": False,
    # Keep the last frame on screen between clips instead of a blank source.
    "clear_on_media_end": False,
    # A scene switch must not restart or close the clip being spoken.
    "restart_on_activate": False,
    "close_when_inactive": False,
    "hw_decode": False,
}


@dataclass(slots=True)
class SetupReport:
    """What :func:`setup_obs` found missing and created, or out of place and put back (both
    empty when everything was there)."""

    created: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    canvas: tuple[int, int] = (1920, 1080)


def scenes_for(settings: ObsSettings, persona: str) -> dict[str, str]:
    """State -> scene name of one persona."""
    return {state: settings.scenes.name(state, persona) for state in ("idle", "talking", "brb")}


def avatar_box(settings: ObsSettings, canvas: tuple[int, int]) -> tuple[int, int, int, int]:
    """Where the avatar goes: the configured box, or a centred bottom square of 80% height."""
    if settings.avatar_box is not None:
        return settings.avatar_box
    w, h = canvas
    side = int(h * 0.8)
    return (w - side) // 2, h - side, side, side


async def setup_obs(
    driver: ObsDriver, settings: ObsSettings, personas: Sequence[str]
) -> SetupReport:
    """Make sure every persona's scenes and sources exist in OBS and are in place.

    Creates what is missing and, unless ``settings.keep_placement``, puts vstage's own items
    that were moved (or restored out of place by OBS after a crash) back where they belong.

    Args:
        driver: a connected driver (call from a connect hook or after ``wait_ready``).
        settings: names and placement.
        personas: persona ids.

    Returns:
        What was created or put back; empty lists on a re-run.

    Raises:
        ObsUnavailable: OBS went away meanwhile.
        ObsRequestError: OBS refused a request other than the optional filter.
    """
    report = SetupReport()
    video = await driver.call("GetVideoSettings")
    report.canvas = canvas = (int(video["baseWidth"]), int(video["baseHeight"]))
    scenes = {s["sceneName"] for s in (await driver.call("GetSceneList"))["scenes"]}
    inputs = {i["inputName"]: i["inputKind"] for i in (await driver.call("GetInputList"))["inputs"]}
    items: dict[str, dict[str, list[dict]]] = {}  # scene -> source -> its scene items

    async def ensure_scene(name: str) -> None:
        if name not in scenes:
            await driver.call("CreateScene", {"sceneName": name})
            scenes.add(name)
            report.created.append(f"scene {name}")

    async def scene_items(scene: str) -> dict[str, list[dict]]:
        if scene not in items:
            listed = await driver.call("GetSceneItemList", {"sceneName": scene})
            items[scene] = {}
            for item in listed["sceneItems"]:
                items[scene].setdefault(item["sourceName"], []).append(item)
        return items[scene]

    async def place(scene: str, name: str, item: dict, transform: dict) -> None:
        """Put an existing item back in place if it is not there."""
        if settings.keep_placement or _in_place(item.get("sceneItemTransform", {}), transform):
            return
        await driver.call(
            "SetSceneItemTransform",
            {"sceneName": scene, "sceneItemId": item["sceneItemId"],
             "sceneItemTransform": transform},
        )
        report.repaired.append(f"{name} in {scene}")

    async def ensure_input(scene: str, name: str, kind: str, settings_: dict,
                           transform: dict | None) -> None:
        """The input exists and is an item of ``scene``, placed by ``transform``."""
        if name in inputs and inputs[name] != kind:
            report.warnings.append(f"{name} exists but is a {inputs[name]}, not a {kind}")
            logger.warning("OBS input %r is a %s, expected %s", name, inputs[name], kind)
        present = (await scene_items(scene)).get(name)
        if present:
            if transform:
                for item in present:
                    await place(scene, name, item, transform)
            return
        if name not in inputs:
            created = await driver.call(
                "CreateInput",
                {"sceneName": scene, "inputName": name, "inputKind": kind,
                 "inputSettings": settings_, "sceneItemEnabled": True},
            )
            inputs[name] = kind
            report.created.append(f"input {name} in {scene}")
        else:
            created = await driver.call(
                "CreateSceneItem", {"sceneName": scene, "sourceName": name}
            )
            report.created.append(f"item {name} in {scene}")
        items[scene][name] = [{"sceneItemId": created["sceneItemId"],
                               "sceneItemTransform": transform or {}}]
        if transform:
            await driver.call(
                "SetSceneItemTransform",
                {"sceneName": scene, "sceneItemId": created["sceneItemId"],
                 "sceneItemTransform": transform},
            )

    for persona in personas:
        names = scenes_for(settings, persona)
        for scene in names.values():
            await ensure_scene(scene)

        x, y, w, h = avatar_box(settings, canvas)
        avatar_transform = {
            "positionX": float(x), "positionY": float(y), "alignment": _ALIGN_TOP_LEFT,
            "boundsType": "OBS_BOUNDS_SCALE_INNER", "boundsAlignment": 0,
            "boundsWidth": float(max(w, 1)), "boundsHeight": float(max(h, 1)),
        }
        avatar = settings.sources.name("avatar", persona)
        for state in ("talking", "idle"):
            await ensure_input(names[state], avatar, AVATAR_KIND, AVATAR_SETTINGS,
                               avatar_transform)
        if settings.chroma_key:
            await _ensure_chroma_key(driver, avatar, report)

        subtitles = settings.sources.name("subtitles", persona)
        await ensure_input(
            names["talking"], subtitles, SUBTITLE_KIND,
            {"text": "", "outline": True, "drop_shadow": True,
             "font": {"face": settings.subtitle_font, "size": settings.subtitle_size,
                      "style": "Bold", "flags": 1}},
            subtitle_transform(canvas, settings.subtitle_width),
        )

        if settings.brb_image is not None:
            await ensure_input(
                names["brb"], settings.sources.name("brb_image", persona), IMAGE_KIND,
                {"file": str(settings.brb_image.resolve())},
                {"positionX": 0.0, "positionY": 0.0, "alignment": _ALIGN_TOP_LEFT,
                 "boundsType": "OBS_BOUNDS_SCALE_INNER", "boundsAlignment": 0,
                 "boundsWidth": float(canvas[0]), "boundsHeight": float(canvas[1])},
            )

    if report.created:
        logger.info("OBS setup created: %s", "; ".join(report.created))
    if report.repaired:
        logger.info("OBS setup put back in place: %s", "; ".join(report.repaired))
    return report


def _in_place(current: dict, wanted: dict) -> bool:
    """Whether an item's transform already has every wanted value (to half a pixel)."""
    for key, value in wanted.items():
        have = current.get(key)
        if isinstance(value, str) or isinstance(have, str) or have is None:
            if have != value:
                return False
        elif abs(float(have) - float(value)) > 0.5:
            return False
    return True


async def _ensure_chroma_key(driver: ObsDriver, source: str, report: SetupReport) -> None:
    filters = await driver.call("GetSourceFilterList", {"sourceName": source})
    if any(f["filterName"] == CHROMA_FILTER for f in filters["filters"]):
        return
    try:
        await driver.call(
            "CreateSourceFilter",
            {"sourceName": source, "filterName": CHROMA_FILTER, "filterKind": CHROMA_KIND,
             "filterSettings": {"key_color_type": "green"}},
        )
    except ObsRequestError as e:  # a build without obs-filters: the green stays visible
        report.warnings.append(f"no chroma key on {source}: {e}")
        logger.warning("cannot add a chroma key to %r: %s", source, e)
        return
    report.created.append(f"filter {CHROMA_FILTER} on {source}")
