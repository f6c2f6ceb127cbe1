"""Twitch user tokens: the Device Code Grant flow (``vstage twitch login``), the token file
(0600) and refresh, plus a small Helix client that refreshes on 401 and waits out 429s.

Hosts are read from twitchio's ``Route.ID_BASE`` / ``Route.BASE`` at use time, so tests point
them at a local stand-in.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from vstage_core.errors import MissingDependency, PlatformError, VStageError
from vstage_core.extras import install_hint

logger = logging.getLogger(__name__)

SCOPES = (
    "user:read:chat",  # receive chat over EventSub (channel.chat.message)
    "user:write:chat",  # post replies (Helix POST chat/messages)
    "user:bot",  # appear as a bot in chat
    "channel:bot",  # the broadcaster lets the bot read its chat
    "bits:read",  # channel.cheer
    "channel:read:subscriptions",  # channel.subscribe / .subscription.message / .gift
    "channel:read:redemptions",  # channel-point redemptions
    "channel:manage:redemptions",  # fulfil / cancel them, create the "Ask <persona>" reward
    "channel:moderate",  # channel.ban (deleted and cleared chat need only user:read:chat)
)
# what the broadcaster grants when the bot is another account: its channel events, the
# redemption updates, and the bot's presence in its chat
BROADCASTER_SCOPES = (
    "bits:read",  # channel.cheer
    "channel:read:subscriptions",  # channel.subscribe / .subscription.message / .gift
    "channel:read:redemptions",  # channel-point redemptions
    "channel:manage:redemptions",  # fulfil / cancel them, create the "Ask <persona>" reward
    "channel:moderate",  # channel.ban
    "channel:bot",  # the bot may read and write in this channel's chat
)
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# TwitchError.code of a token that neither validates nor refreshes: only a new login helps
TOKEN_INVALID = "token_invalid"


class TwitchError(VStageError):
    """Twitch refused or failed a request; ``status`` is the HTTP status, if any."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False,
                 code: str = ""):
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.code = code or (f"http_{status}" if status else "")


def _routes():
    try:
        from twitchio.http import Route
    except ImportError as e:
        raise MissingDependency(f"twitchio is not installed: {install_hint('twitch')}") from e
    return Route


def id_url(path: str) -> str:
    return _routes().ID_BASE.rstrip("/") + "/" + path.lstrip("/")


def helix_url(path: str) -> str:
    return _routes().BASE.rstrip("/") + "/" + path.lstrip("/")


@dataclass(slots=True, kw_only=True)
class Tokens:
    """A user's tokens, as stored in the token file."""

    access_token: str
    refresh_token: str
    user_id: str = ""
    login: str = ""
    scopes: list[str] = field(default_factory=list)
    obtained_at: float = field(default_factory=time.time)

    def __repr__(self) -> str:  # never print the tokens
        return f"Tokens(login={self.login!r}, user_id={self.user_id!r})"


class TokenStore:
    """Tokens of one account (the bot, or the broadcaster) in one JSON file, written
    atomically with mode 0600."""

    def __init__(self, *, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> Tokens:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return Tokens(**data)
        except (OSError, ValueError, TypeError) as e:
            raise TwitchError(f"{self.path}: no usable Twitch tokens ({e}); run "
                              "`vstage twitch login`") from e

    def save(self, tokens: Tokens) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(asdict(tokens), f)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)


async def _post_form(session: aiohttp.ClientSession, url: str, data: dict[str, str]
                     ) -> tuple[int, dict[str, Any]]:
    async with session.post(url, data=data) as r:
        try:
            body = await r.json(content_type=None)
        except ValueError:
            body = {}
        return r.status, body if isinstance(body, dict) else {}


async def validate(session: aiohttp.ClientSession, access_token: str) -> dict[str, Any] | None:
    """``GET /oauth2/validate``: the token's user and scopes, or None when it is not valid."""
    async with session.get(id_url("oauth2/validate"),
                           headers={"Authorization": f"OAuth {access_token}"}) as r:
        if r.status == 401:
            return None
        if r.status != 200:
            raise TwitchError(f"token validation failed: HTTP {r.status}", status=r.status,
                              retryable=r.status >= 500)
        return await r.json(content_type=None)


