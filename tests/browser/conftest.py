"""Headless Chromium (Debian's, driven by Playwright) and a running ``vstage demo``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.netutil import free_port

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "browser-test-token-0123456789"


class Demo(str):
    """The running demo's base URL, knowing its config folder and port."""

    config: Path
    port: int


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """``vstage demo`` on a free port, as a user runs it; yields its base URL."""
    tmp = tmp_path_factory.mktemp("demo")
    config = tmp / "config"
    shutil.copytree(REPO / "config", config)
    app = config / "vstage.yaml"
    app.write_text(app.read_text().replace("state_dir: var", f"state_dir: {tmp / 'var'}"))
    port = free_port()
    env = {**os.environ, "VSTAGE_STUDIO__TOKEN": TOKEN, "VSTAGE_STUDIO__PORT": str(port)}
    log = (tmp / "demo.log").open("w+")
    proc = subprocess.Popen([sys.executable, "-m", "bots.cli", "--config", str(config), "demo"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while "studio is live" not in (tmp / "demo.log").read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"vstage demo did not start:\n{(tmp / 'demo.log').read_text()[-3000:]}")
        time.sleep(0.2)
    demo = Demo(f"http://127.0.0.1:{port}")
    demo.config, demo.port = config, port
    yield demo
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
    out = (tmp / "demo.log").read_text()
    assert "Traceback" not in out, out[-3000:]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run `make install` (apt package chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--autoplay-policy=no-user-gesture-required"],
        )
        yield b
        b.close()
