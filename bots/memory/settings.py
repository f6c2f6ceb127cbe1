"""Settings of long-term memory: where it is kept (``memory:`` in ``vstage.yaml``) and what each
persona remembers (``memory:`` in a persona file)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from vstage_core.settings import FrozenModel

__all__ = ["MemorySettings", "PersonaMemorySettings"]


class MemorySettings(FrozenModel):
    """Where memories live. Unset ``url``: SQLite (WAL) at ``<state_dir>/memory.db``."""

    url: SecretStr | None = Field(
        None, description="SQLAlchemy async URL, e.g. postgresql+asyncpg://user:pw@host/db "
                          "(a secret: it may hold a password); unset: SQLite under state_dir")


class PersonaMemorySettings(FrozenModel):
    """What one persona remembers about its viewers."""

    enabled: bool = Field(True, description="remember viewers across conversations and restarts")
    extract: Literal["auto", "llm", "rules"] = Field(
        "auto", description="how facts are taken from a turn: the persona's LLM with a strict "
                            "format, rules, or 'auto' (rules for small local models)")
    recall: int = Field(4, ge=0, le=20, description="memories put into a prompt at most")
    recall_chars: int = Field(400, ge=0, le=4000,
                              description="the prompt's budget for recalled memories")
    max_age_days: float | None = Field(365.0, gt=0, description="older memories are erased")
    max_per_viewer: int = Field(200, ge=1, le=100_000,
                                description="memories kept per viewer; the oldest go first")
