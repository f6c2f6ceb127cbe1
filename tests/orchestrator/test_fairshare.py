"""FairShare: turns go round the clients, not first come first served."""

from __future__ import annotations

import asyncio

import pytest

from bots.orchestrator.fairshare import FairShare


async def _run(fair: FairShare, client: str, order: list[str], hold: float = 0.01) -> None:
    async with fair.turn(client):
        order.append(client)
        await asyncio.sleep(hold)


async def test_a_client_asking_many_times_waits_behind_the_others() -> None:
    fair = FairShare(slots=1)
    order: list[str] = []
    first = asyncio.create_task(_run(fair, "show", order))
    await asyncio.sleep(0)  # "show" holds the only slot
    tasks = [asyncio.create_task(_run(fair, "greedy", order)) for _ in range(4)]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(_run(fair, c, order)) for c in ("a", "b")]
    await asyncio.gather(first, *tasks)
    # greedy's four asks came first, yet a and b each get a turn after greedy's first.
    assert order == ["show", "greedy", "a", "b", "greedy", "greedy", "greedy"]
    assert fair.served == {"show": 1, "greedy": 4, "a": 1, "b": 1}
    assert fair.busy == 0 and fair.waiting() == 0


async def test_cancelled_waiter_leaves_its_line_and_the_slot_moves_on() -> None:
    fair = FairShare(slots=1)
    order: list[str] = []
    holder = asyncio.create_task(_run(fair, "x", order, hold=0.05))
    await asyncio.sleep(0)
    gone = asyncio.create_task(_run(fair, "gone", order))
    later = asyncio.create_task(_run(fair, "later", order))
    await asyncio.sleep(0)
    assert fair.waiting() == 2
    gone.cancel()
    await asyncio.gather(holder, later, return_exceptions=True)
    assert order == ["x", "later"]
    assert fair.busy == 0 and fair.waiting() == 0


async def test_granted_then_cancelled_hands_the_slot_on() -> None:
    fair = FairShare(slots=1)
    order: list[str] = []
    holder = asyncio.create_task(_run(fair, "x", order, hold=0.01))
    await asyncio.sleep(0)
    victim = asyncio.create_task(_run(fair, "v", order))
    after = asyncio.create_task(_run(fair, "w", order))
    await asyncio.sleep(0)
    await holder  # grants "v" (its future resolves) ...
    victim.cancel()  # ... but it is cancelled before it runs
    await asyncio.gather(victim, after, return_exceptions=True)
    assert "w" in order and fair.busy == 0


async def test_slots_run_turns_side_by_side() -> None:
    fair = FairShare(slots=3)
    running = 0
    peak = 0

    async def one(c: str) -> None:
        nonlocal running, peak
        async with fair.turn(c):
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.02)
            running -= 1

    await asyncio.gather(*(one(f"c{i}") for i in range(7)))
    assert peak == 3


def test_slots_must_be_positive() -> None:
    with pytest.raises(ValueError, match="slots"):
        FairShare(slots=0)
