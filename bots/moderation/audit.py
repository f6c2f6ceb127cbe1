"""Audit log of moderation decisions: one JSON object per line, appended to a file.

:meth:`AuditLog.record` is synchronous, O(1) and never touches the disk: it appends a tuple
to a buffer. A background thread turns the buffer into JSON and appends it to the file every
``flush_interval_s`` (sooner when ``batch_size`` records are waiting), so the event loop never
waits for the disk. The file is opened in append mode and created ``0600``; if it is rotated
or removed, the next flush reopens it. Use it as ``async with AuditLog(path) as log:``; the
buffer is also flushed at interpreter exit.

A line looks like::

    {"ts":"2026-05-09T12:00:00.123Z","stage":"input","decision":"reject","trace_id":"4f1c",
     "persona":"mika","platform":"twitch","viewer_id":"1234","viewer_name":"ann",
     "rule":"links","reason":"links are not allowed","detail":"example.com",
     "text":"go to example.com"}
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Literal

logger = logging.getLogger(__name__)

__all__ = ["AuditLog", "Decision", "Stage"]

Stage = Literal["input", "output", "queue", "mod"]
Decision = Literal["allow", "reject", "block", "accept", "drop"]

_FIELDS = (
    "ts", "stage", "decision", "trace_id", "persona", "platform", "viewer_id", "viewer_name",
    "rule", "reason", "detail", "text",
)
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_O_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


class AuditLog:
    """Append-only JSONL file of moderation decisions, written from a background thread.

    Args:
        path: the file; its folder is created if needed.
        flush_interval_s: the longest a record waits in memory.
        batch_size: flush at once when this many records are waiting.
        max_buffer: records kept in memory at most; beyond that (the disk is gone or slow)
            new records are dropped and counted in ``dropped``.
        preview_chars: text longer than this is cut, with an ellipsis.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        flush_interval_s: float = 0.5,
        batch_size: int = 512,
        max_buffer: int = 100_000,
        preview_chars: int = 80,
    ) -> None:
        self.path = Path(path)
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self.max_buffer = max_buffer
        self.preview_chars = preview_chars
        self.written = 0  # records on disk
        self.dropped = 0  # records lost: buffer full or the write failed
        self.write_errors = 0
        self._buffer: deque[tuple] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._ts_second = -1
        self._ts_prefix = ""

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> AuditLog:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.close)

    def start(self) -> None:
        """Open the file and start the flushing thread (idempotent; blocking, brief)."""
        if self._thread is not None:
            return
        with self._write_lock:
            self._open()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"audit-log:{self.path.name}", daemon=True
        )
        self._thread.start()
        atexit.register(self.close)

    def close(self) -> None:
        """Flush what is buffered, stop the thread and close the file (idempotent)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            atexit.unregister(self.close)
            self._stop.set()
            self._wake.set()
            thread.join(timeout=10)
        self.flush()
        with self._write_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    # ------------------------------------------------------------------ recording

    def record(
        self,
        *,
        stage: Stage,
        decision: Decision,
        trace_id: str | None = None,
        persona: str | None = None,
        platform: str | None = None,
        viewer_id: str | None = None,
        viewer_name: str | None = None,
        rule: str | None = None,
        reason: str | None = None,
        detail: str | None = None,
        text: str | None = None,
    ) -> None:
        """Queue one decision for writing. Never blocks, never raises, never does I/O."""
        buffer = self._buffer
        if len(buffer) >= self.max_buffer:
            self.dropped += 1
            return
        buffer.append((
            time.time(), stage, decision, trace_id, persona, platform, viewer_id, viewer_name,
            rule, reason, detail, text,
        ))
        if len(buffer) >= self.batch_size and not self._wake.is_set():
            self._wake.set()

    def flush(self) -> int:
        """Write everything buffered now (blocking I/O: call it from a thread, or at exit).

        Returns:
            How many records were taken from the buffer.
        """
        with self._write_lock:
            lines = []
            popleft = self._buffer.popleft
            while True:
                try:
                    item = popleft()
                except IndexError:
                    break
                lines.append(self._format(item))
            if not lines:
                return 0
            data = "".join(lines).encode("utf-8", "backslashreplace")
            try:
                self._write(data)
            except OSError as e:
                self.write_errors += 1
                self.dropped += len(lines)
                if self.write_errors == 1 or self.write_errors % 100 == 0:
                    logger.warning(
                        "audit log %s: cannot write (%s); %d records lost so far",
                        self.path, e, self.dropped,
                    )
            else:
                self.written += len(lines)
            return len(lines)

    # ------------------------------------------------------------------ internals

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # a bug here must not end the thread, and so the audit trail
                logger.exception("audit log %s: flush failed", self.path)

    def _format(self, item: tuple) -> str:
        record = dict(zip(_FIELDS, item, strict=True))
        ts = item[0]
        second = int(ts)
        if second != self._ts_second:  # strftime once a second, not once a record
            self._ts_second = second
            self._ts_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        record["ts"] = f"{self._ts_prefix}.{int((ts - second) * 1000):03d}Z"
        text = record["text"]
        if text is not None and len(text) > self.preview_chars:
            record["text"] = text[: self.preview_chars] + "…"
        return _encode(record) + "\n"

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, _O_FLAGS, 0o600)
        return self._fd

    def _write(self, data: bytes) -> None:
        fd = self._fd
        if fd is not None:
            # Rotated or removed since it was opened: write to a new file at the path.
            try:
                on_disk, ours = os.stat(self.path), os.fstat(fd)
                moved = (on_disk.st_dev, on_disk.st_ino) != (ours.st_dev, ours.st_ino)
            except FileNotFoundError:
                moved = True
            if moved:
                os.close(fd)
                self._fd = None
        fd = self._open()
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
