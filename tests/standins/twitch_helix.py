"""The Twitch stand-in's Channel Points side, as Twitch's Helix reference documents it
(https://dev.twitch.tv/docs/api/reference/#create-custom-rewards, #get-custom-reward,
#update-redemption-status): rewards remember the client id that created them (None: made in
the Twitch dashboard), and only that client may update their redemptions; everyone else gets
403 with Twitch's error body. A redemption is updatable only while UNFULFILLED: one of a
reward that skips the request queue arrives already FULFILLED.

A mixin of :class:`tests.standins.twitch.TwitchStandIn`, which routes the requests here.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from aiohttp import web

REDEEM = "channel.channel_points_custom_reward_redemption.add"
# Update Redemption Status, "Response Codes": only the app that created the reward
NOT_CREATOR = ("The ID in the Client-Id header must match the Client ID used to create the "
               "custom reward.")
NOT_UNFULFILLED = ("The redemption was not found, or its status is not UNFULFILLED; only "
                   "UNFULFILLED redemptions can be updated.")
# Create Custom Rewards, "Response Codes": titles are unique among the channel's rewards
DUPLICATE_REWARD = "CREATE_CUSTOM_REWARD_DUPLICATE_REWARD"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, message: str) -> web.Response:
    name = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}[status]
    return web.json_response({"error": name, "status": status, "message": message},
                             status=status)


class ChannelPoints:
    """Custom rewards and their redemptions. Needs, from the stand-in: ``access_tokens``
    (token -> user id), ``refused`` (a log of 403s), ``_unauthorized``, ``_token_of``."""

    access_tokens: dict[str, str]
    refused: list[dict[str, Any]]

    def _init_channel_points(self) -> None:
        self.rewards: list[dict[str, Any]] = []  # Custom Reward objects (+ "_client_id")
        self.created_rewards: list[dict[str, Any]] = []  # made through Create Custom Rewards
        self.redemptions: list[dict[str, Any]] = []  # accepted status updates
        self.redemption_requests: list[dict[str, str]] = []  # every update asked for
        self.sent_redemptions: dict[str, dict[str, Any]] = {}  # id -> {reward_id, status}

    # ------------------------------------------------------------------ test controls

    def add_reward(self, title: str, *, client_id: str | None, reward_id: str | None = None,
                   cost: int = 100, skip_queue: bool = False,
                   broadcaster_id: str = "1971641") -> dict[str, Any]:
        """A reward already on the channel: made by ``client_id``'s app, or (None) by the
        broadcaster in the Twitch dashboard."""
        reward = self._reward(broadcaster_id, {
            "title": title, "cost": cost, "should_redemptions_skip_request_queue": skip_queue})
        if reward_id is not None:
            reward["id"] = reward_id
        reward["_client_id"] = client_id
        self.rewards.append(reward)
        return reward

    def saw_redemption(self, event: dict[str, Any]) -> None:
        """The stand-in sent this redemption (channel_points_custom_reward_redemption.add)."""
        self.sent_redemptions[event["id"]] = {"reward_id": event["reward"]["id"],
                                              "status": str(event["status"]).upper()}

    @staticmethod
    def _reward(broadcaster_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """A Custom Reward object as Get/Create Custom Rewards return it."""
        return {
            "broadcaster_id": broadcaster_id, "broadcaster_login": "mikachannel",
            "broadcaster_name": "MikaChannel", "id": str(uuid.uuid4()),
            "title": body["title"], "prompt": body.get("prompt", ""), "cost": body["cost"],
            "image": None, "default_image": {
                "url_1x": "https://static-cdn.jtvnw.net/custom-reward-images/default-1.png"},
            "background_color": body.get("background_color", "#9147FF"),
            "is_enabled": body.get("is_enabled", True),
            "is_user_input_required": body.get("is_user_input_required", False),
            "max_per_stream_setting": {"is_enabled": False, "max_per_stream": 0},
            "max_per_user_per_stream_setting": {"is_enabled": False,
                                                "max_per_user_per_stream": 0},
            "global_cooldown_setting": {"is_enabled": False, "global_cooldown_seconds": 0},
            "is_paused": False, "is_in_stock": True,
            "should_redemptions_skip_request_queue":
                body.get("should_redemptions_skip_request_queue", False),
            "redemptions_redeemed_current_stream": None, "cooldown_expires_at": None,
        }

    @staticmethod
    def _public(reward: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in reward.items() if not k.startswith("_")}

    def _channel_owner_only(self, request: web.Request, what: str) -> web.Response | None:
        """The token must be the broadcaster's own (channel:manage:redemptions)."""
        user = self.access_tokens.get(self._token_of(request))  # type: ignore[attr-defined]
        need = request.query.get("broadcaster_id")
        if user == need:
            return None
        self.refused.append({"what": what, "token_user": user, "needed": need})
        return _error(403, "The ID in broadcaster_id must match the user ID found in the "
                           "request's OAuth token.")

    # ------------------------------------------------------------------ endpoints

    async def _create_reward(self, request: web.Request) -> web.Response:
        """POST channel_points/custom_rewards (Create Custom Rewards)."""
        if (denied := self._unauthorized(request)) is not None:  # type: ignore[attr-defined]
            return denied
        if (denied := self._channel_owner_only(request, "custom_rewards")) is not None:
            return denied
        body = await request.json()
        title = str(body.get("title") or "")
        if not title or len(title) > 45 or int(body.get("cost") or 0) < 1:
            return _error(400, "title (1-45 characters) and cost (>= 1) are required")
        if any(r["title"].casefold() == title.casefold() for r in self.rewards):
            return _error(400, DUPLICATE_REWARD)
        reward = self._reward(request.query["broadcaster_id"], body)
        reward["_client_id"] = request.headers.get("Client-Id")
        self.rewards.append(reward)
        self.created_rewards.append(reward)
        return web.json_response({"data": [self._public(reward)]})

    async def _list_rewards(self, request: web.Request) -> web.Response:
        """GET channel_points/custom_rewards (Get Custom Reward; only_manageable_rewards:
        only those the calling client id created)."""
        if (denied := self._unauthorized(request)) is not None:  # type: ignore[attr-defined]
            return denied
        if (denied := self._channel_owner_only(request, "custom_rewards")) is not None:
            return denied
        rewards = [r for r in self.rewards
                   if r["broadcaster_id"] == request.query["broadcaster_id"]]
        if request.query.get("only_manageable_rewards", "false").lower() == "true":
            client = request.headers.get("Client-Id")
            rewards = [r for r in rewards if r["_client_id"] == client]
        ids = request.query.getall("id", [])
        if ids:
            rewards = [r for r in rewards if r["id"] in ids]
        return web.json_response({"data": [self._public(r) for r in rewards]})

    async def _redemption(self, request: web.Request) -> web.Response:
        """PATCH channel_points/custom_rewards/redemptions (Update Redemption Status)."""
        self.redemption_requests.append(dict(request.query))
        if (denied := self._unauthorized(request)) is not None:  # type: ignore[attr-defined]
            return denied
        if (denied := self._channel_owner_only(request, "redemptions")) is not None:
            return denied
        q = request.query
        reward = next((r for r in self.rewards if r["id"] == q["reward_id"]), None)
        if reward is None:
            return _error(404, "The custom reward was not found.")
        if reward["_client_id"] != request.headers.get("Client-Id"):
            self.refused.append({"what": "redemption of another app's reward",
                                 "token_user": self.access_tokens.get(self._token_of(request)),  # type: ignore[attr-defined]
                                 "needed": reward["_client_id"], "reward_id": reward["id"]})
            return _error(403, NOT_CREATOR)
        sent = self.sent_redemptions.get(q["id"])
        if sent is None or sent["reward_id"] != reward["id"] or sent["status"] != "UNFULFILLED":
            return _error(404, NOT_UNFULFILLED)
        body = await request.json()
        sent["status"] = body["status"]
        record = {"id": q["id"], "reward_id": q["reward_id"],
                  "broadcaster_id": q["broadcaster_id"], "status": body["status"]}
        self.redemptions.append({**record, "token_user": self.access_tokens[
            self._token_of(request)]})  # type: ignore[attr-defined]
        return web.json_response({"data": [{
            **record, "user_id": "1337", "user_login": "cooler_user", "user_name": "Cooler_User",
            "user_input": "", "redeemed_at": _now(),
            "reward": {"id": reward["id"], "title": reward["title"], "prompt": reward["prompt"],
                       "cost": reward["cost"]}}]})
