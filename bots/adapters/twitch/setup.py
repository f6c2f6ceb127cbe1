"""Building the Twitch adapter from settings, and keeping it connected for the whole show."""

from __future__ import annotations

import logging
from pathlib import Path

from bots.adapters.supervise import keep_connected  # noqa: F401 (re-exported)
from bots.adapters.twitch.adapter import TwitchAdapter
from bots.adapters.twitch.auth import TokenManager, TokenStore
from bots.adapters.twitch.events import EventMapper, PersonaTrigger
from bots.config import Config, PersonaConfig

logger = logging.getLogger(__name__)


def _store(config: Config, path: Path) -> TokenStore:
    return TokenStore(path=path if path.is_absolute() else config.state_dir / path)


def token_store(config: Config) -> TokenStore:
    """The bot account's token file."""
    return _store(config, config.app.twitch.token_file)


def broadcaster_token_store(config: Config) -> TokenStore:
    """The broadcaster's token file (``vstage twitch login --broadcaster``)."""
    return _store(config, config.app.twitch.broadcaster_token_file)


def triggers(personas: list[PersonaConfig], default: str) -> list[PersonaTrigger]:
    """Each persona's Twitch trigger, the default persona first."""
    ordered = sorted(personas, key=lambda p: p.id != default)
    return [PersonaTrigger(persona=p.id, name=p.name, mode=p.twitch.trigger,
                           prefix=p.twitch.prefix, reward_title=p.twitch.reward_title)
            for p in ordered]


def build_adapter(config: Config, personas: list[PersonaConfig]) -> TwitchAdapter | None:
    """The adapter, or None (with a log line saying why) when Twitch cannot be used yet."""
    tw = config.app.twitch
    if not tw.enabled:
        return None
    store = token_store(config)
    if not tw.client_id:
        logger.error("twitch: enabled but twitch.client_id is not set; Twitch is off")
        return None
    if not store.exists():
        logger.error("twitch: no tokens in %s; run `vstage twitch login`. Twitch is off",
                     store.path)
        return None
    secret = tw.client_secret.get_secret_value() if tw.client_secret else None
    tokens = TokenManager(store=store, client_id=tw.client_id, client_secret=secret)
    channel = broadcaster_token_store(config)
    broadcaster_tokens = None
    if channel.exists():
        broadcaster_tokens = TokenManager(store=channel, client_id=tw.client_id,
                                          client_secret=secret)
    else:
        logger.info("twitch: no broadcaster tokens in %s; the bot's token is used for channel "
                    "events (`vstage twitch login --broadcaster` if the bot is not the "
                    "broadcaster)", channel.path)
    return TwitchAdapter(
        mapper=EventMapper(triggers=triggers(personas, config.app.default_persona),
                           shared_chat=tw.shared_chat),
        tokens=tokens, broadcaster_tokens=broadcaster_tokens,
        broadcaster_id=tw.broadcaster_id, client_secret=secret,
        bot_is_mod=tw.bot_is_mod, keepalive_s=tw.keepalive_s,
    )
