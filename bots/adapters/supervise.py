"""Keeping a platform adapter connected for the whole show."""

from __future__ import annotations

import asyncio
import logging
import random

from bots.adapters.base import Adapter

logger = logging.getLogger(__name__)


async def keep_connected(adapter: Adapter, *, retry_max_s: float = 60.0) -> None:
    """Connect, stay connected, and reconnect with jittered exponential backoff when the
    connection fails (the platform is down, tokens revoked, the network gone). Never raises
    except on cancel: a platform that is away must not stop the show."""
    delay = 1.0
    name = adapter.platform
    while True:
        try:
            async with adapter:
                logger.info("%s: connected", name)
                delay = 1.0
                await asyncio.Event().wait()  # until cancelled; the library reconnects inside
        except asyncio.CancelledError:
            raise
        except Exception as e:
            wait = delay * random.uniform(0.5, 1.0)
            logger.error("%s: connection failed (%s); retrying in %.0fs", name, e, wait)
            await asyncio.sleep(wait)
            delay = min(retry_max_s, delay * 2)
