"""Settings of the local studio / overlay web server (the ``studio:`` section of
``vstage.yaml``)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from vstage_core.settings import FrozenModel

__all__ = ["StudioSettings"]


class StudioSettings(FrozenModel):
    """The local studio / overlay web server."""

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    token: SecretStr | None = Field(
        None, description="access token for pages and control endpoints; generated when unset"
    )
