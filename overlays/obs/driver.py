"""Async connection to OBS over obs-websocket 5 (via obsws-python), that survives OBS restarts.

obsws-python is blocking and not thread-safe: every request runs on one dedicated worker
thread, in order, never on the event loop. Events arrive on obsws-python's reader thread and
are handed to the loop with ``call_soon_threadsafe``. A supervisor task connects, runs the
connect hooks (the stage's setup), checks the connection every ``health_interval_s``, and after
a loss reconnects with jittered exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vstage_core.errors import ProviderError, require
from vstage_core.tasks import cancel_and_wait, wait_event

from .settings import ObsSettings

logger = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], None]
ConnectHook = Callable[[], Awaitable[None]]

# obsws-python logs its connection parameters, password included, at INFO, and a traceback
# at ERROR for every failed connect or request; the driver reports those itself, once.
logging.getLogger("obsws_python").setLevel(logging.CRITICAL)

_EVENT_SUBS = (1 << 0) | (1 << 2) | (1 << 8)  # General, Scenes, MediaInputs


class ObsUnavailable(ProviderError):
    """OBS is not connected (closed, restarting, wrong password); retrying later may work."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class ObsRequestError(ProviderError):
    """OBS answered a request with an error status (see obs-websocket's RequestStatus)."""

    def __init__(self, request: str, code: int, comment: str | None) -> None:
        super().__init__(f"OBS {request} failed: {code} {comment or ''}".strip())
        self.request = request
        self.code = code


