"""The talk page's WebRTC side with a Python aiortc peer as the browser: it offers its
microphone (send and receive audio) and a receive-only video through the real HTTP routes,
hears the session's stream and is heard by the session.

Fast tests run the real TalkHub on fake personas and hearing models (a 440 Hz tone is "hello
there", see conftest); the last test runs the whole studio (``StudioApp``) on the embedded
models with a question spoken by Piper.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import shutil
import time
from pathlib import Path

import av
import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiortc import AudioStreamTrack, RTCPeerConnection, RTCSessionDescription
from pydantic import SecretStr

from overlays.live.talk_rtc import TalkRTC, mono_int16
from overlays.studio.server import StudioServer
from overlays.studio.talk_routes import TALK_PREFIXES, TalkRoutes
from tests.live.conftest import eventually
from tests.netutil import free_port
from tests.talk.fakes import silence48, tone48

TOKEN = "talk-rtc-test-token-0123456789"
REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------- mono_int16


def _frame(data: np.ndarray, fmt: str, layout: str, rate: int = 48000) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(data, format=fmt, layout=layout)
    frame.sample_rate = rate
    return frame


def test_stereo_and_float_frames_become_mono_int16():
    left = np.full(960, 1000, np.int16)
    right = np.full(960, 3001, np.int16)
    packed = np.stack([left, right], axis=1).reshape(1, -1)  # interleaved, as aiortc decodes
    out = mono_int16(_frame(packed, "s16", "stereo"))
    assert out.dtype == np.int16 and out.shape == (960,) and set(out.tolist()) == {2000}
    mono = mono_int16(_frame(left.reshape(1, -1), "s16", "mono"))
    assert np.array_equal(mono, left)
    planar = np.stack([np.full(480, 0.5, np.float32), np.full(480, -0.25, np.float32)])
    out = mono_int16(_frame(planar, "fltp", "stereo"))
    assert out.shape == (480,) and abs(int(out[0]) - round(0.125 * 32767)) <= 1
    loud = mono_int16(_frame(np.full((1, 480), 2.0, np.float32), "flt", "mono"))
    assert int(loud.max()) == 32767  # clipped, not wrapped


def test_another_rate_is_resampled_across_frames():
    with pytest.raises(ValueError, match="resampler"):
        mono_int16(_frame(np.zeros((1, 441), np.int16), "s16", "mono", 44100))
    resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
    t = np.arange(44100) / 44100
    tone = (np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16)
    out = np.concatenate([mono_int16(_frame(tone[i:i + 441].reshape(1, -1), "s16", "mono",
                                            44100), resampler)
                          for i in range(0, 44100, 441)])
    assert abs(len(out) - 48000) <= 100  # one second of audio stays one second
    peak = np.fft.rfftfreq(len(out), 1 / 48000)[int(np.argmax(np.abs(np.fft.rfft(out))))]
    assert abs(peak - 440) < 3


# ---------------------------------------------------------------------- a browser


class Mic(AudioStreamTrack):
    """A microphone playing ``samples`` (mono int16 48 kHz) in real time, then silence (a
    browser keeps sending while the mic is open)."""

    def __init__(self, samples: np.ndarray) -> None:
        super().__init__()
        self.samples = samples
        self.at = 0
        self.t0: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.t0 is None:
            self.t0 = time.monotonic()
        else:
            await asyncio.sleep(max(0.0, self.t0 + self.at / 48000 - time.monotonic()))
        chunk = self.samples[self.at:self.at + 960]
        chunk = np.pad(chunk, (0, 960 - len(chunk)))
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self.at
        frame.time_base = fractions.Fraction(1, 48000)
        self.at += 960
        return frame


class Page:
    """The talk page's WebRTC side: its mic (sendrecv audio) and a recvonly video."""

    def __init__(self, mic=None) -> None:
        self.pc = RTCPeerConnection()
        self.mic = mic
        self.video: list = []
        self.audio: list = []
        self._readers: list[asyncio.Task] = []

    async def connect(self, http, sid: str, key: str) -> None:
        if self.mic is not None:
            self.pc.addTrack(self.mic)
        else:
            self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.addTransceiver("video", direction="recvonly")

        @self.pc.on("track")
        def on_track(track) -> None:
            sink = self.video if track.kind == "video" else self.audio
            self._readers.append(asyncio.create_task(self._read(track, sink),
                                                     name=f"test:page:{track.kind}"))

        await self.pc.setLocalDescription(await self.pc.createOffer())
        r = await http.post(f"/api/talk/sessions/{sid}/offer", params={"key": key},
                            json={"sdp": self.pc.localDescription.sdp, "type": "offer"})
        assert r.status == 200, await r.text()
        answer = await r.json()
        assert answer["type"] == "answer" and "VP8" in answer["sdp"]
        await self.pc.setRemoteDescription(RTCSessionDescription(**answer))

    @staticmethod
    async def _read(track, sink: list) -> None:
        try:
            while True:
                sink.append(await track.recv())
        except Exception:
            return

    def audio_rms(self, since: int = 0) -> float:
        """The loudest 20 ms received from index ``since`` on (0..1)."""
        loud = 0.0
        for frame in self.audio[since:]:
            a = frame.to_ndarray().astype(np.float32) / 32768
            loud = max(loud, float(np.sqrt(np.mean(a * a))))
        return loud

    async def close(self) -> None:
        await self.pc.close()
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


