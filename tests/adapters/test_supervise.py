"""The supervisor sees failures: a connection that dies after entering is retried and comes
back up, a fatal error goes down with one line and no retry, transient errors back off
(injected delays, no sleeping), and stopping leaves every adapter cleanly."""

from __future__ import annotations

import asyncio
import json
import logging

from bots.adapters.supervise import (
    AdapterHealth,
    AdapterState,
    RetryPolicy,
    Supervisor,
    as_platform_error,
    keep_connected,
)
from tests.adapters.fakes import Attempt, FakeAdapter, UnwatchedAdapter, fatal, transient
from tests.twitch.helpers import until
from vstage_core.errors import ConfigError, PlatformError

S = AdapterState


class Sleeps:
    """An injected ``sleep``: records each backoff and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


def state_of(sup: Supervisor) -> AdapterState | None:
    """The only adapter's state, None before its task first ran."""
    health = sup.snapshot()
    return health[0].state if health else None


def states(seen: list[AdapterHealth]) -> list[AdapterState]:
    return [h.state for h in seen]


async def test_a_connection_that_dies_after_entering_is_retried_and_comes_back_up():
    adapter = FakeAdapter([Attempt(dies=True, close_error=transient("gateway_closed")),
                           Attempt()])
    seen: list[AdapterHealth] = []
    sleeps = Sleeps()
    async with Supervisor([adapter], on_change=seen.append, sleep=sleeps) as sup:
        await until(lambda: adapter.entered == 2 and state_of(sup) is S.UP)
        assert states(seen) == [S.CONNECTING, S.UP, S.RETRYING, S.CONNECTING, S.UP]
        retrying = seen[2]
        assert retrying.code == "gateway_closed" and retrying.failures == 1
        assert retrying.retry_in_s == sleeps.delays[0]
        assert adapter.exited == 1  # the dead connection was left before reconnecting
        # and a later death of the good connection is seen too
        adapter.kill(transient("network"))
        await until(lambda: adapter.entered == 3 and state_of(sup) is S.UP)
        assert sup.snapshot()[0].failures == 2 and sup.snapshot()[0].attempts == 3
    assert adapter.exited == adapter.entered == 3
    assert state_of(sup) is S.STOPPED


async def test_a_connection_closing_without_a_reason_is_retried():
    adapter = FakeAdapter([Attempt(dies=True), Attempt()])
    async with Supervisor([adapter], sleep=Sleeps()) as sup:
        await until(lambda: adapter.entered == 2 and state_of(sup) is S.UP)
        assert sup.snapshot()[0].code == "closed"


async def test_a_fatal_error_goes_down_with_one_line_and_is_not_retried(caplog):
    adapter = FakeAdapter([Attempt(enter_error=fatal())])
    sleeps = Sleeps()
    with caplog.at_level(logging.INFO, logger="bots.adapters.supervise"):
        health = await keep_connected(adapter, sleep=sleeps)
        await asyncio.sleep(0.05)  # nothing more happens
    assert adapter.attempts == 1 and sleeps.delays == []
    assert health.state is S.DOWN and health.code == "token_invalid"
    assert health.fix == "log in again"
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["fake: down: the token was refused; log in again"]


async def test_a_fatal_close_after_entering_goes_down_after_one_up(caplog):
    adapter = FakeAdapter([Attempt(dies=True, close_error=fatal("disallowed_intents"))])
    seen: list[AdapterHealth] = []
    with caplog.at_level(logging.ERROR, logger="bots.adapters.supervise"):
        async with Supervisor([adapter], on_change=seen.append, sleep=Sleeps()) as sup:
            await until(lambda: state_of(sup) is S.DOWN)
            await asyncio.sleep(0.05)
            assert adapter.attempts == 1 and adapter.exited == 1
    assert states(seen) == [S.CONNECTING, S.UP, S.DOWN]  # down stays down, even on stop
    assert [r.getMessage() for r in caplog.records] == [
        "fake: down: the token was refused; log in again"]
    assert sup.health_json()[0]["state"] == "down"


