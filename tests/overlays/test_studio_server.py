"""The studio server: token on everything private, input validation, stage events pushed to
pages, the live stream's WebRTC signalling endpoint."""

from __future__ import annotations

import re

import aiohttp
import numpy as np
import pytest
from pydantic import SecretStr

from avatar_engine.types import Clip, ClipFile, Performance, Speech
from overlays.stage import (
    ChatShown,
    ClipReady,
    Performed,
    ReplyCancelled,
    ReplyFinished,
    ShowDegraded,
    Stage,
    Transcript,
)
from overlays.studio.server import ChatResult, StudioServer

TOKEN = "t0ken-for-tests-0123456789"


@pytest.fixture
async def studio(tmp_path):
    (tmp_path / "mika").mkdir()
    (tmp_path / "mika" / "r1-00.webm").write_bytes(b"\x1aE\xdf\xa3 fake webm")
    (tmp_path / "secret.txt").write_text("nope")
    received = []

    async def on_chat(user, text, persona, role):
        received.append((user, text, persona, role))
        if text == "reject me":
            return ChatResult(accepted=False, reason="message is empty")
        return ChatResult(accepted=True, trace_id="abc123")

    server = StudioServer(port=0, token=SecretStr(TOKEN), clips_dir=tmp_path,
                          personas={"mika": "Mika"}, on_chat=on_chat)
    async with server:
        server.received = received
        yield server


def url(server, path):
    return f"http://127.0.0.1:{server.port}{path}"


async def test_binds_loopback_by_default(studio):
    assert studio.host == "127.0.0.1"
    assert studio.url("studio").startswith(f"http://127.0.0.1:{studio.port}/studio?token=")


@pytest.mark.parametrize("path", ["/studio", "/overlay", "/api/state", "/clips/mika/r1-00.webm",
                                  "/ws", "/metrics"])
async def test_private_routes_need_the_token(studio, path):
    async with aiohttp.ClientSession() as s:
        for suffix in ("", "?token=wrong", f"?token={TOKEN[:-1]}"):
            async with s.get(url(studio, path + suffix)) as r:
                assert r.status == 401, (path, suffix)
        async with s.post(url(studio, "/api/chat"), json={"text": "hi"}) as r:
            assert r.status == 401
        async with s.post(url(studio, "/api/live/offer"), json=OFFER) as r:
            assert r.status == 401


async def test_pages_and_clips_with_token(studio):
    async with aiohttp.ClientSession() as s:
        async with s.get(url(studio, f"/studio?token={TOKEN}")) as r:
            assert r.status == 200 and "vstage studio" in await r.text()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with s.get(url(studio, "/clips/mika/r1-00.webm"), headers=headers) as r:
            assert r.status == 200 and r.content_type == "video/webm"
        for bad in ("/clips/mika/..%2Fsecret.txt", "/clips/mika/secret.txt",
                    "/clips/..%2F..%2Fetc/passwd.webm"):
            async with s.get(url(studio, bad), headers=headers) as r:
                assert r.status == 404, bad


async def test_chat_validation_and_forwarding(studio):
    h = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=h) as s:
        async with s.post(url(studio, "/api/chat"), data="not json") as r:
            assert r.status == 400 and "JSON" in (await r.json())["error"]
        async with s.post(url(studio, "/api/chat"), json={"text": 5}) as r:
            assert r.status == 400 and "'text'" in (await r.json())["error"]
        async with s.post(url(studio, "/api/chat"), json={"text": "hi", "persona": "zed"}) as r:
            assert r.status == 400 and "zed" in (await r.json())["error"]
        async with s.post(url(studio, "/api/chat"), json={"text": "reject me"}) as r:
            assert r.status == 422 and (await r.json())["error"] == "message is empty"
        async with s.post(url(studio, "/api/chat"),
                          json={"text": "hello", "user": "ann", "persona": "mika"}) as r:
            assert r.status == 202 and (await r.json())["trace_id"] == "abc123"
    assert studio.received[-1] == ("ann", "hello", "mika", "viewer")  # chat rules by default


