"""Audit log: JSONL records that read back, appended, private, flushed off the event loop."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from bots.moderation.audit import AuditLog

REPO = Path(__file__).resolve().parents[2]


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def one(log: AuditLog, n: int = 0, **kw) -> None:
    fields = dict(
        stage="input", decision="reject", trace_id=f"t{n}", persona="mika", platform="twitch",
        viewer_id="42", viewer_name="ann", rule="links", reason="links are not allowed",
        detail="example.com", text="go to example.com",
    )
    fields.update(kw)
    log.record(**fields)


async def test_records_read_back_with_every_field(tmp_path):
    path = tmp_path / "audit" / "mika.jsonl"  # the folder is created
    async with AuditLog(path) as log:
        one(log)
        one(log, 1, stage="output", decision="block", rule="personal_info", text="x" * 500)
    records = read(path)
    assert len(records) == 2
    first = records[0]
    assert set(first) == {
        "ts", "trace_id", "persona", "platform", "viewer_id", "viewer_name", "stage",
        "decision", "rule", "reason", "detail", "text",
    }
    assert first["trace_id"] == "t0" and first["stage"] == "input"
    assert first["decision"] == "reject" and first["rule"] == "links"
    assert first["viewer_id"] == "42" and first["viewer_name"] == "ann"
    assert first["ts"].endswith("Z")
    when = datetime.fromisoformat(first["ts"].replace("Z", "+00:00"))
    assert when.tzinfo is not None and abs(time.time() - when.timestamp()) < 60
    assert records[1]["text"] == "x" * 80 + "…"  # previews are cut
    assert log.written == 2 and log.dropped == 0


async def test_created_private_and_appended_across_opens(tmp_path):
    path = tmp_path / "audit.jsonl"
    async with AuditLog(path) as log:
        one(log, 1)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    async with AuditLog(path) as log:
        one(log, 2)
        one(log, 3)
    assert [r["trace_id"] for r in read(path)] == ["t1", "t2", "t3"]


async def test_record_never_blocks_and_flushes_in_the_background(tmp_path):
    path = tmp_path / "audit.jsonl"
    async with AuditLog(path, flush_interval_s=0.05) as log:
        loop_thread = threading.get_ident()
        t0 = time.perf_counter()
        for i in range(2000):
            one(log, i)
        per_record = (time.perf_counter() - t0) / 2000
        assert per_record < 100e-6  # a few microseconds in practice
        for _ in range(100):  # written by the thread while the loop is free
            await asyncio.sleep(0.02)
            if log.written == 2000:
                break
        assert log.written == 2000
        assert log._thread is not None and log._thread.ident != loop_thread
    assert len(read(path)) == 2000


async def test_unicode_and_odd_text_survive(tmp_path):
    path = tmp_path / "audit.jsonl"
    async with AuditLog(path) as log:
        one(log, text="héllo 😂 مرحبا\nnew line \x00")
        one(log, 1, text="lone surrogate \ud800")
        one(log, 2, text=None, rule=None, reason=None, detail=None)
    records = read(path)
    assert records[0]["text"] == "héllo 😂 مرحبا\nnew line \x00"
    assert records[1]["text"].startswith("lone surrogate")
    assert records[2]["text"] is None and records[2]["rule"] is None


async def test_survives_rotation_and_removal(tmp_path):
    path = tmp_path / "audit.jsonl"
    async with AuditLog(path) as log:
        one(log, 1)
        await asyncio.to_thread(log.flush)
        path.rename(tmp_path / "audit.jsonl.1")  # logrotate
        one(log, 2)
        await asyncio.to_thread(log.flush)
        (tmp_path / "audit.jsonl").unlink()
        one(log, 3)
    assert [r["trace_id"] for r in read(tmp_path / "audit.jsonl.1")] == ["t1"]
    assert [r["trace_id"] for r in read(path)] == ["t3"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_full_buffer_drops_and_counts(tmp_path):
    log = AuditLog(tmp_path / "a.jsonl", max_buffer=3)
    for i in range(5):
        one(log, i)
    assert log.dropped == 2
    assert log.flush() == 3
    log.close()
    assert len(read(tmp_path / "a.jsonl")) == 3


def test_unwritable_path_is_logged_not_raised(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = AuditLog(blocker / "sub" / "a.jsonl")  # parent is a file: cannot be created
    one(log)
    assert log.flush() == 1
    assert log.dropped == 1 and log.write_errors == 1
    assert "cannot write" in caplog.text


def test_start_and_close_are_idempotent(tmp_path):
    log = AuditLog(tmp_path / "a.jsonl")
    log.start()
    log.start()
    one(log)
    log.close()
    log.close()
    assert len(read(tmp_path / "a.jsonl")) == 1


@pytest.mark.timeout(60)
def test_flushed_at_interpreter_exit(tmp_path):
    path = tmp_path / "exit.jsonl"
    code = (
        "import sys; from bots.moderation.audit import AuditLog\n"
        f"log = AuditLog({str(path)!r}, flush_interval_s=3600)\n"
        "log.start()\n"
        "for i in range(3):\n"
        "    log.record(stage='input', decision='allow', trace_id=f't{i}')\n"
        "sys.exit(0)  # no close(): the atexit hook flushes\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)
    assert [r["trace_id"] for r in read(path)] == ["t0", "t1", "t2"]
