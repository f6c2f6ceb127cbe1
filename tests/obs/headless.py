"""A real OBS Studio run headless under Xvfb, for the OBS tests and ``bench/stage.py``.

OBS 29 (Debian's ``obs-studio``) with obs-websocket 5.1 is started in a throw-away HOME whose
``global.ini`` enables the websocket with a password and skips the first-run wizard. OBS has
no clean-quit request, so :meth:`HeadlessObs.stop` kills its process group (Xvfb included).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import BinaryIO

from vstage_core.errors import MissingDependency, ProviderError

logger = logging.getLogger(__name__)

_GLOBAL_INI = """\
[General]
FirstRun=true
LastVersion=486539266
EnableAutoUpdates=false

[Basic]
Profile=vstage
ProfileDir=vstage
SceneCollection=vstage
SceneCollectionFile=vstage

[OBSWebSocket]
FirstLoad=false
ServerEnabled=true
ServerPort={port}
AlertsEnabled=false
AuthRequired=true
ServerPassword={password}
"""

_BASIC_INI = """\
[General]
Name=vstage

[Video]
BaseCX={width}
BaseCY={height}
OutputCX={width}
OutputCY={height}
FPSType=1
FPSInt={fps}

[Output]
Mode=Simple

[SimpleOutput]
FilePath={recordings}
RecFormat=mkv
RecQuality=Small
RecEncoder=x264

[Audio]
SampleRate=48000
ChannelSetup=Stereo
"""


class HeadlessObs:
    """One OBS process under Xvfb; ``start()`` returns once its websocket accepts connections.

    Args:
        home: throw-away HOME for OBS's config (created; reused across restarts, so the
            scene collection OBS saved on exit survives, as on a user's machine).
        port: websocket port. OBS binds it on every IPv4 interface, so auth stays on.
        password: websocket password.
        width, height: canvas size.
        fps: canvas frame rate.

    Recordings (``StartRecord``) go to :attr:`recordings` as MKV.
    """

    def __init__(
        self, *, home: Path, port: int, password: str, width: int = 1280, height: int = 720,
        fps: int = 30,
    ) -> None:
        self.home = Path(home)
        self.port = port
        self.password = password
        self.width = width
        self.height = height
        self.fps = fps
        self.proc: subprocess.Popen | None = None
        self._log: BinaryIO | None = None

    @property
    def recordings(self) -> Path:
        return self.home / "recordings"

    @property
    def log_path(self) -> Path:
        return self.home / "obs.log"

    def _write_config(self) -> None:
        cfg = self.home / ".config" / "obs-studio"
        (cfg / "basic" / "profiles" / "vstage").mkdir(parents=True, exist_ok=True)
        (cfg / "basic" / "scenes").mkdir(parents=True, exist_ok=True)
        (cfg / "global.ini").write_text(
            _GLOBAL_INI.format(port=self.port, password=self.password)
        )
        basic = cfg / "basic" / "profiles" / "vstage" / "basic.ini"
        if not basic.exists():
            self.recordings.mkdir(parents=True, exist_ok=True)
            basic.write_text(_BASIC_INI.format(width=self.width, height=self.height,
                                               fps=self.fps, recordings=self.recordings))

    def start(self, timeout: float = 30.0) -> None:
        """Start OBS (if not running) and wait until the websocket port answers."""
        if self.proc is not None and self.proc.poll() is None:
            return
        if shutil.which("obs") is None or shutil.which("xvfb-run") is None:
            raise MissingDependency(
                "OBS Studio or Xvfb is missing: apt-get install obs-studio xvfb xauth"
            )
        self._write_config()
        env = {
            **os.environ,
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "LIBGL_ALWAYS_SOFTWARE": "1",
            "QT_QPA_PLATFORM": "xcb",
        }
        env.pop("DISPLAY", None)
        cmd = [
            "xvfb-run", "-a", "-s", f"-screen 0 {self.width}x{self.height}x24 -nolisten tcp",
            "obs", "--multi", "--minimize-to-tray", "--disable-updater",
            "--disable-missing-files-check", "--websocket_port", str(self.port),
            "--websocket_password", self.password, "--websocket_ipv4_only",
        ]
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=self.home, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ProviderError(f"OBS exited at start-up; see {self.log_path}")
            if port_open(self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise ProviderError(f"OBS did not open port {self.port} in {timeout:.0f} s")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Kill OBS and its Xvfb (the whole process group); idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None
        # A killed OBS leaves a crash sentinel that makes the next start ask about safe mode.
        for sentinel in (self.home / ".config" / "obs-studio").glob(".sentinel/*"):
            sentinel.unlink(missing_ok=True)

    def kill(self) -> None:
        """Crash OBS (SIGKILL): the closest thing to a user closing it mid-show."""
        self.stop(signal.SIGKILL)

    def __enter__(self) -> HeadlessObs:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port`` right now."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False