@pytest.mark.parametrize(("body", "field"), [
    ({"text": "hi", "persona": ["mika"]}, "persona"),
    ({"text": "hi", "persona": {"id": "mika"}}, "persona"),
    ({"text": "hi", "persona": 7}, "persona"),
    ({"text": "hi", "user": ["ann"]}, "user"),
    ({"text": "hi", "user": {"name": "ann"}}, "user"),
    ({"text": ["hi"]}, "text"),
    ({"text": "hi", "role": ["mod"]}, "role"),
    ({"text": "hi", "role": "admin"}, "role"),
    ({"text": "hi", "role": "Broadcaster "}, "role"),
    ({"text": "hi", "admin": True}, "admin"),
])
async def test_chat_fields_of_the_wrong_type_are_400_naming_the_field(studio, body, field):
    h = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=h) as s:
        async with s.post(url(studio, "/api/chat"), json=body) as r:
            assert r.status == 400, await r.text()
            assert f"'{field}'" in (await r.json())["error"]
    assert studio.received == []


@pytest.mark.parametrize("depth", [2_000, 10_000])
async def test_deeply_nested_json_is_400_not_a_crash(studio, depth):
    h = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    bodies = ["[" * depth + "]" * depth,
              '{"text": "hi", "persona": ' + "[" * depth + "]" * depth + "}",
              '{"a":' * depth + "1" + "}" * depth]
    async with aiohttp.ClientSession(headers=h) as s:
        for body in bodies:
            async with s.post(url(studio, "/api/chat"), data=body) as r:
                assert r.status == 400, (body[:30], await r.text())
                assert "error" in await r.json()
        async with s.post(url(studio, "/api/chat"), json={"text": "still here"}) as r:
            assert r.status == 202
    assert [t for _, t, _, _ in studio.received] == ["still here"]


async def test_chat_role_reaches_the_handler(studio):
    h = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=h) as s:
        for role in ("viewer", "subscriber", "vip", "mod", "broadcaster"):
            async with s.post(url(studio, "/api/chat"),
                              json={"text": "hi", "user": "ann", "role": role}) as r:
                assert r.status == 202
    assert [r[3] for r in studio.received] == ["viewer", "subscriber", "vip", "mod",
                                               "broadcaster"]


async def test_studio_page_offers_the_roles_with_viewer_first(studio):
    async with aiohttp.ClientSession() as s:
        async with s.get(url(studio, f"/studio?token={TOKEN}")) as r:
            page = await r.text()
    select = re.search(r'<select id="role".*?</select>', page, re.S)
    assert select, "no role selector on the studio page"
    values = re.findall(r'<option value="([a-z]+)"', select.group(0))
    assert values == ["viewer", "subscriber", "vip", "mod", "broadcaster"]
    assert re.search(r'<option value="viewer" selected>', select.group(0))


def _performance(text: str, seconds: float) -> Performance:
    fps, rate = 25, 16000
    speech = Speech(text=text, audio=np.zeros(int(seconds * rate), np.float32), sample_rate=rate)
    frames = np.zeros((int(seconds * fps), 8, 8, 4), np.uint8)
    return Performance(persona="mika", reply_id="r1", index=0, speech=speech, frames=frames,
                       fps=fps, start_frame=0)


def test_is_a_stage_wanting_what_the_pages_show(tmp_path):
    server = StudioServer(port=0, token=SecretStr(TOKEN), clips_dir=tmp_path,
                          personas={"mika": "Mika"})
    assert isinstance(server, Stage) and server.name == "studio"
    assert server.wants == {ChatShown, Performed, ClipReady, ReplyFinished, ReplyCancelled,
                            ShowDegraded, Transcript}


