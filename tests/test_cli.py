"""The command line, run as a user would."""

from __future__ import annotations

import json
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


def _vstage(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bots.cli", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_cli_ask_refuses_a_blocklisted_line_like_chat(config_copy, tmp_path):
    res = _vstage(config_copy, "ask", "You are a piece of shit, Mika", "--user", "troll")
    assert res.returncode != 0
    assert res.stdout == ""  # nothing answered
    assert "refused by moderation: message contains a blocked word" in res.stderr
    assert "Traceback" not in res.stderr and "models loaded" not in res.stderr
    # Written to the audit log like a refusal in chat.
    audit = [json.loads(line) for line in (tmp_path / "var" / "audit.jsonl").open()]
    assert [(a["decision"], a["rule"], a["viewer_name"]) for a in audit] == [
        ("reject", "blocked_word", "troll")]


def test_cli_ask_holds_a_viewer_to_the_link_rule(config_copy):
    res = _vstage(config_copy, "ask", "free skins at spam.xyz/free", "--role", "viewer")
    assert res.returncode != 0 and res.stdout == ""
    assert "refused by moderation: links are not allowed" in res.stderr


@pytest.mark.models
def test_cli_ask_no_moderation_says_so_and_answers(config_copy):
    res = _vstage(config_copy, "ask", "You are a piece of shit, Mika", "--no-moderation",
                  timeout=180)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "moderation is OFF (--no-moderation)" in res.stderr
    assert res.stdout.strip()


def test_cli_check_reports_each_missing_file_with_persona_file_and_field(config_copy):
    mika = config_copy / "personas" / "mika.yaml"
    text = mika.read_text()
    text = text.replace("model: embedded             # local:", "model: /nowhere/brain.gguf #")
    text = text.replace("model: embedded             # or a path", "model: /nowhere/voice.onnx #")
    text = text.replace("sprites: avatars/default", "sprites: avatars/nobody")
    mika.write_text(text)
    res = _vstage(config_copy, "check")
    assert res.returncode != 0
    assert "config OK" not in res.stdout
    assert "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    for field, path in (("llm.model", "/nowhere/brain.gguf"),
                        ("voice.model", "/nowhere/voice.onnx"),
                        ("avatar.sprites", str(config_copy / "avatars" / "nobody"))):
        found = [ln for ln in lines if f": {field}: " in ln]
        assert len(found) == 1, (field, res.stderr)
        assert re.search(rf"personas/mika\.yaml, line \d+: {re.escape(field)}: .*"
                         rf"{re.escape(path)}", found[0]), found[0]


WAV2LIP_AVATAR = """\
avatar:
  renderer: wav2lip
  avatar_image: avatars/mina.png
  face_box: [40, 40, 96, 96]
"""


def test_cli_check_on_a_wav2lip_persona(config_copy):
    mika = config_copy / "personas" / "mika.yaml"
    text = mika.read_text()
    mika.write_text(text[: text.index("avatar:")] + WAV2LIP_AVATAR)
    (config_copy / "avatars" / "mina.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    res = _vstage(config_copy, "check")
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    assert "config OK" not in res.stdout
    checkpoint = config_copy / "models" / "wav2lip.pth"
    line = next(ln for ln in res.stderr.splitlines() if "avatar.checkpoint" in ln)
    assert re.search(r"personas/mika\.yaml, line \d+: avatar\.checkpoint: no Wav2Lip checkpoint "
                     rf"at {re.escape(str(checkpoint))}", line), line
    assert "docs/wav2lip.md" in line and "wav2lip.pth" in line
    # With the checkpoint where it says, the configuration is complete.
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"weights")
    res = _vstage(config_copy, "check")
    assert res.returncode == 0, res.stderr
    assert "config OK" in res.stdout and f"avatar=wav2lip:{checkpoint}" in res.stdout


class _TeacherLLM:
    """A fake of our LLM base writing a teacher's reply in the documented line format."""

    name = "scripted-teacher"

    async def load(self) -> None: ...

    async def aclose(self) -> None: ...

    async def stream(self, messages):
        for line in ("[correction] Ich bin gestern ins Kino gegangen.\n",
                     "Toll! Welchen Film hast du gesehen?\n",
                     "[gloss] Great! Which film did you see?\n"):
            yield line


@pytest.mark.models
def test_cli_ask_prints_a_teachers_correction_and_gloss(config_copy, monkeypatch, capsys):
    from bots import cli
    from bots.personas import runtime

    monkeypatch.setattr(runtime, "create_llm", lambda settings: _TeacherLLM())
    assert cli.main(["--config", str(config_copy), "ask", "Ich bin gegangen gestern ins Kino",
                     "--persona", "lena", "--user", "ann"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == ["Toll! Welchen Film hast du gesehen?",
                       "✎ Ich bin gestern ins Kino gegangen.",
                       "≈ Great! Which film did you see?"]


class _GermanLLM(_TeacherLLM):
    """Lena's answer as one clear German sentence (a scripted model: what is checked here is
    the voice and the language of what reaches the clip, not the model's German)."""

    async def stream(self, messages):
        yield "Ich heiße Anna und ich wohne in Berlin.\n"


@pytest.mark.models
def test_lenas_reply_is_spoken_in_german(config_copy, monkeypatch, capsys, tmp_path):
    """`vstage ask --persona lena --out` speaks German with a German voice: the clip's audio,
    transcribed back by the multilingual model, is German and recovers the words."""
    from bots import cli
    from bots.hearing.settings import HearingSettings
    from bots.hearing.stt import WhisperSTT
    from bots.personas import runtime
    from tests.hearing.test_languages import word_error_rate

    monkeypatch.setattr(runtime, "create_llm", lambda settings: _GermanLLM())
    out = tmp_path / "reply.mp4"
    assert cli.main(["--config", str(config_copy), "ask", "Wie heißt du?", "--persona", "lena",
                     "--user", "ann", "--out", str(out)]) == 0
    said = capsys.readouterr().out.splitlines()[0]
    assert said == "Ich heiße Anna und ich wohne in Berlin."
    with av.open(str(out)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
        chunks = [f.to_ndarray().reshape(-1) for frame in container.decode(audio=0)
                  for f in resampler.resample(frame)]
    import numpy as np

    audio = np.concatenate(chunks).astype(np.float32)
    stt = WhisperSTT(settings=HearingSettings(), languages=("de",))
    heard = stt.transcribe(audio, language="de")
    # Measured 0.25 for this sentence from espeak-ng's German through Whisper base (see
    # tests/hearing/test_languages.py); the English Piper voice reading it scores far worse.
    # Transcribed in German (the persona's language); what Whisper base *detects* on espeak
    # speech is not asserted: it has named this clip Thai at 0.44 (tests/hearing measures it).
    assert heard.language == "de"
    assert word_error_rate(said, heard.text) <= 0.5, heard.text
