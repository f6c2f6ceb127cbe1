"""Keeping each platform adapter connected for the whole show, and saying how it is doing.

Each adapter runs under :func:`keep_connected`: ``connecting`` while ``async with adapter``
enters, ``up`` once it has, and then -- for adapters whose connection lives on in a task of
their own (:class:`~bots.adapters.base.WatchedConnection`) -- it waits on that connection, so a
gateway that closes right after entering is seen, not reported as connected. A failure is
translated into a :class:`~vstage_core.errors.PlatformError`: a transient one is ``retrying``
(jittered exponential backoff up to ``retry_max_s``, as discord.py reconnects), a fatal one
(a bad or revoked token, a missing privileged intent) is ``down``: one log line saying what,
why and how to fix it, and no retry, since retrying cannot succeed until a person acts.

A :class:`Supervisor` runs one named task per adapter and keeps an :class:`AdapterHealth`
snapshot per adapter (:meth:`Supervisor.health_json` for the studio's ``/api/health``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any, Self

from bots.adapters.base import Adapter, WatchedConnection
from vstage_core.errors import ConfigError, MissingDependency, PlatformError, ProviderError
from vstage_core.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class AdapterState(StrEnum):
    """Where an adapter's connection stands."""

    CONNECTING = "connecting"  # entering ``async with adapter``
    UP = "up"  # entered, and its connection (if watched) alive
    RETRYING = "retrying"  # a transient failure; waiting out the backoff
    DOWN = "down"  # a fatal failure; not retried until a person fixes it and restarts
    STOPPED = "stopped"  # the supervisor was stopped (the show ended)


@dataclass(frozen=True, slots=True, kw_only=True)
class AdapterHealth:
    """One adapter's state at a moment, for people (the studio page) and tests.

    Attributes:
        platform: the adapter's platform name.
        state: where its connection stands.
        since: wall-clock time (``time.time()``) the state began.
        attempts: connection attempts made so far (entering ``async with`` counts one).
        failures: failures seen so far (transient and fatal).
        code: the last failure's machine-readable code (``PlatformError.code``), or "".
        reason: the last failure, for a human, or "".
        fix: what a person should do about it, or "".
        retry_in_s: while ``retrying``: the backoff being waited out.
    """

    platform: str
    state: AdapterState
    since: float
    attempts: int = 0
    failures: int = 0
    code: str = ""
    reason: str = ""
    fix: str = ""
    retry_in_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (the state as its string value)."""
        data = asdict(self)
        data["state"] = self.state.value
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How transient failures are retried: ``first_s * factor**n`` capped at ``max_s``, each
    delay multiplied by a random factor in ``[jitter, 1)`` so adapters restarted together do
    not reconnect in step.

    Attributes:
        first_s: the first delay.
        max_s: the longest delay.
        factor: growth per consecutive failure.
        jitter: the smallest random factor (1.0: no jitter).
        stable_s: a connection up at least this long resets the backoff to ``first_s``; a
            connection that dies sooner keeps backing off (no tight reconnect loop).
    """

    first_s: float = 1.0
    max_s: float = 60.0
    factor: float = 2.0
    jitter: float = 0.5
    stable_s: float = 30.0

    def delay(self, failures: int, rng: Callable[[], float] = random.random) -> float:
        """The delay after ``failures`` consecutive failures (1 for the first)."""
        base = min(self.max_s, self.first_s * self.factor ** max(0, failures - 1))
        return base * (self.jitter + (1.0 - self.jitter) * rng())


def as_platform_error(platform: str, error: BaseException) -> PlatformError:
    """``error`` as a :class:`PlatformError`. Adapters translate their library's errors
    themselves; what reaches here untranslated is judged by its type: configuration and
    missing packages are fatal (the message says the fix), anything else (network errors,
    timeouts, a library's surprise) is transient."""
    if isinstance(error, PlatformError):
        return error
    text = str(error) or type(error).__name__
    if isinstance(error, ConfigError):
        return PlatformError(text, platform=platform, code="config", fatal=True,
                             fix="fix the setting and restart")
    if isinstance(error, MissingDependency):
        return PlatformError(text, platform=platform, code="missing_dependency", fatal=True,
                             fix="install it and restart")
    if isinstance(error, ProviderError):
        return PlatformError(text, platform=platform, code="provider", fatal=not error.retryable)
    return PlatformError(text, platform=platform, code="connection_failed", fatal=False)


