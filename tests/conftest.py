"""Shared fixtures: the repo's config, a throw-away state dir, loaded personas."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    """A copy of config/ whose state_dir points into tmp_path."""
    dst = tmp_path / "config"
    shutil.copytree(REPO / "config", dst)
    app = dst / "vstage.yaml"
    app.write_text(app.read_text().replace("state_dir: var", f"state_dir: {tmp_path / 'var'}"))
    return dst


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
