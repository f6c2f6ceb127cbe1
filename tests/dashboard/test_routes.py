"""The dashboard's HTTP side on a real studio server and a running orchestrator: the token,
persona edits with the loader's messages, conflicts, live apply, the show's controls, the
audit log, uploads, previews (real Piper and the sprite renderer), and bad input."""

from __future__ import annotations

import io
import wave

import aiohttp
import av
import pytest

from bots.events import ChatMessage, Viewer
from bots.personas.live_reload import LiveReload
from overlays.studio.dashboard import Dashboard, ServerRoster
from overlays.studio.server import ChatResult
from tests.conftest import REPO
from tests.dashboard.conftest import TOKEN, fake_create, studio_server, until
from tests.orchestrator.fakes import chat

API = "/api/dashboard"


@pytest.fixture
async def dash(show, config):
    server = studio_server(config, {pid: rt.config.name
                                    for pid, rt in show.orch.personas.items()})

    async def on_chat(user, text, persona, role):  # the studio's chat box, as the app routes it
        d = show.orch.submit(ChatMessage(viewer=Viewer(id=user, name=user), message=text,
                                         persona=persona, platform="test"))
        return ChatResult(accepted=d.accepted, trace_id=d.trace_id, reason=d.reason)

    server.set_chat_handler(on_chat)
    show.app.server = server
    reload = LiveReload(app=show.app, roster=ServerRoster(server), create=fake_create)
    dashboard = Dashboard(server=server, app=show.app, reload=reload)
    server.add_routes(dashboard.register)
    async with server:
        async with aiohttp.ClientSession(
                base_url=f"http://127.0.0.1:{server.port}",
                headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            yield http, show, server


async def test_every_dashboard_route_needs_the_token(dash):
    http, _, server = dash
    async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{server.port}") as anon:
        for method, path in [("GET", "/dashboard"), ("GET", f"{API}/personas"),
                             ("PUT", f"{API}/personas/mika"), ("POST", f"{API}/live/mika/skip"),
                             ("GET", f"{API}/audit"), ("POST", f"{API}/avatars/x")]:
            async with anon.request(method, path) as r:
                assert r.status == 401, path
    async with http.get("/dashboard") as r:
        assert r.status == 200 and "vstage dashboard" in await r.text()


async def test_a_bad_value_is_shown_on_its_field_then_the_fix_is_saved_and_applied(dash):
    http, show, _ = dash
    async with http.get(f"{API}/personas/mika") as r:
        f = await r.json()
    fields = dict(f["values"])
    fields["llm.temperature"] = "7"
    fields["name"] = ""
    async with http.put(f"{API}/personas/mika",
                        json={"fields": fields, "version": f["version"]}) as r:
        assert r.status == 422
        errors = (await r.json())["errors"]
    assert {e["field"]: e["message"] for e in errors} == {
        "llm.temperature": "Input should be less than or equal to 2",
        "name": "String should have at least 1 character"}
    fields.update({"llm.temperature": "0.5", "name": "Mika"})
    async with http.put(f"{API}/personas/mika",
                        json={"fields": fields, "version": f["version"]}) as r:
        assert r.status == 200, await r.text()
        saved = await r.json()
    assert saved["applied"]["ok"] and not saved["applied"]["added"]
    assert show.orch.personas["mika"].config.llm.temperature == 0.5
    assert "temperature: 0.5" in saved["text"] and saved["version"] != f["version"]


async def test_the_later_of_two_tabs_is_refused_with_a_reload_prompt(dash):
    http, show, _ = dash
    async with http.get(f"{API}/personas/lena") as r:
        f = await r.json()
    one = {**f["values"], "greeting": "Hallo aus Tab eins!"}
    two = {**f["values"], "greeting": "Hallo aus Tab zwei!"}
    async with http.put(f"{API}/personas/lena", json={"fields": one, "version": f["version"],
                                                       "apply": False}) as r:
        assert r.status == 200
    async with http.put(f"{API}/personas/lena", json={"fields": two,
                                                       "version": f["version"]}) as r:
        assert r.status == 409
        body = await r.json()
    assert "changed since you opened it" in body["error"] and "reload" in body["error"]
    async with http.get(f"{API}/personas/lena") as r:
        assert (await r.json())["values"]["greeting"] == "Hallo aus Tab eins!"


async def test_a_new_persona_is_created_and_answers_in_the_studio_without_a_restart(dash):
    http, show, _ = dash
    async with http.get(f"{API}/schema") as r:
        specs = (await r.json())["fields"]
    assert {"id", "llm.temperature", "moderation.mod_only", "avatar"} <= {s["path"] for s in specs}
    fields = {"id": "nova", "name": "Nova", "personality": "A calm night-sky streamer."}
    async with http.post(f"{API}/personas", json={"fields": fields}) as r:
        assert r.status == 201, await r.text()
        made = await r.json()
    assert made["applied"]["ok"] and made["applied"]["added"]
    async with http.get("/api/state") as r:
        assert "nova" in [p["id"] for p in (await r.json())["personas"]]
    async with http.post("/api/chat", json={"text": "hi nova!", "persona": "nova"}) as r:
        assert r.status == 202
        trace = (await r.json())["trace_id"]
    await until(lambda: show.adapter.status_of(trace) == ["spoken"])
    assert show.pipeline.runtimes[-1][0] is show.orch.personas["nova"]
    async with http.post(f"{API}/personas", json={"fields": fields}) as r:
        assert r.status == 409 and "already exists" in (await r.json())["error"]


async def test_duplicate_and_delete_follow_the_show(dash):
    http, show, server = dash
    async with http.post(f"{API}/personas/camille/duplicate",
                         json={"id": "camille-2", "name": "Camille Deux"}) as r:
        assert r.status == 201
    assert show.orch.personas["camille-2"].config.name == "Camille Deux"
    async with http.delete(f"{API}/personas/mika") as r:
        assert r.status == 409 and "default persona" in (await r.json())["error"]
    async with http.delete(f"{API}/personas/camille-2?version=0000") as r:
        assert r.status == 409
    async with http.delete(f"{API}/personas/camille-2") as r:
        assert r.status == 200 and ".trash" in (await r.json())["kept_in"]
    assert "camille-2" not in show.orch.personas
    async with http.get("/api/state") as r:
        assert "camille-2" not in [p["id"] for p in (await r.json())["personas"]]


async def test_the_show_is_run_from_the_live_view(dash):
    http, show, _ = dash
    show.pipeline.clip_s = 5.0
    playing = show.orch.submit(chat("ann", "a long story please"))
    await until(lambda: any(x[1] == "chat" for x in show.stage.log))
    queued = [show.orch.submit(chat(u, f"question from {u}")) for u in ("bob", "cy", "dee")]
    async with http.post(f"{API}/live/mika/pause") as r:
        assert (await r.json())["paused"] and show.orch.is_paused("mika")
    async with http.get(f"{API}/live") as r:
        mika = next(p for p in (await r.json())["personas"] if p["id"] == "mika")
    assert mika["paused"] and mika["on_stage"]
    assert [row["user"] for row in mika["queue"]] == ["bob", "cy", "dee"]
    now = {t["trace_id"]: t["status"] for t in mika["recent"]}
    assert now[playing.trace_id] == "answering" and now[queued[0].trace_id] == "waiting"
    async with http.post(f"{API}/live/mika/queue/{queued[2].trace_id}/promote") as r:
        assert r.status == 200
    assert [row["user"] for row in show.orch.queue_snapshot("mika")] == ["dee", "bob", "cy"]
    async with http.post(f"{API}/live/mika/queue/{queued[0].trace_id}/remove") as r:
        assert r.status == 200
    async with http.post(f"{API}/live/mika/queue/{queued[0].trace_id}/remove") as r:
        assert r.status == 404
    async with http.post(f"{API}/live/mika/skip") as r:
        assert (await r.json())["skipped"] is True
    await until(lambda: show.adapter.status_of(playing.trace_id) == ["interrupted"])
    async with http.post(f"{API}/live/mika/clear") as r:
        assert (await r.json())["cleared"] == 2
    async with http.post(f"{API}/live/mika/resume") as r:
        assert not (await r.json())["paused"]
    async with http.post(f"{API}/live/mika/mod-only", json={"on": True}) as r:
        assert (await r.json())["mod_only"] is True
    assert not show.orch.submit(chat("eve", "hello?")).accepted
    async with http.post(f"{API}/live/mika/mod-only", json={"on": "yes"}) as r:
        assert r.status == 400
    async with http.post(f"{API}/live/nobody/pause") as r:
        assert r.status == 404
    async with http.post(f"{API}/live/mika/explode") as r:
        assert r.status == 404
    async with http.get(f"{API}/live") as r:
        mika = next(p for p in (await r.json())["personas"] if p["id"] == "mika")
    statuses = {t["trace_id"]: t["status"] for t in mika["recent"]}
    assert statuses[playing.trace_id] == "interrupted"
    assert statuses[queued[0].trace_id] == "refused"


async def test_the_audit_view_lists_a_refused_message_and_filters(dash):
    http, show, _ = dash
    d = show.orch.submit(chat("troll", "visit spam.example.com now", persona="lena"))
    assert not d.accepted
    show.orch.submit(chat("ann", "hello mika"))
    await until(lambda: (show.app.config.state_dir / "audit.jsonl").exists()
                and "spam.example" in (show.app.config.state_dir / "audit.jsonl").read_text())
    async with http.get(f"{API}/audit", params={"decision": "reject", "q": "spam"}) as r:
        entries = (await r.json())["entries"]
    assert len(entries) == 1
    assert entries[0]["viewer_name"] == "troll" and entries[0]["persona"] == "lena"
    assert entries[0]["rule"] == "links"
    async with http.get(f"{API}/audit", params={"persona": "mika", "q": "spam"}) as r:
        assert (await r.json())["entries"] == []
    async with http.get(f"{API}/audit", params={"n": "x"}) as r:
        assert r.status == 400


async def test_health_says_what_is_up_and_why_not(dash):
    http, _, _ = dash
    async with http.get(f"{API}/health") as r:
        h = await r.json()
    obs = next(a for a in h["adapters"] if a["platform"] == "obs")
    assert obs["state"] == "off" and "obs.enabled" in obs["reason"]
    assert h["workers"]["show"] == "ok" and set(h["workers"]["llm"]) == {"mika", "lena",
                                                                          "camille"}


async def test_uploads_too_big_or_badly_named_are_refused(dash):
    http, _, _ = dash
    big = aiohttp.FormData()
    big.add_field("file", b"\0" * (50 * 1024 * 1024), filename="huge.png")
    async with http.post(f"{API}/avatars/huge", data=big) as r:
        assert r.status == 413 and "MB" in (await r.json())["error"]
    async with http.post(f"{API}/avatars/..evil", data=b"x") as r:
        assert r.status == 400
    async with http.put(f"{API}/personas/mika", data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                        headers={"Content-Type": "application/json"}) as r:
        assert r.status == 413
    async with http.put(f"{API}/personas/mika", data=b"[1, 2]") as r:
        assert r.status == 400
    async with http.get(f"{API}/personas/Not-An-Id") as r:
        assert r.status == 400


async def test_sprite_art_is_uploaded_and_checked(dash, config):
    http, _, _ = dash
    art = REPO / "config" / "avatars" / "default"
    form = aiohttp.FormData()
    for p in sorted(art.iterdir()):
        if p.is_file():
            form.add_field("file", p.read_bytes(), filename=p.name)
    async with http.post(f"{API}/avatars/vee-copy", data=form) as r:
        assert r.status == 201, await r.text()
        body = await r.json()
    assert body["installed"] and body["folder"] == "avatars/vee-copy"
    assert (config.root / "avatars" / "vee-copy" / "manifest.yaml").exists()
    part = aiohttp.FormData()
    part.add_field("file", (art / "base.png").read_bytes(), filename="base.png")
    async with http.post(f"{API}/avatars/just-base", data=part) as r:
        assert r.status == 422
        body = await r.json()
    assert not body["installed"] and "manifest.yaml is missing" in body["problems"][0]


@pytest.mark.models
async def test_voice_and_avatar_previews_use_the_personas_voice_and_art(dash):
    http, _, _ = dash
    fields = {"id": "vox", "name": "Vox", "personality": "A test voice."}
    async with http.post(f"{API}/personas", json={"fields": fields, "apply": False}) as r:
        assert r.status == 201
    line = "Hello chat, this is my voice."
    async with http.post(f"{API}/personas/vox/voice", json={"text": line}) as r:
        assert r.status == 200 and r.content_type == "audio/wav"
        data = await r.read()
    with wave.open(io.BytesIO(data)) as w:
        seconds = w.getnframes() / w.getframerate()
        assert w.getnchannels() == 1 and 1.0 < seconds < 6.0
    async with http.post(f"{API}/personas/vox/avatar", json={"text": "Hi!"}) as r:
        assert r.status == 200 and r.content_type == "video/webm"
        clip = await r.read()
    with av.open(io.BytesIO(clip)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames > 30  # 1.2 s of idle at 25 fps, then the line
    async with http.post(f"{API}/personas/vox/voice", json={"text": ""}) as r:
        assert r.status == 400
    async with http.post(f"{API}/personas/vox/voice", json={"text": "x" * 400}) as r:
        assert r.status == 400


async def test_a_dropped_character_card_becomes_a_persona_on_the_show(dash, config):
    import json

    from tests.personas.cardfiles import V2_CARD, png_with_text

    http, show, _ = dash
    async with http.post(f"{API}/cards", params={"name": "seraphina.json"},
                         data=json.dumps(V2_CARD).encode()) as r:
        assert r.status == 201, await r.text()
        made = await r.json()
    assert made["id"] == "seraphina" and made["applied"]["ok"]
    assert show.orch.personas["seraphina"].config.name == "Seraphina"
    before = sorted(p.name for p in (config.root / "personas").iterdir())
    bad = png_with_text({"chara": "this is not base64!!"})
    async with http.post(f"{API}/cards", data=bad) as r:
        assert r.status == 422
        body = await r.json()
    assert body["code"] == "bad_base64" and body["error"]
    async with http.post(f"{API}/cards", data=b"") as r:
        assert r.status == 400
    assert sorted(p.name for p in (config.root / "personas").iterdir()) == before


async def test_health_reports_obs_down_with_the_fix(dash):
    from overlays.obs.settings import ObsSettings
    from overlays.obs.stage import ObsStage

    http, show, _ = dash
    cfg = show.app.config
    obs_settings = ObsSettings(enabled=True, port=1)
    show.app.config = cfg.model_copy(update={"app": cfg.app.model_copy(
        update={"obs": obs_settings})})
    show.app.bus = type("Bus", (), {"stages": [ObsStage(settings=obs_settings,
                                                        personas=["mika"])]})()
    async with http.get(f"{API}/health") as r:
        obs = next(a for a in (await r.json())["adapters"] if a["platform"] == "obs")
    assert obs["state"] == "down" and "127.0.0.1:1" in obs["reason"] and obs["fix"]
