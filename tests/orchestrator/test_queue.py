"""The per-persona reply queue: ordering, fairness, bounds and accounting under random floods.

Property tests drive one queue with random sequences of offers, pops, answers, pauses,
clears and clock advances (a fake clock), record everything that happened, and check one
invariant each over that record. Example tests pin the policy's individual rules.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bots.events import (
    ChatMessage,
    Event,
    ModCommand,
    Notice,
    Outcome,
    Redemption,
    Role,
    Utterance,
    Viewer,
)
from bots.orchestrator.queue import Admission, PersonaQueue, QueuedItem
from bots.orchestrator.queue_text import normalize_text
from bots.orchestrator.settings import QueueSettings

EPS = 1e-9


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


VIEWERS = [
    Viewer(id="u0", name="ann"),
    Viewer(id="u1", name="bob"),
    Viewer(id="u2", name="cat"),
    Viewer(id="u3", name="dan"),
    Viewer(id="s0", name="sue", roles=frozenset({Role.SUBSCRIBER})),
    Viewer(id="v0", name="vic", roles=frozenset({Role.VIP, Role.SUBSCRIBER})),
    Viewer(id="m0", name="mod", roles=frozenset({Role.MODERATOR})),
    Viewer(id="b0", name="host", roles=frozenset({Role.BROADCASTER})),
]
TEXTS = ["hi", "Hi!!!", "hiii", "hello there", "HELLO  there?", "sing a song", "lol lol", "lol"]
KINDS = ["chat", "chat", "chat", "cheer", "redemption", "notice", "utterance", "modcmd"]


def make_event(kind: str, viewer: Viewer, text: str, amount: int = 0) -> Event:
    if kind == "chat":
        return ChatMessage(viewer=viewer, message=text)
    if kind == "cheer":
        return ChatMessage(viewer=viewer, message=text, bits=max(1, amount))
    if kind == "redemption":
        return Redemption(
            viewer=viewer,
            reward_id="r1",
            reward_title="Ask Mika",
            redemption_id=f"red-{amount}",
            cost=amount,
            message=text,
        )
    if kind == "notice":
        return Notice(viewer=viewer, kind="subscription", amount=amount % 24)
    if kind == "utterance":
        return Utterance(viewer=viewer, message=text)
    return ModCommand(viewer=viewer, command="skip")


def chat(user: str = "u0", text: str | None = None, roles: frozenset[Role] = frozenset()) -> Event:
    return ChatMessage(viewer=Viewer(id=user, name=user, roles=roles), message=text or f"{user} hi")


def cheer(user: str = "c0", bits: int = 100, text: str | None = None) -> Event:
    return ChatMessage(viewer=Viewer(id=user, name=user), message=text or f"{user} $", bits=bits)


# -- the random driver -----------------------------------------------------------------------

# One op: a selector (what to do, weighted towards offers) and the arguments it may use.
OP_WEIGHTS = [
    ("offer", 48),
    ("pop", 16),
    ("answer", 8),
    ("advance", 12),
    ("pause", 3),
    ("resume", 4),
    ("clear", 2),
    ("drain", 3),
    ("redeliver", 4),
]
OP_TABLE = [name for name, weight in OP_WEIGHTS for _ in range(weight)]
ADVANCES = [0.0, 0.1, 0.5, 1.0, 2.5, 7.0, 30.0]
ops_strategy = st.lists(
    st.tuples(
        st.integers(0, len(OP_TABLE) - 1),
        st.sampled_from(KINDS),
        st.integers(0, len(VIEWERS) - 1),
        st.integers(-3, len(TEXTS) - 1),  # negative: a fresh unique text
        st.integers(0, 3000),
    ),
    min_size=20,
    max_size=100,
)
settings_strategy = st.builds(
    QueueSettings,
    aging_per_s=st.sampled_from([0.0, 0.5, 3.0]),
    stale_after_s=st.sampled_from([None, 4.0, 20.0]),
    paid_stale_after_s=st.sampled_from([None, None, 15.0]),
    max_length=st.integers(1, 8),
    paid_overflow=st.integers(0, 3),
    max_per_user=st.integers(1, 3),
    duplicate_window_s=st.sampled_from([0.0, 3.0, 10.0]),
    similarity_threshold=st.sampled_from([None, None, 0.7]),
    user_cooldown_s=st.sampled_from([0.0, 2.0]),
    persona_cooldown_s=st.sampled_from([0.0, 1.0]),
)


@dataclass
class Trace:
    """Everything a random run did, for the invariants to inspect."""

    settings: QueueSettings
    # every record starts with the step number, so same-time events keep their order
    admissions: list[tuple[int, float, Event, Admission]] = field(default_factory=list)
    accepted: dict[str, tuple[float, Event]] = field(default_factory=dict)
    # (step, time, popped item, what was still queued right after it, in pop order)
    pops: list[tuple[int, float, QueuedItem, list[QueuedItem]]] = field(default_factory=list)
    # (time, paused, length, next_ready_in) of each pop that returned nothing
    empty_pops: list[tuple[float, bool, int, float | None]] = field(default_factory=list)
    answered: list[tuple[int, float, Event]] = field(default_factory=list)
    outcomes: list[tuple[str, float, Outcome]] = field(default_factory=list)
    states: list[tuple[float, list[QueuedItem]]] = field(default_factory=list)
    clears: list[tuple[bool, list[QueuedItem], list[QueuedItem]]] = field(default_factory=list)


def run(ops: list[tuple[int, str, int, int, int]], qs: QueueSettings) -> Trace:
    clock = FakeClock()
    q = PersonaQueue(settings=qs, clock=clock)
    tr = Trace(settings=qs)
    in_flight: Event | None = None
    offered: list[Event] = []
    fresh = 0
    gone: set[str] = set()
    for step, (selector, kind, vi, ti, amount) in enumerate(ops):
        name = OP_TABLE[selector]
        if name in ("offer", "redeliver"):
            if name == "offer":
                if ti < 0:
                    fresh += 1
                    text = f"fresh message number {fresh}"
                else:
                    text = TEXTS[ti]
                event = make_event(kind, VIEWERS[vi], text, amount)
                offered.append(event)
            elif offered:
                event = offered[len(offered) // 2]
            else:
                continue
            adm = q.offer(event)
            tr.admissions.append((step, clock.now, event, adm))
            for out in adm.evicted:
                tr.outcomes.append(("evicted", clock.now, out))
                gone.add(out.event.msg_id)
            if adm.accepted:
                assert event.msg_id not in tr.accepted, "accepted the same event twice"
                tr.accepted[event.msg_id] = (clock.now, event)
            else:
                assert adm.reason and adm.code and not adm.evicted
        elif name == "pop":
            item = q.pop()
            if item is None:
                tr.empty_pops.append((clock.now, q.paused, len(q), q.next_ready_in()))
            else:
                tr.pops.append((step, clock.now, item, q.items()))
                gone.add(item.event.msg_id)
                in_flight = item.event
        elif name == "answer" and in_flight is not None:
            q.mark_answered(in_flight)
            tr.answered.append((step, clock.now, in_flight))
            in_flight = None
        elif name == "advance":
            clock.advance(ADVANCES[amount % len(ADVANCES)])
        elif name == "pause":
            q.pause()
        elif name == "resume":
            q.resume()
        elif name == "clear":
            before = q.items()
            include_paid = amount % 2 == 1
            outs = q.clear(include_paid=include_paid)
            tr.clears.append((include_paid, before, q.items()))
            tr.outcomes.extend(("clear", clock.now, o) for o in outs)
            gone.update(o.event.msg_id for o in outs)
        elif name == "drain":
            outs = q.drain_expired()
            tr.outcomes.extend(("expired", clock.now, o) for o in outs)
            gone.update(o.event.msg_id for o in outs)
        items = q.items()
        assert len(items) == len(q)
        tr.states.append((clock.now, items))
        # The queue holds exactly what was accepted and has not left it yet.
        pending = {o.event.msg_id for o in q._expired}
        expected = set(tr.accepted) - gone - pending
        assert {it.event.msg_id for it in items} == expected
    # Wind down: everything still queued or expired must come out as an outcome.
    tr.outcomes.extend(("expired", clock.now, o) for o in q.drain_expired())
    tr.outcomes.extend(("clear", clock.now, o) for o in q.clear(include_paid=True))
    assert len(q) == 0
    return tr


# No "explain" phase: on a 100-op failing case it takes minutes; the shrunk ops say enough.
PROPERTY = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)


def effective(item: QueuedItem, now: float, qs: QueueSettings) -> float:
    return item.effective_priority(now=now, aging_per_s=qs.aging_per_s)


# -- invariants --------------------------------------------------------------------------------


@PROPERTY
@given(ops=ops_strategy, qs=settings_strategy)
def test_pop_takes_the_highest_effective_priority(ops, qs):
    tr = run(ops, qs)
    for _, now, item, rest in tr.pops:
        top = effective(item, now, qs)
        for other in rest:
            assert top >= effective(other, now, qs) - EPS


@PROPERTY
@given(ops=ops_strategy, qs=settings_strategy)
def test_fifo_among_equal_base_priorities(ops, qs):
    tr = run(ops, qs)
    last_seq: dict[float, int] = {}
    for *_, item, rest in tr.pops:
        assert not any(o.priority == item.priority and o.seq < item.seq for o in rest)
        assert item.seq > last_seq.get(item.priority, -1)
        last_seq[item.priority] = item.seq


@PROPERTY
@given(ops=ops_strategy, qs=settings_strategy)
def test_per_user_cap_on_unpaid_items(ops, qs):
    tr = run(ops, qs)
    for _, items in tr.states:
        per_user = Counter(
            it.event.viewer.id for it in items if not it.paid and not it.event.viewer.is_mod
        )
        assert all(n <= qs.max_per_user for n in per_user.values())


@PROPERTY
@given(ops=ops_strategy, qs=settings_strategy)
def test_every_accepted_event_is_accounted_for_exactly_once(ops, qs):
    tr = run(ops, qs)
    fates = Counter(it.event.msg_id for *_, it, _ in tr.pops)
    fates.update(o.event.msg_id for *_, o in tr.outcomes)
    assert set(fates) == set(tr.accepted)
    assert all(n == 1 for n in fates.values())
    for source, _, out in tr.outcomes:
        assert out.status == "refused" and out.reason
        if out.event.paid:
            # paid items are refused only explicitly: never evicted, stale only if configured
            assert source != "evicted"
            if source == "expired":
                assert qs.paid_stale_after_s is not None


@PROPERTY
@given(ops=ops_strategy, qs=settings_strategy)
def test_length_is_bounded_and_only_paid_items_overflow(ops, qs):
    tr = run(ops, qs)
    for _, items in tr.states:
        assert len(items) <= qs.max_length + qs.paid_overflow
        assert sum(not it.paid for it in items) <= qs.max_length
        if len(items) > qs.max_length:
            assert all(it.paid for it in items)
    for *_, event, adm in tr.admissions:
        if adm.code == "paid_overflow":
            assert event.paid
        assert len(adm.evicted) <= 1


@PROPERTY
@given(ops=ops_strategy, qs=settings_strategy)
def test_stale_items_are_dropped_with_an_outcome(ops, qs):
    tr = run(ops, qs)
    for now, items in tr.states:
        for it in items:
            limit = qs.paid_stale_after_s if it.paid else qs.stale_after_s
            if limit is not None:
                assert now - it.enqueued_at < limit + EPS
    for source, now, out in tr.outcomes:
        if source == "expired":
            accepted_at, event = tr.accepted[out.event.msg_id]
            limit = qs.paid_stale_after_s if event.paid else qs.stale_after_s
            # deadline = accepted_at + limit in floats: 1009.6 + 15 - 1009.6 may be 14.999...
            assert limit is not None and now - accepted_at >= limit - EPS
            assert out.reason.startswith("stale")


@PROPERTY
@given(ops=ops_strategy, qs=settings_strategy)
def test_duplicates_are_suppressed_within_the_window(ops, qs):
    tr = run(ops, qs)
    last: dict[str, float] = {}
    for _, now, event, adm in tr.admissions:
        norm = normalize_text(event.text)
        exempt = event.paid and qs.paid_bypasses_limits
        if adm.accepted and norm and not exempt:
            if norm in last:
                assert now - last[norm] >= qs.duplicate_window_s
            last[norm] = now
        if adm.code == "duplicate" and qs.similarity_threshold is None:
            assert norm in last and now - last[norm] < qs.duplicate_window_s


@PROPERTY
@given(ops=ops_strategy, qs=settings_strategy)
def test_user_and_persona_cooldowns(ops, qs):
    tr = run(ops, qs)

    def last_answer(before: int, user: str | None = None) -> float | None:
        times = [t for s, t, e in tr.answered if s < before and user in (None, e.viewer.id)]
        return max(times, default=None)

    for step, now, event, adm in tr.admissions:
        exempt = (
            (event.paid and qs.paid_bypasses_limits)
            or (event.viewer.is_mod and qs.mods_bypass_limits)
            or (isinstance(event, Utterance) and qs.voice_bypasses_cooldown)
        )
        last = last_answer(step, event.viewer.id)
        if adm.accepted and not exempt and last is not None:
            assert now - last >= qs.user_cooldown_s
        if adm.code == "user_cooldown":
            assert last is not None
            assert adm.retry_in_s == pytest.approx(qs.user_cooldown_s - (now - last))
    for step, now, _, _ in tr.pops:
        last = last_answer(step)
        if last is not None:
            assert now - last >= qs.persona_cooldown_s - EPS


@PROPERTY
@given(ops=ops_strategy, qs=settings_strategy)
def test_pause_resume_and_clear(ops, qs):
    tr = run(ops, qs)
    for _now, paused, length, ready_in in tr.empty_pops:
        # pop only comes back empty for a reason: paused, empty, or persona cooldown
        if paused or length == 0:
            assert ready_in is None
        else:
            assert ready_in is not None and ready_in > 0
    for include_paid, before, after in tr.clears:
        if include_paid:
            assert after == []
        else:
            assert [it.seq for it in after] == [it.seq for it in before if it.paid]


# -- aging bound: adversarial floods ---------------------------------------------------------


def simulate_flood(
    qs: QueueSettings,
    *,
    low: Event,
    flood: list[str],
    interval: float,
    reply_s: float,
    prefill: int,
    horizon: float,
) -> tuple[str, float, int]:
    """Run a consumer (pop, reply for ``reply_s``, mark answered) against a steady flood of
    higher-priority events; the low event is offered at t=0 after ``prefill`` flood items.

    Returns:
        (fate of the low event: "popped", "evicted" or "waiting", when, flood items popped).
    """
    clock = FakeClock(0.0)
    q = PersonaQueue(settings=qs, clock=clock)
    n = 0

    def flood_one() -> tuple[Outcome, ...]:
        nonlocal n
        kind = flood[n % len(flood)]
        n += 1
        event = make_event(kind, Viewer(id=f"f{n}", name="f"), f"flood {n}", 100 * n)
        return q.offer(event).evicted

    for _ in range(prefill):
        flood_one()
    assert q.offer(low).accepted
    t, next_arrival, flood_pops = 0.0, interval, 0
    in_flight: QueuedItem | None = None
    busy_until = 0.0
    while t <= horizon:
        if in_flight is not None and busy_until <= t:
            q.mark_answered(in_flight.event)
            in_flight = None
        while next_arrival <= t:
            if any(o.event is low for o in flood_one()):
                return "evicted", t, flood_pops
            next_arrival += interval
        if in_flight is None:
            in_flight = q.pop()
            if in_flight is not None:
                if in_flight.event is low:
                    return "popped", t, flood_pops
                flood_pops += 1
                busy_until = t + reply_s
        upcoming = [next_arrival]
        if in_flight is not None:
            upcoming.append(busy_until)
        elif (ready := q.next_ready_in()) is not None and ready > 0:
            upcoming.append(t + max(ready, 1e-6))  # a fake clock must move past float dust
        t = clock.now = min(upcoming)
    return "waiting", t, flood_pops


@settings(max_examples=80, deadline=None)
@given(
    aging=st.floats(0.5, 5.0),
    max_length=st.integers(2, 25),
    reply_s=st.floats(0.2, 3.0),
    persona_cooldown=st.sampled_from([0.0, 0.5]),
    interval=st.floats(0.05, 2.0),
    prefill=st.integers(0, 25),
    flood=st.lists(
        st.sampled_from(["utterance", "cheer", "redemption", "notice"]), min_size=1, max_size=4
    ),
    low_role=st.sampled_from([None, Role.SUBSCRIBER, Role.VIP]),
)
def test_aging_bounds_the_wait_under_a_flood(
    aging, max_length, reply_s, persona_cooldown, interval, prefill, flood, low_role
):
    qs = QueueSettings(
        aging_per_s=aging,
        max_length=max_length,
        paid_overflow=3,
        stale_after_s=None,
        user_cooldown_s=0.0,
        persona_cooldown_s=persona_cooldown,
        duplicate_window_s=0.0,
    )
    low = chat("low", roles=frozenset({low_role}) if low_role else frozenset())
    bound = qs.max_wait_s(qs.base_priority(low), reply_s=reply_s)
    fate, at, _ = simulate_flood(
        qs,
        low=low,
        flood=flood,
        interval=interval,
        reply_s=reply_s,
        prefill=min(prefill, max_length - 1),  # the low one must get in
        horizon=bound + 5 * reply_s,
    )
    assert fate in ("popped", "evicted")  # never still waiting past the bound
    assert at <= bound + 1e-6


def test_aging_is_what_prevents_starvation():
    common = dict(max_length=1000, stale_after_s=None, user_cooldown_s=0.0, duplicate_window_s=0.0)
    run_args = dict(flood=["utterance"], interval=0.5, reply_s=1.0, prefill=3, horizon=600.0)
    without = QueueSettings(aging_per_s=0.0, **common)
    fate, _, flood_pops = simulate_flood(without, low=chat("low"), **run_args)
    assert fate == "waiting" and flood_pops > 500  # starved by a flood twice the service rate
    with_aging = QueueSettings(aging_per_s=1.0, **common)
    fate, at, _ = simulate_flood(with_aging, low=chat("low"), **run_args)
    # Utterances arriving within 90 s (the priority gap / aging) of it rank above it, later
    # ones never do: 3 prefilled + 179 arrivals before t=90 at one reply a second -> t=182.
    assert fate == "popped" and at == pytest.approx(182.0)
    assert at <= with_aging.max_wait_s(10.0, reply_s=1.0)


def test_max_wait_formula():
    qs = QueueSettings(aging_per_s=2.0, max_length=10, paid_overflow=5, persona_cooldown_s=1.0)
    assert qs.top_priority == qs.utterance_priority == 100.0
    assert qs.max_wait_s(10.0, reply_s=3.0) == pytest.approx(90 / 2 + 10 * 4)
    assert qs.max_wait_s(60.0, reply_s=3.0, paid=True) == pytest.approx(40 / 2 + 15 * 4)
    assert QueueSettings(aging_per_s=0.0).max_wait_s(10.0, reply_s=1.0) == float("inf")


# -- priorities ---------------------------------------------------------------------------------


def test_priority_classes_in_order():
    qs = QueueSettings()
    viewer = Viewer(id="x", name="x")
    ranked = [
        Utterance(viewer=viewer, message="hey"),
        ChatMessage(viewer=viewer, message="hey", bits=100),
        Notice(viewer=viewer, kind="raid", amount=50),
        chat(roles=frozenset({Role.MODERATOR})),
        chat(roles=frozenset({Role.VIP})),
        chat(roles=frozenset({Role.SUBSCRIBER})),
        chat(),
    ]
    priorities = [qs.base_priority(e) for e in ranked]
    assert priorities == sorted(priorities, reverse=True)
    assert len(set(priorities)) == len(priorities)
    assert qs.base_priority(chat(roles=frozenset({Role.BROADCASTER}))) == qs.mod_priority


def test_paid_priority_scales_with_amount_and_is_capped():
    qs = QueueSettings(paid_base=50, per_bit=0.01, paid_cap=80, redemption_per_point=0.001)
    assert qs.base_priority(cheer(bits=100)) == pytest.approx(51.0)
    assert qs.base_priority(cheer(bits=1000)) == pytest.approx(60.0)
    assert qs.base_priority(cheer(bits=1_000_000)) == 80.0
    redemption = Redemption(
        viewer=Viewer(id="r", name="r"),
        reward_id="a",
        reward_title="b",
        redemption_id="c",
        cost=5000,
    )
    assert qs.base_priority(redemption) == pytest.approx(qs.redemption_base + 5.0)


def test_pop_order_follows_priority_then_arrival():
    clock = FakeClock()
    q = PersonaQueue(settings=QueueSettings(aging_per_s=0.0), clock=clock)
    events = [chat("a"), chat("b", roles=frozenset({Role.SUBSCRIBER})), chat("c"), cheer("d")]
    for e in events:
        assert q.offer(e).accepted
    popped = [q.pop().event for _ in range(4)]
    assert popped == [events[3], events[1], events[0], events[2]]
    assert q.pop() is None


def test_aging_lets_an_old_chat_overtake_a_fresh_subscriber():
    clock = FakeClock()
    q = PersonaQueue(settings=QueueSettings(aging_per_s=1.0), clock=clock)
    old = chat("old")
    q.offer(old)
    clock.advance(11.0)  # 10 + 11 > 20
    q.offer(chat("sub", roles=frozenset({Role.SUBSCRIBER})))
    assert q.pop().event is old


# -- overflow ----------------------------------------------------------------------------------


def full_queue(n: int = 3, **kw) -> tuple[PersonaQueue, FakeClock]:
    clock = FakeClock()
    qs = QueueSettings(max_length=n, aging_per_s=0.0, **kw)
    return PersonaQueue(settings=qs, clock=clock), clock


def test_unpaid_newcomer_evicts_the_lowest_newest_unpaid_item():
    q, _ = full_queue(3, paid_overflow=2)
    sub = chat("s", roles=frozenset({Role.SUBSCRIBER}))
    a, b = chat("a"), chat("b")
    for e in (a, sub, b):
        assert q.offer(e).accepted
    vip = chat("v", roles=frozenset({Role.VIP}))
    adm = q.offer(vip)
    assert adm.accepted
    assert [o.event for o in adm.evicted] == [b]  # lowest class, and the newest of the two
    assert adm.evicted[0].status == "refused" and adm.evicted[0].reason.startswith("evicted")
    assert len(q) == 3


def test_newcomer_that_is_itself_lowest_is_rejected():
    q, _ = full_queue(2)
    assert q.offer(chat("a")).accepted and q.offer(chat("b")).accepted
    adm = q.offer(chat("c"))  # same priority as the lowest: the newest of equals is the victim
    assert not adm.accepted and adm.code == "full" and adm.evicted == ()


def test_paid_newcomer_evicts_unpaid_then_overflows_then_is_refused():
    q, _ = full_queue(2, paid_overflow=2)
    first = chat("a", roles=frozenset({Role.MODERATOR}))
    q.offer(first)
    q.offer(cheer("p0"))
    adm = q.offer(cheer("p1", bits=1))
    assert adm.accepted and [o.event for o in adm.evicted] == [first]
    # only paid left: an unpaid newcomer is rejected, a paid one overflows
    assert q.offer(chat("z", roles=frozenset({Role.BROADCASTER}))).code == "full"
    assert q.offer(cheer("p2")).accepted and q.offer(cheer("p3")).accepted
    assert len(q) == 4
    refused = q.offer(cheer("p4"))
    assert not refused.accepted and refused.code == "paid_overflow"
    assert "refund" in refused.reason


def test_paid_items_are_never_evicted():
    q, _ = full_queue(2)
    paid = [cheer("p0"), cheer("p1")]
    for e in paid:
        q.offer(e)
    adm = q.offer(Utterance(viewer=Viewer(id="v", name="v"), message="hello"))
    assert not adm.accepted and adm.evicted == ()
    assert {it.event.msg_id for it in q.items()} == {e.msg_id for e in paid}


# -- staleness ---------------------------------------------------------------------------------


def test_unpaid_goes_stale_paid_does_not():
    clock = FakeClock()
    q = PersonaQueue(settings=QueueSettings(stale_after_s=10.0), clock=clock)
    unpaid, paid = chat("a"), cheer("b")
    q.offer(unpaid)
    q.offer(paid)
    clock.advance(9.9)
    assert q.drain_expired() == [] and len(q) == 2
    clock.advance(0.1)
    assert len(q.items()) == 1  # reading expires too
    expired = q.drain_expired()
    assert [o.event for o in expired] == [unpaid]
    assert expired[0].status == "refused" and expired[0].reason.startswith("stale")
    assert q.drain_expired() == []
    clock.advance(10_000)
    assert q.pop().event is paid


def test_paid_stale_deadline_refuses_explicitly():
    clock = FakeClock()
    q = PersonaQueue(settings=QueueSettings(paid_stale_after_s=60.0), clock=clock)
    paid = cheer("b")
    q.offer(paid)
    clock.advance(60.0)
    assert q.pop() is None
    assert [(o.event, o.status) for o in q.drain_expired()] == [(paid, "refused")]


# -- duplicates --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Hello there!", "hello    THERE"),
        ("soooo cool", "so cool!!!"),
        ("lol lol lol", "LOL"),
        ("don't stop", "dont stop"),
        ("🎉🎉🎉", "🎉"),
    ],
)
def test_normalized_text_collides(a, b):
    assert normalize_text(a) == normalize_text(b)


def test_normalized_text_keeps_different_messages_apart():
    assert normalize_text("sing a song") != normalize_text("sing a tune")
    assert normalize_text("?!...") == ""


def test_duplicate_from_anyone_is_rejected_within_the_window():
    clock = FakeClock()
    q = PersonaQueue(settings=QueueSettings(duplicate_window_s=30.0), clock=clock)
    assert q.offer(chat("a", "First!!")).accepted
    adm = q.offer(chat("b", "first"))
    assert not adm.accepted and adm.code == "duplicate"
    assert q.offer(cheer("c", text="first")).accepted  # paid: never refused as duplicate
    clock.advance(30.0)
    assert q.offer(chat("d", "FIRST")).accepted


def test_similarity_threshold_catches_near_duplicates():
    clock = FakeClock()
    qs = QueueSettings(similarity_threshold=0.6, duplicate_window_s=30.0)
    q = PersonaQueue(settings=qs, clock=clock)
    assert q.offer(chat("a", "play minecraft with us tonight")).accepted
    assert q.offer(chat("b", "play minecraft with us tonight pls")).code == "duplicate"
    assert q.offer(chat("c", "what is your favourite food")).accepted


def test_redelivered_event_is_rejected_without_refund_code():
    q, _ = full_queue(5)
    paid = cheer("p")
    assert q.offer(paid).accepted
    again = q.offer(paid)
    assert not again.accepted and again.code == "redelivered"
    assert q.pop().event is paid
    assert q.offer(paid).code == "redelivered"  # even after it was popped


def test_mod_commands_are_not_queued():
    q, _ = full_queue(5)
    adm = q.offer(ModCommand(viewer=VIEWERS[6], command="clear"))
    assert not adm.accepted and adm.code == "not_queueable" and len(q) == 0


# -- per-user cap and cooldowns ----------------------------------------------------------------


def test_per_user_cap_and_mod_bypass():
    q, _ = full_queue(50, max_per_user=2)
    assert q.offer(chat("a", "one")).accepted and q.offer(chat("a", "two")).accepted
    adm = q.offer(chat("a", "three"))
    assert not adm.accepted and adm.code == "user_cap"
    assert q.offer(cheer("a", text="paid three")).accepted
    mod = frozenset({Role.MODERATOR})
    assert all(q.offer(chat("m", f"mod {i}", roles=mod)).accepted for i in range(5))


def test_user_cooldown_after_an_answer():
    clock = FakeClock()
    q = PersonaQueue(settings=QueueSettings(user_cooldown_s=10.0), clock=clock)
    first = chat("a", "one")
    q.offer(first)
    q.mark_answered(q.pop().event)
    clock.advance(4.0)
    adm = q.offer(chat("a", "two"))
    assert not adm.accepted and adm.code == "user_cooldown"
    assert adm.retry_in_s == pytest.approx(6.0) and "6s" in adm.reason
    assert q.offer(chat("b", "someone else")).accepted
    assert q.offer(Utterance(viewer=first.viewer, message="voice turn")).accepted
    assert q.offer(cheer("a", text="paid")).accepted
    clock.advance(6.0)
    assert q.offer(chat("a", "three")).accepted


def test_persona_cooldown_holds_pop_and_reports_wait():
    clock = FakeClock()
    q = PersonaQueue(settings=QueueSettings(persona_cooldown_s=2.0), clock=clock)
    assert q.next_ready_in() is None
    q.offer(chat("a"))
    q.offer(chat("b"))
    assert q.next_ready_in() == 0.0
    q.mark_answered(q.pop().event)
    clock.advance(0.5)
    assert q.pop() is None
    assert q.next_ready_in() == pytest.approx(1.5)
    clock.advance(1.5)
    assert q.pop() is not None


# -- pause, clear, snapshot ----------------------------------------------------------------------


def test_pause_keeps_taking_offers_and_resume_pops():
    q, _ = full_queue(5)
    q.pause()
    assert q.paused and q.offer(chat("a")).accepted
    assert q.pop() is None and q.next_ready_in() is None
    q.resume()
    assert not q.paused and q.pop() is not None


def test_clear_drops_unpaid_and_paid_only_on_request():
    q, _ = full_queue(10)
    unpaid, paid = [chat("a"), chat("b")], [cheer("c")]
    for e in unpaid + paid:
        q.offer(e)
    outs = q.clear(reason="cleared by a moderator")
    assert [o.event for o in outs] == unpaid
    assert all(o.status == "refused" and o.reason == "cleared by a moderator" for o in outs)
    assert len(q) == 1
    outs = q.clear(include_paid=True)
    assert [o.event for o in outs] == paid and len(q) == 0


def test_snapshot_for_the_dashboard():
    clock = FakeClock()
    q = PersonaQueue(settings=QueueSettings(aging_per_s=1.0), clock=clock)
    q.offer(chat("a", "x" * 200))
    clock.advance(3.0)
    q.offer(cheer("b", bits=100))
    rows = q.snapshot()
    assert [r["user"] for r in rows] == ["b", "a"]
    assert rows[1]["waited_s"] == 3.0 and rows[1]["priority"] == 13.0 and not rows[1]["paid"]
    assert len(rows[1]["text"]) == 80 and rows[0]["paid"] and rows[0]["kind"] == "ChatMessage"


# -- settings ----------------------------------------------------------------------------------


def test_settings_are_strict_and_frozen():
    with pytest.raises(ValidationError):
        QueueSettings(max_lenght=3)
    with pytest.raises(ValidationError):
        QueueSettings(paid_cap=10.0)
    qs = QueueSettings()
    with pytest.raises(ValidationError):
        qs.max_length = 3


# -- cost ----------------------------------------------------------------------------------------


def test_heaps_stay_compact_and_offers_stay_cheap():
    clock = FakeClock()
    qs = QueueSettings(max_length=200, stale_after_s=5.0, user_cooldown_s=0.0)
    q = PersonaQueue(settings=qs, clock=clock)
    kinds = ["chat", "chat", "utterance", "cheer", "notice"]
    start = time.perf_counter()
    for i in range(20_000):
        event = make_event(kinds[i % 5], Viewer(id=f"u{i % 997}", name="u"), f"message {i}", i)
        q.offer(event)
        if i % 3 == 0:
            q.pop()
        clock.advance(0.001)
    elapsed = time.perf_counter() - start
    n = len(q)
    assert len(q._best) <= 2 * n + 65 and len(q._deadlines) <= 2 * n + 65
    q.drain_expired()
    assert elapsed < 5.0  # ~0.2 s on a laptop; a loose guard against accidental O(n) offers


def test_many_users_are_remembered_for_cooldown_only_as_long_as_needed():
    clock = FakeClock()
    q = PersonaQueue(settings=QueueSettings(user_cooldown_s=1.0), clock=clock)
    for i in range(5000):
        q.mark_answered(chat(f"u{i}"))
        clock.advance(0.01)
    assert len(q._answered_at) <= 2100


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_fast_path_matches_the_unicode_rules(text):
    import unicodedata

    stripped = "".join(c for c in text.casefold() if unicodedata.category(c)[0] != "P")
    collapsed = "".join(c for i, c in enumerate(stripped) if i == 0 or c != stripped[i - 1])
    words = collapsed.split()
    expected = " ".join(w for i, w in enumerate(words) if i == 0 or w != words[i - 1])
    assert normalize_text(text) == expected


def test_viewer_command_skips_the_cooldown_and_the_duplicate_window():
    """``!slower`` typed right after the answer it asks about, by two viewers: both queue;
    an ordinary line in the same place is still refused."""
    clock = FakeClock()
    qs = QueueSettings(user_cooldown_s=30.0, duplicate_window_s=60.0, similarity_threshold=None)
    q = PersonaQueue(settings=qs, clock=clock)
    ann = Viewer(id="ann", name="ann")
    first = ChatMessage(viewer=ann, message="Was machst du heute?")
    assert q.offer(first).accepted
    item = q.pop()
    assert item is not None
    q.mark_answered(item.event)
    clock.advance(1.0)
    again = q.offer(ChatMessage(viewer=ann, message="und morgen?"))
    assert not again.accepted and again.code == "user_cooldown"  # plain chat still waits
    assert q.offer(ChatMessage(viewer=ann, message="!slower")).accepted
    bob = Viewer(id="bob", name="bob")
    assert q.offer(ChatMessage(viewer=bob, message="!SLOWER")).accepted  # same line, two people
    dup = q.offer(ChatMessage(viewer=bob, message="Was machst du heute?"))
    assert not dup.accepted and dup.code == "duplicate"
