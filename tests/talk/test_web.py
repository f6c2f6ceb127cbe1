"""The /talk HTTP API on the real studio server (its guard, ``add_routes``, token check) and
the real TalkHub (on fake personas, fake hearing models and a fake reply pipeline: see
conftest's ``make_hub``): who gets the page and a session, what a refusal says, the cap, keys,
limits and the page's websocket commands."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from overlays.studio.server import StudioServer
from overlays.studio.talk_routes import TALK_PREFIXES, TalkLimits, TalkRoutes
from tests.talk.fakes import Clock

TOKEN = "talk-web-test-token-0123456789"
PAGE = Path(__file__).resolve().parents[2] / "overlays" / "web" / "talk.html"


class Answers:
    """Stands in for TalkRTC.answer: records the sessions it answered."""

    def __init__(self) -> None:
        self.sessions: list[str] = []

    async def __call__(self, session, sdp: str, kind: str) -> tuple[str, str]:
        if "bad" in sdp:
            raise ValueError("no audio section")
        self.sessions.append(session.id)
        return "v=0\r\nanswer", "answer"


async def _client(tmp_path: Path, *, hub, invites: bool = True, limits: TalkLimits | None = None,
                  answer=None, clock=None) -> tuple[TestClient, TalkRoutes]:
    server = StudioServer(token=SecretStr(TOKEN), clips_dir=tmp_path, personas={"mika": "Mika"})
    routes = TalkRoutes(hub=hub, answer=answer or Answers(), authorized=server.authorized,
                        invites=invites,
                        max_sessions=hub.settings.max_sessions if hub else 0,
                        idle_timeout_s=hub.settings.idle_timeout_s if hub else 0, limits=limits,
                        unavailable="hearing is not installed: pip install 'vstage[hearing]'",
                        **({"clock": clock} if clock else {}))
    server.add_routes(routes.register, self_guarded=TALK_PREFIXES)
    client = TestClient(TestServer(server.app))
    await client.start_server()
    return client, routes


HUB = {"personas": ("mika", "lena"), "max_sessions": 2, "idle_timeout_s": 90.0,
       "invite_ttl_s": 60.0}


@pytest.fixture
async def web(tmp_path, make_hub):
    clock = Clock()
    hub = await make_hub(clock=clock, access="invite", **HUB)
    client, routes = await _client(tmp_path, hub=hub, clock=clock)
    yield client, hub, clock
    await routes.aclose()
    await client.close()


async def _open(client: TestClient, persona: str = "mika", **query: str):
    return await client.post("/api/talk/sessions", params=query or {"token": TOKEN},
                             json={"persona": persona})


async def test_the_page_opens_with_the_token_and_is_refused_without(web):
    client, _, _ = web
    ok = await client.get("/talk", params={"token": TOKEN})
    assert ok.status == 200
    assert "text/html" in ok.headers["Content-Type"]
    assert (await ok.text()) == PAGE.read_text()
    for params, why in (({}, "needs an invite link or the studio"),
                        ({"token": "wrong"}, "access token in this link is wrong"),
                        ({"invite": "nonsense"}, "invite link is not valid")):
        refused = await client.get("/talk", params=params)
        assert refused.status == 401
        assert "text/html" in refused.headers["Content-Type"]
        assert why in await refused.text()


async def test_an_invite_opens_once_then_says_already_used_and_expires(web):
    client, _, clock = web
    made = await client.post("/api/talk/invites", params={"token": TOKEN}, json={})
    assert made.status == 201
    url = (await made.json())["url"]
    assert url.startswith(f"http://{client.host}:{client.port}/talk?invite=")
    code = url.split("invite=")[1]
    assert (await client.get("/talk", params={"invite": code})).status == 200
    # The page lists the personas with the invite (not using it up) ...
    listed = await client.get("/api/talk/personas", params={"invite": code})
    assert listed.status == 200
    assert (await client.get("/talk", params={"invite": code})).status == 200
    # ... and starting a conversation uses it.
    opened = await _open(client, invite=code)
    assert opened.status == 201
    again = await client.get("/talk", params={"invite": code})
    assert again.status == 401 and "already used" in await again.text()
    assert (await _open(client, invite=code)).status == 401
    # A reload of the conversation's own page still works (the invite is spent by then).
    body = await opened.json()
    reload = await client.get("/talk", params={"session": body["session"], "key": body["key"]})
    assert reload.status == 200
    late = (await (await client.post("/api/talk/invites", params={"token": TOKEN},
                                     json={"uses": 2})).json())["url"].split("invite=")[1]
    clock.t += 61.0
    expired = await client.get("/talk", params={"invite": late})
    assert expired.status == 401 and "has expired" in await expired.text()


async def test_an_invite_for_one_persona_opens_only_that_one(web):
    client, hub, _ = web
    made = await client.post("/api/talk/invites", params={"token": TOKEN},
                              json={"persona": "lena"})
    code = (await made.json())["url"].split("invite=")[1]
    wrong = await _open(client, "mika", invite=code)
    assert wrong.status == 403 and "for 'lena'" in (await wrong.json())["error"]
    assert not hub.sessions  # the session it briefly opened is gone


async def test_invites_need_the_token_and_the_invite_mode(web, tmp_path, make_hub):
    client, _, _ = web
    assert (await client.post("/api/talk/invites", json={})).status == 401
    assert (await client.post("/api/talk/invites", params={"token": "nope"}, json={})).status \
        == 401
    for body, field in (({"persona": "nobody"}, "persona"), ({"uses": 0}, "uses"),
                        ({"uses": "2"}, "uses"), ({"uses": True}, "uses"),
                        ({"colour": "red"}, "colour")):
        bad = await client.post("/api/talk/invites", params={"token": TOKEN}, json=body)
        assert bad.status == 400 and field in (await bad.json())["error"], body
    hub = await make_hub(access="token")
    off, routes = await _client(tmp_path, hub=hub, invites=False)
    try:
        refused = await off.post("/api/talk/invites", params={"token": TOKEN}, json={})
        assert refused.status == 409 and "talk.access" in (await refused.json())["error"]
        code = hub.invite()
        page = await off.get("/talk", params={"invite": code})
        assert page.status == 401 and "invite links are off" in (await page.text()).lower()
        assert (await _open(off, invite=code)).status == 401
    finally:
        await routes.aclose()
        await off.close()


async def test_sessions_open_up_to_the_cap_then_full_with_retry_after(web):
    client, hub, _ = web
    info = await (await client.get("/api/talk/personas", params={"token": TOKEN})).json()
    assert info == {"personas": hub.personas_info(), "sessions": 0, "max_sessions": 2}
    one = await _open(client)
    assert one.status == 201
    body = await one.json()
    assert set(body) == {"session", "key", "persona", "language", "idle_timeout_s"}
    assert body["persona"] == "mika" and body["language"] == "en"
    assert body["idle_timeout_s"] == 90.0 and body["session"] in hub.sessions
    two = await _open(client, "lena")
    assert (await two.json())["persona"] == "lena"
    full = await _open(client)
    # The hub's own estimate: when the stalest conversation times out (nobody spoke yet).
    assert full.status == 503
    assert full.headers["Retry-After"] == "90"
    assert await full.json() == {"error": "full", "retry_after_s": 90}
    # Ending one frees its place.
    gone = await client.delete(f"/api/talk/sessions/{body['session']}",
                               params={"key": body["key"]})
    assert gone.status == 204 and body["session"] not in hub.sessions
    assert (await _open(client)).status == 201


async def test_opening_refuses_bad_requests(web):
    client, hub, _ = web
    assert (await client.post("/api/talk/sessions", json={"persona": "mika"})).status == 401
    unknown = await _open(client, "nobody")
    assert unknown.status == 404 and "unknown persona" in (await unknown.json())["error"]
    for data in (b"not json", b"[1]", json.dumps({"persona": "mika", "x": 1}).encode(),
                 json.dumps({"persona": 3}).encode()):
        bad = await client.post("/api/talk/sessions", params={"token": TOKEN}, data=data)
        assert bad.status == 400 and (await bad.json())["error"], data
    assert not hub.sessions


async def test_a_wrong_key_is_an_unknown_session(web):
    client, hub, _ = web
    body = await (await _open(client)).json()
    sid = body["session"]
    for key in ("wrong", body["key"][:-1], ""):
        params = {"key": key}
        offer = await client.post(f"/api/talk/sessions/{sid}/offer", params=params,
                                  json={"sdp": "v=0", "type": "offer"})
        ws = await client.get(f"/api/talk/sessions/{sid}/ws", params=params)
        delete = await client.delete(f"/api/talk/sessions/{sid}", params=params)
        end = await client.post(f"/api/talk/sessions/{sid}/end", params=params)
        for r in (offer, ws, delete, end):
            assert r.status == 404, (key, r.url)
            # Exactly what an unknown session gets: nothing tells that this one exists.
            assert await r.json() == {"error": "no such conversation (it ended, or the link "
                                               "is wrong)"}
    assert sid in hub.sessions
    # The page's sendBeacon on unload ends it once the grace time has passed.
    assert (await client.post(f"/api/talk/sessions/{sid}/end",
                              params={"key": body["key"]})).status == 204
    assert sid in hub.sessions  # a reload would be back in time
    await _eventually(lambda: sid not in hub.sessions, 10.0)
    ended = await client.get("/talk", params={"session": sid, "key": body["key"]})
    assert ended.status == 401 and "has ended" in await ended.text()


async def test_offers_are_answered_checked_and_limited(tmp_path, make_hub):
    hub, answers = await make_hub(), Answers()
    client, routes = await _client(tmp_path, hub=hub, answer=answers,
                                   limits=TalkLimits(offers_per_min=4, offer_burst=4))
    try:
        body = await (await _open(client)).json()
        url, params = f"/api/talk/sessions/{body['session']}/offer", {"key": body["key"]}
        ok = await client.post(url, params=params, json={"sdp": "v=0\r\n", "type": "offer"})
        assert ok.status == 200 and await ok.json() == {"sdp": "v=0\r\nanswer", "type": "answer"}
        assert answers.sessions == [body["session"]]
        for payload, status in (({"sdp": "v=0", "type": "answer"}, 400),
                                ({"sdp": "hello", "type": "offer"}, 400),
                                ({"sdp": "v=0 bad", "type": "offer"}, 400)):
            r = await client.post(url, params=params, json=payload)
            assert r.status == status and (await r.json())["error"], payload
        # Four offers in a row (good or bad), then one every 15 s: the fifth waits.
        limited = await client.post(url, params=params, json={"sdp": "v=0", "type": "offer"})
        assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
    finally:
        await routes.aclose()
        await client.close()


async def _until(ws, kind: str, *, seconds: float = 10.0) -> dict:
    """The next message of type ``kind`` on ``ws`` (others are skipped)."""
    async with asyncio.timeout(seconds):
        while True:
            message = await ws.receive_json()
            if message["type"] == kind:
                return message


async def test_the_websocket_carries_messages_both_ways(web):
    client, hub, _ = web
    body = await (await _open(client)).json()
    session = hub.sessions[body["session"]]
    ws = await client.ws_connect(f"/api/talk/sessions/{body['session']}/ws",
                                 params={"key": body["key"]})
    assert (await ws.receive_json(timeout=5)) == {"type": "state", "state": "listening"}
    await ws.send_json({"type": "text", "text": "Hello, how are you?"})
    heard = await _until(ws, "heard")
    assert heard["text"] == "Hello, how are you?"
    answer = await _until(ws, "answer")
    assert answer["text"] == "Sentence 0 of my answer. Sentence 1 of my answer."
    await ws.send_json({"type": "mode", "mode": "ptt"})
    await ws.send_json({"type": "talking", "down": True})
    await ws.send_json({"type": "client", "state": "mic-muted"})
    notice = await _until(ws, "notice")  # the session's own word on the muted mic
    assert "mut" in notice["text"].lower(), notice
    assert session.mode == "ptt" and session.talking is True
    await ws.send_json({"type": "talking", "down": False})
    await ws.send_json({"type": "client", "state": "mic-denied"})
    await _until(ws, "notice")
    assert session.talking is False
    for bad, says in (({"type": "mode", "mode": "loud"}, "handsfree, ptt"),
                      ({"type": "talking", "down": "yes"}, "true or false"),
                      ({"type": "client", "state": "happy"}, "mic-denied"),
                      ({"type": "text", "text": " "}, "non-empty"),
                      ({"type": "text", "text": "x" * 2001}, "longer than"),
                      ({"type": "dance"}, "unknown message type"),
                      ([1, 2], "JSON objects")):
        await ws.send_json(bad)
        notice = await _until(ws, "notice")
        assert notice["level"] == "error" and says in notice["text"], (bad, notice)
    # The session ends (idle): the page is told and the socket closes.
    await hub.close(session.id, "idle")
    assert (await _until(ws, "ended")) == {"type": "ended", "reason": "idle"}
    assert (await ws.receive(timeout=5)).type in (WSMsgType.CLOSE, WSMsgType.CLOSED,
                                                  WSMsgType.CLOSING)


async def test_a_reloaded_page_gets_the_transcript_and_floods_are_cut(tmp_path, make_hub):
    hub = await make_hub()
    client, routes = await _client(tmp_path, hub=hub, clock=Clock(),  # no refill meanwhile
                                   limits=TalkLimits(messages_per_s=0.5, message_burst=3,
                                                     sockets=2))
    try:
        body = await (await _open(client)).json()
        url, params = f"/api/talk/sessions/{body['session']}/ws", {"key": body["key"]}
        first = await client.ws_connect(url, params=params)
        await first.send_json({"type": "text", "text": "Tell me a story."})
        await _until(first, "answer")
        # Three commands in a burst are fine (the line above was one); more are refused, each
        # with a notice.
        for mode in ("ptt", "ptt", "handsfree", "handsfree"):
            await first.send_json({"type": "mode", "mode": mode})
        slow = [await _until(first, "notice"), await _until(first, "notice")]
        assert [m["text"] for m in slow] == ["too many messages: slow down"] * 2
        assert hub.sessions[body["session"]].mode == "ptt"
        # A second page (a reload) first gets the state and what was said so far.
        second = await client.ws_connect(url, params=params)
        replay = [await second.receive_json(timeout=5) for _ in range(2)]
        assert replay[0]["type"] == "state"
        assert replay[1]["type"] == "heard" and replay[1]["text"] == "Tell me a story."
        third = await client.get(url, params=params)
        assert third.status == 429
        await first.close()
        await second.close()
    finally:
        await routes.aclose()
        await client.close()


async def test_without_a_hub_talk_says_why_to_the_owner_only(tmp_path):
    client, routes = await _client(tmp_path, hub=None)
    try:
        owner = await client.get("/talk", params={"token": TOKEN})
        assert owner.status == 503 and "vstage[hearing]" in await owner.text()
        stranger = await client.get("/talk")
        assert stranger.status == 503 and "vstage[hearing]" not in await stranger.text()
        api = await client.post("/api/talk/sessions", params={"token": TOKEN},
                                json={"persona": "mika"})
        assert api.status == 503 and "hearing" in (await api.json())["error"]
        # The rest of the studio still needs its token.
        assert (await client.get("/api/state")).status == 401
    finally:
        await routes.aclose()
        await client.close()


async def test_closing_the_routes_closes_open_sockets(web):
    client, _, _ = web
    body = await (await _open(client)).json()
    ws = await client.ws_connect(f"/api/talk/sessions/{body['session']}/ws",
                                 params={"key": body["key"]})
    await ws.receive_json(timeout=5)
    await asyncio.wait_for(client.server.app.shutdown(), 5)
    assert (await ws.receive(timeout=5)).type in (WSMsgType.CLOSE, WSMsgType.CLOSED,
                                                  WSMsgType.CLOSING)


async def test_vstage_talk_invite_prints_a_link_from_the_running_studio(
        tmp_path, make_hub, config_copy, monkeypatch, capsys):
    import bots.cli
    from bots.cli import main
    from tests.netutil import free_port

    # main() would swap the root logger's handlers for one on this test's captured stderr.
    monkeypatch.setattr(bots.cli, "setup_logging", lambda **_: None)
    monkeypatch.setenv("VSTAGE_STUDIO__TOKEN", TOKEN)
    port = free_port()
    argv = ["--config", str(config_copy), "talk", "invite", "--port", str(port)]
    # Nobody listening yet: one clear line.
    assert await asyncio.to_thread(main, argv) == 2
    assert "no studio answering" in capsys.readouterr().err

    async def studio(invites: bool):
        hub = await make_hub(personas=("mika", "lena"), access="invite" if invites else "token")
        server = StudioServer(token=SecretStr(TOKEN), port=port, clips_dir=tmp_path,
                              personas={"mika": "Mika"})
        routes = TalkRoutes(hub=hub, answer=Answers(), authorized=server.authorized,
                            invites=invites)
        server.add_routes(routes.register, self_guarded=TALK_PREFIXES)
        await server.start()
        return hub, server

    hub, server = await studio(True)
    try:
        assert await asyncio.to_thread(main, [*argv, "--persona", "lena", "--uses", "2"]) == 0
        url = capsys.readouterr().out.strip()
        assert url.startswith(f"http://127.0.0.1:{port}/talk?invite=")
        code = url.split("invite=")[1]
        assert hub.check_invite(code) and hub.redeem(code) == "lena"
        assert await asyncio.to_thread(main, [*argv, "--persona", "nobody"]) == 2
        assert "unknown persona 'nobody'" in capsys.readouterr().err
    finally:
        await server.stop()
    hub, server = await studio(False)
    try:
        assert await asyncio.to_thread(main, argv) == 2
        assert "talk.access" in capsys.readouterr().err
    finally:
        await server.stop()


async def test_a_reload_beacon_does_not_end_the_conversation(web, monkeypatch):
    """A reload sends the goodbye beacon, then connects again at once: the conversation
    goes on; a page that does not come back is ended after the grace time."""
    import overlays.studio.talk_routes as routes_module

    monkeypatch.setattr(routes_module, "_LEAVE_GRACE_S", 0.3)
    client, hub, _ = web
    body = await (await _open(client)).json()
    sid, params = body["session"], {"key": body["key"]}
    assert (await client.post(f"/api/talk/sessions/{sid}/end", params=params)).status == 204
    ws = await client.ws_connect(f"/api/talk/sessions/{sid}/ws", params=params)
    await asyncio.sleep(0.6)
    assert sid in hub.sessions
    await ws.close()
    other = await (await _open(client)).json()
    assert (await client.post(f"/api/talk/sessions/{other['session']}/end",
                              params={"key": other["key"]})).status == 204
    await _eventually(lambda: other["session"] not in hub.sessions, 5.0)
    assert sid in hub.sessions


async def _eventually(cond, seconds: float) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "not in time"
        await asyncio.sleep(0.05)