class HealthBoard:
    """The current :class:`AdapterHealth` of each adapter; ``on_change`` hears every change
    (e.g. to push it to the studio page). Written only from the event loop."""

    def __init__(self, *, on_change: Callable[[AdapterHealth], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._health: dict[str, AdapterHealth] = {}
        self._on_change = on_change
        self._clock = clock

    def get(self, platform: str) -> AdapterHealth | None:
        return self._health.get(platform)

    def set(self, platform: str, state: AdapterState, **fields: Any) -> AdapterHealth:
        """Move ``platform`` to ``state``, updating the given fields."""
        old = self._health.get(platform) or AdapterHealth(
            platform=platform, state=state, since=self._clock())
        since = old.since if old.state is state and platform in self._health else self._clock()
        health = replace(old, state=state, since=since, **fields)
        self._health[platform] = health
        if self._on_change is not None:
            try:
                self._on_change(health)
            except Exception:  # a listener never stops the supervisor
                logger.exception("%s: health listener failed", platform)
        return health

    def snapshot(self) -> list[AdapterHealth]:
        """Every adapter's health, in the order they were first seen."""
        return list(self._health.values())

    def to_json(self) -> list[dict[str, Any]]:
        """:meth:`snapshot` as JSON-able dicts (what ``/api/health`` answers)."""
        return [h.to_json() for h in self._health.values()]


async def _until_closed(adapter: Adapter) -> None:
    """Wait while the adapter's connection lives; raise once it has ended."""
    if isinstance(adapter, WatchedConnection):
        await adapter.wait_closed()
        raise PlatformError("the connection closed", platform=adapter.platform,
                            code="closed", fatal=False)
    await asyncio.Event().wait()  # no connection task of its own: up until cancelled


async def keep_connected(adapter: Adapter, *, retry_max_s: float = 60.0,
                         policy: RetryPolicy | None = None, board: HealthBoard | None = None,
                         sleep: Sleep = asyncio.sleep, rng: Callable[[], float] = random.random,
                         clock: Callable[[], float] = time.monotonic) -> AdapterHealth:
    """Connect, stay connected, reconnect after transient failures; stop at a fatal one.

    Args:
        adapter: the platform adapter (bound to the orchestrator already).
        retry_max_s: the longest backoff (overrides ``policy.max_s``).
        policy: backoff timings.
        board: where the state is published; a private one if None.
        sleep: waits out the backoff (tests pass one that does not sleep).
        rng: the jitter's random source, in ``[0, 1)``.
        clock: monotonic clock, for how long a connection stayed up.

    Returns:
        The ``down`` health once a fatal failure happened (after one error line). Until
        then it runs until cancelled; a platform that is away never stops the show.
    """
    policy = replace(policy or RetryPolicy(), max_s=retry_max_s)
    board = board if board is not None else HealthBoard()
    name = adapter.platform
    attempts = failures = streak = 0
    try:
        while True:
            attempts += 1
            board.set(name, AdapterState.CONNECTING, attempts=attempts, retry_in_s=None)
            up_at: float | None = None
            try:
                async with adapter:
                    up_at = clock()
                    board.set(name, AdapterState.UP)
                    logger.info("%s: up (connected)", name)
                    await _until_closed(adapter)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                error = as_platform_error(name, e)
                failures += 1
                if error.fatal:
                    health = board.set(name, AdapterState.DOWN, failures=failures,
                                       code=error.code, reason=str(error), fix=error.fix)
                    logger.error("%s: down: %s%s", name, error,
                                 f"; {error.fix}" if error.fix else "")
                    return health
                if up_at is not None and clock() - up_at >= policy.stable_s:
                    streak = 0  # it had been up a good while: start the backoff afresh
                streak += 1
                wait = policy.delay(streak, rng)
                board.set(name, AdapterState.RETRYING, failures=failures, code=error.code,
                          reason=str(error), fix=error.fix, retry_in_s=wait)
                lost = "connection lost" if up_at is not None else "connection failed"
                logger.error("%s: %s (%s); retrying in %.1fs", name, lost, error, wait)
                await sleep(wait)
    except asyncio.CancelledError:
        board.set(name, AdapterState.STOPPED, retry_in_s=None)
        raise


class Supervisor:
    """Keeps every adapter connected, one named task each (``adapter:<platform>``), and
    knows how each is doing. Lifecycle is ``async with``; leaving cancels the tasks (each
    adapter leaves its ``async with``) and waits for them.

    Args:
        adapters: the adapters to keep connected (more with :meth:`add` before entering).
        policy: backoff timings (``max_s`` is the app's ``retry_max_s``).
        on_change: hears every state change.
        sleep: waits out the backoff (tests pass one that does not sleep).
        rng: the jitter's random source.
    """

    def __init__(self, adapters: Iterable[Adapter] = (), *, policy: RetryPolicy | None = None,
                 on_change: Callable[[AdapterHealth], None] | None = None,
                 sleep: Sleep = asyncio.sleep,
                 rng: Callable[[], float] = random.random) -> None:
        self.policy = policy or RetryPolicy()
        self.board = HealthBoard(on_change=on_change)
        self._adapters: list[Adapter] = []
        self._sleep = sleep
        self._rng = rng
        self._tasks: list[asyncio.Task[AdapterHealth]] = []
        self._running = False
        for adapter in adapters:
            self.add(adapter)

    def add(self, adapter: Adapter) -> None:
        """Supervise ``adapter`` too (started at once if the supervisor is running)."""
        if any(a.platform == adapter.platform for a in self._adapters):
            raise ValueError(f"two adapters for {adapter.platform}")
        self._adapters.append(adapter)
        if self._running:
            self._start(adapter)

    def _start(self, adapter: Adapter) -> None:
        self._tasks.append(asyncio.create_task(
            keep_connected(adapter, retry_max_s=self.policy.max_s, policy=self.policy,
                           board=self.board, sleep=self._sleep, rng=self._rng),
            name=f"adapter:{adapter.platform}"))

    async def __aenter__(self) -> Self:
        if not self._running:
            self._running = True
            for adapter in self._adapters:
                self._start(adapter)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._running = False
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks)

    def snapshot(self) -> list[AdapterHealth]:
        """Every adapter's current health."""
        return self.board.snapshot()

    def health_json(self) -> list[dict[str, Any]]:
        """Every adapter's current health as JSON-able dicts (for ``/api/health``)."""
        return self.board.to_json()
