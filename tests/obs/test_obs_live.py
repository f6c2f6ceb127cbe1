"""OBS shows the persona's live stream: the default avatar over its key colour, keyed out by
OBS with its own colours intact, the mouth moving during speech, the subtitle following the
sentence on the stream, and the avatar back after OBS restarts. Real OBS 29 under Xvfb."""

from __future__ import annotations

import asyncio
import io
import threading
import time

import numpy as np
from PIL import Image

from overlays.obs.driver import ObsDriver
from overlays.obs.keying import CANDIDATES, choose_key, chroma, chroma_margin
from overlays.obs.live import ObsLiveOutput, OnAir, _Muxer, live_url
from overlays.obs.stage import ObsStage
from overlays.stage import ReplyFinished
from tests.obs.conftest import VEE, free_udp_port, mouth_frames, performance

AVATAR = "vstage vee avatar"
SUBTITLES = "vstage vee subtitles"
HOODIE = (slice(440, 500), slice(120, 200))  # rows, columns of the green-teal hoodie
MOUTH_HALF = (slice(165, 196), slice(110, 146))  # manifest mouth_box [224, 334, 64, 54] / 2


# ---------------------------------------------------------------------- the key colour


def test_key_colour_stays_clear_of_the_default_avatar(vee):
    key = choose_key(VEE)
    settings = key.filter_settings()
    # Everything the filter touches (similarity + smoothness, spill) stops short of the art.
    reach = (settings["similarity"] + max(settings["smoothness"], settings["spill"])) / 1000
    assert reach < key.margin, (key, settings)
    assert settings["key_color_type"] == "custom"
    r, g, b = key.rgb
    assert settings["key_color"] == 0xFF000000 | b << 16 | g << 8 | r
    # The hoodie lies within OBS's default similarity (0.4) of plain green: that key ate it.
    hoodie = vee.idle(1)[0].numpy()[HOODIE]
    assert chroma_margin(hoodie, (0, 255, 0)) < 0.4
    # No candidate is farther from the art than the chosen one.
    assert all(chroma_margin(VEE, c) <= key.margin + 1e-6 for c in CANDIDATES)


def test_key_colour_avoids_an_avatar_dressed_in_the_usual_key():
    art = np.zeros((64, 64, 4), np.uint8)
    art[:32] = (20, 230, 40, 255)  # a green shirt
    art[32:] = (30, 40, 220, 255)  # blue jeans
    art[:4, :4, 3] = 0  # transparent pixels do not count, whatever their colour
    key = choose_key(art)
    assert key.rgb not in ((0, 255, 0), (0, 0, 255))
    pixels = chroma(art[4:, 4:, :3].reshape(-1, 3))
    assert np.linalg.norm(pixels - chroma(np.array(key.rgb)), axis=-1).min() > 0.5


def test_composite_is_straight_alpha_over_the_key():
    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, (32, 48, 4), dtype=np.uint8)
    rgba[:8, :, 3] = 255
    rgba[8:16, :, 3] = 0
    key = (255, 0, 255)
    mux = _Muxer(url="", fps=25, size=(48, 32), sample_rate=48000, key=key, keyframe_s=1)
    out = mux._composite(rgba)
    a = rgba[..., 3:4] / 255
    want = np.rint(rgba[..., :3] * a + np.array(key) * (1 - a))
    assert np.abs(out[..., :3].astype(int) - want).max() <= 1
    assert (out[8:16, :, :3] == key).all() and (out[:8, :, :3] == rgba[:8, :, :3]).all()


# ---------------------------------------------------------------------- the stream itself


