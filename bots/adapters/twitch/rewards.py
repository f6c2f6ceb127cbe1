"""``vstage twitch setup``: each persona's channel-point reward ("Ask Mika"), created through
Helix so that vstage may fulfil and refund its redemptions.

Twitch lets only the app (client id) that created a reward update its redemptions; a reward
made in the Twitch dashboard answers every update with 403. Setup is idempotent: a reward
this app already made is kept as it is; one with the same title that another app or the
dashboard made cannot be taken over (titles are unique per channel), so it is reported with
the fix instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from bots.adapters.twitch.auth import Helix
from bots.config import PersonaConfig

logger = logging.getLogger(__name__)

REWARDS_PATH = "channel_points/custom_rewards"


@dataclass(frozen=True, slots=True, kw_only=True)
class RewardSpec:
    """The reward one persona answers (from its ``twitch:`` settings)."""

    persona: str
    title: str
    cost: int = 100
    prompt: str = ""


@dataclass(slots=True)
class RewardReport:
    """What setup did: rewards created, rewards already there (made by vstage), problems
    (one line each, with the fix)."""

    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def reward_specs(personas: Iterable[PersonaConfig]) -> list[RewardSpec]:
    """The rewards of the personas that name one (``twitch.reward_title``)."""
    specs = []
    for p in personas:
        tw = p.twitch
        if tw.reward_title:
            specs.append(RewardSpec(persona=p.id, title=tw.reward_title, cost=tw.reward_cost,
                                    prompt=tw.reward_prompt or f"Ask {p.name} anything"))
    return specs


def not_manageable(title: str) -> str:
    """The problem line for a reward vstage may not update, with the fix."""
    return (f"the reward {title!r} already exists but was made in the Twitch dashboard or by "
            "another app, so Twitch will not let vstage fulfil or refund its redemptions "
            "(answers still play, points are never returned). Fix: delete it in the Twitch "
            "dashboard (Viewer Rewards > Channel Points > Manage Rewards) and run `vstage "
            "twitch setup` again, or give the persona another twitch.reward_title")


async def ensure_rewards(helix: Helix, *, broadcaster_id: str,
                         specs: list[RewardSpec]) -> RewardReport:
    """Create each reward of ``specs`` that is missing (Helix Create Custom Rewards), with
    the broadcaster's token in ``helix``; a second run creates nothing."""
    report = RewardReport()
    if not specs:
        return report
    query = {"broadcaster_id": broadcaster_id}
    everything = await helix.request("GET", REWARDS_PATH, params=query)
    ours = await helix.request("GET", REWARDS_PATH,
                               params={**query, "only_manageable_rewards": "true"})
    mine = {r["title"].casefold() for r in ours.get("data") or []}
    taken = {r["title"].casefold() for r in everything.get("data") or []}
    for spec in specs:
        key = spec.title.casefold()
        if key in mine:
            report.kept.append(spec.title)
        elif key in taken:
            report.problems.append(not_manageable(spec.title))
        else:
            await helix.request("POST", REWARDS_PATH, params=query, json_body={
                "title": spec.title, "cost": spec.cost, "prompt": spec.prompt[:200],
                "is_enabled": True, "is_user_input_required": True,
                "should_redemptions_skip_request_queue": False})
            report.created.append(spec.title)
            logger.info("twitch: created the channel-point reward %r for %s", spec.title,
                        spec.persona)
    return report
