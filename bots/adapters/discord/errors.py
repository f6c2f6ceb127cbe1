"""discord.py's connection errors translated into :class:`~vstage_core.errors.PlatformError`:
which are fatal (retrying cannot help until a person acts) and what to do about them.

The split follows Discord's Gateway reference, "Gateway Close Event Codes"
(https://discord.com/developers/docs/topics/opcodes-and-status-codes#gateway-gateway-close-event-codes):
the codes marked "Reconnect: false" there -- 4004 Authentication failed, 4010 Invalid shard,
4011 Sharding required, 4012 Invalid API version, 4013 Invalid intent(s), 4014 Disallowed
intent(s) -- are fatal; every other close (4000-4009, a network error, a 5xx) is transient.
discord.py raises ``LoginFailure`` when ``Client.login`` gets HTTP 401 for the token, and
``PrivilegedIntentsRequired`` from ``Client.connect`` for close code 4014; other closes it does
not handle itself end ``connect`` with ``ConnectionClosed`` carrying the code.
"""

from __future__ import annotations

from vstage_core.errors import PlatformError

PLATFORM = "discord"
PORTAL = "https://discord.com/developers/applications"
TOKEN_FIX = (f"reset the bot token at {PORTAL} -> your app -> Bot -> Reset Token, and set "
             "DISCORD_TOKEN (or discord.token) to it")
INTENTS_FIX = (f"enable it at {PORTAL} -> your app -> Bot -> Privileged Gateway Intents "
               "(Message Content)")
UPGRADE_FIX = "upgrade discord.py: pip install -U 'vstage[discord]'"

# close code -> (code, reason, fix) for the codes Discord marks "Reconnect: false"
FATAL_CLOSES: dict[int, tuple[str, str, str]] = {
    4004: ("token_invalid", "Discord refused the bot token (gateway close 4004 "
           "Authentication failed)", TOKEN_FIX),
    4010: ("invalid_shard", "Discord refused the shard (gateway close 4010 Invalid shard)",
           "run a single shard (vstage does not shard)"),
    4011: ("sharding_required", "the bot is in too many servers for one connection (gateway "
           "close 4011 Sharding required)", "run the bot in fewer servers (vstage does not "
           "shard)"),
    4012: ("invalid_api_version", "Discord no longer accepts this gateway version (close "
           "4012 Invalid API version)", UPGRADE_FIX),
    4013: ("invalid_intents", "Discord refused the intents asked for (gateway close 4013 "
           "Invalid intent(s))", UPGRADE_FIX),
    4014: ("disallowed_intents", "the bot lacks the privileged Message Content intent "
           "(gateway close 4014 Disallowed intent(s))", INTENTS_FIX),
}


def platform_error(error: BaseException) -> PlatformError:
    """``error`` (raised by ``Client.login`` or ``Client.connect``) as a PlatformError.

    Pure: looks only at the exception's class and attributes.
    """
    if isinstance(error, PlatformError):
        return error
    import discord

    text = str(error) or type(error).__name__
    if isinstance(error, discord.PrivilegedIntentsRequired):
        code, reason, fix = FATAL_CLOSES[4014]
        return PlatformError(reason, platform=PLATFORM, code=code, fatal=True, fix=fix)
    if isinstance(error, discord.LoginFailure):
        return PlatformError(f"Discord refused the bot token ({text})", platform=PLATFORM,
                             code="token_invalid", fatal=True, fix=TOKEN_FIX)
    if isinstance(error, discord.ConnectionClosed):
        if error.code in FATAL_CLOSES:
            code, reason, fix = FATAL_CLOSES[error.code]
            return PlatformError(reason, platform=PLATFORM, code=code, fatal=True, fix=fix)
        return PlatformError(f"the gateway closed with {error.code}", platform=PLATFORM,
                             code=f"gateway_closed_{error.code}", fatal=False)
    if isinstance(error, discord.HTTPException):
        if error.status == 401:
            return PlatformError(f"Discord refused the bot token ({text})", platform=PLATFORM,
                                 code="token_invalid", fatal=True, fix=TOKEN_FIX)
        return PlatformError(f"Discord answered HTTP {error.status} ({text})",
                             platform=PLATFORM, code=f"http_{error.status}", fatal=False)
    if isinstance(error, discord.GatewayNotFound):
        return PlatformError(text, platform=PLATFORM, code="gateway_not_found", fatal=False)
    return PlatformError(f"cannot reach Discord ({text})", platform=PLATFORM,
                         code="connection_failed", fatal=False)
