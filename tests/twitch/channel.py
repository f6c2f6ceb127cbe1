"""A channel for the Twitch tests: the bot and (optionally) the broadcaster logged in against
the stand-in, the adapter bound to the real orchestrator with a fake performer, and a record
of every event the adapter submitted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bots.adapters.twitch.adapter import TwitchAdapter
from bots.adapters.twitch.auth import BROADCASTER_SCOPES, TokenManager, TokenStore, device_login
from bots.adapters.twitch.events import EventMapper, PersonaTrigger
from bots.events import Event
from bots.orchestrator.orchestrator import Orchestrator
from tests.orchestrator.fakes import FakePipeline, FakeStage, persona
from tests.standins.twitch import BOT_ID, BROADCASTER_ID, CLIENT_ID, TwitchStandIn

QUICK = {"queue": {"user_cooldown_s": 0, "duplicate_window_s": 0, "max_length": 10_000}}


async def _no_sleep(_s: float) -> None:
    return None


async def login(twitch: TwitchStandIn, path: Path, user: str) -> TokenManager:
    twitch.approve_as = user
    store = TokenStore(path=path)
    scopes = BROADCASTER_SCOPES if user == BROADCASTER_ID else None
    await device_login(client_id=CLIENT_ID, store=store, show=lambda *a: None, sleep=_no_sleep,
                       **({"scopes": scopes} if scopes else {}))
    return TokenManager(store=store, client_id=CLIENT_ID)


async def channel_adapter(twitch: TwitchStandIn, tmp_path: Path, *, broadcaster: bool = True,
                          **mapper_kw: Any) -> TwitchAdapter:
    """The bot in the broadcaster's channel; with the broadcaster's login unless told not."""
    bot = await login(twitch, tmp_path / "bot.json", BOT_ID)
    owner = await login(twitch, tmp_path / "owner.json", BROADCASTER_ID) if broadcaster else None
    mapper = EventMapper(triggers=[PersonaTrigger(persona="mika", name="Mika", mode="prefix",
                                                  reward_title="Ask Mika")], **mapper_kw)
    return TwitchAdapter(mapper=mapper, tokens=bot, broadcaster_tokens=owner,
                         broadcaster_id=BROADCASTER_ID, bot_is_mod=True)


def orchestrator(adapter: TwitchAdapter, tmp_path: Path, perf: FakePipeline | None = None,
                 stage: FakeStage | None = None) -> Orchestrator:
    personas = {"mika": persona("mika", tmp_path, **QUICK)}
    return Orchestrator(personas=personas, stages=[stage or FakeStage()], default_persona="mika",
                        adapters=[adapter], pipeline=perf or FakePipeline(clips=1, work_s=0))


def record_submits(orch: Orchestrator) -> list[Event]:
    """Every event submitted to ``orch`` from now on (the adapter calls ``submit``)."""
    seen: list[Event] = []
    submit = orch.submit

    def spy(event: Event):
        seen.append(event)
        return submit(event)

    orch.submit = spy  # type: ignore[method-assign]
    return seen
