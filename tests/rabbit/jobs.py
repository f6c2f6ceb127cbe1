"""Job kinds the RabbitMQ tests register on both sides (workers get ``--import`` of this)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from avatar_engine.types import Speech
from avatar_engine.workers.jobs import RenderedFrames, render_frames
from avatar_engine.workers.worker import job


@job("test.fail")
def fail(message: str) -> None:
    raise ValueError(message)


@job("test.pid")
def worker_pid() -> int:
    return os.getpid()


@job("test.slow_render_frames")
def slow_render_frames(avatar: Any, speech: Speech, start_frame: int) -> RenderedFrames:
    """``render_frames`` that first notes its start frame in ``$VSTAGE_TEST_MARK_DIR/
    started-<pid>`` and sleeps ``$VSTAGE_TEST_RENDER_DELAY_S``: a worker can be killed while
    it renders."""
    mark_dir = os.environ.get("VSTAGE_TEST_MARK_DIR")
    if mark_dir:
        with open(Path(mark_dir) / f"started-{os.getpid()}", "a") as f:
            f.write(f"{start_frame}\n")
    time.sleep(float(os.environ.get("VSTAGE_TEST_RENDER_DELAY_S", "0")))
    return render_frames(avatar, speech, start_frame)