class ObsDriver:
    """One persistent connection to OBS; ``async with ObsDriver(settings=...) as obs``.

    Args:
        settings: where OBS is and how patient to be.
        jitter: random source for the backoff (tests pass a seeded one).
    """

    def __init__(self, *, settings: ObsSettings, jitter: random.Random | None = None) -> None:
        self.settings = settings
        self._jitter = jitter or random.Random()
        self._executor: ThreadPoolExecutor | None = None
        self._req: Any = None
        self._events: Any = None
        self._handlers: dict[str, list[EventHandler]] = {}
        self._connect_hooks: list[ConnectHook] = []
        self._disconnect_hooks: list[Callable[[], None]] = []
        self._ready = asyncio.Event()
        self._lost = asyncio.Event()
        self._supervisor: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._warned = False
        self.connects = 0
        self.requests = 0
        self.obs_version: str | None = None
        self.ws_version: str | None = None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> ObsDriver:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start connecting in the background; returns at once (see :meth:`wait_ready`)."""
        if self._supervisor is not None:
            return
        require("obsws_python", extra="obs")
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="obs-request")
        self._supervisor = asyncio.create_task(self._supervise(), name="obs:supervisor")

    async def stop(self) -> None:
        task, self._supervisor = self._supervisor, None
        if task is None:
            return
        await cancel_and_wait([task])
        await self._close()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    @property
    def ready(self) -> bool:
        """Connected, and the connect hooks (setup) have run."""
        return self._ready.is_set()

    async def wait_ready(self, wait_s: float | None = None) -> bool:
        """Wait until :attr:`ready`; ``False`` if ``wait_s`` seconds passed first."""
        try:
            await asyncio.wait_for(self._ready.wait(), wait_s)
        except TimeoutError:
            return False
        return True

    def add_connect_hook(self, hook: ConnectHook) -> None:
        """Run ``hook`` after every (re)connect, before the driver reports ready."""
        self._connect_hooks.append(hook)

    def add_disconnect_hook(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` (on the loop) when the connection is lost."""
        self._disconnect_hooks.append(hook)

    def on_event(self, event_type: str, handler: EventHandler) -> None:
        """Call ``handler(event_data)`` on the loop for each OBS event of ``event_type``."""
        self._handlers.setdefault(event_type, []).append(handler)

    # ------------------------------------------------------------------ requests

    async def call(self, request_type: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one obs-websocket request; returns its ``responseData`` (``{}`` if none).

        Raises:
            ObsUnavailable: not connected, or the connection broke during the request.
            ObsRequestError: OBS refused the request (bad name, missing source, ...).
        """
        req, executor = self._req, self._executor
        if req is None or executor is None or self._lost.is_set():
            raise ObsUnavailable("OBS is not connected")
        loop = asyncio.get_running_loop()
        try:
            resp = await loop.run_in_executor(executor, req.base_client.req, request_type, data)
        except Exception as e:  # websocket/socket errors, timeouts, a garbled reply
            self._mark_lost(f"{request_type}: {type(e).__name__}: {e}")
            raise ObsUnavailable(f"OBS connection lost during {request_type}") from e
        self.requests += 1
        status = resp.get("requestStatus", {})
        if not status.get("result"):
            raise ObsRequestError(request_type, status.get("code", 0), status.get("comment"))
        return resp.get("responseData") or {}

    async def screenshot(self, source: str, *, width: int, height: int) -> bytes:
        """A PNG of what ``source`` (a scene or input) renders right now."""
        import base64

        data = await self.call(
            "GetSourceScreenshot",
            {"sourceName": source, "imageFormat": "png", "imageWidth": width,
             "imageHeight": height},
        )
        return base64.b64decode(data["imageData"].split(",", 1)[1])

    # ------------------------------------------------------------------ connection

    async def _supervise(self) -> None:
        s = self.settings
        failures = 0
        while True:
            try:
                await self._connect()
                for hook in self._connect_hooks:
                    await hook()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                await self._close()
                if not self._warned:
                    self._warned = True
                    logger.warning("OBS at %s:%d is not available (%s); retrying in the "
                                   "background", s.host, s.port, e)
                else:
                    logger.debug("OBS connect failed: %s", e)
                delay = min(s.reconnect_max_s, s.reconnect_min_s * 2 ** min(failures, 10))
                failures += 1
                await asyncio.sleep(delay * self._jitter.uniform(0.5, 1.0))
                continue
            failures = 0
            self.connects += 1
            self._warned = False
            self._ready.set()
            logger.info("OBS %s (websocket %s) connected at %s:%d", self.obs_version,
                        self.ws_version, s.host, s.port)
            await self._watch()
            self._ready.clear()
            await self._close()
            for lost_hook in self._disconnect_hooks:
                try:
                    lost_hook()
                except Exception:
                    logger.exception("OBS disconnect hook failed")
            logger.warning("lost OBS at %s:%d; reconnecting", s.host, s.port)

    async def _watch(self) -> None:
        """Return when the connection is lost (a failed request or a failed health check)."""
        while not self._lost.is_set():
            await wait_event(self._lost, self.settings.health_interval_s)
            if self._lost.is_set():
                return
            with contextlib.suppress(ObsUnavailable):
                await self.call("GetVersion")

    async def _connect(self) -> None:
        import obsws_python as obs

        s = self.settings
        password = s.password.get_secret_value() if s.password else ""
        kwargs = {"host": s.host, "port": s.port, "password": password,
                  "timeout": s.request_timeout_s}
        loop = asyncio.get_running_loop()

        def open_clients() -> tuple[Any, Any]:
            req = obs.ReqClient(**kwargs)
            try:
                events = obs.EventClient(subs=_EVENT_SUBS, **kwargs)
            except BaseException:
                req.disconnect()
                raise
            return req, events

        self._lost.clear()
        req, events = await loop.run_in_executor(self._executor, open_clients)
        events.callback = _Forward(self)
        self._req, self._events = req, events
        version = await self.call("GetVersion")
        self.obs_version = version.get("obsVersion")
        self.ws_version = version.get("obsWebSocketVersion")

    async def _close(self) -> None:
        req, events, self._req, self._events = self._req, self._events, None, None
        self._ready.clear()

        def close() -> None:
            for client in (events, req):
                if client is not None:
                    with contextlib.suppress(Exception):
                        client.base_client.ws.close()

        if self._executor is not None and (req is not None or events is not None):
            # The request thread may be stuck in a dead socket; closing from here unblocks it.
            await asyncio.to_thread(close)

    def _mark_lost(self, why: str) -> None:
        if not self._lost.is_set():
            logger.debug("OBS connection lost: %s", why)
            self._lost.set()
            self._ready.clear()

    def _dispatch(self, event_type: str, data: dict[str, Any]) -> None:
        if event_type == "ExitStarted":
            self._mark_lost("OBS is exiting")
        for handler in self._handlers.get(event_type, ()):
            try:
                handler(data)
            except Exception:
                logger.exception("OBS %s handler failed", event_type)


class _Forward:
    """Stands in for obsws-python's name-based callback registry: hands every event, as a
    plain dict with an arrival timestamp, to the driver on its loop."""

    def __init__(self, driver: ObsDriver) -> None:
        self._driver = driver

    def trigger(self, event_type: str, data: dict[str, Any]) -> None:
        loop = self._driver._loop
        if loop is None or loop.is_closed():
            return
        data = {**data, "_received": time.monotonic()}
        with contextlib.suppress(RuntimeError):  # loop closing
            loop.call_soon_threadsafe(self._driver._dispatch, event_type, data)
