"""`vstage obs setup` against the real headless OBS, as a streamer runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.obs.conftest import PASSWORD

REPO = Path(__file__).resolve().parents[2]


def _setup(config_copy, port: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "VSTAGE_OBS__ENABLED": "true", "VSTAGE_OBS__PORT": str(port),
           "VSTAGE_OBS__PASSWORD": PASSWORD}
    return subprocess.run([sys.executable, "-m", "bots.cli", "--config", str(config_copy),
                           "obs", "setup"], capture_output=True, text=True, timeout=60,
                          env=env, cwd=REPO)


def test_obs_setup_command_is_idempotent(obs_studio, config_copy):
    first = _setup(config_copy, obs_studio.port)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "created" in first.stdout
    again = _setup(config_copy, obs_studio.port)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "nothing to change" in again.stdout and "created" not in again.stdout
    assert PASSWORD not in first.stdout + first.stderr + again.stdout + again.stderr


def test_obs_setup_says_when_obs_is_unreachable(config_copy):
    from tests.netutil import free_port

    res = _setup(config_copy, free_port())
    assert res.returncode == 2 and "OBS is not reachable" in res.stderr
