"""Device Code Grant login against the stand-in: the token file is written with mode 0600;
an expired token is refreshed once and the request retried."""

from __future__ import annotations

import stat

from bots.adapters.twitch.auth import Helix, TokenManager, TokenStore, device_login
from tests.standins.twitch import BOT_ID, CLIENT_ID


async def no_sleep(_s: float) -> None:
    return None


async def test_device_login_writes_a_0600_token_file(tmp_path, twitch):
    shown = []
    tw = twitch
    store = TokenStore(path=tmp_path / "var" / "twitch-tokens.json")
    tokens = await device_login(client_id=CLIENT_ID, store=store,
                                show=lambda uri, code: shown.append((uri, code)),
                                sleep=no_sleep)
    assert shown and shown[0][1] == "ABCDEFGH"
    assert tw.polls == 3  # two "authorization_pending", then the tokens
    assert (tokens.user_id, tokens.login) == (BOT_ID, "vstagebot")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.load().access_token == "user-access-1"
    assert "user-access-1" not in repr(tokens)


async def test_helix_refreshes_an_expired_token(tmp_path, twitch):
    tw = twitch
    store = TokenStore(path=tmp_path / "t.json")
    await device_login(client_id=CLIENT_ID, store=store, show=lambda *a: None,
                       sleep=no_sleep)
    manager = TokenManager(store=store, client_id=CLIENT_ID)
    tw.expire_next = 1
    async with Helix(tokens=manager) as helix:
        body = await helix.request("GET", "users")
    assert body["data"][0]["id"] == BOT_ID
    assert tw.refreshes == 1 and store.load().access_token == "user-access-2"
