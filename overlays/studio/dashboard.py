"""The streamer's control room: ``/dashboard`` and its ``/api/dashboard/`` endpoints.

Every route needs the studio token (the studio's guard checks it). The dashboard edits the
persona files (:mod:`bots.personas.editor`), applies them to the running show
(:mod:`bots.personas.live_reload`), and drives the show's controls: pause, resume, skip,
clear, mod-only, the queue's promote and remove. It reads the moderation audit log, the
traces and the health of the platforms and workers.

It is the one studio module wired to the app itself (``install_dashboard(server, app=...)``,
called by ``bots.app``): a control surface for the whole show, where the other studio routes
know only the stage. Handlers read the app's parts (orchestrator, config, streams) when a
request comes, so the routes can be added before the show starts.

=================================================  =============================================
``GET /dashboard``                                 the page
``GET /api/dashboard/schema``                      the persona form's fields
``GET /api/dashboard/personas``                    persona files, on the show or not
``POST /api/dashboard/personas``                   create ``{"fields"|"text", "apply"?}``
``GET /api/dashboard/personas/{id}``               file, version, form values, problems
``PUT /api/dashboard/personas/{id}``               save ``{"fields"|"text", "version"}``; 409
                                                   when it changed since, 422 with ``errors``
``POST /api/dashboard/personas/{id}/validate``     ``{"fields"|"text"}`` -> ``{"errors"}``
``POST /api/dashboard/personas/{id}/duplicate``    ``{"id", "name"?}``
``DELETE /api/dashboard/personas/{id}?version=V``  moved to the trash, off the show
``POST /api/dashboard/personas/{id}/voice``        ``{"text"}`` -> WAV
``POST /api/dashboard/personas/{id}/avatar``       ``{"text"?}`` -> WebM: idle, then the line
``POST /api/dashboard/avatars/{name}``             multipart sprite files or a zip -> the check
``GET /api/dashboard/avatars/{name}``              the check of an existing sprite folder
``POST /api/dashboard/cards``                      a Character Card (PNG/JSON body) -> persona
``GET /api/dashboard/live``                        per persona: paused, mod-only, queue, outcomes
``POST /api/dashboard/live/{id}/{action}``         pause, resume, skip, clear
``POST /api/dashboard/live/{id}/mod-only``         ``{"on": bool}``
``POST /api/dashboard/live/{id}/queue/{trace}/{a}``  promote, remove
``GET /api/dashboard/audit?persona&decision&q&n``  the audit log's last lines, filtered
``GET /api/dashboard/health``                      platforms, OBS, LLM/TTS/render health
=================================================  =============================================
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import tempfile
import wave
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from aiohttp import BodyPartReader, web

from vstage_core.errors import ConfigError, VStageError

if TYPE_CHECKING:
    from bots.app import StudioApp
    from bots.personas.editor import PersonaEditor, PersonaFile
    from bots.personas.live_reload import LiveReload
    from bots.personas.runtime import PersonaRuntime
    from overlays.live.webrtc import LiveRTC
    from overlays.studio.server import StudioServer

__all__ = ["Dashboard", "ServerRoster", "install_dashboard"]

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
_PERSONA_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_TRACE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")
_JSON_MAX = 1024 * 1024  # a persona with a big lorebook fits
_CARD_MAX = 12 * 1024 * 1024
_PREVIEW_TEXT_MAX = 300
_AUDIT_TAIL_BYTES = 4 * 1024 * 1024
_IDLE_PREVIEW_S = 1.2
_ACTIONS = ("pause", "resume", "skip", "clear")


class _Refused(Exception):
    """A request the dashboard answers with an error status and a reason (never logged as a
    failure: it is the client's input)."""

    def __init__(self, status: int, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.extra = extra


class ServerRoster:
    """Keeps the studio's persona list (the pages' pickers, ``/api/chat``'s check) in step
    with the show. The studio server has no public setter for it yet; this sibling module
    updates its two maps in one place, so such a setter replaces two lines."""

    def __init__(self, server: StudioServer) -> None:
        self._server = server

    def show_persona(self, pid: str, name: str, language: str) -> None:
        self._server._personas[pid] = name
        self._server._languages[pid] = language

    def hide_persona(self, pid: str) -> None:
        self._server._personas.pop(pid, None)
        self._server._languages.pop(pid, None)
        self._server._idle.pop(pid, None)


class Dashboard:
    """The dashboard's routes over a running app.

    Args:
        server: the studio server the routes are added to.
        app: the studio app whose show the dashboard runs.
        rtc: the app's WebRTC side (see :class:`~bots.personas.live_reload.LiveReload`).
        max_upload_bytes: the largest sprite upload accepted.
        reload: what applies personas to the show (default: a
            :class:`~bots.personas.live_reload.LiveReload` of ``app``; tests pass their own).
    """

    def __init__(self, *, server: StudioServer, app: StudioApp, rtc: LiveRTC | None = None,
                 max_upload_bytes: int | None = None, reload: LiveReload | None = None
                 ) -> None:
        from bots.app import make_idle_loop
        from bots.config import persona_file
        from bots.personas.editor import MAX_UPLOAD_BYTES, PersonaEditor
        from bots.personas.live_reload import LiveReload

        self.server = server
        self.app = app
        cfg = app.config
        self.config_root = cfg.root
        self.personas_dir = persona_file(cfg, cfg.app.default_persona).parent
        self.avatars_dir = self.config_root / "avatars"
        self.editor: PersonaEditor = PersonaEditor(
            personas_dir=self.personas_dir, default_persona=self._default_persona)
        self.reload: LiveReload = reload or LiveReload(
            app=app, roster=ServerRoster(server), rtc=rtc, idle_loop=make_idle_loop)
        self.max_upload_bytes = max_upload_bytes or MAX_UPLOAD_BYTES

    def _default_persona(self) -> str:
        orch = self.app.orchestrator
        return orch.default_persona if orch is not None else self.app.config.app.default_persona

    # ------------------------------------------------------------------ routes

    def register(self, app: web.Application) -> None:
        """Add the page and the endpoints (``StudioServer.add_routes``)."""
        r = app.router
        r.add_get("/dashboard", self._page)
        p = "/api/dashboard"
        r.add_get(f"{p}/schema", self._wrap(self._schema))
        r.add_get(f"{p}/personas", self._wrap(self._list))
        r.add_post(f"{p}/personas", self._wrap(self._create))
        r.add_get(f"{p}/personas/{{pid}}", self._wrap(self._read))
        r.add_put(f"{p}/personas/{{pid}}", self._wrap(self._save))
        r.add_delete(f"{p}/personas/{{pid}}", self._wrap(self._delete))
        r.add_post(f"{p}/personas/{{pid}}/validate", self._wrap(self._validate))
        r.add_post(f"{p}/personas/{{pid}}/duplicate", self._wrap(self._duplicate))
        r.add_post(f"{p}/personas/{{pid}}/voice", self._wrap(self._voice))
        r.add_post(f"{p}/personas/{{pid}}/avatar", self._wrap(self._avatar))
        r.add_get(f"{p}/avatars/{{name}}", self._wrap(self._avatar_check))
        r.add_post(f"{p}/avatars/{{name}}", self._wrap(self._avatar_upload))
        r.add_post(f"{p}/cards", self._wrap(self._card))
        r.add_get(f"{p}/live", self._wrap(self._live))
        r.add_post(f"{p}/live/{{pid}}/mod-only", self._wrap(self._mod_only))
        r.add_post(f"{p}/live/{{pid}}/queue/{{trace}}/{{action}}", self._wrap(self._queue_item))
        r.add_post(f"{p}/live/{{pid}}/{{action}}", self._wrap(self._control))
        r.add_get(f"{p}/audit", self._wrap(self._audit))
        r.add_get(f"{p}/health", self._wrap(self._health))
        app.on_cleanup.append(self._cleanup)

    async def _cleanup(self, _: web.Application) -> None:
        await self.reload.aclose()

    def _wrap(self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
              ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except _Refused as e:
                return web.json_response({"error": e.reason, **e.extra}, status=e.status)
            except web.HTTPException:
                raise
            except VStageError as e:  # a clear reason for the streamer (a model, a file)
                logger.warning("dashboard %s %s: %s", request.method, request.path, e)
                return web.json_response({"error": str(e)}, status=422)
            except Exception:
                logger.exception("dashboard %s %s failed", request.method, request.path)
                return web.json_response(
                    {"error": "the dashboard failed on this request (see the log)"}, status=500)

        return run

    async def _page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB_DIR / "dashboard.html")

    # ------------------------------------------------------------------ personas

    async def _schema(self, request: web.Request) -> web.Response:
        return web.json_response({"fields": [s.to_json() for s in self.editor.specs]})

    async def _list(self, request: web.Request) -> web.Response:
        summaries = await asyncio.to_thread(self.editor.summaries)
        orch = self.app.orchestrator
        on_show = orch.personas if orch is not None else {}
        rows = []
        for s in summaries:
            rows.append({"id": s.id, "name": s.name, "language": s.language, "file": s.file,
                         "problems": list(s.problems), "on_show": s.id in on_show,
                         "default": s.id == self._default_persona()})
        for pid, rt in on_show.items():  # on the show but its file is gone
            if not any(r["id"] == pid for r in rows):
                rows.append({"id": pid, "name": rt.config.name, "language": rt.config.language,
                             "file": None, "problems": ["its file is gone"], "on_show": True,
                             "default": pid == self._default_persona()})
        return web.json_response({"personas": rows, "default": self._default_persona()})

    def _pid(self, request: web.Request) -> str:
        pid = request.match_info["pid"]
        if not _PERSONA_ID.fullmatch(pid):
            raise _Refused(400, f"{pid[:40]!r} is not a persona id: 1-32 of a-z, 0-9, '_' "
                           "and '-', starting with a letter or digit")
        return pid

    def _file_json(self, f: PersonaFile) -> dict[str, Any]:
        orch = self.app.orchestrator
        return {"id": f.id, "file": str(f.path), "version": f.version, "text": f.text,
                "values": self.editor.form_values(f),
                "errors": [e.to_json() for e in f.errors],
                "on_show": orch is not None and f.id in orch.personas}

    async def _read(self, request: web.Request) -> web.Response:
        pid = self._pid(request)
        f = await self._previous(pid)
        if f is None:
            raise _Refused(404, f"no persona {pid!r} in {self.personas_dir}")
        return web.json_response(self._file_json(f))

    async def _body(self, request: web.Request, *, limit: int = _JSON_MAX) -> dict[str, Any]:
        """The request's JSON object, read with a limit of our own (the studio's default is
        64 KiB, too small for a lorebook)."""
        if request.content_length is not None and request.content_length > limit:
            raise _Refused(413, f"the request is {request.content_length} bytes; at most "
                           f"{limit} are accepted")
        raw = await request.content.read(limit + 1)
        if len(raw) > limit:
            raise _Refused(413, f"the request is more than {limit} bytes")
        try:
            body = json.loads(raw or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            raise _Refused(400, "body must be JSON") from None
        if not isinstance(body, dict):
            raise _Refused(400, "body must be a JSON object")
        return body

    def _text_of(self, pid: str, body: dict[str, Any], previous: PersonaFile | None
                 ) -> tuple[str, list[dict[str, Any]]]:
        """The file text a save or check would write: the raw ``text`` as given, or the
        document built from the form's ``fields`` (keeping the old file's leading comments);
        with the problems found before validation."""
        if "text" in body and "fields" in body:
            raise _Refused(400, "give either 'text' (the YAML) or 'fields' (the form), not both")
        if "text" in body:
            if not isinstance(body["text"], str):
                raise _Refused(400, "field 'text' must be a string")
            return body["text"], []
        fields = body.get("fields")
        if not isinstance(fields, dict):
            raise _Refused(400, "give 'fields' (an object of form values) or 'text'")
        original = previous.data if previous is not None else None
        doc, problems = self.editor.document_from_form(fields, original=original)
        text = self.editor.text_for(doc, previous=previous.text if previous else None)
        return text, [p.to_json() for p in problems]

    async def _check(self, pid: str, body: dict[str, Any], previous: PersonaFile | None
                     ) -> tuple[str, list[dict[str, Any]]]:
        text, problems = self._text_of(pid, body, previous)
        _, errors = await asyncio.to_thread(self.editor.check, pid, text)
        return text, problems + [e.to_json() for e in errors]

    async def _previous(self, pid: str) -> PersonaFile | None:
        from bots.personas.editor import PersonaMissing

        try:
            return await asyncio.to_thread(self.editor.read, pid)
        except PersonaMissing:
            return None

    async def _validate(self, request: web.Request) -> web.Response:
        pid = self._pid(request)
        body = await self._body(request)
        previous = await self._previous(pid)
        text, errors = await self._check(pid, body, previous)
        return web.json_response({"errors": errors, "text": text})

    async def _create(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        fields = body.get("fields")
        pid = body.get("id") if "text" in body else (
            fields.get("id") if isinstance(fields, dict) else None)
        if not isinstance(pid, str) or not _PERSONA_ID.fullmatch(pid):
            return web.json_response({"error": "the persona needs an id", "errors": [
                {"field": "id", "message": "String should match pattern "
                 "'^[a-z0-9][a-z0-9_-]{0,31}$'" if isinstance(pid, str) and pid else
                 "Field required", "line": None}]}, status=422)
        if await self._previous(pid) is not None:
            raise _Refused(409, f"a persona {pid!r} already exists; choose another id")
        return await self._write(pid, body, None, create=True)

    async def _save(self, request: web.Request) -> web.Response:
        pid = self._pid(request)
        body = await self._body(request)
        version = body.get("version")
        if not isinstance(version, str):
            raise _Refused(400, "field 'version' (from the file as read) is required")
        previous = await self._previous(pid)
        if previous is None:
            raise _Refused(409, f"{pid}.yaml is gone (deleted in another tab or by hand); "
                           "your edits are still in the form: save them as a new persona",
                           current=None)
        return await self._write(pid, body, previous, version=version)

    async def _write(self, pid: str, body: dict[str, Any], previous: PersonaFile | None, *,
                     create: bool = False, version: str | None = None) -> web.Response:
        from bots.personas.editor import EditConflict, PersonaInvalid

        text, problems = self._text_of(pid, body, previous)
        if problems:
            return web.json_response({"error": "some fields are not valid",
                                      "errors": problems}, status=422)
        try:
            saved = await asyncio.to_thread(self.editor.save, pid, text, version=version,
                                            create=create)
        except PersonaInvalid as e:
            return web.json_response({"error": "some fields are not valid",
                                      "errors": [x.to_json() for x in e.errors]}, status=422)
        except EditConflict as e:
            raise _Refused(409, str(e), current=e.current) from None
        result = self._file_json(saved)
        if body.get("apply", True) is not False:
            result["applied"] = await self._apply(saved)
        return web.json_response(result, status=201 if create else 200)

    async def _apply(self, saved: PersonaFile) -> dict[str, Any]:
        """Put a saved persona on the show; a failure to load it is reported, not raised (the
        file is saved either way)."""
        from bots.personas.editor import resolved

        if self.app.orchestrator is None or saved.persona is None:
            return {"ok": False, "error": "the show is not running: the file is saved"}
        try:
            applied = await self.reload.apply(resolved(saved.persona, self.config_root))
        except VStageError as e:
            logger.warning("persona %s saved but not applied: %s", saved.id, e)
            return {"ok": False, "error": f"saved, but it could not go live: {e}"}
        return {"ok": True, **applied.to_json()}

    async def _duplicate(self, request: web.Request) -> web.Response:
        from bots.personas.editor import EditConflict

        pid = self._pid(request)
        body = await self._body(request)
        new_id, name = body.get("id"), body.get("name")
        if not isinstance(new_id, str) or not _PERSONA_ID.fullmatch(new_id):
            raise _Refused(400, "field 'id' must be a persona id: 1-32 of a-z, 0-9, '_' and "
                           "'-', starting with a letter or digit")
        if name is not None and not isinstance(name, str):
            raise _Refused(400, "field 'name' must be a string")
        try:
            copy = await asyncio.to_thread(self.editor.duplicate, pid, new_id, name=name)
        except EditConflict as e:
            raise _Refused(409, str(e)) from None
        result = self._file_json(copy)
        if body.get("apply", True) is not False:
            result["applied"] = await self._apply(copy)
        return web.json_response(result, status=201)

    async def _delete(self, request: web.Request) -> web.Response:
        from bots.personas.editor import EditConflict, PersonaMissing

        pid = self._pid(request)
        version = request.query.get("version")
        orch = self.app.orchestrator
        if pid == self._default_persona():
            raise _Refused(409, f"{pid!r} is the default persona: choose another default "
                           "(default_persona in vstage.yaml) before deleting it")
        try:
            trash = await asyncio.to_thread(self.editor.delete, pid, version=version)
        except EditConflict as e:
            raise _Refused(409, str(e), current=e.current) from None
        except PersonaMissing as e:
            raise _Refused(404, str(e)) from None
        if orch is not None and pid in orch.personas:
            await self.reload.drop(pid)
        return web.json_response({"deleted": pid, "kept_in": str(trash)})

    # ------------------------------------------------------------------ previews

    async def _runtime_for(self, pid: str) -> tuple[PersonaRuntime | None, Any]:
        """The persona on the show, or (not on the show) its saved config to load parts of."""
        orch = self.app.orchestrator
        if orch is not None and pid in orch.personas:
            return orch.personas[pid], None
        f = await self._previous(pid)
        if f is None:
            raise _Refused(404, f"no persona {pid!r}")
        if f.persona is None:
            raise _Refused(422, "the persona file has problems: fix and save it first")
        from bots.personas.editor import resolved

        return None, resolved(f.persona, self.config_root)

    async def _preview_line(self, request: web.Request, *, required: bool) -> str:
        body = await self._body(request, limit=16 * 1024)
        text = body.get("text")
        if text is None and not required:
            return ""
        if not isinstance(text, str) or not text.strip():
            raise _Refused(400, "field 'text' must be a line to say")
        if len(text) > _PREVIEW_TEXT_MAX:
            raise _Refused(400, f"field 'text': at most {_PREVIEW_TEXT_MAX} characters")
        return text.strip()

    async def _voice(self, request: web.Request) -> web.Response:
        from avatar_engine.voice import create_tts

        pid = self._pid(request)
        text = await self._preview_line(request, required=True)
        runtime, cfg = await self._runtime_for(pid)
        if runtime is not None:
            tts = runtime.tts
        else:
            tts = await asyncio.to_thread(create_tts, cfg.voice, language=cfg.language)
        speech = await asyncio.to_thread(tts.synthesize, text)
        return web.Response(body=_wav(speech.audio, speech.sample_rate),
                            content_type="audio/wav")

    async def _avatar(self, request: web.Request) -> web.Response:
        """A short WebM: the idle avatar, then the line said and lip-synced."""
        from avatar_engine.renderers.factory import create_renderer
        from avatar_engine.voice import create_tts

        pid = self._pid(request)
        text = await self._preview_line(request, required=False)
        runtime, cfg = await self._runtime_for(pid)
        if runtime is not None:
            renderer, tts = runtime.renderer, runtime.tts
        else:
            renderer, tts = await asyncio.gather(
                asyncio.to_thread(create_renderer, cfg.avatar),
                asyncio.to_thread(create_tts, cfg.voice, language=cfg.language))
        if not text:
            text = (runtime.config if runtime is not None else cfg).greeting or "Hello chat!"
        text = text[:_PREVIEW_TEXT_MAX]
        speech = await asyncio.to_thread(tts.synthesize, text)
        data = await asyncio.to_thread(_avatar_clip, renderer, speech)
        return web.Response(body=data, content_type="video/webm")

    # ------------------------------------------------------------------ avatar art

    def _art_name(self, request: web.Request) -> str:
        name = request.match_info["name"]
        if not _PERSONA_ID.fullmatch(name):
            raise _Refused(400, f"{name[:40]!r} is not a folder name: 1-32 of a-z, 0-9, '_' "
                           "and '-'")
        return name

    async def _avatar_check(self, request: web.Request) -> web.Response:
        from bots.personas.editor import check_sprite_folder

        name = self._art_name(request)
        folder = self.avatars_dir / name
        if not folder.is_dir():
            raise _Refused(404, f"no sprite folder avatars/{name}")
        check = await asyncio.to_thread(check_sprite_folder, folder)
        return web.json_response({"folder": f"avatars/{name}", **check.to_json()})

    async def _avatar_upload(self, request: web.Request) -> web.Response:
        from bots.personas.editor import install_sprite_upload

        name = self._art_name(request)
        limit = self.max_upload_bytes
        if request.content_length is not None and request.content_length > limit:
            raise _Refused(413, f"the upload is {request.content_length / 2**20:.1f} MB; a "
                           f"sprite set may have at most {limit / 2**20:.0f} MB")
        if not request.content_type.startswith("multipart/"):
            raise _Refused(400, "send the files as multipart/form-data (PNG files and "
                           "manifest.yaml, or one zip)")
        reader = await request.multipart()
        files: list[tuple[str, bytes]] = []
        total = 0
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader) or not part.filename:
                continue
            chunks = []
            while chunk := await part.read_chunk(64 * 1024):
                total += len(chunk)
                if total > limit:
                    raise _Refused(413, f"the upload is more than {limit / 2**20:.0f} MB; a "
                                   "sprite set is a few PNG files")
                chunks.append(chunk)
            files.append((part.filename, b"".join(chunks)))
        try:
            folder, check = await asyncio.to_thread(
                install_sprite_upload, self.avatars_dir, name, files)
        except ConfigError as e:
            raise _Refused(400, str(e)) from None
        rel = folder.relative_to(self.config_root).as_posix()
        return web.json_response({"folder": rel, "installed": check.ok, **check.to_json()},
                                 status=201 if check.ok else 422)

    async def _card(self, request: web.Request) -> web.Response:
        """Import a Character Card (the body: PNG or JSON bytes) as a new persona."""
        from bots.personas.cards import CardError, import_card

        if request.content_length is not None and request.content_length > _CARD_MAX:
            raise _Refused(413, f"the card is {request.content_length / 2**20:.1f} MB; at "
                           f"most {_CARD_MAX / 2**20:.0f} MB")
        raw = await request.content.read(_CARD_MAX + 1)
        if len(raw) > _CARD_MAX:
            raise _Refused(413, f"the card is more than {_CARD_MAX / 2**20:.0f} MB")
        if not raw:
            raise _Refused(400, "send the card (a PNG or JSON file) as the request body")
        name = request.query.get("name", "card")[:80]
        taken = tuple(await asyncio.to_thread(self.editor.ids))
        try:
            result = await asyncio.to_thread(
                lambda: import_card(raw, personas_dir=self.personas_dir,
                                    config_dir=self.config_root, taken=taken, source=name))
        except CardError as e:  # a bad card: nothing was written
            raise _Refused(422, str(e), code=e.code) from None
        except ConfigError as e:
            raise _Refused(422, str(e), code="does_not_load") from None
        saved = await asyncio.to_thread(self.editor.read, result.persona.id)
        out = self._file_json(saved)
        out["warnings"] = list(result.warnings)
        out["applied"] = await self._apply(saved)
        return web.json_response(out, status=201)

    # ------------------------------------------------------------------ live controls

    def _show(self) -> Any:
        orch = self.app.orchestrator
        if orch is None:
            raise _Refused(503, "the show is not running yet")
        return orch

    def _on_show(self, pid: str) -> Any:
        orch = self._show()
        if pid not in orch.personas:
            raise _Refused(404, f"persona {pid!r} is not on the show")
        return orch

    async def _live(self, request: web.Request) -> web.Response:
        from bots.personas.live_reload import moderator_of

        orch = self._show()
        traces = orch.tracer.recent(orch.tracer.keep)
        out = []
        for pid, rt in orch.personas.items():
            recent = [t for t in traces if t["persona"] == pid][:12]
            queue = orch.queue_snapshot(pid)
            waiting = {row["trace_id"] for row in queue}
            out.append({
                "id": pid, "name": rt.config.name, "paused": orch.is_paused(pid),
                "mod_only": moderator_of(orch, pid).settings.mod_only,
                "on_stage": orch.floor.holder == pid,
                "queue": queue,
                "recent": [{**{k: t[k] for k in ("trace_id", "user", "platform", "text",
                                                 "reason", "at")},
                            "status": _status(t, waiting)} for t in recent],
            })
        return web.json_response({"personas": out, "default": orch.default_persona,
                                  "healthy": orch.healthy})

    async def _control(self, request: web.Request) -> web.Response:
        pid = self._pid(request)
        action = request.match_info["action"]
        if action not in _ACTIONS:
            raise _Refused(404, f"unknown action {action[:20]!r} (actions: "
                           f"{', '.join(_ACTIONS)}, mod-only)")
        orch = self._on_show(pid)
        result: dict[str, Any] = {"persona": pid, "action": action}
        if action == "pause":
            orch.pause(pid)
        elif action == "resume":
            orch.resume(pid)
        elif action == "skip":
            result["skipped"] = orch.skip(pid, reason="skipped from the dashboard")
        else:
            result["cleared"] = orch.clear(pid)
        result["paused"] = orch.is_paused(pid)
        logger.info("dashboard: %s %s", action, pid)
        return web.json_response(result)

    async def _mod_only(self, request: web.Request) -> web.Response:
        from bots.personas.live_reload import moderator_of

        pid = self._pid(request)
        body = await self._body(request, limit=4096)
        on = body.get("on")
        if not isinstance(on, bool):
            raise _Refused(400, "field 'on' must be true or false")
        orch = self._on_show(pid)
        moderator = moderator_of(orch, pid)
        # Assigning validates the settings again and recompiles the rules.
        moderator.settings = moderator.settings.model_copy(update={"mod_only": on})
        logger.info("dashboard: mod-only %s for %s", "on" if on else "off", pid)
        return web.json_response({"persona": pid, "mod_only": moderator.settings.mod_only})

    async def _queue_item(self, request: web.Request) -> web.Response:
        pid = self._pid(request)
        trace, action = request.match_info["trace"], request.match_info["action"]
        if not _TRACE_ID.fullmatch(trace):
            raise _Refused(400, "not a trace id")
        orch = self._on_show(pid)
        if action == "promote":
            done = orch.promote(pid, trace)
        elif action == "remove":
            done = orch.remove(pid, trace, reason="removed from the dashboard")
        else:
            raise _Refused(404, f"unknown action {action[:20]!r} (promote, remove)")
        if not done:
            raise _Refused(404, "that message is no longer waiting (answered or removed)")
        return web.json_response({"persona": pid, "trace_id": trace, "action": action})

    # ------------------------------------------------------------------ audit and health

    async def _audit(self, request: web.Request) -> web.Response:
        cfg = self.app.config
        if cfg.app.show.audit_log is None:
            return web.json_response({"entries": [], "file": None,
                                      "note": "the audit log is off (show.audit_log)"})
        path = cfg.state_dir / cfg.app.show.audit_log
        q = request.query
        try:
            n = max(1, min(1000, int(q.get("n", "200"))))
        except ValueError:
            raise _Refused(400, "n must be a number") from None
        persona, decision = q.get("persona") or None, q.get("decision") or None
        text = (q.get("q") or "").casefold()[:200]
        entries = await asyncio.to_thread(_audit_tail, path, n, persona, decision, text)
        return web.json_response({"entries": entries, "file": str(path)})

    async def _health(self, request: web.Request) -> web.Response:
        app = self.app
        cfg = app.config.app
        adapters = app.supervisor.health_json() if app.supervisor is not None else []
        orch = app.orchestrator
        workers: dict[str, Any] = {}
        if orch is not None:
            errors = {}
            for metric in orch.tracer.errors.collect():
                for sample in metric.samples:
                    if sample.name.endswith("_total"):
                        errors[sample.labels.get("where", "?")] = int(sample.value)
            pool = next((p.pool for p in orch.personas.values() if p.pool is not None), None)
            pending = None
            from avatar_engine.workers import LocalRenderPool

            if isinstance(pool, LocalRenderPool):
                pending = pool.pending()
            workers = {
                "show": "degraded: be right back (the LLM or the renderer failed; it clears "
                        "when a reply goes through)" if not orch.healthy else "ok",
                "errors": errors,
                "render_pool": {"kind": type(pool).__name__ if pool is not None else None,
                                "pending": pending},
                "llm": {pid: {"provider": rt.config.llm.provider, "model": rt.config.llm.model}
                        for pid, rt in orch.personas.items()},
                "tts": {pid: {"provider": rt.config.voice.provider,
                              "model": _voice_name(rt.config.voice, rt.config.language)}
                        for pid, rt in orch.personas.items()},
            }
        platforms = {a.get("platform") for a in adapters}
        off = []  # platforms that are not set up say so, with the setting that turns them on
        if "twitch" not in platforms and not cfg.twitch.enabled:
            off.append({"platform": "twitch", "state": "off",
                        "reason": "twitch.enabled is false in vstage.yaml (see docs/twitch.md)"})
        if "discord" not in platforms and cfg.discord is None:
            off.append({"platform": "discord", "state": "off",
                        "reason": "no discord section in vstage.yaml (see docs/discord.md)"})
        obs: dict[str, Any] = {"platform": "obs", "state": "off",
                               "reason": "obs.enabled is false in vstage.yaml"}
        if cfg.obs.enabled:
            obs = self._obs_health(cfg.obs.host, cfg.obs.port)
        return web.json_response({"adapters": [*adapters, *off, obs], "workers": workers,
                                  "live": bool(app.streams)})


    def _obs_health(self, host: str, port: int) -> dict[str, Any]:
        """OBS's connection, as the OBS stage on the show's bus sees it."""
        from overlays.obs.stage import ObsStage

        bus = self.app.bus
        stage = next((s for s in (bus.stages if bus is not None else ())
                      if isinstance(s, ObsStage)), None)
        if stage is None:
            return {"platform": "obs", "state": "connecting", "reason": "the show is starting"}
        if stage.driver.ready:
            return {"platform": "obs", "state": "up", "reason": None}
        return {"platform": "obs", "state": "down",
                "reason": f"OBS does not answer at {host}:{port} (obs-websocket); retrying in "
                          "the background, the overlays and the live stream go on",
                "fix": "start OBS and check Tools > WebSocket Server Settings (port, password "
                       "in VSTAGE_OBS__PASSWORD)"}


def install_dashboard(server: StudioServer, *, app: StudioApp, rtc: LiveRTC | None = None
                      ) -> None:
    """Serve the dashboard on ``server`` for ``app`` (call before the server starts).

    Args:
        server: the studio server (every dashboard route needs its token).
        app: the running app; its orchestrator, config, streams and talk hub are read when a
            request comes.
        rtc: the app's WebRTC side, so an edited avatar gets a new live stream at once.
    """
    dashboard = Dashboard(server=server, app=app, rtc=rtc)
    server.add_routes(dashboard.register)


# --------------------------------------------------------------------------- helpers


def _status(trace: dict[str, Any], waiting: set[str]) -> str:
    """A trace's status for the live view: an accepted event is ``waiting`` while in the queue
    (a reply prepared ahead and put back by a pause is waiting again), else ``answering``
    until its outcome."""
    if trace["status"] == "queued":
        return "waiting" if trace["trace_id"] in waiting else "answering"
    return str(trace["status"])


def _voice_name(voice: Any, language: str) -> str:
    """The voice a persona speaks with, in a word: the model, or espeak's voice."""
    if voice.provider == "espeak":
        return str(voice.voice or language)
    return f"{voice.model}" + (f" ({voice.voice})" if voice.voice else "")


def _wav(audio: np.ndarray, rate: int) -> bytes:
    """Mono float audio as a 16-bit WAV file."""
    pcm = (np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def _avatar_clip(renderer: Any, speech: Any) -> bytes:
    """Blocking: the idle avatar for a moment, then ``speech`` lip-synced, as one WebM."""
    import torch

    from avatar_engine.clips.encode import encode_clip

    fps = int(renderer.fps)
    n_idle = max(1, round(_IDLE_PREVIEW_S * fps))
    idle = renderer.idle(n_idle, start_frame=0)
    talk = renderer.render(speech, start_frame=n_idle)
    frames = torch.cat([idle.cpu(), talk.cpu()])
    rate = int(speech.sample_rate)
    pause = np.zeros(round(n_idle * rate / fps), np.float32)
    audio = np.concatenate([pause, np.asarray(speech.audio, np.float32)])
    with tempfile.TemporaryDirectory(prefix="vstage-preview-") as tmp:
        files = encode_clip(frames=frames, audio=audio, sample_rate=rate, fps=fps,
                            out_base=Path(tmp) / "preview", formats=("webm",))
        return files[0].path.read_bytes()


def _audit_tail(path: Path, n: int, persona: str | None, decision: str | None,
                text: str) -> list[dict[str, Any]]:
    """The last ``n`` audit records that match, newest first (reads the file's tail)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return []
    with path.open("rb") as f:
        f.seek(max(0, size - _AUDIT_TAIL_BYTES))
        data = f.read()
    lines = data.split(b"\n")
    if size > _AUDIT_TAIL_BYTES:
        lines = lines[1:]  # the first one is cut
    found: deque[dict[str, Any]] = deque(maxlen=n)
    for raw in lines:
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if not isinstance(rec, dict):
            continue
        if persona and rec.get("persona") != persona:
            continue
        if decision and rec.get("decision") != decision:
            continue
        if text and not any(text in str(rec.get(k) or "").casefold()
                            for k in ("text", "reason", "viewer_name", "rule", "detail")):
            continue
        found.append(rec)
    return list(reversed(found))

