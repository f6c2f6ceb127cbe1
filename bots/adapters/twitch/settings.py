"""Settings of the Twitch adapter: the connection (``twitch:`` in ``vstage.yaml``) and when
each persona answers Twitch chat (``twitch:`` in a persona file). See docs/twitch.md."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from vstage_core.settings import FrozenModel

__all__ = ["PersonaTwitchSettings", "TwitchSettings"]


class TwitchSettings(FrozenModel):
    """The Twitch connection (see docs/twitch.md). Log in once with ``vstage twitch login``."""

    enabled: bool = False
    client_id: str | None = Field(None, description="your Twitch application's client id")
    client_secret: SecretStr | None = Field(
        None, description="only for confidential apps; set VSTAGE_TWITCH__CLIENT_SECRET"
    )
    broadcaster_id: str | None = Field(
        None, description="the channel's user id; unset: the logged-in account's own channel"
    )
    bot_is_mod: bool = Field(False, description="the bot is a moderator (higher chat limits)")
    token_file: Path = Field(Path("twitch-tokens.json"), description="relative to state_dir")
    broadcaster_token_file: Path = Field(
        Path("twitch-broadcaster-tokens.json"),
        description="the broadcaster's tokens (`vstage twitch login --broadcaster`), relative "
        "to state_dir; used when the file exists",
    )
    keepalive_s: int = Field(10, ge=10, le=600)
    shared_chat: bool = Field(
        False, description="answer messages from the other channels of a shared chat session "
        "(the viewer's name says which channel); false: ignore them",
    )
    retry_max_s: float = Field(60.0, gt=0, description="longest wait between reconnect tries")


class PersonaTwitchSettings(FrozenModel):
    """When this persona answers Twitch chat."""

    trigger: Literal["prefix", "mention", "all"] = Field(
        "prefix", description="prefix: '!ask ...'; mention: '@Mika ...'; all: every message"
    )
    prefix: str = Field("!ask", pattern=r"^!\w{1,24}$")
    reward_title: str | None = Field(
        None, max_length=45,
        description="channel-point reward this persona answers, e.g. 'Ask Mika'; "
        "`vstage twitch setup` creates it",
    )
    reward_cost: int = Field(100, ge=1, description="its cost in channel points (setup)")
    reward_prompt: str | None = Field(
        None, max_length=200, description="its description (setup); unset: 'Ask NAME anything'"
    )
