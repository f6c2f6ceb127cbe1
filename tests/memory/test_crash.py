"""A SIGKILL in the middle of writes leaves a consistent database with every committed row."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text

from tests.memory.conftest import Target

REPO = Path(__file__).resolve().parents[2]


def run_and_kill(target: Target, round_: int, *, after_lines: int) -> list[str]:
    """Start the writer, let it commit ``after_lines`` writes, SIGKILL it mid-write."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.memory.crash_writer", target.url or "-",
         str(target.state_dir), f"r{round_}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 90
    try:
        first = proc.stdout.readline()
        assert first == "ready\n", (first, proc.stderr.read() if proc.poll() is not None else "")
        while len(lines) < after_lines and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # Lines already written by the child before it died are committed writes too.
    lines += [line.strip() for line in proc.stdout.read().splitlines()]
    assert len(lines) >= after_lines, f"the writer stalled: {proc.stderr.read()[-2000:]}"
    return lines


async def check(target: Target, committed: list[str]) -> None:
    store = await target.open()  # opens (and would migrate) the crashed database
    try:
        async with store.engine.connect() as conn:
            facts = {row[0] for row in await conn.execute(text("SELECT text FROM memories"))}
            said = {row[0] for row in await conn.execute(text("SELECT said FROM turns"))}
            people = {row[0] for row in await conn.execute(text("SELECT id FROM persons"))}
            owners = {row[0] for row in await conn.execute(text(
                "SELECT DISTINCT person FROM viewers UNION SELECT DISTINCT person FROM memories "
                "UNION SELECT DISTINCT person FROM turns"))}
            linked = {(r[0], r[1]) for r in await conn.execute(text(
                "SELECT v.viewer_id, w.viewer_id FROM viewers v JOIN viewers w "
                "ON v.person = w.person AND v.platform = 'twitch' AND w.platform = 'discord'"))}
        assert owners <= people  # no row points to a person that is not there
        batches: dict[str, int] = {}
        for fact in facts:
            if not fact.startswith("batch "):
                continue  # written by an earlier check
            batch = fact.split(" ")[1]
            batches[batch] = batches.get(batch, 0) + 1
        half = {b: n for b, n in batches.items() if n != 3}
        assert not half, f"batches half written: {half}"
        for line in committed:
            kind, _, rest = line.partition(" ")
            if kind == "batch":
                assert batches.get(rest) == 3, line
            elif kind == "turn":
                assert f"said {rest}" in said, line
            elif kind == "link":
                a, b = rest.split()
                assert (a, b) in linked, line
        # The crashed database still takes writes and finds by full text.
        person = await store.person("twitch", "after-crash")
        await store.remember("mika", person, ["Survived a crash"], source="", platform="twitch")
        got = await store.recall("mika", person, "crash", limit=1, chars=99)
        assert [m.text for m in got] == ["Survived a crash"]
    finally:
        await store.aclose()


async def test_sigkill_mid_write_keeps_every_committed_row(target: Target) -> None:
    rng = random.Random(7)
    for round_ in range(3):
        committed = run_and_kill(target, round_, after_lines=rng.randint(30, 150))
        if target.backend == "sqlite":
            # Before anything opens it again: the file as the killed process left it (with its
            # WAL) passes SQLite's own checks.
            path = target.state_dir / "memory.db"
            with sqlite3.connect(path) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
                assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
                conn.execute("INSERT INTO memories_fts (memories_fts) VALUES ('integrity-check')")
            assert conn.close() is None
        await check(target, committed)