async def test_stream_decodes_with_locked_timestamps_and_needs_no_receiver(vee, vee_key,
                                                                           live_vee):
    """A PyAV reader gets H.264 frames over the key colour and AAC audio whose timestamps
    follow the tick index; with nobody reading, the output just goes on."""
    port = free_udp_port()
    got: dict[str, list] = {"video": [], "audio": [], "corner": []}

    def read() -> None:
        import av

        with av.open(f"udp://127.0.0.1:{port}?timeout=10000000", "r", format="mpegts") as c:
            for packet in c.demux():
                for frame in packet.decode():
                    if isinstance(frame, av.VideoFrame):
                        got["video"].append(float(frame.time))
                        got["corner"].append(frame.to_ndarray(format="rgb24")[8, 8])
                    else:
                        got["audio"].append((float(frame.time), frame.samples))
                if len(got["video"]) >= 40:
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    await asyncio.sleep(0.3)
    async with live_vee(live_url(port)) as (stream, output):
        await asyncio.to_thread(reader.join, 15)
        assert len(got["video"]) >= 40
        nobody = live_url(free_udp_port())  # nothing listens there
        async with ObsLiveOutput(stream=stream, url=nobody, key_colour=vee_key.rgb) as lonely:
            await asyncio.sleep(1.0)
            assert lonely.frames_sent >= 10
        lost = output.gaps
    steps = np.rint(np.diff(got["video"]) * vee.fps * 100) / 100
    # Timestamps on the frame grid, one frame per tick (a frame the reader lost on a busy
    # host, or one the output skipped, leaves a whole-frame step).
    assert np.allclose(steps, np.rint(steps), atol=0.03) and steps.min() >= 1, steps
    assert np.mean(steps == 1) > 0.8 and lost <= 3, (steps, lost)
    assert all(np.abs(c.astype(int) - vee_key.rgb).max() < 12 for c in got["corner"])
    times = [t for t, _ in got["audio"]]
    assert np.allclose(np.diff(times), [n / 48000 for _, n in got["audio"][:-1]], atol=1e-4)
    # Audio and video start together (within one AAC frame of encoder priming).
    assert abs(times[0] - got["video"][0]) <= 1024 / 48000 + 1e-3


# ---------------------------------------------------------------------- in OBS