async def test_stage_events_reach_connected_pages(studio, tmp_path):
    clip = Clip(reply_id="r1", index=0, text="Hello chat!", duration=1.2, fps=25, frames=30,
                files=(ClipFile("webm", tmp_path / "mika" / "r1-00.webm"),))
    events = [
        ChatShown(persona="mika", user="ann", text="hi", reply_id="r1"),
        Performed(_performance("Hello chat!", 1.2)),
        ClipReady(persona="mika", clip=clip),
        ReplyFinished(persona="mika", reply_id="r1", text="Hello chat!"),
        ReplyCancelled(persona="mika", reply_id="r1"),
        ShowDegraded(on=True),
    ]
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(url(studio, f"/ws?token={TOKEN}")) as ws:
            for event in events:
                await studio.handle(event)
            got = [await ws.receive_json(timeout=5) for _ in events]
        async with s.get(url(studio, f"/api/state?token={TOKEN}")) as r:
            state = await r.json()
    assert [m["type"] for m in got] == ["chat", "performed", "clip", "reply_done",
                                        "reply_cancelled", "degraded"]
    assert got[0] == {"type": "chat", "persona": "mika", "user": "ann", "text": "hi",
                      "reply_id": "r1"}
    assert got[1] == {"type": "performed", "persona": "mika", "reply_id": "r1", "index": 0,
                      "text": "Hello chat!", "duration": 1.2}
    assert got[2]["urls"] == {"webm": "/clips/mika/r1-00.webm"}
    assert got[2]["text"] == "Hello chat!" and got[2]["duration"] == 1.2
    assert got[5]["on"] is True
    assert state["degraded"] is True and state["live"] is False  # a page opened now knows


async def test_transcript_reaches_pages_and_pages_opened_later(studio):
    transcript = Transcript(persona="mika", reply_id="r7", user="ann",
                            said="Ich bin gegangen gestern.",
                            answer="Schön! Wohin bist du gestern gegangen?",
                            correction="Ich bin gestern gegangen.",
                            gloss="Nice! Where did you go yesterday?", language="de",
                            platform="studio", replay=False)
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(url(studio, f"/ws?token={TOKEN}")) as ws:
            await studio.handle(transcript)
            got = await ws.receive_json(timeout=5)
        async with s.get(url(studio, f"/api/state?token={TOKEN}")) as r:
            state = await r.json()
    want = {"type": "transcript", "persona": "mika", "reply_id": "r7", "user": "ann",
            "said": "Ich bin gegangen gestern.", "answer": "Schön! Wohin bist du gestern gegangen?",
            "correction": "Ich bin gestern gegangen.",
            "gloss": "Nice! Where did you go yesterday?", "language": "de",
            "platform": "studio", "replay": False}
    assert got == want
    assert state["recent"][-1] == want  # the chat overlay opened now shows it too


OFFER = {"persona": "mika", "sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n", "type": "offer"}


async def test_live_offer_is_answered_by_the_live_stream(studio):
    calls = []

    async def answer(persona: str, sdp: str, kind: str) -> tuple[str, str]:
        calls.append((persona, sdp, kind))
        return "v=0\r\nanswer", "answer"

    h = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=h) as s:
        async with s.post(url(studio, "/api/live/offer"), json=OFFER) as r:
            assert r.status == 503 and "live streaming is off" in (await r.json())["error"]
        studio.set_live(answer)
        async with s.post(url(studio, "/api/live/offer"), json=OFFER) as r:
            assert r.status == 200
            assert await r.json() == {"sdp": "v=0\r\nanswer", "type": "answer"}
        async with s.get(url(studio, "/api/state")) as r:
            assert (await r.json())["live"] is True
    assert calls == [("mika", OFFER["sdp"], "offer")]


