"""The base of every settings model: frozen (settings never change under a running task; a
live change is a validated copy) and strict about unknown keys (a typo is an error, not a
silently ignored field)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["FrozenModel"]


class FrozenModel(BaseModel):
    """A frozen pydantic model that forbids unknown fields; subclass it for settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)
