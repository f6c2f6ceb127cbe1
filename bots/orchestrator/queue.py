"""The per-persona reply queue: decides which viewer events a persona answers, and in what order.

Pure and synchronous (no asyncio inside); time comes from an injectable clock so tests control
it. The orchestrator offers every routed event, pops the next one when the persona is free
(``next_ready_in()`` says how long to wait) and calls ``mark_answered`` when a reply is done.
Nothing leaves the queue silently: every accepted event is either popped, or reported in
exactly one ``Outcome(status="refused")`` -- in ``Admission.evicted`` (pushed out by a
newcomer), in ``drain_expired()`` (stale), or in the list ``clear()`` returns.

Priority
    Each event gets a base priority from :class:`QueueSettings`: live voice (``Utterance``) >
    paid (bits: ``paid_base + per_bit * bits``; redemptions: ``redemption_base +
    redemption_per_point * cost``; both capped at ``paid_cap``) > notices (subs, raids) >
    moderators > VIPs > subscribers > plain chat. The effective priority grows while an item
    waits: ``effective = base + aging_per_s * waited_s``. Because the rate is global,
    ``effective = (base - aging_per_s * enqueued_at) + aging_per_s * now``, and the key
    ``base - aging_per_s * enqueued_at`` orders the queue the same way at every instant; the
    queue keeps heaps of that time-invariant key (lazy deletion), so ``offer`` and ``pop`` are
    O(log n) amortised. Among equal effective priorities the earlier item goes first (FIFO).

Admission (in this order; a rejection returns ``Admission(accepted=False, reason, code)``)
    1. ``ModCommand`` is never queued (code ``not_queueable``): the orchestrator handles it.
    2. A ``msg_id`` seen recently is a platform redelivery (code ``redelivered``). The first
       delivery is still in play: an adapter must not refund on this code.
    3. User cooldown (code ``user_cooldown``, ``retry_in_s`` set): a user's next item is not
       accepted until ``user_cooldown_s`` after their last answered one.
    4. Per-user cap (code ``user_cap``): at most ``max_per_user`` unpaid items queued per user.
    5. Capacity (code ``full`` or ``paid_overflow``; see the overflow policy below).
    6. Duplicates (code ``duplicate``): the same normalised text (case-folded, punctuation
       stripped, repeated characters and words collapsed) accepted from anyone within
       ``duplicate_window_s``; optionally also a text whose trigram similarity to a recent one
       reaches ``similarity_threshold``. Only accepted texts open a window.
    An eviction happens only once the newcomer has passed every check.
    Paid events (bits, redemptions) skip 3, 4 and 6 (``paid_bypasses_limits``); moderators
    and the broadcaster skip 3 and 4 (``mods_bypass_limits``); live voice skips 3
    (``voice_bypasses_cooldown``), since a conversation is a run of short turns; a viewer
    command (``!slower``, see :func:`bots.adapters.commands.parse_viewer_command`) skips 3
    and 6, since it follows an answer at once and many viewers may type the same one.

Overflow policy (``max_length``, ``paid_overflow``)
    When the queue holds ``capacity`` items or more, a newcomer needs room. ``capacity`` is
    ``max_length`` until the orchestrator reports how long answers take
    (``set_service_time``); then it is what can be answered before ``stale_after_s`` (never
    below ``min_capacity``), so a burst is refused at once, lowest value first, with a reason
    the viewer can still read, instead of going stale minutes later.

    * The candidate victim is the lowest-value UNPAID item: lowest effective priority now,
      ties broken towards the newest. Paid items are never evicted.
    * An unpaid newcomer evicts the victim if the newcomer's effective priority is strictly
      higher; otherwise the newcomer itself is the lowest and is rejected (code ``full``).
      With no unpaid item queued (only paid ones) an unpaid newcomer is rejected.
    * A paid newcomer always evicts the victim if there is one (money outranks waiting).
      If only paid items are queued it is accepted beyond ``max_length``, up to a hard total
      of ``max_length + paid_overflow`` items; past that it is refused explicitly (code
      ``paid_overflow``) so the adapter can refund it.
    * An evicted item is reported as ``Outcome(status="refused", reason="evicted: ...")`` in
      the newcomer's ``Admission.evicted``. At most one item is evicted per offer.

    Hence: at most ``max_length`` unpaid items are ever queued, the total never exceeds
    ``max_length + paid_overflow``, and the queue only exceeds ``max_length`` when it holds
    paid items alone.

Staleness
    An unpaid item that has waited ``stale_after_s`` is dropped as
    ``Outcome(status="refused", reason="stale: ...")``, collected by ``drain_expired()``. Paid
    items never go stale silently: by default never, or with ``paid_stale_after_s`` set they
    are refused the same explicit way (the adapter refunds).

Aging bound
    With ``aging_per_s = a > 0``, an item of base priority ``b`` that is not evicted, expired
    or cleared is popped within

        ``W(b) = (P_top - b) / a  +  N * (R + persona_cooldown_s)``

    seconds of its arrival, plus any time the queue spends paused. ``P_top`` is the highest
    base priority any event can get (``QueueSettings.top_priority``), ``N`` is ``max_length``
    for an unpaid item and ``max_length + paid_overflow`` for a paid one, and ``R`` is the
    longest reply (pop to ``mark_answered``), assuming the consumer pops as soon as the queue
    is ready. Why: an item arriving more than ``(P_top - b) / a`` after ours has a strictly
    lower key, so it can never overtake ours; from then on only the at most ``N - 1`` items
    already queued, plus the reply in flight, go first. ``QueueSettings.max_wait_s`` computes
    ``W``. Unpaid items are also bounded by ``stale_after_s``, so each one is answered or
    refused within ``min(W, stale_after_s)``. With ``a = 0`` there is no bound (a steady
    flood of higher classes starves lower ones).

Cooldowns and pause
    ``mark_answered(event)`` starts the user cooldown for its viewer and the persona cooldown:
    ``pop`` returns None until ``persona_cooldown_s`` after the last answer. ``pause()`` stops
    ``pop`` (offers are still taken, items keep aging and expiring); ``resume()`` restarts it.

Not thread-safe: use it from one event loop.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bots.adapters.commands import parse_viewer_command
from bots.events import Event, ModCommand, Outcome, Utterance
from bots.orchestrator.queue_text import jaccard, normalize_text, trigrams
from bots.orchestrator.settings import QueueSettings

logger = logging.getLogger(__name__)

_PREVIEW_CHARS = 80


@dataclass(frozen=True, slots=True)
class Admission:
    """The queue's answer to ``offer``.

    Attributes:
        accepted: whether the event is now queued.
        reason: why it was not (for the viewer and the logs); None when accepted.
        evicted: items pushed out to make room, each ``Outcome(status="refused")``; tell
            their adapters (by policy these are never paid).
        code: machine-readable reason: ``not_queueable``, ``redelivered``, ``user_cooldown``,
            ``user_cap``, ``duplicate``, ``full`` or ``paid_overflow`` (refund that one).
        retry_in_s: for ``user_cooldown``, seconds until the user may try again.
    """

    accepted: bool
    reason: str | None = None
    evicted: tuple[Outcome, ...] = ()
    code: str | None = None
    retry_in_s: float | None = None


_ACCEPTED = Admission(True)


@dataclass(frozen=True, slots=True)
class QueuedItem:
    """One queued event.

    Attributes:
        event: what the viewer sent.
        priority: its base priority (effective = priority + aging * waited seconds).
        enqueued_at: clock time it was accepted.
        seq: acceptance order in this queue (FIFO among equals).
        key: ``priority - aging_per_s * enqueued_at``, the time-invariant ordering key.
        deadline: clock time it goes stale, or None.
    """

    event: Event
    priority: float
    enqueued_at: float
    seq: int
    key: float
    deadline: float | None = None

    @property
    def paid(self) -> bool:
        """Whether the event was paid for (never evicted; refused only explicitly)."""
        return self.event.paid

    def effective_priority(self, *, now: float, aging_per_s: float) -> float:
        """Base priority plus what it gained by waiting until ``now``."""
        return self.priority + aging_per_s * (now - self.enqueued_at)


def _user_key(event: Event) -> tuple[str, str]:
    return (event.platform, event.viewer.id)


class PersonaQueue:
    """The reply queue of one persona (see the module docstring for the policy).

    Args:
        settings: ranking, bounds and filters.
        clock: monotonic seconds; tests pass a fake.
    """

    def __init__(
        self, *, settings: QueueSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._aging = settings.aging_per_s
        self._seq = 0
        self._live: dict[int, QueuedItem] = {}
        # Lazy-deletion heaps; an entry whose seq is not in _live is garbage.
        self._best: list[tuple[float, int, QueuedItem]] = []  # (-key, seq): pop order
        self._worst: list[tuple[float, int, QueuedItem]] = []  # (key, -seq): unpaid victims
        self._deadlines: list[tuple[float, int, QueuedItem]] = []  # (deadline, seq)
        self._unpaid = 0
        self._per_user: dict[tuple[str, str], int] = {}
        self._recent_ids: dict[str, None] = {}
        self._answered_at: dict[tuple[str, str], float] = {}
        self._answered_prune_at = 1024
        self._persona_answered_at: float | None = None
        self._seen_text: dict[str, float] = {}
        self._seen_order: deque[tuple[float, str]] = deque()
        self._similar: deque[tuple[float, frozenset[str]]] = deque(
            maxlen=settings.similarity_recent
        )
        self._expired: list[Outcome] = []
        self._paused = False
        self._capacity = settings.max_length  # lowered by set_service_time
        self._service_s: float | None = None

    # -- properties ----------------------------------------------------------------------

    @property
    def settings(self) -> QueueSettings:
        """The settings this queue was built with."""
        return self._settings

    @property
    def paused(self) -> bool:
        """Whether ``pop`` is stopped (offers are still taken)."""
        return self._paused

    def __len__(self) -> int:
        return len(self._live)

    # -- offer ---------------------------------------------------------------------------

    def offer(self, event: Event) -> Admission:
        """Accept ``event`` into the queue or say why not; never blocks.

        Args:
            event: a routed viewer event for this persona.

        Returns:
            The admission; its ``evicted`` outcomes must be told to their adapters.
        """
        s = self._settings
        if isinstance(event, ModCommand):
            return Admission(
                False, "control commands are handled, not queued", code="not_queueable"
            )
        now = self._clock()
        if self._deadlines and self._deadlines[0][0] <= now:
            self._expire(now)
        if event.msg_id in self._recent_ids:
            return Admission(False, "already received", code="redelivered")

        paid = event.paid
        user = _user_key(event)
        free_pass = paid and s.paid_bypasses_limits
        mod_pass = s.mods_bypass_limits and event.viewer.is_mod
        # A viewer command (``!slower`` right after the answer it asks about) is meant to
        # follow an answer at once, and many viewers may type the same one.
        command = bool(event.text) and parse_viewer_command(event.text) is not None
        if not free_pass and not mod_pass:
            if s.user_cooldown_s > 0 and not command and not (
                s.voice_bypasses_cooldown and isinstance(event, Utterance)
            ):
                last = self._answered_at.get(user)
                if last is not None and now - last < s.user_cooldown_s:
                    left = s.user_cooldown_s - (now - last)
                    return Admission(
                        False,
                        f"you were just answered; try again in {left:.0f}s",
                        code="user_cooldown",
                        retry_in_s=left,
                    )
            if not paid and self._per_user.get(user, 0) >= s.max_per_user:
                return Admission(
                    False,
                    f"you already have {s.max_per_user} messages waiting",
                    code="user_cap",
                )

        priority = s.base_priority(event)
        key = priority - self._aging * now
        victim: QueuedItem | None = None
        if len(self._live) >= self._capacity:
            victim = self._lowest_unpaid()
            if victim is None:
                if not paid:
                    return Admission(False, "the queue is full of paid messages", code="full")
                if len(self._live) >= s.max_length + s.paid_overflow:
                    logger.warning(
                        "queue full of paid items (%d); refusing paid %s",
                        len(self._live),
                        event.trace_id,
                    )
                    return Admission(
                        False,
                        "the queue is full of paid messages; refund this one",
                        code="paid_overflow",
                    )
            elif not paid and key <= victim.key:
                return Admission(False, self._full_reason(), code="full")

        # Text checks come after capacity, so a full queue refuses a flood without text work.
        norm = ""
        shingles: frozenset[str] | None = None
        if not free_pass and not command and s.duplicate_window_s > 0:
            text = event.text
            if text:
                norm = normalize_text(text)
            if norm:
                self._forget_texts(now)
                if norm in self._seen_text:
                    return Admission(False, "someone just said that", code="duplicate")
                if s.similarity_threshold is not None:
                    shingles = trigrams(norm)
                    for at, other in self._similar:
                        if now - at < s.duplicate_window_s and (
                            jaccard(shingles, other) >= s.similarity_threshold
                        ):
                            return Admission(
                                False, "someone just said nearly that", code="duplicate"
                            )

        evicted: tuple[Outcome, ...] = ()
        if victim is not None:
            self._remove(victim)
            evicted = (
                Outcome(victim.event, "refused",
                        "evicted: questions that rank higher came in and there is no time "
                        "left to answer this one"),
            )

        self._admit(event, priority=priority, key=key, now=now, paid=paid, user=user)
        if norm:
            self._seen_text[norm] = now
            self._seen_order.append((now, norm))
            if s.similarity_threshold is not None:
                self._similar.append((now, shingles or trigrams(norm)))
        return Admission(True, evicted=evicted) if evicted else _ACCEPTED

    def _admit(
        self,
        event: Event,
        *,
        priority: float,
        key: float,
        now: float,
        paid: bool,
        user: tuple[str, str],
    ) -> None:
        s = self._settings
        seq = self._seq
        self._seq = seq + 1
        stale = s.paid_stale_after_s if paid else s.stale_after_s
        deadline = None if stale is None else now + stale
        item = QueuedItem(event, priority, now, seq, key, deadline)
        self._live[seq] = item
        heapq.heappush(self._best, (-key, seq, item))
        if deadline is not None:
            heapq.heappush(self._deadlines, (deadline, seq, item))
        if not paid:
            heapq.heappush(self._worst, (key, -seq, item))
            self._unpaid += 1
            self._per_user[user] = self._per_user.get(user, 0) + 1
        if s.redelivery_memory:
            ids = self._recent_ids
            ids[event.msg_id] = None
            if len(ids) > s.redelivery_memory:
                del ids[next(iter(ids))]
        self._maybe_compact()

    # -- pop -----------------------------------------------------------------------------

    def pop(self) -> QueuedItem | None:
        """Take the ready item of highest effective priority (earliest among equals).

        Returns:
            The item, or None when the queue is empty, paused or in persona cooldown.
        """
        now = self._clock()
        if self._deadlines and self._deadlines[0][0] <= now:
            self._expire(now)
        if self._paused or not self._live or self._cooling(now) > 0:
            return None
        best, live = self._best, self._live
        while best:
            _, seq, item = heapq.heappop(best)
            if seq in live:
                self._remove(item)
                return item
        return None  # pragma: no cover - _live non-empty implies a live heap entry

    def next_ready_in(self) -> float | None:
        """Seconds until ``pop`` would return an item: 0.0 when ready now.

        Returns:
            None when waiting alone will not make one ready (empty or paused).
        """
        now = self._clock()
        if self._deadlines and self._deadlines[0][0] <= now:
            self._expire(now)
        if self._paused or not self._live:
            return None
        return self._cooling(now)

    def _cooling(self, now: float) -> float:
        last = self._persona_answered_at
        if last is None:
            return 0.0
        return max(0.0, self._settings.persona_cooldown_s - (now - last))

    def set_service_time(self, seconds: float | None) -> None:
        """Tell the queue how long the persona currently takes per answer.

        It then holds only as many items as can be answered before ``stale_after_s``
        (at least ``min_capacity``, at most ``max_length``): in a burst the most valuable
        are kept and the rest are refused at once, while the viewer is still there to read
        why, instead of waiting minutes to be dropped as stale. None: back to ``max_length``.
        """
        s = self._settings
        self._service_s = seconds
        if not seconds or seconds <= 0 or s.stale_after_s is None:
            self._capacity = s.max_length
        else:
            fits = int(s.stale_after_s / seconds)
            self._capacity = max(min(s.min_capacity, s.max_length), min(s.max_length, fits))

    @property
    def capacity(self) -> int:
        """Items held before the overflow policy starts (``max_length`` or less)."""
        return self._capacity

    def _full_reason(self) -> str:
        if self._capacity < self._settings.max_length and self._service_s:
            wait = self._capacity * self._service_s
            return (f"too many questions right now: yours would wait over {wait:.0f}s; "
                    "try again in a bit")
        return "the queue is full"

    def restore(self, item: QueuedItem) -> None:
        """Put back an item that was popped but not answered (a look-ahead reply cancelled by
        a pause or a clear): same place, same deadline, no admission checks."""
        if item.seq in self._live:
            return
        paid = item.event.paid
        self._live[item.seq] = item
        heapq.heappush(self._best, (-item.key, item.seq, item))
        if item.deadline is not None:
            heapq.heappush(self._deadlines, (item.deadline, item.seq, item))
        if not paid:
            heapq.heappush(self._worst, (item.key, -item.seq, item))
            self._unpaid += 1
            user = _user_key(item.event)
            self._per_user[user] = self._per_user.get(user, 0) + 1

    def withdraw(self, match: Callable[[Event], bool]) -> list[QueuedItem]:
        """Remove the queued items whose event ``match`` accepts (a deleted message, a banned
        viewer's lines); returns them so the caller can report their outcomes."""
        gone = [item for item in self._live.values() if match(item.event)]
        for item in gone:
            self._remove(item)
        if gone:
            self._maybe_compact()
        return gone

    # -- lifecycle -----------------------------------------------------------------------

    def mark_answered(self, event: Event) -> None:
        """Record that ``event`` was answered: starts its user's and the persona's cooldown."""
        now = self._clock()
        self._persona_answered_at = now
        self._answered_at[_user_key(event)] = now
        if len(self._answered_at) > self._answered_prune_at:
            horizon = self._settings.user_cooldown_s
            self._answered_at = {u: t for u, t in self._answered_at.items() if now - t < horizon}
            self._answered_prune_at = max(1024, 2 * len(self._answered_at))

    def pause(self) -> None:
        """Stop ``pop`` until :meth:`resume`; offers are still accepted."""
        self._paused = True

    def resume(self) -> None:
        """Let ``pop`` return items again."""
        self._paused = False

    def clear(self, *, include_paid: bool = False, reason: str = "cleared") -> list[Outcome]:
        """Drop queued items: unpaid ones, and paid ones too when ``include_paid``.

        Args:
            include_paid: also drop paid items (their outcomes let adapters refund).
            reason: the outcome reason (e.g. ``"cleared by a moderator"``).

        Returns:
            One ``Outcome(status="refused")`` per dropped item, oldest first.
        """
        dropped = [item for item in self._live.values() if include_paid or not item.event.paid]
        for item in dropped:
            self._remove(item)
        self._compact()
        return [Outcome(item.event, "refused", reason) for item in dropped]

    def drain_expired(self) -> list[Outcome]:
        """Outcomes of items dropped as stale since the last call (and expire due ones now).

        Returns:
            One ``Outcome(status="refused", reason="stale: ...")`` per expired item.
        """
        self._expire(self._clock())
        out, self._expired = self._expired, []
        return out

    def promote(self, trace_id: str) -> bool:
        """Move the queued event with ``trace_id`` to the front (a moderator's pick).

        Returns:
            False when no such event waits.
        """
        item = next((i for i in self._live.values() if i.event.trace_id == trace_id), None)
        if item is None:
            return False
        front = max((i.key for i in self._live.values()), default=item.key)
        del self._live[item.seq]  # its heap entries become garbage
        self._seq += 1
        moved = dataclasses.replace(item, seq=self._seq, key=front + 1.0)
        self._live[moved.seq] = moved
        heapq.heappush(self._best, (-moved.key, moved.seq, moved))
        if not moved.event.paid:
            heapq.heappush(self._worst, (moved.key, -moved.seq, moved))
        if moved.deadline is not None:
            heapq.heappush(self._deadlines, (moved.deadline, moved.seq, moved))
        self._maybe_compact()
        return True

    # -- inspection ----------------------------------------------------------------------

    def items(self) -> list[QueuedItem]:
        """The queued items in the order ``pop`` would take them now (O(n log n))."""
        self._expire(self._clock())
        return sorted(self._live.values(), key=lambda item: (-item.key, item.seq))

    def snapshot(self) -> list[dict[str, Any]]:
        """The queue for a dashboard, in pop order: user, text preview, priority, wait, paid."""
        now = self._clock()
        rows = []
        for item in self.items():
            event = item.event
            text = event.text
            if len(text) > _PREVIEW_CHARS:
                text = text[: _PREVIEW_CHARS - 1] + "…"
            rows.append(
                {
                    "user": event.viewer.name,
                    "user_id": event.viewer.id,
                    "platform": event.platform,
                    "kind": type(event).__name__,
                    "text": text,
                    "priority": round(item.effective_priority(now=now, aging_per_s=self._aging), 2),
                    "base_priority": item.priority,
                    "waited_s": round(now - item.enqueued_at, 2),
                    "paid": event.paid,
                    "trace_id": event.trace_id,
                }
            )
        return rows

    # -- internals -----------------------------------------------------------------------

    def _remove(self, item: QueuedItem) -> None:
        del self._live[item.seq]
        if not item.event.paid:
            self._unpaid -= 1
            user = _user_key(item.event)
            left = self._per_user[user] - 1
            if left:
                self._per_user[user] = left
            else:
                del self._per_user[user]

    def _lowest_unpaid(self) -> QueuedItem | None:
        worst, live = self._worst, self._live
        while worst:
            item = worst[0][2]
            if item.seq in live:
                return item
            heapq.heappop(worst)
        return None

    def _expire(self, now: float) -> None:
        deadlines, live = self._deadlines, self._live
        while deadlines and deadlines[0][0] <= now:
            _, seq, item = heapq.heappop(deadlines)
            if seq in live:
                self._remove(item)
                waited = now - item.enqueued_at
                self._expired.append(
                    Outcome(item.event, "refused",
                            f"stale: chat moved on before I could answer ({waited:.0f}s)")
                )

    def _forget_texts(self, now: float) -> None:
        window = self._settings.duplicate_window_s
        order, seen = self._seen_order, self._seen_text
        while order and now - order[0][0] >= window:
            at, norm = order.popleft()
            if seen.get(norm) == at:
                del seen[norm]

    def _maybe_compact(self) -> None:
        n = len(self._live)
        if (
            len(self._best) > 2 * n + 64
            or len(self._worst) > 2 * self._unpaid + 64
            or len(self._deadlines) > 2 * n + 64
        ):
            self._compact()

    def _compact(self) -> None:
        """Rebuild the heaps from the live items, dropping garbage (O(n))."""
        live = self._live.values()
        self._best = [(-i.key, i.seq, i) for i in live]
        heapq.heapify(self._best)
        self._worst = [(i.key, -i.seq, i) for i in live if not i.event.paid]
        heapq.heapify(self._worst)
        self._deadlines = [(i.deadline, i.seq, i) for i in live if i.deadline is not None]
        heapq.heapify(self._deadlines)
