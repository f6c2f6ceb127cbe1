"""The optional extras of the ``vstage`` distribution and the modules each one brings, so code
that needs a platform's package says which extra to install (``pip install 'vstage[twitch]'``).

Keep :data:`EXTRAS` in step with ``[project.optional-dependencies]`` in ``pyproject.toml``
(``tests/test_packaging.py`` checks they match).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping

from vstage_core.errors import MissingDependency

__all__ = ["EXTRAS", "install_hint", "is_installed", "missing_modules", "require_extra"]

EXTRAS: Mapping[str, tuple[str, ...]] = {
    # Twitch chat, events and redemptions (EventSub WebSocket, Helix).
    "twitch": ("twitchio",),
    # Hearing (Silero VAD + faster-whisper): voice channels and the /talk page.
    "hearing": ("silero_vad", "faster_whisper"),
    # Discord voice: discord.py with PyNaCl and davey (DAVE), voice receive, and hearing.
    "discord": ("discord", "nacl", "davey", "discord.ext.voice_recv", "silero_vad",
                "faster_whisper"),
    # Driving OBS Studio over obs-websocket 5.
    "obs": ("obsws_python",),
    # Render jobs over RabbitMQ (`show.broker_url`, `vstage worker`).
    "rabbit": ("aio_pika",),
    # Long-term memory on PostgreSQL.
    "postgres": ("asyncpg",),
    # The Wav2Lip renderer needs nothing beyond the core (torch, numpy) today; the extra is
    # kept so install lines that name it stay valid if it ever does.
    "wav2lip": (),
}
"""Each extra and the top-level (or dotted) modules it makes importable."""


def install_hint(extra: str) -> str:
    """The command that installs ``extra``: ``pip install 'vstage[extra]'``."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    return f"pip install 'vstage[{extra}]'"


def is_installed(module: str) -> bool:
    """Whether ``module`` can be found, without importing it (its parent packages are)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing or refuses to import
        return False


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be found; empty when it is installed.

    Only looks modules up (no import of a module whose parent is already importable), so it is
    cheap enough for ``vstage check``.
    """
    install_hint(extra)  # validates the name
    return [m for m in EXTRAS[extra] if not is_installed(m)]


def require_extra(extra: str, *, feature: str | None = None) -> None:
    """Raise :class:`MissingDependency` naming the extra unless all its modules are installed.

    Args:
        extra: a key of :data:`EXTRAS`.
        feature: what needs it, for the message (e.g. ``"twitch.enabled"``).

    Raises:
        MissingDependency: a module of the extra is missing; the message ends with
            ``pip install 'vstage[extra]'``.
    """
    missing = missing_modules(extra)
    if missing:
        names, verb = ", ".join(missing), "is" if len(missing) == 1 else "are"
        what = f"{feature} needs {names}, which {verb}" if feature else f"{names} {verb}"
        raise MissingDependency(f"{what} not installed: {install_hint(extra)}")
