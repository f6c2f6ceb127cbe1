"""The command line, run as a user would."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import av
import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.models
def test_cli_ask_writes_the_whole_reply(tmp_path, config_copy):
    out = tmp_path / "reply.mp4"
    res = subprocess.run(
        [sys.executable, "-m", "bots.cli", "--config", str(config_copy), "ask",
         "What is your favourite snack?", "--out", str(out)],
        capture_output=True, text=True, timeout=180, cwd=REPO,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip()  # the reply text
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert float(c.duration) / 1e6 > 0.5


def test_cli_reports_bad_config_with_file_line_field(config_copy):
    bad = config_copy / "personas" / "mika.yaml"
    bad.write_text(bad.read_text().replace("temperature: 0.7", "temperature: hot"))
    res = subprocess.run([sys.executable, "-m", "bots.cli", "--config", str(config_copy), "check"],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert res.returncode == 2
    assert re.search(r"mika\.yaml, line \d+: llm\.temperature", res.stderr), res.stderr
