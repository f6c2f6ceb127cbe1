"""Typed events that platform adapters emit and the orchestrator consumes."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field


def new_trace_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessage:
    """A viewer typed something."""

    user: str
    text: str
    platform: str = "studio"
    persona: str | None = None  # None: the default persona
    msg_id: str = field(default_factory=new_trace_id)
    trace_id: str = field(default_factory=new_trace_id)
    received_at: float = field(default_factory=time.monotonic)