async def test_transient_errors_back_off_exponentially_up_to_the_cap():
    adapter = FakeAdapter([Attempt(enter_error=transient())] * 6 + [Attempt()])
    sleeps = Sleeps()
    task = asyncio.create_task(keep_connected(
        adapter, retry_max_s=5.0, policy=RetryPolicy(first_s=1.0, factor=2.0, jitter=0.5),
        sleep=sleeps, rng=lambda: 1.0))
    try:
        await until(lambda: adapter.entered == 1)
        assert sleeps.delays == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
        assert adapter.attempts == 7
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_backoff_is_jittered_between_half_and_full_delay():
    policy = RetryPolicy(first_s=2.0, factor=2.0, jitter=0.5, max_s=60.0)
    assert policy.delay(1, lambda: 0.0) == 1.0
    assert policy.delay(3, lambda: 0.0) == 4.0
    assert 4.0 < policy.delay(3, lambda: 0.5) < 8.0


async def test_a_connection_that_stayed_up_long_enough_starts_the_backoff_afresh():
    now = [0.0]
    adapter = FakeAdapter([Attempt(enter_error=transient())] * 3
                          + [Attempt(), Attempt(enter_error=transient()), Attempt()])
    sleeps = Sleeps()
    task = asyncio.create_task(keep_connected(
        adapter, policy=RetryPolicy(stable_s=30.0), sleep=sleeps, rng=lambda: 1.0,
        clock=lambda: now[0]))
    try:
        await until(lambda: adapter.entered == 1)
        now[0] += 31.0  # up for a while, then lost
        adapter.kill(transient("network"))
        await until(lambda: adapter.entered == 2)
        # 1, 2, 4 while failing; reset after a stable connection: 1, then 2
        assert sleeps.delays == [1.0, 2.0, 4.0, 1.0, 2.0]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_cancelling_during_the_backoff_stops_cleanly():
    adapter = FakeAdapter([Attempt(enter_error=transient())])
    waiting = asyncio.Event()

    async def sleep_forever(_s: float) -> None:
        waiting.set()
        await asyncio.Event().wait()

    async with Supervisor([adapter], sleep=sleep_forever) as sup:
        await waiting.wait()
        assert state_of(sup) is S.RETRYING
    assert state_of(sup) is S.STOPPED
    assert adapter.attempts == 1 and adapter.exited == 0  # never entered: nothing to leave


async def test_an_adapter_without_a_watched_connection_is_up_until_stopped():
    adapter = UnwatchedAdapter([Attempt()])
    async with Supervisor([adapter], sleep=Sleeps()) as sup:
        await until(lambda: state_of(sup) is S.UP)
        await asyncio.sleep(0.05)
        assert adapter.attempts == 1
    assert adapter.exited == 1 and state_of(sup) is S.STOPPED


async def test_each_adapter_has_its_own_state_and_named_task():
    good = FakeAdapter([Attempt()], platform="twitch")
    bad = FakeAdapter([Attempt(enter_error=fatal())], platform="discord")
    async with Supervisor([good, bad], sleep=Sleeps()) as sup:
        await until(lambda: {h.platform: h.state for h in sup.snapshot()}
                    == {"twitch": S.UP, "discord": S.DOWN})
        names = {t.get_name() for t in asyncio.all_tasks()}
        assert "adapter:twitch" in names
        health = sup.health_json()
        assert json.loads(json.dumps(health)) == health
        down = next(h for h in health if h["platform"] == "discord")
        assert down["reason"] == "the token was refused" and down["fix"] == "log in again"


def test_untranslated_errors_are_judged_by_type():
    assert as_platform_error("x", ConfigError("no token")).fatal
    assert not as_platform_error("x", OSError("connection refused")).fatal
    assert not as_platform_error("x", TimeoutError()).fatal
    own = PlatformError("m", platform="x", code="c", fatal=True)
    assert as_platform_error("x", own) is own
