"""The one exception hierarchy of vstage; every layer raises these and nothing else escapes.

Errors that belong to one layer subclass :class:`VStageError` there (e.g.
``bots.moderation.errors.InputRejected``).
"""

from __future__ import annotations

import importlib
from types import ModuleType


class VStageError(Exception):
    """Root of every error vstage raises on purpose."""


class ConfigError(VStageError):
    """A settings or persona file is invalid. The message names the file, line and field."""


class MissingDependency(VStageError):
    """An optional package or embedded model is not installed; the message says how to fix it."""


class ProviderError(VStageError):
    """A provider (LLM, TTS, renderer, ...) failed.

    Args:
        message: what went wrong, for a human.
        retryable: whether trying the same call again may succeed (timeouts, 5xx, dropped
            connections) or is pointless (bad credentials, unknown model).
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class PlatformError(VStageError):
    """A platform (Twitch, Discord, ...) refused or lost the adapter's connection, translated
    at the adapter's boundary from the platform library's own error.

    Args:
        message: what went wrong, for a human ("the gateway closed with 4014: disallowed
            intents").
        platform: the adapter's platform name ("discord", "twitch").
        code: machine-readable, stable across versions ("disallowed_intents", "token_invalid",
            "http_503", "connection_failed"); code never parses the message.
        fatal: trying again cannot succeed until a person changes something (a bad or revoked
            token, a missing privileged intent); False: it may (5xx, a dropped connection).
        fix: what the person should do, one sentence; empty when nothing is known.
    """

    def __init__(self, message: str, *, platform: str, code: str, fatal: bool,
                 fix: str = "") -> None:
        super().__init__(message)
        self.platform = platform
        self.code = code
        self.fatal = fatal
        self.fix = fix

    @property
    def retryable(self) -> bool:
        """The opposite of :attr:`fatal`, as on :class:`ProviderError`."""
        return not self.fatal


def require(module: str, *, extra: str | None = None, hint: str | None = None) -> ModuleType:
    """Import an optional module, or raise :class:`MissingDependency` naming the fix."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        fix = hint or (f"pip install 'vstage[{extra}]'" if extra else "make install")
        raise MissingDependency(f"{module} is not installed: {fix}") from e
