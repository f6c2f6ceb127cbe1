"""Starting the studio as a user does: every start prints its URLs, also with two local models
loading at once, and a busy port is one clear line before any model loads."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.netutil import free_port

REPO = Path(__file__).resolve().parents[2]
TOKEN = "startup-test-token-0123456789"


def two_persona_config(tmp: Path) -> Path:
    """The repo's config with Mika and a second local persona, ``aria``, sorted before the
    default (the shipped teachers are left out: two personas, one of them the default)."""
    config = tmp / "config"
    shutil.copytree(REPO / "config", config)
    for other in (config / "personas").glob("*.yaml"):
        if other.stem != "mika":
            other.unlink()
    app = config / "vstage.yaml"
    app.write_text(app.read_text().replace("state_dir: var", f"state_dir: {tmp / 'var'}"))
    mika = (config / "personas" / "mika.yaml").read_text()
    aria = mika.replace("id: mika", "id: aria").replace("name: Mika", "name: Aria")
    (config / "personas" / "aria.yaml").write_text(aria.replace("Ask Mika", "Ask Aria"))
    return config


def _answers(port: int) -> bool:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/state",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _start(config: Path, out: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "VSTAGE_STUDIO__TOKEN": TOKEN, "VSTAGE_STUDIO__PORT": str(port)}
    with out.open("w") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "bots.cli", "--config", str(config), "demo"],
            cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT,
        )


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.models
def test_two_local_personas_print_their_urls_on_every_start(tmp_path):
    config = two_persona_config(tmp_path)
    for run in range(5):
        port, out = free_port(), tmp_path / f"start-{run}.log"
        proc = _start(config, out, port)
        try:
            deadline, served_at = time.monotonic() + 150, None
            while "Queue overlay:" not in out.read_text():
                assert proc.poll() is None, f"start {run} exited:\n{out.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"start {run} never got ready"
                if served_at is None and _answers(port):
                    served_at = time.monotonic()
                # The studio answers: the URLs are printed at that moment, or never.
                assert served_at is None or time.monotonic() - served_at < 5, (
                    f"start {run}: the studio runs on port {port} but printed no URLs:\n"
                    f"{out.read_text()[-3000:]}")
                time.sleep(0.2)
        finally:
            _stop(proc)
        text = out.read_text()
        for page in ("studio", "overlay", "overlay/chat", "overlay/queue"):
            assert f"http://127.0.0.1:{port}/{page}?token={TOKEN}" in text, (run, text[-2000:])


@pytest.mark.models
def test_busy_port_is_one_line_before_models_load(tmp_path, config_copy):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "VSTAGE_STUDIO__TOKEN": TOKEN, "VSTAGE_STUDIO__PORT": str(port)}
        t0 = time.monotonic()
        res = subprocess.run(
            [sys.executable, "-m", "bots.cli", "--config", str(config_copy), "demo"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        )
        took = time.monotonic() - t0
    assert res.returncode != 0
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr[-3000:]
    assert str(port) in lines[0] and "studio.port" in lines[0]
    assert "VSTAGE_STUDIO__PORT" in lines[0] and "in use" in lines[0]
    assert "persona" not in res.stderr  # refused before any persona's models were loaded
    assert took < 30, took
