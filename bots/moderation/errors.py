"""Errors of the moderation layer, rooted in :class:`~vstage_core.errors.VStageError`."""

from __future__ import annotations

from typing import Literal

from vstage_core.errors import VStageError

__all__ = ["InputRejected", "RejectCode"]

RejectCode = Literal["not_text", "empty", "no_words", "too_long"]


class InputRejected(VStageError):
    """A viewer's input was refused before it reached a persona.

    Args:
        code: the machine-readable cause (also the moderation rule that is reported).
        reason: why, in words shown to the viewer.
    """

    def __init__(self, code: RejectCode, reason: str) -> None:
        super().__init__(reason)
        self.code: RejectCode = code
        self.reason = reason
