"""The Twitch adapter: EventSub WebSocket notifications in, typed events to the orchestrator;
replies out to chat (Helix ``POST chat/messages``, as replies, split and rate limited) and
channel-point redemptions fulfilled or cancelled by their outcome.

The EventSub socket is read by :mod:`bots.adapters.twitch.eventsub` (Twitch's reconnect
hand-over without loss, the keepalive setting honoured, odd frames skipped, redeliveries
dropped by ``metadata.message_id`` across sockets); twitchio 3 is the one owner of the tokens
(it refreshes them; :class:`TokenManager` asks it to and saves what it gets) and builds the
event models. A revoked subscription is subscribed to again only when that can work, and
only that one. The orchestrator's queue drops repeated chat message and redemption ids.

When the bot is not the broadcaster, the broadcaster's own tokens (``vstage twitch login
--broadcaster``) are used for what Twitch allows only to the channel owner: the redemption,
cheer and subscription subscriptions and the redemption updates; chat stays with the bot.

Settling a redemption never costs its answer: whatever Twitch says to the update, the chat
reply goes out. Twitch lets only the app that created a reward
update its redemptions (``vstage twitch setup`` creates them); a reward made elsewhere is
reported once, with the fix, and not updated again. A redemption of a reward that skips the
request queue arrives already fulfilled and is left alone.

A viewer's memory commands (``!memory``, ``!forgetme``, ``!link CODE``) are answered in chat
as a reply to their message and never reach a persona (see
:class:`~bots.adapters.commands.MemoryRequest`: in this public chat only what was said here
is shown, and no link code is handed out).

Twitch's own moderation reaches the show: a deleted message, a cleared chat, a timed-out or
banned viewer withdraw the matching events from the orchestrator (queued, being prepared or
on stage); paid ones are refunded where Twitch allows.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any, Self

from bots.adapters.base import EventSink
from bots.adapters.commands import MemoryCommandSink, MemoryRequest, parse_memory_command
from bots.adapters.twitch.auth import TOKEN_INVALID, Helix, TokenManager, TwitchError, check_login
from bots.adapters.twitch.chat import LIMITS, RateLimiter, split_message
from bots.adapters.twitch.events import (
    PLATFORM,
    EventMapper,
    Withdrawal,
    notification_id,
    roles_from_badges,
)
from bots.adapters.twitch.eventsub import EventSub, EventSubPolicy, Revocation
from bots.events import ChatMessage, Outcome, Redemption, Viewer
from vstage_core.errors import PlatformError
from vstage_core.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

# EventSub subscriptions: (type, twitchio's subscription class)
SUBSCRIPTIONS = (
    ("channel.chat.message", "ChatMessageSubscription"),
    ("channel.channel_points_custom_reward_redemption.add", "ChannelPointsRedeemAddSubscription"),
    ("channel.cheer", "ChannelCheerSubscription"),
    ("channel.subscribe", "ChannelSubscribeSubscription"),
    ("channel.subscription.message", "ChannelSubscribeMessageSubscription"),
    ("channel.subscription.gift", "ChannelSubscriptionGiftSubscription"),
    ("channel.raid", "ChannelRaidSubscription"),
    ("channel.bits.use", "ChannelBitsUseSubscription"),
    ("channel.chat.notification", "ChatNotificationSubscription"),
    ("channel.chat.message_delete", "ChatMessageDeleteSubscription"),
    ("channel.chat.clear", "ChatClearSubscription"),
    ("channel.chat.clear_user_messages", "ChatClearUserMessagesSubscription"),
    ("channel.ban", "ChannelBanSubscription"),
)
# Twitch accepts these only with a user token of the broadcaster named in the condition
BROADCASTER_ONLY = frozenset({
    "channel.channel_points_custom_reward_redemption.add", "channel.cheer",
    "channel.subscribe", "channel.subscription.message", "channel.subscription.gift",
    "channel.bits.use", "channel.ban",
})
REDEMPTION_SETTLED = "unfulfilled"  # the status of a redemption waiting in the request queue


def _make_client_class():
    import twitchio
    from twitchio.models.eventsub_ import BaseEvent

    class _BotClient(twitchio.Client):
        """twitchio's client as the owner of the tokens: each refresh it makes is handed to
        the adapter at once (saved before any request uses the new token). Notifications come
        from :class:`~bots.adapters.twitch.eventsub.EventSub`, not from twitchio's sockets."""

        def __init__(self, *, adapter: TwitchAdapter, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._vstage = adapter

        def dispatch(self, event: str, payload: Any | None = None) -> None:
            if isinstance(payload, BaseEvent):  # not used: our sockets deliver notifications
                return
            if event == "token_refreshed":
                self._vstage.on_token_refreshed(payload)
            super().dispatch(event, payload)

    return _BotClient


async def _close_quietly(client: Any) -> None:
    try:
        await client.close()
    except Exception:
        logger.exception("twitch: error while closing the client")


class TwitchAdapter:
    """One Twitch channel. Use as ``async with``; bind it to the orchestrator first.

    Args:
        mapper: turns notifications into events (the personas' triggers).
        tokens: the bot account's tokens (``vstage twitch login``).
        broadcaster_tokens: the broadcaster's tokens (``vstage twitch login --broadcaster``),
            used for the broadcaster-only subscriptions and redemption updates; None: the bot's
            tokens are used for everything (right when the bot is the broadcaster).
        broadcaster_id: the channel's user id; None: the broadcaster tokens' user, else the
            bot's own channel.
        client_secret: the app's secret, if it is a confidential client.
        bot_is_mod: the bot may send 100 messages per 30 s instead of 20.
        keepalive_s: EventSub keepalive timeout (10-600 s), asked of Twitch; silence past it
            (plus a grace) opens a new session.
        dedupe_memory: how many notification ids are remembered.
        eventsub_policy: timings of the EventSub socket layer (reconnects, revocations).
    """

    platform = PLATFORM

    def __init__(self, *, mapper: EventMapper, tokens: TokenManager,
                 broadcaster_tokens: TokenManager | None = None,
                 broadcaster_id: str | None = None, client_secret: str | None = None,
                 bot_is_mod: bool = False, keepalive_s: int = 10,
                 dedupe_memory: int = 20_000,
                 eventsub_policy: EventSubPolicy | None = None) -> None:
        self.mapper = mapper
        self.tokens = tokens
        self.broadcaster_tokens = broadcaster_tokens
        self.bot_id = tokens.tokens.user_id
        owner = broadcaster_tokens.tokens.user_id if broadcaster_tokens is not None else None
        self.broadcaster_id = broadcaster_id or owner or self.bot_id
        if owner is not None and owner != self.broadcaster_id:
            logger.warning("twitch: the broadcaster tokens are for user %s, not the channel %s; "
                           "channel events and redemption updates will be refused",
                           owner, self.broadcaster_id)
        # whose token broadcaster-only requests use: the broadcaster's if we have it
        self.channel_user_id = owner or self.bot_id
        self._client_secret = client_secret
        self.keepalive_s = keepalive_s
        self.eventsub_policy = eventsub_policy or EventSubPolicy()
        self._eventsub: EventSub | None = None
        self.limiter = RateLimiter(limit=LIMITS["moderator" if bot_is_mod else "user"])
        self.helix = Helix(tokens=tokens)
        self.channel_helix = (Helix(tokens=broadcaster_tokens)
                              if broadcaster_tokens is not None else self.helix)
        self.failed_subscriptions: list[str] = []
        self._sink: EventSink | None = None
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._dedupe_memory = dedupe_memory
        self._client: Any = None
        self.counts = collections.Counter[str]()
        self._pending: set[asyncio.Task] = set()
        # subscriptions held now (the mapper reads it: a notice is taken from one source)
        self.active_subscriptions: set[str] = set()
        # redemptions Twitch fulfilled itself (their reward skips the request queue)
        self._auto_fulfilled: set[str] = set()
        # chat message ids a reply may point at (not Power-ups reported by channel.bits.use)
        self._replyable: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._unmanaged_rewards: set[str] = set()  # rewards vstage may not update (403)
        self._told_not_broadcaster = False

    def bind(self, sink: EventSink) -> None:
        self._sink = sink

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        if self._client is not None:
            return self
        # a revoked token is fatal (down, with the fix), Twitch unreachable is transient
        await check_login(self.tokens)
        if self.broadcaster_tokens is not None:
            await check_login(self.broadcaster_tokens,
                              login_command="vstage twitch login --broadcaster")
        await self.helix.__aenter__()
        await self.channel_helix.__aenter__()
        client = _make_client_class()(
            adapter=self, client_id=self.tokens.client_id, client_secret=self._client_secret,
            bot_id=self.bot_id, fetch_self=False)
        try:
            await client.login(token=self.tokens.access_token, load_tokens=False,
                               save_tokens=False)
            await client.add_token(self.tokens.access_token, self.tokens.tokens.refresh_token)
            if self.broadcaster_tokens is not None:
                await client.add_token(self.broadcaster_tokens.access_token,
                                       self.broadcaster_tokens.tokens.refresh_token)
            for manager in (self.tokens, self.broadcaster_tokens):
                if manager is not None:
                    manager.attach(client)  # twitchio refreshes; we store
            self._client = client
            self._eventsub = EventSub(
                helix_for={self.bot_id: self.helix, self.channel_user_id: self.channel_helix},
                keepalive_s=self.keepalive_s, on_notification=self.on_notification,
                on_revocation=self.on_revoked, counts=self.counts,
                policy=self.eventsub_policy, model_http=client.http,
                dedupe_memory=self._dedupe_memory)
            await self.subscribe()
        except Exception:
            if self._client is None:  # not handed over yet: __aexit__ would not close it
                await _close_quietly(client)
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        client, self._client = self._client, None
        await cancel_and_wait(list(self._pending))
        eventsub, self._eventsub = self._eventsub, None
        if eventsub is not None:
            await eventsub.aclose()
        for manager in (self.tokens, self.broadcaster_tokens):
            if manager is not None:
                manager.attach(None)
        if client is not None:
            try:
                await client.close()
            except Exception:
                logger.exception("twitch: error while closing the client")
        await self.channel_helix.__aexit__()
        await self.helix.__aexit__()

    async def subscribe(self) -> None:
        """Subscribe to every notification we handle; a refused one is logged, not fatal."""
        from twitchio import eventsub

        b, bot = self.broadcaster_id, self.bot_id
        failed: list[str] = []
        for sub_type, cls_name in SUBSCRIPTIONS:
            cls = getattr(eventsub, cls_name)
            if sub_type.startswith("channel.chat."):  # read as the bot (user:read:chat)
                payload = cls(broadcaster_user_id=b, user_id=bot)
            elif sub_type == "channel.raid":
                payload = cls(to_broadcaster_user_id=b)
            else:
                payload = cls(broadcaster_user_id=b)
            token_for = self.channel_user_id if sub_type in BROADCASTER_ONLY else bot
            try:
                if self._eventsub is None:  # closed meanwhile: counts as a refused one
                    raise RuntimeError("the EventSub socket is closed")
                await self._eventsub.subscribe(payload, token_for=token_for)
                self.active_subscriptions.add(sub_type)
            except Exception as e:
                if isinstance(e, TwitchError) and e.code == TOKEN_INVALID:
                    # not this subscription: the token itself is refused (401 after a refresh)
                    login = ("vstage twitch login --broadcaster" if token_for != bot
                             else "vstage twitch login")
                    raise PlatformError(f"Twitch refused the token subscribing to {sub_type}",
                                        platform=PLATFORM, code=TOKEN_INVALID, fatal=True,
                                        fix=f"run `{login}` to log in again") from e
                self.counts["subscribe_failed"] += 1
                self.active_subscriptions.discard(sub_type)
                failed.append(sub_type)
                hint = ("log the broadcaster in: `vstage twitch login --broadcaster`"
                        if sub_type in BROADCASTER_ONLY and token_for != b
                        else "does the token have the scope? (`vstage twitch login`)")
                logger.error("twitch: cannot subscribe to %s (%s); those events will not "
                             "arrive; %s", sub_type, e, hint)
        self.failed_subscriptions = failed
        self.mapper.active = frozenset(self.active_subscriptions)
        if failed:
            logger.error("twitch: running without %d of %d subscriptions: %s", len(failed),
                         len(SUBSCRIPTIONS), ", ".join(failed))

    # ------------------------------------------------------------------ in

    def on_notification(self, payload: Any) -> None:
        """A notification from the socket: dedupe, map, submit. Never raises."""
        try:
            mid = notification_id(payload)
            if mid is not None:
                if mid in self._seen:
                    self.counts["redelivered"] += 1
                    return
                self._seen[mid] = None
                if len(self._seen) > self._dedupe_memory:
                    self._seen.popitem(last=False)
            meta = getattr(payload, "_metadata", None) or {}
            sub_type = meta.get("subscription_type") or type(payload).subscription_type
            if sub_type == "channel.chat.message" and self.memory_command(payload):
                self.counts["notifications"] += 1
                return
            event = self.mapper.map(sub_type, payload)
            self.counts["notifications"] += 1
            if event is None or self._sink is None:
                return
            if isinstance(event, Withdrawal):
                self.withdraw(event)
                return
            if isinstance(event, Redemption) and (
                    str(getattr(payload, "status", "")).casefold() != REDEMPTION_SETTLED):
                self._auto_fulfilled.add(event.redemption_id)  # the reward skips the queue
            if sub_type == "channel.chat.message" and isinstance(event, ChatMessage):
                self._replyable[event.msg_id] = None
                if len(self._replyable) > self._dedupe_memory:
                    self._replyable.popitem(last=False)
            decision = self._sink.submit(event)
            self.counts["accepted" if decision.accepted else "rejected"] += 1
        except Exception:
            self.counts["malformed"] += 1
            logger.exception("twitch: skipped a notification that could not be handled")

    def memory_command(self, msg: Any) -> bool:
        """A viewer's memory command in chat: answered as a reply (off this call), never
        passed to a persona. True if ``msg`` was one (answered or deliberately not)."""
        parsed = parse_memory_command(msg.text or "")
        sink = self._sink
        if parsed is None or not isinstance(sink, MemoryCommandSink):
            return False
        source = msg.source_broadcaster
        if source is not None and source.id != msg.broadcaster.id:
            return True  # said in another channel's chat (shared chat): not ours to answer
        chatter = msg.chatter
        if chatter is None:
            return True
        command, argument = parsed
        viewer = Viewer(id=str(chatter.id), name=chatter.display_name or chatter.name or "",
                        roles=roles_from_badges(msg.badges))
        request = MemoryRequest(command=command, viewer=viewer, platform=PLATFORM,
                                persona=self.mapper.default_persona, argument=argument,
                                public=True)
        self.counts["memory_commands"] += 1
        task = asyncio.get_running_loop().create_task(
            self._answer_memory(sink, request, msg.id), name=f"twitch:memory:{msg.id}")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return True

    async def _answer_memory(self, sink: MemoryCommandSink, request: MemoryRequest,
                             msg_id: str) -> None:
        try:
            answer = await sink.memory_command(request)
            if answer:
                await self.send_chat(answer, reply_to=msg_id)
        except Exception:
            self.counts["deliver_failed"] += 1
            logger.exception("twitch: could not answer a memory command (%s)", request.command)

    def withdraw(self, w: Withdrawal) -> int:
        """Take back what Twitch's moderation removed, from every persona."""
        if self._sink is None:
            return 0
        gone = self._sink.withdraw(None, w.matches, reason=w.reason)
        self.counts["withdrawn"] += gone
        if gone:
            logger.info("twitch: %s; %d queued or playing item(s) dropped", w.reason, gone)
        return gone

    def on_revoked(self, revoked: Revocation) -> None:
        """Twitch revoked a subscription: one WARNING line; subscribe to that one again (after
        :attr:`EventSubPolicy.resubscribe_delay_s`) unless Twitch would refuse it."""
        self.counts["revoked"] += 1
        self.active_subscriptions.discard(revoked.type)
        self.mapper.active = frozenset(self.active_subscriptions)
        if revoked.permanent or self._eventsub is None:
            logger.warning("twitch: Twitch revoked the %s subscription (%s); not subscribing "
                           "again: those events stop until `vstage twitch login` is run again "
                           "for that account", revoked.type, revoked.status)
            return
        logger.warning("twitch: Twitch revoked the %s subscription (%s); subscribing to it "
                       "again in %.0f s", revoked.type, revoked.status,
                       self.eventsub_policy.resubscribe_delay_s)
        task = asyncio.get_running_loop().create_task(
            self._resubscribe_later(revoked), name=f"twitch:resubscribe:{revoked.type}")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _resubscribe_later(self, revoked: Revocation) -> None:
        await asyncio.sleep(self.eventsub_policy.resubscribe_delay_s)
        if self._eventsub is None:
            return
        try:
            await self._eventsub.subscribe(revoked.subscription, token_for=revoked.user_id)
        except Exception as e:
            self.counts["subscribe_failed"] += 1
            logger.error("twitch: cannot subscribe to %s again (%s); those events will not "
                         "arrive", revoked.type, e)
            return
        self.counts["resubscribed"] += 1
        self.active_subscriptions.add(revoked.type)
        self.mapper.active = frozenset(self.active_subscriptions)
        logger.info("twitch: subscribed to %s again", revoked.type)

    def on_token_refreshed(self, payload: Any) -> None:
        """twitchio (the tokens' owner) refreshed a token: save the new pair to its file."""
        user_id = str(getattr(payload, "user_id", ""))
        for manager in (self.tokens, self.broadcaster_tokens):
            if manager is not None and manager.tokens.user_id == user_id:
                manager.refreshed(access_token=payload.token, refresh_token=payload.refresh_token)
                return

    # ------------------------------------------------------------------ out

    async def deliver(self, outcome: Outcome) -> None:
        """Fulfil or cancel a redemption by the outcome, and post the reply to chat. Neither
        stops the other: a refused redemption update still leaves the answer in chat."""
        event = outcome.event
        if isinstance(event, Redemption):
            await self._settle(event, outcome)
        is_chat = event.msg_id in self._replyable  # a chat message, so a reply may point at it
        self._replyable.pop(event.msg_id, None)
        if outcome.status == "spoken" and outcome.reply_text:
            try:
                await self.send_chat(outcome.reply_text,
                                     reply_to=event.msg_id if is_chat else None)
            except TwitchError as e:
                self.counts["deliver_failed"] += 1
                logger.error("twitch: could not post the reply to %s: %s", event.trace_id, e)

    async def _settle(self, event: Redemption, outcome: Outcome) -> None:
        """Fulfil the redemption when it was spoken, else cancel it (points refunded), when
        Twitch lets vstage: not for a reward that skips the request queue (already
        fulfilled), nor one another app created (403). Never raises a TwitchError."""
        status = "FULFILLED" if outcome.status == "spoken" else "CANCELED"
        if event.redemption_id in self._auto_fulfilled:
            self._auto_fulfilled.discard(event.redemption_id)
            self.counts["redemption_auto_fulfilled"] += 1
            if status == "CANCELED":
                logger.warning("twitch: %s's redemption of %r was not answered (%s) and cannot "
                               "be refunded: the reward skips the request queue, so Twitch "
                               "fulfilled it at once", event.viewer.name, event.reward_title,
                               outcome.reason)
            return
        if event.reward_id in self._unmanaged_rewards:
            self.counts["redemption_unmanaged"] += 1
            return
        try:
            await self.channel_helix.request(
                "PATCH", "channel_points/custom_rewards/redemptions",
                params={"broadcaster_id": self.broadcaster_id, "reward_id": event.reward_id,
                        "id": event.redemption_id},
                json_body={"status": status})
            self.counts[f"redemption_{status.lower()}"] += 1
        except TwitchError as e:
            self.counts["redemption_update_failed"] += 1
            if e.status != 403:
                logger.error("twitch: could not mark %s's redemption of %r %s: %s",
                             event.viewer.name, event.reward_title, status, e)
                return
            if self.channel_user_id != self.broadcaster_id:
                if not self._told_not_broadcaster:
                    self._told_not_broadcaster = True
                    logger.error("twitch: redemptions cannot be fulfilled or refunded: Twitch "
                                 "takes those updates only with the broadcaster's login. Fix: "
                                 "`vstage twitch login --broadcaster`")
                return
            if event.reward_id in self._unmanaged_rewards:
                return  # told already (an update that was under way at the time)
            self._unmanaged_rewards.add(event.reward_id)
            logger.error(
                "twitch: the channel-point reward %r (id %s) was not created by vstage's "
                "Twitch app, so Twitch refuses to fulfil or refund its redemptions (HTTP "
                "403). Answers are still posted, but its redemptions stay in the request "
                "queue to settle by hand. Fix: delete the reward in the Twitch dashboard, then "
                "run `vstage twitch setup`, which creates it so vstage may manage it",
                event.reward_title, event.reward_id)

    async def send_chat(self, text: str, *, reply_to: str | None = None) -> None:
        """Send ``text`` as the bot, split at 500 characters; the first part replies to
        ``reply_to``, the others follow it."""
        for i, part in enumerate(split_message(text)):
            await self.limiter.acquire()
            body: dict[str, Any] = {"broadcaster_id": self.broadcaster_id,
                                    "sender_id": self.bot_id, "message": part}
            if reply_to and i == 0:
                body["reply_parent_message_id"] = reply_to
            result = await self.helix.request("POST", "chat/messages", json_body=body)
            sent = (result.get("data") or [{}])[0]
            if not sent.get("is_sent", True):
                reason = (sent.get("drop_reason") or {}).get("message", "unknown")
                logger.warning("twitch: chat message dropped by Twitch: %s", reason)
            self.counts["chat_sent"] += 1