async def device_login(
    *, client_id: str, store: TokenStore, scopes: tuple[str, ...] = SCOPES,
    show: Callable[[str, str], None] = lambda uri, code: print(
        f"\n  Open {uri} and enter the code {code}\n", flush=True),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Tokens:
    """Run the Device Code Grant flow: show the URL and code, wait for the user to approve,
    store the tokens (0600) and return them."""
    async with aiohttp.ClientSession() as session:
        status, dev = await _post_form(session, id_url("oauth2/device"),
                                       {"client_id": client_id, "scopes": " ".join(scopes)})
        if status != 200 or "device_code" not in dev:
            raise TwitchError(f"device authorization failed: HTTP {status} {dev.get('message')}",
                              status=status)
        show(dev["verification_uri"], dev["user_code"])
        interval = float(dev.get("interval", 5))
        deadline = time.monotonic() + float(dev.get("expires_in", 1800))
        while time.monotonic() < deadline:
            status, tok = await _post_form(session, id_url("oauth2/token"), {
                "client_id": client_id, "scopes": " ".join(scopes),
                "device_code": dev["device_code"], "grant_type": DEVICE_GRANT,
            })
            if status == 200 and "access_token" in tok:
                info = await validate(session, tok["access_token"]) or {}
                tokens = Tokens(access_token=tok["access_token"],
                                refresh_token=tok.get("refresh_token", ""),
                                user_id=str(info.get("user_id", "")), login=info.get("login", ""),
                                scopes=list(tok.get("scope") or info.get("scopes") or []))
                store.save(tokens)
                logger.info("twitch: logged in as %s; tokens in %s", tokens.login, store.path)
                return tokens
            message = str(tok.get("message", ""))
            if message == "slow_down":
                interval += 5
            elif message != "authorization_pending":
                raise TwitchError(f"device login failed: {message or f'HTTP {status}'}",
                                  status=status)
            await sleep(interval)
    raise TwitchError("device login timed out: the code was not entered in time")


class TokenManager:
    """One account's current tokens and their file.

    Alone (``vstage twitch setup``, the login commands) it refreshes them itself. Once
    :meth:`attach`-ed to the adapter's twitchio client, twitchio is their one owner: Twitch's
    refresh tokens rotate, so two refreshers of the same pair would log the account out.
    Then :attr:`access_token` is twitchio's current token, :meth:`refresh` asks twitchio to
    refresh, and :meth:`refreshed` saves what twitchio got.
    """

    def __init__(self, *, store: TokenStore, client_id: str, client_secret: str | None = None):
        self.store = store
        self.client_id = client_id
        self.client_secret = client_secret
        self.tokens = store.load()
        self._lock = asyncio.Lock()
        self._owner: Any = None  # the twitchio Client that owns the tokens, once attached

    def attach(self, owner: Any) -> None:
        """Make twitchio's client (``Client.tokens``, ``Client.add_token``) the owner of these
        tokens, or with None take them back."""
        self._owner = owner

    @property
    def access_token(self) -> str:
        if self._owner is not None:
            held = self._owner.tokens.get(self.tokens.user_id)
            if held:
                return str(held["token"])
        return self.tokens.access_token

    def refreshed(self, *, access_token: str, refresh_token: str) -> None:
        """The owner refreshed the tokens: keep the new pair and save it (0600)."""
        self.tokens.access_token = access_token
        self.tokens.refresh_token = refresh_token or self.tokens.refresh_token
        self.tokens.obtained_at = time.time()
        self.store.save(self.tokens)
        logger.info("twitch: access token of %s refreshed and saved",
                    self.tokens.login or self.tokens.user_id)

    async def refresh(self, session: aiohttp.ClientSession, *, stale: str | None = None) -> str:
        """Refresh the access token (unless another caller already did since ``stale``)."""
        async with self._lock:
            if stale is not None and self.access_token != stale:
                return self.access_token
            if self._owner is not None:
                return await self._refresh_by_owner()
            form = {"grant_type": "refresh_token", "refresh_token": self.tokens.refresh_token,
                    "client_id": self.client_id}
            if self.client_secret:
                form["client_secret"] = self.client_secret
            status, tok = await _post_form(session, id_url("oauth2/token"), form)
            if status != 200 or "access_token" not in tok:
                # Twitch answers 400 "Invalid refresh token" once the user disconnected the
                # app or changed the password ("Refreshing access tokens"): only a new login
                # helps, and whoever catches TOKEN_INVALID says so (the supervisor: down)
                refused = status in (400, 401)
                logger.log(logging.WARNING if refused else logging.ERROR,
                           "twitch: token refresh failed (HTTP %s: %s); run `vstage twitch "
                           "login` if this persists", status, tok.get("message"))
                raise TwitchError("token refresh failed", status=status,
                                  retryable=status >= 500,
                                  code=TOKEN_INVALID if refused else "")
            self.tokens.access_token = tok["access_token"]
            self.tokens.refresh_token = tok.get("refresh_token") or self.tokens.refresh_token
            self.tokens.obtained_at = time.time()
            self.store.save(self.tokens)
            logger.info("twitch: access token refreshed")
            return self.tokens.access_token

    async def _refresh_by_owner(self) -> str:
        """Hand the expired pair back to twitchio: ``add_token`` validates it and, finding it
        expired, refreshes it, keeps the new pair and dispatches ``token_refreshed`` (which the
        adapter passes to :meth:`refreshed`). One refresh, by the one owner."""
        held = self._owner.tokens.get(self.tokens.user_id) or {}
        token = str(held.get("token") or self.tokens.access_token)
        refresh = str(held.get("refresh") or self.tokens.refresh_token)
        try:
            await self._owner.add_token(token, refresh)
        except Exception as e:
            from twitchio import HTTPException, InvalidTokenException

            # InvalidTokenException: the pair neither validates nor refreshes
            status = e.status if isinstance(e, HTTPException) else None
            refused = isinstance(e, InvalidTokenException) or status in (400, 401)
            logger.log(logging.WARNING if refused else logging.ERROR,
                       "twitch: token refresh failed (%s); run `vstage twitch login` if this "
                       "persists", e)
            raise TwitchError("token refresh failed", retryable=not refused,
                              status=status,
                              code=TOKEN_INVALID if refused else "") from e
        return self.access_token


class Helix:
    """Helix requests as the bot user: refresh on 401 (once), wait out 429 (Ratelimit-Reset).

    Args:
        tokens: the bot's token manager.
        max_429_wait_s: the longest a 429 is waited out before giving up.
    """

    def __init__(self, *, tokens: TokenManager, max_429_wait_s: float = 30.0) -> None:
        self.tokens = tokens
        self.max_429_wait_s = max_429_wait_s
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Helix:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise TwitchError("Helix client used outside `async with`")
        return self._session

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      json_body: dict[str, Any] | None = None) -> dict[str, Any]:
        refreshed = False
        for _ in range(5):
            token = self.tokens.access_token
            headers = {"Authorization": f"Bearer {token}", "Client-Id": self.tokens.client_id}
            async with self.session.request(method, helix_url(path), params=params,
                                            json=json_body, headers=headers) as r:
                if r.status == 401 and not refreshed:
                    refreshed = True
                    await self.tokens.refresh(self.session, stale=token)
                    continue
                if r.status == 429:
                    reset = float(r.headers.get("Ratelimit-Reset", time.time() + 1))
                    wait = max(0.0, min(reset - time.time(), self.max_429_wait_s))
                    logger.warning("twitch: rate limited on %s %s; waiting %.1fs", method, path,
                                   wait)
                    await asyncio.sleep(wait)
                    continue
                body = await r.json(content_type=None) if r.status != 204 else {}
                if r.status >= 400:
                    message = body.get("message") if isinstance(body, dict) else None
                    # still 401 with a freshly refreshed token: the token is no good
                    raise TwitchError(f"{method} {path}: HTTP {r.status} {message or ''}".strip(),
                                      status=r.status, retryable=r.status >= 500,
                                      code=TOKEN_INVALID if r.status == 401 else "")
                return body if isinstance(body, dict) else {}
        raise TwitchError(f"{method} {path}: gave up after repeated 401/429", retryable=True)


