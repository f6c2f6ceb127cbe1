"""Automatic choice of the torch device: CUDA when present, then Apple MPS, else the CPU."""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)


def pick_device(preference: str = "auto") -> torch.device:
    """Return the device to render on.

    Args:
        preference: ``"auto"`` (cuda > mps > cpu), or an explicit ``"cuda"``, ``"cuda:1"``,
            ``"mps"`` or ``"cpu"``. An explicit device that is not available falls back to
            the CPU with a warning, so a config written on a GPU box still runs elsewhere.
    """
    pref = preference.lower().strip()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(pref)
    if dev.type == "cuda" and not torch.cuda.is_available():
        logger.warning("device %r requested but CUDA is not available; using the CPU", pref)
        return torch.device("cpu")
    if dev.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        logger.warning("device %r requested but MPS is not available; using the CPU", pref)
        return torch.device("cpu")
    return dev
