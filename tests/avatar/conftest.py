"""Fixtures of the avatar tests."""

from __future__ import annotations

import pytest
from avatar_helpers import DEFAULT_SET

from avatar_engine.renderers.spriteset import SpriteSet


@pytest.fixture(scope="session")
def default_sprites() -> SpriteSet:
    return SpriteSet.load(DEFAULT_SET)