@pytest.mark.parametrize(("body", "status", "field"), [
    ({**OFFER, "persona": 5}, 400, "'persona'"),
    ({**OFFER, "sdp": ["v=0"]}, 400, "'sdp'"),
    ({**OFFER, "sdp": ""}, 400, "'sdp'"),
    ({**OFFER, "sdp": "hello"}, 400, "'sdp'"),
    ({**OFFER, "sdp": "v=0" + "a" * 40_000}, 400, "'sdp'"),
    ({"persona": "mika", "sdp": OFFER["sdp"]}, 400, "'type'"),
    ({**OFFER, "type": "answer"}, 400, "'type'"),
    ({**OFFER, "extra": 1}, 400, "'extra'"),
    ({**OFFER, "persona": "zed"}, 404, "zed"),
    ({**OFFER, "persona": "gone"}, 404, "gone"),
    ({**OFFER, "sdp": "v=0 refused"}, 400, "'sdp'"),
])
async def test_bad_live_offers_get_a_reason(studio, body, status, field):
    async def answer(persona: str, sdp: str, kind: str) -> tuple[str, str]:
        if sdp == "v=0 refused":
            raise ValueError("no video media section")
        raise AssertionError("answered a bad offer")

    # "gone" is a persona of the studio whose stream the live side does not know.
    studio._personas["gone"] = "Gone"
    studio.set_live(_live_without("gone", answer))
    h = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=h) as s:
        async with s.post(url(studio, "/api/live/offer"), json=body) as r:
            assert r.status == status, await r.text()
            assert field in (await r.json())["error"]
        async with s.post(url(studio, "/api/live/offer"), data="[[[") as r:
            assert r.status == 400 and "JSON" in (await r.json())["error"]


def _live_without(persona: str, answer):
    async def live(p: str, sdp: str, kind: str) -> tuple[str, str]:
        if p == persona:
            raise KeyError(p)
        return await answer(p, sdp, kind)

    return live


async def test_a_failing_live_answer_is_500_and_the_studio_goes_on(studio):
    async def answer(persona: str, sdp: str, kind: str) -> tuple[str, str]:
        raise RuntimeError("ice exploded")

    studio.set_live(answer)
    h = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=h) as s:
        async with s.post(url(studio, "/api/live/offer"), json=OFFER) as r:
            assert r.status == 500 and "could not answer" in (await r.json())["error"]
        async with s.post(url(studio, "/api/chat"), json={"text": "still here"}) as r:
            assert r.status == 202


async def test_pages_say_when_they_need_clip_files(studio):
    import asyncio

    async def settles(want: bool) -> None:
        for _ in range(100):
            if studio.clips_wanted() is want:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"clips_wanted() stayed {not want}")

    assert studio.clips_wanted() is False
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(url(studio, f"/ws?token={TOKEN}")) as ws:
            await ws.send_str('{"type": "clips", "personas": ["zed", 5]}')  # unknown: ignored
            await ws.send_str("not json")
            await ws.send_str("[" * 5000)
            await asyncio.sleep(0.1)
            assert studio.clips_wanted() is False
            await ws.send_json({"type": "clips", "personas": ["mika"]})  # a page in fallback
            await settles(True)
            await ws.send_json({"type": "clips", "personas": []})  # back on the live stream
            await settles(False)
            await ws.send_json({"type": "clips", "personas": ["mika"]})
            await settles(True)
        await settles(False)  # the page went away


async def test_health_lists_the_adapters_to_token_holders_only(studio):
    from bots.adapters.supervise import AdapterHealth, AdapterState

    down = AdapterHealth(platform="discord", state=AdapterState.DOWN, since=1.0, attempts=1,
                         failures=1, code="auth", reason="the bot token was refused",
                         fix="set discord.token")
    up = AdapterHealth(platform="twitch", state=AdapterState.UP, since=2.0, attempts=1)
    async with aiohttp.ClientSession() as s:
        async with s.get(url(studio, f"/api/health?token={TOKEN}")) as r:
            assert r.status == 200 and await r.json() == {"adapters": []}  # none yet
        studio.set_health(lambda: [up.to_json(), down.to_json()])
        async with s.get(url(studio, "/api/health")) as r:
            assert r.status == 401
        async with s.get(url(studio, "/api/health?token=wrong-token-0123456789")) as r:
            assert r.status == 401
        async with s.get(url(studio, "/api/health"),
                         headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            body = await r.json()
    assert [a["platform"] for a in body["adapters"]] == ["twitch", "discord"]
    assert body["adapters"][0]["state"] == "up"
    assert {k: body["adapters"][1][k] for k in ("state", "code", "reason", "fix")} == {
        "state": "down", "code": "auth", "reason": "the bot token was refused",
        "fix": "set discord.token"}