def _rgba(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def _on_dark(png: bytes) -> Image.Image:
    """A screenshot composited on dark grey, to look at (the keyed background shows)."""
    img = Image.open(io.BytesIO(png)).convert("RGBA")
    out = Image.new("RGBA", img.size, (40, 40, 40, 255))
    out.alpha_composite(img)
    return out


async def _avatar(driver: ObsDriver, size: int = 512) -> np.ndarray:
    png = await driver.screenshot(AVATAR, width=size, height=size)
    return await asyncio.to_thread(_rgba, png)


async def _until(predicate, within: float = 15.0, step: float = 0.1):
    deadline = time.monotonic() + within
    while True:
        value = await predicate()
        if value is not None and value is not False:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(step)


async def _visible(driver: ObsDriver) -> np.ndarray | None:
    shot = await _avatar(driver)
    return shot if shot[256, 256, 3] > 200 else None


async def _text(driver: ObsDriver) -> str:
    data = await driver.call("GetInputSettings", {"inputName": SUBTITLES})
    return data["inputSettings"].get("text", "")


async def _program(driver: ObsDriver) -> str:
    return (await driver.call("GetCurrentProgramScene"))["currentProgramSceneName"]


async def test_obs_shows_the_live_avatar_with_its_colours_mouth_and_subtitles(
        obs_settings, vee, vee_key, live_vee, artifacts):
    aired: list[OnAir] = []
    async with ObsStage(settings=obs_settings, personas=["vee"], keys={"vee": vee_key}) as stage:
        driver = stage.driver
        assert await driver.wait_ready(10)

        def on_air(change: OnAir) -> None:
            aired.append(change)
            stage.on_air(change)

        async with live_vee(obs_settings.live_url(0), on_air) as (stream, output):
            idle = await _until(lambda: _visible(driver))
            assert await _program(driver) == "vstage idle"
            _on_dark(await driver.screenshot(AVATAR, width=512, height=512)).save(
                artifacts / "obs-live-idle-avatar.png")
            # The background is keyed out, the avatar is opaque with its own colours: the
            # green-teal hoodie survives the key.
            assert idle[8, 8, 3] < 10 and idle[500, 8, 3] < 10
            frame = vee.idle(1)[0].numpy()
            hoodie = idle[HOODIE]
            assert hoodie[..., 3].min() > 240, hoodie[..., 3].min()
            diff = np.abs(hoodie[..., :3].astype(int) - frame[HOODIE][..., :3].astype(int))
            assert np.median(diff) < 10 and np.percentile(diff, 99) < 40, diff.max()
            assert np.abs(hoodie[..., :3].astype(int).mean((0, 1))
                          - frame[HOODIE][..., :3].mean((0, 1))).max() < 8

            # Speech: two sentences, the mouth cycling closed / wide open every 4 frames.
            shapes = "XXXXDDDDBBBBDDDD" * 6  # 96 frames: 3.84 s
            sentences = ["Hello from the live stream.", "And here is the second sentence."]
            speech = [await asyncio.to_thread(mouth_frames, vee, shapes, start_frame=100 * i)
                      for i in range(2)]
            seen: list[str] = []
            poller = asyncio.create_task(_follow_text(driver, seen), name="test:subtitles")
            for i, (text, frames) in enumerate(zip(sentences, speech, strict=True)):
                stream.push(performance(frames, text, reply_id="r1", index=i))
            mouths = []
            while stream.speaking:
                # Half size: cheaper for OBS to encode on a busy host, the mouth still shows.
                shot = await _avatar(driver, 256)
                if stream.speaking:
                    mouths.append(shot[MOUTH_HALF][..., :3].astype(int))
                if len(mouths) == 3:
                    png = await driver.screenshot("vstage vee", width=1280, height=720)
                    _on_dark(png).save(artifacts / "obs-live-talking-program.png")
                    assert await _program(driver) == "vstage vee"
                await asyncio.sleep(0.1)
            await stage.handle(ReplyFinished(persona="vee", reply_id="r1",
                                             text=" ".join(sentences)))
            await _until(lambda: _idle_again(driver), within=8)
            poller.cancel()
            _on_dark(await driver.screenshot(AVATAR, width=512, height=512)).save(
                artifacts / "obs-live-after-speech-avatar.png")
            # The subtitle followed the stream: each sentence, in order, as it was on air,
            # then nothing.
            assert [t for t in seen if t] == sentences, (seen, aired)
            assert seen[-1] == ""
            assert [(a.reply_id, a.sentence) for a in aired] == [
                (None, None), ("r1", 0), ("r1", 1), (None, None)]
            # The mouth region changed between screenshots during speech.
            changes = [np.abs(a - b).mean() for a, b in zip(mouths, mouths[1:], strict=False)]
            assert sum(c > 8 for c in changes) >= 3, [round(c, 1) for c in changes]


async def _follow_text(driver: ObsDriver, seen: list[str]) -> None:
    """Record every subtitle OBS shows (polled; a request is ~1 ms)."""
    while True:
        text = (await _text(driver)).replace("\n", " ")
        if not seen or seen[-1] != text:
            seen.append(text)
        await asyncio.sleep(0.03)


async def _idle_again(driver: ObsDriver) -> bool:
    return await _program(driver) == "vstage idle" and await _text(driver) == ""


async def test_obs_restarting_mid_show_gets_the_avatar_back(obs_studio, obs_settings, vee_key,
                                                          live_vee, artifacts):
    async with ObsStage(settings=obs_settings, personas=["vee"], keys={"vee": vee_key}) as stage, \
            live_vee(obs_settings.live_url(0), stage.on_air) as (stream, output):
        driver = stage.driver
        assert await driver.wait_ready(10)
        await _until(lambda: _visible(driver))

        obs_studio.kill()
        await _until(_not_ready(driver), within=5)
        sent = output.frames_sent
        await asyncio.sleep(0.5)
        assert output.frames_sent > sent  # the stream does not wait for OBS

        obs_studio.start()
        assert await driver.wait_ready(10)
        assert driver.connects == 2
        back = time.monotonic()
        shot = await _until(lambda: _visible(driver))
        took = time.monotonic() - back
        _on_dark(await driver.screenshot(AVATAR, width=512, height=512)).save(
            artifacts / "obs-live-after-restart-avatar.png")
        assert shot[8, 8, 3] < 10  # keyed again: setup re-applied the filter
        assert took < 10, took
        assert await _program(driver) == "vstage idle"


def _not_ready(driver: ObsDriver):
    async def check() -> bool:
        return not driver.ready

    return check


async def test_a_clip_era_avatar_source_is_pointed_at_the_stream(obs_settings, vee_key):
    """An OBS set up by an older vstage (a local-file avatar source, a green key) reads the
    live stream after setup, with the persona's key."""
    async with ObsDriver(settings=obs_settings) as driver:
        assert await driver.wait_ready(10)
        from overlays.obs.setup import setup_obs

        await setup_obs(driver, obs_settings, ["old"])
        await driver.call("SetInputSettings", {
            "inputName": "vstage old avatar",
            "inputSettings": {"is_local_file": True, "local_file": "/tmp/x.mp4"}})
        await driver.call("SetSourceFilterSettings", {
            "sourceName": "vstage old avatar", "filterName": "vstage chroma key",
            "filterSettings": {"key_color_type": "green", "similarity": 400}})
        report = await setup_obs(driver, obs_settings, ["old"], {"old": vee_key})
        assert len(report.repaired) == 2, report.repaired
        have = (await driver.call("GetInputSettings", {"inputName": "vstage old avatar"})
                )["inputSettings"]
        assert have["is_local_file"] is False and have["input_format"] == "mpegts"
        assert have["input"].startswith(obs_settings.live_url(0))
        filters = await driver.call("GetSourceFilterList", {"sourceName": "vstage old avatar"})
        (chroma_filter,) = filters["filters"]
        assert chroma_filter["filterSettings"]["key_color_type"] == "custom"
        again = await setup_obs(driver, obs_settings, ["old"], {"old": vee_key})
        assert again.created == [] and again.repaired == []