async def _until(ws, kind: str, *, seconds: float = 20.0) -> dict:
    async with asyncio.timeout(seconds):
        while True:
            message = await ws.receive_json()
            if message["type"] == kind:
                return message


@pytest.fixture
async def talk(tmp_path, make_hub):
    """The studio server with /talk on the real hub (fake personas and models) and TalkRTC."""
    hub = await make_hub()
    async with TalkRTC() as rtc:
        server = StudioServer(token=SecretStr(TOKEN), clips_dir=tmp_path,
                              personas={"mika": "Mika"})
        routes = TalkRoutes(hub=hub, answer=rtc.answer, authorized=server.authorized)
        server.add_routes(routes.register, self_guarded=TALK_PREFIXES)
        http = TestClient(TestServer(server.app))
        await http.start_server()
        opened = await http.post("/api/talk/sessions", params={"token": TOKEN},
                                 json={"persona": "mika"})
        body = await opened.json()
        yield http, hub, rtc, body["session"], body["key"]
        await routes.aclose()
        await http.close()


async def test_the_mic_is_heard_and_the_answer_is_seen_and_heard(talk):
    http, hub, rtc, sid, key = talk
    ws = await http.ws_connect(f"/api/talk/sessions/{sid}/ws", params={"key": key})
    page = Page(Mic(np.concatenate([silence48(0.3), tone48(440, 1.0), silence48(30.0)])))
    await page.connect(http, sid, key)
    heard = await _until(ws, "heard")
    assert heard["text"] == "hello there"  # the tone went through Opus and hearing
    assert rtc.mic_frames > 20
    await _until(ws, "said")
    before = len(page.audio)
    answer = await _until(ws, "answer")
    assert answer["text"] == "Sentence 0 of my answer. Sentence 1 of my answer."
    await eventually(lambda: len(page.video) >= 10)
    frame = page.video[-1].to_ndarray(format="rgb24")
    assert frame.shape == (24, 64, 3)  # the 32x24 avatar, colour | alpha side by side
    # The answer's voice (tones at 0.3) reached the page, not only silence.
    await eventually(lambda: page.audio_rms(max(0, before - 50)) > 0.05, 5)
    await page.close()
    await ws.close()


async def test_a_new_offer_replaces_the_connection_and_the_end_closes_it(talk):
    http, hub, rtc, sid, key = talk
    session = hub.sessions[sid]
    mic_ends: list[str] = []
    mic_ended = session.mic_ended
    session.mic_ended = lambda: (mic_ends.append(sid), mic_ended())  # type: ignore[method-assign]
    first = Page(Mic(silence48(60.0)))
    await first.connect(http, sid, key)
    await eventually(lambda: len(first.video) >= 3, 15)
    second = Page(Mic(silence48(60.0)))  # the page reloaded
    await second.connect(http, sid, key)
    assert rtc.connections == 1 and rtc.connected(sid)
    await eventually(lambda: len(second.video) >= 3, 15)
    assert rtc.encoder(sid).viewers == 1  # the old connection's viewer is gone
    # The page goes away: its connection closes, the mic ends, the session stays.
    await second.close()
    await eventually(lambda: not rtc.connected(sid), 15)
    await eventually(lambda: bool(mic_ends))
    assert sid in hub.sessions and rtc.encoder(sid) is not None
    # It comes back, then the conversation ends: connection and encoder go with it.
    third = Page(None)  # no microphone (permission denied): still sees and hears
    await third.connect(http, sid, key)
    await eventually(lambda: len(third.video) >= 3, 15)
    assert (await http.delete(f"/api/talk/sessions/{sid}", params={"key": key})).status == 204
    await eventually(lambda: rtc.connections == 0 and rtc.encoder(sid) is None, 10)
    late = await http.post(f"/api/talk/sessions/{sid}/offer", params={"key": key},
                           json={"sdp": "v=0", "type": "offer"})
    assert late.status == 404
    await first.close()
    await third.close()


async def test_a_bad_offer_is_refused_and_leaves_nothing_open(talk):
    http, _, rtc, sid, key = talk
    r = await http.post(f"/api/talk/sessions/{sid}/offer", params={"key": key},
                        json={"sdp": "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\n", "type": "offer"})
    assert r.status == 400 and "could not be used" in (await r.json())["error"]
    assert rtc.connections == 0


