"""Transitional re-export of :mod:`vstage_core.errors` (the one exception root) for modules
not yet moved over; import from ``vstage_core.errors``."""

from vstage_core.errors import ConfigError, MissingDependency, ProviderError, VStageError, require

__all__ = ["ConfigError", "MissingDependency", "ProviderError", "VStageError", "require"]
