"""Settings of the Discord adapter (nested under ``discord:`` in the app settings)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from bots.hearing.settings import HearingSettings
from vstage_core.settings import FrozenModel


class DiscordSettings(FrozenModel):
    """How the persona joins Discord. The bot token comes from the environment
    (``DISCORD_TOKEN``) and stays a :class:`SecretStr`."""

    token: SecretStr | None = Field(None, description="bot token; default: env DISCORD_TOKEN")
    guild_ids: list[int] = Field(default_factory=list,
                                 description="sync slash commands to these guilds at once "
                                             "(global sync can take an hour)")
    persona: str | None = Field(None, description="persona that talks; None: the default one")
    language: str | None = Field(
        None, description="language the persona listens in (ISO 639-1); unset: the answering "
        "persona's own language (a German teacher hears German)")
    transcripts: bool = Field(True, description="post both sides of voice talk in text")
    barge_in: bool = Field(True, description="a speaker talking over the persona stops it")
    hearing: HearingSettings = HearingSettings()