async def test_without_the_hearing_extra_the_studio_starts_and_talk_says_why(
        tmp_path, monkeypatch, caplog, config_copy):
    """StudioApp._talk with the ``hearing`` extra missing: a warning, and /talk answers 503
    naming the install line (to the token's owner)."""
    import contextlib

    import bots.app
    from bots.app import StudioApp
    from bots.config import load_config
    from vstage_core.errors import MissingDependency
    from vstage_core.extras import require_extra

    def no_hearing(extra: str, *, feature: str | None = None) -> None:
        if extra == "hearing":
            raise MissingDependency(f"{feature} needs silero_vad, which is not installed: "
                                    "pip install 'vstage[hearing]'")
        require_extra(extra, feature=feature)

    monkeypatch.setattr(bots.app, "require_extra", no_hearing)
    app = StudioApp(load_config(config_copy), port=0)
    server = StudioServer(token=SecretStr(TOKEN), clips_dir=tmp_path,
                          personas={"mika": "Mika"})
    caplog.set_level(logging.WARNING, logger="bots.app")
    async with contextlib.AsyncExitStack() as stack:
        await app._talk(stack, app.config, {}, server, None)
        await stack.enter_async_context(server)
        assert app.talk is None
        assert any("vstage[hearing]" in r.getMessage() for r in caplog.records)
        http = TestClient(TestServer(server.app))
        await http.start_server()
        page = await http.get("/talk", params={"token": TOKEN})
        assert page.status == 503 and "vstage[hearing]" in await page.text()
        await http.close()


# ---------------------------------------------------------------------- the real thing


@pytest.mark.models
async def test_the_studio_hears_a_spoken_question_and_answers_over_webrtc(tmp_path,
                                                                           monkeypatch):
    """``vstage demo``'s app with /talk on the embedded models: Piper asks a question through
    the page's microphone; the websocket shows the words heard, then the persona's answer,
    and the page receives the answer's video and voice."""
    import aiohttp
    from aiortc.contrib.media import MediaPlayer

    from bots.app import StudioApp
    from bots.config import load_config
    from tests.talk.web_audio import write_question

    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    for other in (config / "personas").glob("*.yaml"):
        if other.stem != "mika":
            other.unlink()
    app_yaml = config / "vstage.yaml"
    app_yaml.write_text(app_yaml.read_text().replace("state_dir: var",
                                                     f"state_dir: {tmp_path / 'var'}"))
    monkeypatch.setenv("VSTAGE_STUDIO__TOKEN", TOKEN)
    app = StudioApp(load_config(config), port=free_port())
    runner = asyncio.create_task(app.run(), name="test:studio")
    try:
        ready = asyncio.create_task(app.ready.wait())
        await asyncio.wait({runner, ready}, timeout=180, return_when=asyncio.FIRST_COMPLETED)
        if runner.done():
            runner.result()
        assert app.ready.is_set() and app.talk is not None
        assert app.talk_url() == f"http://127.0.0.1:{app.port}/talk?token={TOKEN}"
        base = f"http://127.0.0.1:{app.server.port}"
        # Asked in the persona's own (loaded) voice: Piper's embedded one.
        wav = await asyncio.to_thread(write_question, tmp_path / "question.wav",
                                      "What is your favourite colour?",
                                      tts=app.talk.personas["mika"].tts)
        async with aiohttp.ClientSession(base) as http:
            body = await (await http.post("/api/talk/sessions", params={"token": TOKEN},
                                          json={"persona": "mika"})).json()
            sid, key = body["session"], body["key"]
            ws = await http.ws_connect(f"/api/talk/sessions/{sid}/ws", params={"key": key})
            player = MediaPlayer(str(wav))
            page = Page(player.audio)
            await page.connect(http, sid, key)
            # Everything up to the answer, as the page shows it. (On a loaded machine a pause
            # in the audio can cut the question in two; both pieces are heard, one answer.)
            seen: list[dict] = []
            silent_until = 0
            async with asyncio.timeout(150):
                while not seen or seen[-1]["type"] != "answer":
                    seen.append(await ws.receive_json())
                    if seen[-1]["type"] == "heard":
                        silent_until = len(page.audio)
            kinds = [m["type"] for m in seen]
            words = " ".join(m["text"] for m in seen if m["type"] == "heard").lower()
            assert ("favourite" in words or "favorite" in words) and (
                "colour" in words or "color" in words), seen
            assert "said" in kinds and kinds.index("said") > kinds.index("heard"), kinds
            assert seen[-1]["text"].strip(), seen[-1]
            await eventually(lambda: page.audio_rms(silent_until) > 0.02, 10)
            width, height = app.streams["mika"].size  # the avatar's: colour | alpha
            assert len(page.video) > 25
            assert (page.video[-1].width, page.video[-1].height) == (2 * width, height)
            await page.close()
            await ws.close()
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
