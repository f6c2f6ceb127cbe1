"""Invite links to ``/talk``: codes that open a conversation a set number of times (once by
default) until they expire.

Only a hash of each code is kept, so the table can be looked up without comparing secrets
character by character, and a used or expired code is remembered for a while so the page can
say *why* it does not open ("already used" vs "expired" vs "not valid").
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["InviteProblem", "Invites"]

InviteProblem = Literal["used", "expired", "unknown"]
_MAX_CODE_CHARS = 200


@dataclass(slots=True)
class _Invite:
    persona: str  # "" : any persona
    uses_left: int
    expires_at: float


class Invites:
    """The invite codes of one hub.

    Args:
        ttl_s: how long a code opens.
        clock: monotonic clock.
    """

    def __init__(self, *, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._codes: dict[str, _Invite] = {}

    def __len__(self) -> int:
        return len(self._codes)

    def create(self, *, persona: str | None = None, uses: int = 1) -> str:
        """A new code that opens ``uses`` conversations (with ``persona``; None: any)."""
        if isinstance(uses, bool) or not isinstance(uses, int) or not 1 <= uses <= 1000:
            raise ValueError(f"an invite opens 1 to 1000 conversations, not {uses!r}")
        self._purge()
        code = secrets.token_urlsafe(16)
        self._codes[_digest(code)] = _Invite(persona or "", uses, self._clock() + self.ttl_s)
        return code

    def problem(self, code: object) -> InviteProblem | None:
        """Why ``code`` does not open a conversation now (None: it does)."""
        invite = self._find(code)
        if invite is None:
            return "unknown"
        if self._clock() >= invite.expires_at:
            return "expired"
        if invite.uses_left <= 0:
            return "used"
        return None

    def check(self, code: object) -> bool:
        """Whether ``code`` opens a conversation now, without using it."""
        return self.problem(code) is None

    def redeem(self, code: object) -> str | None:
        """Use ``code`` once: the persona it is for (``""``: any), or None when it is unknown,
        used up or expired."""
        if self.problem(code) is not None:
            return None
        invite = self._find(code)
        assert invite is not None
        invite.uses_left -= 1
        return invite.persona

    def _find(self, code: object) -> _Invite | None:
        if not isinstance(code, str) or not code or len(code) > _MAX_CODE_CHARS:
            return None
        return self._codes.get(_digest(code))

    def _purge(self) -> None:
        """Forget codes expired for longer than a ttl (their reason is no longer told)."""
        now = self._clock()
        for key in [k for k, v in self._codes.items() if now >= v.expires_at + self.ttl_s]:
            del self._codes[key]


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()
