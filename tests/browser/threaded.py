"""A StudioServer on its own event loop in a thread, so sync Playwright can drive its pages."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from overlays.studio.server import StudioServer


class ThreadedStudio:
    """Start on construction; :meth:`run` a coroutine on the server's loop; :meth:`close`."""

    def __init__(self, clips_dir: Path, *, token: str, personas: dict[str, str]) -> None:
        self.clips_dir = clips_dir
        self.loop = asyncio.new_event_loop()
        self.server = StudioServer(port=0, token=SecretStr(token), clips_dir=clips_dir,
                                   personas=personas)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.run(self.server.start())

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(15)

    def close(self) -> None:
        self.run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
