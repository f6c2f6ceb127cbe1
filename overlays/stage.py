"""The Stage interface: where performed clips end up (the studio page and browser overlays,
OBS, Discord voice), and the optional capabilities a stage may have."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from avatar_engine.types import Clip


@runtime_checkable
class Stage(Protocol):
    """Something that shows a persona's performance. Calls return quickly; a stage plays clips
    in the order it receives them, per persona."""

    async def show_chat(self, *, persona: str, user: str, text: str) -> None:
        """A viewer's line that the persona is about to answer."""
        ...

    async def play_clip(self, *, persona: str, clip: Clip) -> None:
        """Queue one sentence clip; clips of a reply arrive in order."""
        ...

    async def reply_finished(self, *, persona: str, reply_id: str, text: str) -> None:
        """The reply is complete (all its clips were handed over)."""
        ...

    async def reply_cancelled(self, *, persona: str, reply_id: str) -> None:
        """Drop whatever is still queued of this reply."""
        ...


@runtime_checkable
class BeRightBackStage(Protocol):
    """A stage that can show a "be right back" state while the show is degraded (the LLM or
    the renderer failing), e.g. OBS's brb scene."""

    async def be_right_back(self, on: bool) -> None: ...
