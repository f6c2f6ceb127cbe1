"""Platform adapters: turn a platform's traffic into typed events for the orchestrator, and
carry outcomes (replies, refunds, transcripts) back to the platform."""

from bots.adapters.base import Adapter, EventSink

__all__ = ["Adapter", "EventSink"]
