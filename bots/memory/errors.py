"""Errors of the memory store, each with a machine-readable ``code`` beside the human reason."""

from __future__ import annotations

from vstage_core.errors import VStageError

__all__ = ["MemoryStoreError"]


class MemoryStoreError(VStageError):
    """The memory store refused a call or could not reach its database.

    Args:
        message: what went wrong, for a human (never holds the database password).
        code: stable and machine-readable: ``bad_input`` (an argument the store refuses),
            ``bad_url`` (``memory.url`` is not a SQLite or PostgreSQL URL), ``unavailable``
            (the database cannot be reached or answered with an error), ``schema_too_new``
            (the database was migrated by a newer vstage), ``closed`` (used after ``aclose``).
        retryable: whether the same call may succeed later (a database that is restarting).
    """

    def __init__(self, message: str, *, code: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable
