"""Create, idempotently, what each persona needs in the streamer's OBS.

Per persona: the idle, talking and 'be right back' scenes (created only if missing, so an
existing scene of the streamer's can be named instead), one media source for the avatar reading
the persona's live stream (MPEG-TS over UDP on loopback, sent by
:class:`~overlays.obs.live.ObsLiveOutput`; in the idle and talking scenes) with a chroma-key
filter for the persona's key colour, a text source for subtitles (talking scene), and an
optional image on the brb scene. Only what is missing is created, so re-running setup creates
nothing; an avatar source or key filter whose settings differ (another port, another key, the
per-clip file source of older versions) is set right. Items that exist but are out of place
are put back (an OBS that crashed restores its last autosave, which may predate the placement:
subtitles at the top-left); ``keep_placement`` leaves them where the streamer moved them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .driver import ObsDriver, ObsRequestError
from .keying import CANDIDATES, KeyColour
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

# The key used when the caller names none (and settings.key_colour is unset): green, with the
# margin it has from the default avatar's art (its teal hoodie), measured by keying.choose_key.
DEFAULT_KEY = KeyColour(rgb=CANDIDATES[0], margin=0.36)


def avatar_settings(settings: ObsSettings, index: int) -> dict[str, Any]:
    """The avatar media source's settings: a network input reading the persona's stream.

    Args:
        settings: OBS settings (host, port base, buffering).
        index: the persona's place in the persona list (its port is ``live_port_base + index``).
    """
    return {
        "is_local_file": False,
        # overrun_nonfatal: if OBS stalls, drop datagrams instead of giving up on the input.
        "input": settings.live_url(index) + "&overrun_nonfatal=1&fifo_size=50000",
        "input_format": "mpegts",
        "buffering_mb": settings.live_buffering_mb,
        # It keeps reading while hidden (the brb scene), so nothing piles up meanwhile and a
        # scene switch shows it at once; restarting on activate would reopen the input and
        # wait for the next keyframe.
        "restart_on_activate": False,
        "close_when_inactive": False,
        "clear_on_media_end": False,
        "reconnect_delay_sec": 1,
        "hw_decode": False,
        "looping": False,
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
    driver: ObsDriver, settings: ObsSettings, personas: Sequence[str],
    keys: Mapping[str, KeyColour] | None = None,
) -> SetupReport:
    """Make sure every persona's scenes and sources exist in OBS and are in place.

    Creates what is missing and, unless ``settings.keep_placement``, puts vstage's own items
    that were moved (or restored out of place by OBS after a crash) back where they belong.

    Args:
        driver: a connected driver (call from a connect hook or after ``wait_ready``).
        settings: names and placement.
        personas: persona ids, in config order (the n-th reads ``settings.live_url(n)``).
        keys: each persona's key colour (``keying.choose_key`` of its avatar art, the colour
            its :class:`~overlays.obs.live.ObsLiveOutput` composites over); a persona missing
            here gets ``settings.key_colour``, or green.

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

    for index, persona in enumerate(personas):
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
        source = avatar_settings(settings, index)
        for state in ("talking", "idle"):
            await ensure_input(names[state], avatar, AVATAR_KIND, source, avatar_transform)
        await _ensure_settings(driver, avatar, source, report)
        if settings.chroma_key:
            await _ensure_chroma_key(driver, avatar, key_for(settings, persona, keys), report)

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


def key_for(settings: ObsSettings, persona: str,
            keys: Mapping[str, KeyColour] | None) -> KeyColour:
    """The persona's key: from ``keys``, else ``settings.key_colour``, else green."""
    if keys is not None and persona in keys:
        return keys[persona]
    if settings.key_colour is not None:
        return KeyColour(rgb=settings.key_colour, margin=DEFAULT_KEY.margin)
    return DEFAULT_KEY


async def _ensure_settings(driver: ObsDriver, source: str, wanted: dict[str, Any],
                           report: SetupReport) -> None:
    """An existing avatar source reading something else (another port, a clip file) is
    pointed at the persona's stream."""
    have = (await driver.call("GetInputSettings", {"inputName": source}))["inputSettings"]
    if all(have.get(k) == v for k, v in wanted.items()):
        return
    await driver.call("SetInputSettings", {"inputName": source, "inputSettings": wanted})
    report.repaired.append(f"{source} reads {wanted['input'].split('?')[0]}")


async def _ensure_chroma_key(driver: ObsDriver, source: str, key: KeyColour,
                             report: SetupReport) -> None:
    wanted = key.filter_settings()
    filters = await driver.call("GetSourceFilterList", {"sourceName": source})
    found = next((f for f in filters["filters"] if f["filterName"] == CHROMA_FILTER), None)
    if found is not None:
        have = found.get("filterSettings") or {}
        if any(have.get(k) != v for k, v in wanted.items()):
            await driver.call("SetSourceFilterSettings",
                              {"sourceName": source, "filterName": CHROMA_FILTER,
                               "filterSettings": wanted})
            report.repaired.append(f"filter {CHROMA_FILTER} on {source} keys {key.rgb}")
        return
    try:
        await driver.call(
            "CreateSourceFilter",
            {"sourceName": source, "filterName": CHROMA_FILTER, "filterKind": CHROMA_KIND,
             "filterSettings": wanted},
        )
    except ObsRequestError as e:  # a build without obs-filters: the key colour stays visible
        report.warnings.append(f"no chroma key on {source}: {e}")
        logger.warning("cannot add a chroma key to %r: %s", source, e)
        return
    report.created.append(f"filter {CHROMA_FILTER} on {source}")
