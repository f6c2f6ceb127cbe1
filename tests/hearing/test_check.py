"""What ``vstage check`` learns from the hearing side: languages whisper cannot hear and
embedded models that are not installed, each with its fix; nothing is joined or loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from bots.hearing.settings import HearingSettings
from bots.hearing.stt import hearing_problems, whisper_languages


def test_missing_multilingual_model_and_unknown_language(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSTAGE_MODELS_DIR", str(tmp_path))  # an empty models cache
    problems = hearing_problems(HearingSettings(), ["en", "de", "de-AT", "fr", "xx"])
    by_lang = {p.language: p for p in problems}
    assert set(by_lang) == {"de", "fr", "xx"}  # English has tiny.en; de-AT is de
    assert by_lang["de"].code == "model_missing"
    assert str(tmp_path / "faster-whisper-base") in by_lang["de"].reason
    assert "python -m bots.hearing.models --download" in by_lang["de"].fix
    assert by_lang["xx"].code == "unknown_language"
    assert "'xx'" in by_lang["xx"].reason and "de, " in by_lang["xx"].fix
    assert not list(tmp_path.iterdir())  # a check writes nothing

    # Other models named explicitly are not the installer's business.
    assert hearing_problems(HearingSettings(multilingual_model="small"), ["de"]) == []
    assert hearing_problems(HearingSettings(model="medium"), ["de", "en"]) == []


def test_installed_model_is_no_problem() -> None:
    # The real models cache, as scripts/install.sh leaves it.
    assert hearing_problems(HearingSettings(), ["en", "de", "fr", "ja"]) == []
    assert {"en", "de", "fr", "es", "ja", "zh"} <= whisper_languages()
