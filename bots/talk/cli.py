"""Command line of this package (registered by :mod:`bots.cli`)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this package's commands to ``vstage`` (none yet)."""
