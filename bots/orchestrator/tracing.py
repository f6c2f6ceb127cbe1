"""Per-event traces (timestamps of every stage) and the Prometheus metrics built from them.

Stages, in order: ``received``, ``accepted`` or ``rejected``, ``dequeued``,
``llm_first_token``, ``llm_first_sentence``, ``llm_done``, ``tts_first_audio``, ``first_clip``,
``on_stage``, ``done``.
The last N traces are kept in memory for ``/api/traces`` and ``vstage trace``; each finished
trace is also logged as one structured line.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

logger = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass
class Trace:
    """Everything that happened to one event, with wall-clock and monotonic timestamps."""

    trace_id: str
    persona: str
    platform: str
    kind: str
    user: str
    text: str
    started: float = field(default_factory=time.monotonic)
    wall: float = field(default_factory=time.time)
    marks: dict[str, float] = field(default_factory=dict)
    status: str = "received"
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id, "persona": self.persona, "platform": self.platform,
            "kind": self.kind, "user": self.user, "text": self.text[:120],
            "status": self.status, "reason": self.reason, "at": round(self.wall, 3),
            "stages": {k: round(v - self.started, 4) for k, v in self.marks.items()},
        }


class Tracer:
    """Keeps the last ``keep`` traces and feeds the metrics. One per orchestrator."""

    def __init__(self, *, keep: int = 200, registry: CollectorRegistry | None = None) -> None:
        self.keep = keep
        self._traces: OrderedDict[str, Trace] = OrderedDict()
        self._children: dict[tuple, Any] = {}
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter("vstage_events_total", "Events received, by decision",
                              ["persona", "kind", "decision"], registry=r)
        self.rejections = Counter("vstage_rejections_total", "Events not answered, by reason",
                                  ["persona", "reason"], registry=r)
        self.stage_latency = Histogram(
            "vstage_stage_seconds", "Seconds from an event's arrival to each stage",
            ["stage"], buckets=_LATENCY_BUCKETS, registry=r)
        self.outcomes = Counter("vstage_outcomes_total", "Final outcome of accepted events",
                                ["persona", "status"], registry=r)
        self.queue_length = Gauge("vstage_queue_length", "Events waiting, per persona",
                                  ["persona"], registry=r)
        self.errors = Counter("vstage_errors_total", "Failures survived, by where",
                              ["where"], registry=r)

    def start(self, *, trace_id: str, persona: str, platform: str, kind: str, user: str,
              text: str, received_at: float | None = None) -> Trace:
        t = Trace(trace_id=trace_id, persona=persona, platform=platform, kind=kind, user=user,
                  text=text)
        if received_at is not None:
            t.started = received_at
        t.marks["received"] = t.started
        self._traces[trace_id] = t
        while len(self._traces) > self.keep:
            self._traces.popitem(last=False)
        return t

    def get(self, trace_id: str) -> Trace | None:
        return self._traces.get(trace_id)

    def mark(self, trace_id: str, stage: str, at: float | None = None) -> None:
        """Record when ``stage`` (one of the module's stages) first happened, monotonic ``at``
        (default now); stages after the decision feed the stage latency histogram."""
        t = self._traces.get(trace_id)
        if t is None or stage in t.marks:
            return
        at = time.monotonic() if at is None else at
        t.marks[stage] = at
        if stage not in ("received", "accepted", "rejected"):
            self.stage_latency.labels(stage).observe(at - t.started)

    def decide(self, trace: Trace, *, accepted: bool, reason: str | None = None) -> None:
        decision = "accepted" if accepted else "rejected"
        trace.status = "queued" if accepted else "rejected"
        trace.reason = reason
        trace.marks.setdefault(decision, time.monotonic())
        self._child(self.events, trace.persona, trace.kind, decision).inc()
        if not accepted:
            self._child(self.rejections, trace.persona, _reason_label(reason)).inc()

    def _child(self, metric, *labels: str):
        """``metric.labels(*labels)``, cached: the flood path calls it for every event."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def finish(self, trace_id: str, status: str, reason: str | None = None) -> None:
        t = self._traces.get(trace_id)
        if t is None:
            return
        t.status, t.reason = status, reason
        self.mark(trace_id, "done")
        self.outcomes.labels(t.persona, status).inc()
        logger.info("trace %s", t.trace_id, extra={"trace": t.to_dict()})

    def recent(self, n: int = 20) -> list[dict[str, Any]]:
        return [t.to_dict() for t in list(self._traces.values())[-n:]][::-1]

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


_HAS_DIGIT = re.compile(r"\S*\d\S*")


@functools.lru_cache(maxsize=4096)
def _reason_label(reason: str | None) -> str:
    """A low-cardinality label for a rejection reason (words with numbers dropped)."""
    if not reason:
        return "unknown"
    words = _HAS_DIGIT.sub(" ", reason).split()[:4]
    return "_".join(words).strip("(),.:;").lower() or "unknown"
