"""The Twitch adapter as the app builds it from config: enabled, logged in, kept connected."""

from __future__ import annotations

import asyncio
import logging

from bots.adapters.twitch.auth import device_login
from bots.adapters.twitch.setup import build_adapter, keep_connected, token_store
from bots.config import load_config
from bots.orchestrator.orchestrator import Orchestrator
from tests.orchestrator.fakes import FakePipeline, FakeStage, persona
from tests.standins.twitch import CLIENT_ID
from tests.twitch.helpers import chat_event, until


def _config(config_copy, **twitch):
    app = config_copy / "vstage.yaml"
    body = "\n".join(f"  {k}: {v}" for k, v in twitch.items())
    app.write_text(app.read_text() + f"\ntwitch:\n{body}\n")
    return load_config(config_copy)


async def _no_sleep(_s: float) -> None:
    return None


async def test_disabled_or_not_logged_in_means_no_adapter(config_copy, caplog):
    cfg = _config(config_copy, enabled="false")
    assert build_adapter(cfg, list(cfg.personas.values())) is None
    cfg = _config(config_copy, enabled="true", client_id=CLIENT_ID)
    with caplog.at_level(logging.ERROR):
        assert build_adapter(cfg, list(cfg.personas.values())) is None
    assert "vstage twitch login" in caplog.text


async def test_app_built_adapter_answers_chat(config_copy, twitch, tmp_path):
    cfg = _config(config_copy, enabled="true", client_id=CLIENT_ID, bot_is_mod="true")
    store = token_store(cfg)
    await device_login(client_id=CLIENT_ID, store=store, show=lambda *a: None, sleep=_no_sleep)
    assert store.path.stat().st_mode & 0o777 == 0o600
    adapter = build_adapter(cfg, list(cfg.personas.values()))
    assert adapter is not None
    personas = {"mika": persona("mika", tmp_path)}
    async with Orchestrator(personas=personas, stages=[FakeStage()], default_persona="mika",
                            adapters=[adapter], pipeline=FakePipeline(clips=1, work_s=0)):
        task = asyncio.create_task(keep_connected(adapter))
        await until(lambda: twitch.has_subscription("channel.chat.message"))
        await twitch.notify("channel.chat.message", chat_event("!ask hi Mika", message_id="a1"))
        await until(lambda: twitch.chat)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert twitch.chat[0]["reply_parent_message_id"] == "a1"


async def test_keep_connected_retries_instead_of_crashing(config_copy, twitch, caplog):
    cfg = _config(config_copy, enabled="true", client_id=CLIENT_ID)
    store = token_store(cfg)
    await device_login(client_id=CLIENT_ID, store=store, show=lambda *a: None, sleep=_no_sleep)
    adapter = build_adapter(cfg, list(cfg.personas.values()))
    await twitch.__aexit__(None, None, None)  # Twitch is gone
    with caplog.at_level(logging.ERROR):
        task = asyncio.create_task(keep_connected(adapter, retry_max_s=0.2))
        await until(lambda: caplog.text.count("retrying") >= 2, limit_s=15)
        assert not task.done()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
