"""The transparent overlay page (an OBS browser source) in headless Chromium playing clips (the
fallback when the server streams nothing live): its background is really transparent, subtitles
follow the clips, and a wrong token gets nothing. The live stream: test_live.py."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avatar_engine.clips.encode import encode_clip
from avatar_engine.types import Clip
from overlays.stage import ClipReady
from tests.browser.threaded import ThreadedStudio

pytestmark = [pytest.mark.browser]

TOKEN = "overlay-test-token-0123456789"
SIZE = (640, 480)


class _Studio(ThreadedStudio):
    """The studio server of these tests, on its own loop in a thread."""

    def __init__(self, clips_dir: Path) -> None:
        super().__init__(clips_dir, token=TOKEN, personas={"ovl": "Overlay"})


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    clips = tmp_path_factory.mktemp("overlay-clips")
    s = _Studio(clips)
    yield s
    s.close()


def _clip(clips_dir: Path, reply: str, index: int, text: str, seconds: float = 1.5) -> Clip:
    """A WebM (VP9 with alpha): an opaque red square in the middle of a transparent frame."""
    fps, n = 25, round(seconds * 25)
    frames = np.zeros((n, 128, 128, 4), np.uint8)
    frames[:, 32:96, 32:96] = (230, 30, 30, 255)
    files = encode_clip(frames=frames, audio=np.zeros(n * 882, np.float32), sample_rate=22050,
                        fps=fps, out_base=clips_dir / "ovl" / f"{reply}-{index}",
                        formats=("webm",))
    return Clip(reply_id=reply, index=index, text=text, duration=n / fps, fps=fps, frames=n,
                files=files)


def _open(browser, studio) -> object:
    page = browser.new_page(viewport={"width": SIZE[0], "height": SIZE[1]})
    page.goto(studio.server.url("overlay", persona="ovl"))
    page.wait_for_function("() => window.vstage && window.vstage.players"
                           " && window.vstage.players.ovl")
    page.wait_for_timeout(300)  # the websocket connects right after the players mount
    return page


def _alpha(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def test_background_is_really_transparent(browser, studio, artifacts):
    page = _open(browser, studio)
    empty = _alpha(page.screenshot(omit_background=True))
    assert empty.shape[:2] == (SIZE[1], SIZE[0])
    assert empty[..., 3].max() == 0  # nothing at all is drawn before anyone speaks

    clip = _clip(studio.clips_dir, "t", 0, "See through me.")
    studio.run(studio.server.handle(ClipReady(persona="ovl", clip=clip)))
    page.wait_for_function("() => window.vstage.players.ovl.played.length >= 1", timeout=15_000)
    page.wait_for_timeout(300)
    shot = page.screenshot(omit_background=True)
    (artifacts / "overlay.png").write_bytes(shot)
    rgba = _alpha(shot)
    h, w = rgba.shape[:2]
    r, g, b, a = rgba[h // 2, w // 2]  # the avatar's square, scaled into the middle
    assert a == 255 and r > 180 and g < 90, (r, g, b, a)
    for y, x in ((5, 5), (5, w - 5), (h // 2, 10), (h // 2, w - 10)):
        assert rgba[y, x, 3] == 0, (y, x, rgba[y, x])  # around the avatar: transparent
    page.close()


def test_subtitles_follow_the_clips(browser, studio):
    page = _open(browser, studio)
    texts = ["First sentence here.", "Then a second one."]
    for i, text in enumerate(texts):
        clip = _clip(studio.clips_dir, "s", i, text, seconds=1.0)
        studio.run(studio.server.handle(ClipReady(persona="ovl", clip=clip)))
    sub = "[data-persona=ovl] .subtitle"
    page.wait_for_function(f"() => document.querySelector('{sub}').textContent === "
                           f"{texts[0]!r}", timeout=15_000)
    assert "visible" in page.get_attribute(sub, "class")
    page.wait_for_function(f"() => document.querySelector('{sub}').textContent === "
                           f"{texts[1]!r}", timeout=15_000)
    played = page.evaluate("() => window.vstage.players.ovl.played.map(p => p.text)")
    assert played == texts
    page.close()


def test_wrong_token_is_refused(browser, studio):
    page = browser.new_page()
    base = f"http://127.0.0.1:{studio.server.port}"
    for url in (f"{base}/overlay?token=wrong-token", f"{base}/overlay",
                f"{base}/api/state?token=wrong-token", f"{base}/ws?token=wrong-token"):
        resp = page.goto(url)
        assert resp.status == 401, url
        assert "ovl" not in resp.text()
    # And the page's own websocket never opens with a wrong token.
    page.goto(f"{base}/static/player.js")
    opened = page.evaluate(
        """() => new Promise((done) => {
               const ws = new WebSocket(`ws://${location.host}/ws?token=wrong-token`);
               ws.onopen = () => done(true);
               ws.onerror = () => done(false);
               setTimeout(() => done(false), 3000);
           })""")
    assert opened is False
    page.close()
