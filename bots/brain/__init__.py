"""The brain: LLM providers that stream a persona's reply, and the sentence cutter."""

from bots.brain.base import LLM, ChatTurn, create_llm

__all__ = ["LLM", "ChatTurn", "create_llm"]