async def check_login(tokens: TokenManager, *, platform: str = "twitch",
                      login_command: str = "vstage twitch login") -> None:
    """Make sure ``tokens`` can be used before connecting, as Twitch asks apps to on start-up
    ("Validating tokens", dev.twitch.tv/docs/authentication/validate-tokens/: ``GET
    /oauth2/validate`` answers 401 for a token that is expired or revoked). An expired token is
    refreshed; a revoked one cannot be ("Refreshing access tokens": the refresh token is
    refused with 400 once the user disconnected the app).

    Raises:
        PlatformError: ``token_invalid`` (fatal: run ``login_command``), or a transient one
            (Twitch unreachable, 5xx).
    """
    who = tokens.tokens.login or tokens.tokens.user_id or "the bot"
    try:
        async with aiohttp.ClientSession() as session:
            if await validate(session, tokens.access_token) is not None:
                return
            logger.info("twitch: the access token of %s no longer validates; refreshing it", who)
            await tokens.refresh(session)
    except TwitchError as e:
        if e.code == TOKEN_INVALID:
            raise PlatformError(f"Twitch refused the tokens of {who} (revoked or expired)",
                                platform=platform, code=TOKEN_INVALID, fatal=True,
                                fix=f"run `{login_command}` to log in again") from e
        raise PlatformError(f"Twitch did not answer ({e})", platform=platform,
                            code=e.code or "http_error", fatal=False) from e
    except (aiohttp.ClientError, OSError, TimeoutError) as e:
        raise PlatformError(f"cannot reach Twitch ({e or type(e).__name__})", platform=platform,
                            code="connection_failed", fatal=False) from e
