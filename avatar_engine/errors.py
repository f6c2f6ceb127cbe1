"""The one exception hierarchy of vstage; every layer raises these and nothing else escapes."""

from __future__ import annotations


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


class InputRejected(VStageError):
    """A viewer's input was refused before it reached a persona; ``reason`` is shown to them."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def require(module: str, *, extra: str | None = None, hint: str | None = None):
    """Import an optional module, or raise :class:`MissingDependency` naming the fix."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        fix = hint or (f"pip install 'vstage[{extra}]'" if extra else "make install")
        raise MissingDependency(f"{module} is not installed: {fix}") from e
