"""Settings of the private conversations (the ``talk:`` section of ``vstage.yaml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vstage_core.settings import FrozenModel

__all__ = ["TalkSettings"]


class TalkSettings(FrozenModel):
    """The ``/talk`` page: anyone with access holds a private spoken conversation with a
    persona; each conversation has its own history, stream and place in the turns on the
    shared models."""

    enabled: bool = Field(True, description="serve /talk")
    access: Literal["token", "invite"] = Field(
        "token", description="'token': the studio token opens /talk (as the studio); "
                             "'invite': also one-time invite links (vstage talk invite)")
    max_sessions: int = Field(12, ge=1, le=500, description="conversations at once; more "
                              "are told 'full, try again in N s'")
    idle_timeout_s: float = Field(180.0, ge=5.0, le=86400.0,
                                  description="a conversation nobody speaks in ends after this")
    turns_per_minute: int = Field(12, ge=1, le=600,
                                  description="turns one conversation may take per minute")
    max_turn_s: float = Field(30.0, ge=3.0, le=120.0,
                              description="longer speech is cut here and answered")
    invite_ttl_s: float = Field(86400.0, ge=60.0, description="how long an invite link opens")
    echo_guard: bool = Field(
        True, description="ignore the microphone while the persona's own voice is loud (its "
                          "echo through speakers must not interrupt it)")
    echo_threshold_dbfs: float = Field(
        -45.0, ge=-90.0, le=0.0,
        description="how loud (RMS of 10 ms, dB below full scale) the persona's output must "
                    "be for the echo guard to ignore the microphone")
    echo_hang_s: float = Field(
        0.2, ge=0.0, le=2.0,
        description="the echo guard keeps ignoring the microphone this long after the "
                    "persona's voice was last loud (the echo's way back through the browser)")
    max_sentences: int | None = Field(
        2, ge=1, le=20,
        description="pieces (sentences, or a first clause) a private answer has at most; a "
                    "spoken conversation takes turns, and short answers leave the learner room "
                    "to talk (null: the persona's own llm.max_sentences)")
    max_chars: int | None = Field(
        200, ge=20, le=4000,
        description="characters a private answer has at most (about 10 s of speech; the "
                    "learner cannot be heard over a long answer: the echo guard ignores the "
                    "microphone while the persona speaks) (null: the persona's llm.max_chars)")
    viewer_name: str = Field("Guest", min_length=1, max_length=40,
                             description="what the persona calls the visitor")
