"""In a burst the queue keeps what can be answered before going stale, most valuable first,
and refuses the rest at once with a reason the viewer can still read."""

from __future__ import annotations

from bots.events import ChatMessage, Role, Viewer
from bots.orchestrator.queue import PersonaQueue
from bots.orchestrator.settings import QueueSettings


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def msg(i: int, *, bits: int = 0, roles: frozenset[Role] = frozenset()) -> ChatMessage:
    return ChatMessage(viewer=Viewer(id=f"u{i}", name=f"u{i}", roles=roles),
                       message=f"question number {i} about snacks", bits=bits)


def test_slow_answers_shrink_the_queue_to_what_fits_before_stale():
    clock = Clock()
    q = PersonaQueue(settings=QueueSettings(stale_after_s=60, max_length=50), clock=clock)
    q.set_service_time(10.0)  # six answers fit in a minute
    assert q.capacity == 6
    decisions = [q.offer(msg(i)) for i in range(10)]
    assert [d.accepted for d in decisions] == [True] * 6 + [False] * 4
    assert all("too many questions" in (d.reason or "") for d in decisions[6:])
    # A subscriber outranks the plain chat: the lowest plain item is refused now, not later.
    sub = q.offer(msg(20, roles=frozenset({Role.SUBSCRIBER})))
    assert sub.accepted and len(sub.evicted) == 1
    assert sub.evicted[0].status == "refused"
    # Money outranks waiting: paid items are always taken (pushing unpaid ones out first)
    # and never pushed out themselves.
    for i in range(30, 40):
        assert q.offer(msg(i, bits=100)).accepted
    assert len(q) == 10 and all(item.event.paid for item in q.items())


def test_fast_answers_keep_the_full_queue():
    q = PersonaQueue(settings=QueueSettings(stale_after_s=60, max_length=20), clock=Clock())
    q.set_service_time(0.5)
    assert q.capacity == 20
    q.set_service_time(None)
    assert q.capacity == 20


def test_capacity_never_drops_below_the_minimum():
    q = PersonaQueue(settings=QueueSettings(stale_after_s=60, min_capacity=3), clock=Clock())
    q.set_service_time(600)
    assert q.capacity == 3
