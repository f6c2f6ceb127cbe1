"""Persona files as the dashboard edits them: the loader's messages per field, atomic writes,
refused stale saves, names that are not ids, comments, the trash, and sprite-art checks."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import threading
import zipfile

import pytest
import yaml

from bots.config import load_config, load_persona
from bots.personas import editor as editor_module
from bots.personas.editor import (
    EditConflict,
    PersonaEditor,
    PersonaInvalid,
    PersonaMissing,
    check_sprite_folder,
    install_sprite_upload,
)
from tests.conftest import REPO
from vstage_core.errors import ConfigError

BASE = "id: nova\nname: Nova\npersonality: A calm night-sky streamer.\n"

# (file id, YAML text): each is wrong in a different way.
BAD = {
    "temperature": ("nova", BASE + "llm:\n  provider: local\n  temperature: 5\n"),
    "pattern": ("nova", "id: Nova X\nname: Nova\npersonality: p\n"),
    "unknown": ("nova", BASE + "colour: red\n"),
    "variant": ("nova", BASE + "avatar:\n  renderer: sprite\n  fps: 100\n"),
    "several": ("nova", "id: nova\nname: ''\npersonality: p\ntags: 7\nqueue:\n  max_length: -1\n"),
    "language": ("nova", BASE + "language: xq\n"),
    "file name": ("nova", BASE.replace("id: nova", "id: other")),
    "not a mapping": ("nova", "- id: nova\n- name: Nova\n"),
    "not yaml": ("nova", BASE + "tags: [unclosed\n"),
    "openai key": ("nova", BASE + "llm:\n  provider: openai\n  model: gpt-4o-mini\n"
                   "  api_key_env: VSTAGE_TEST_NO_SUCH_KEY\n"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_problem_is_reported_on_its_field_with_the_loaders_own_words(tmp_path, editor,
                                                                         case):
    pid, text = BAD[case]
    path = tmp_path / f"{pid}.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as loaded:
        load_persona(path, env={})
    edit = PersonaEditor(personas_dir=tmp_path, default_persona=lambda: "mika", env={})
    persona, errors = edit.check(pid, text)
    assert persona is None and errors
    described = [e.describe(path) for e in errors]
    loader_lines = str(loaded.value).splitlines()
    # The model's problems come all at once from both; the loader's later checks stop at the
    # first, which is the editor's first too.
    assert described[: len(loader_lines)] == loader_lines
    fields = {e.field for e in errors}
    expected = {"temperature": {"llm.temperature"}, "pattern": {"id"},
                "unknown": {"colour"}, "variant": {"avatar.sprite.fps"},
                "several": {"name", "tags", "queue.max_length"}, "language": {"language"},
                "file name": {"id"}, "not a mapping": {""}, "not yaml": {""},
                "openai key": {"llm"}}[case]
    assert fields == expected
    assert all(e.line for e in errors if e.field), errors  # each placed on its line


def test_the_form_round_trip_keeps_a_file_loading_identically(config, editor):
    before = editor.read("mika")
    values = editor.form_values(before)
    assert values["llm.temperature"] == 0.7 and values["avatar.sprites@sprite"] == (
        "avatars/default")
    doc, problems = editor.document_from_form(values, original=before.data)
    assert problems == []
    assert doc == before.data  # nothing added, nothing lost: defaults stay unwritten
    values["personality"] = "You are a calm and kind streamer.\nYou love tea."
    values["llm.temperature"] = "0.4"
    values["tags"] = ["cozy", " tea ", ""]
    doc, _ = editor.document_from_form(values, original=before.data)
    saved = editor.save("mika", editor.text_for(doc, previous=before.text),
                        version=before.version)
    assert saved.errors == ()
    loaded = load_config(config.root).personas["mika"]
    assert loaded.personality == "You are a calm and kind streamer.\nYou love tea."
    assert loaded.llm.temperature == 0.4 and loaded.tags == ("cozy", "tea")
    unchanged = {k: v for k, v in loaded.model_dump().items()
                 if k not in ("personality", "llm", "tags")}
    assert unchanged == {k: v for k, v in config.personas["mika"].model_dump().items()
                         if k not in ("personality", "llm", "tags")}
    text = saved.path.read_text()
    assert text.startswith("# Mika: the default persona.")  # the leading comments are kept
    assert "personality: |" in text  # multi-line text stays a readable block


def test_a_file_written_by_the_dashboard_passes_vstage_check(config, editor):
    values = editor.form_values(None)
    values.update({"id": "nova", "name": "Nova", "personality": "A calm streamer.",
                   "greeting": "Evening, stargazers.", "llm.max_tokens": "64",
                   "moderation.blocklist.words": "spoilers\nlag*"})
    doc, problems = editor.document_from_form(values)
    assert problems == []
    editor.save("nova", editor.text_for(doc, previous=None), version=None, create=True)
    out = subprocess.run([sys.executable, "-m", "bots.cli", "--config", str(config.root),
                          "check"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    nova = load_config(config.root).personas["nova"]
    assert nova.llm.max_tokens == 64 and nova.greeting == "Evening, stargazers."
    assert nova.moderation.blocklist.words == ("spoilers", "lag*")
    assert yaml.safe_load((config.root / "personas" / "nova.yaml").read_text()) == {
        "id": "nova", "name": "Nova", "personality": "A calm streamer.",
        "greeting": "Evening, stargazers.", "llm": {"max_tokens": 64},
        "moderation": {"blocklist": {"words": ["spoilers", "lag*"]}}}


def test_a_bad_save_writes_nothing(editor):
    before = editor.read("mika")
    with pytest.raises(PersonaInvalid) as bad:
        editor.save("mika", before.text.replace("temperature: 0.7", "temperature: 9"),
                    version=before.version)
    assert [e.field for e in bad.value.errors] == ["llm.temperature"]
    assert editor.read("mika").text == before.text


def test_a_save_is_atomic_for_readers_and_leaves_the_old_file_when_it_fails(editor,
                                                                          monkeypatch):
    before = editor.read("mika")
    path = before.path
    texts = [before.text.replace("Hi chat, Mika here!", f"Hello number {i}!" + " pad" * i * 40)
             for i in range(30)]
    seen: list[str] = []
    stop = threading.Event()

    def read_all_the_time():
        while not stop.is_set():
            seen.append(path.read_text())

    reader = threading.Thread(target=read_all_the_time)
    reader.start()
    try:
        version = before.version
        for text in texts:
            version = editor.save("mika", text, version=version).version
    finally:
        stop.set()
        reader.join()
    assert len(seen) > 30
    # Every read saw one whole file: the old one or one of the new ones, never a mix.
    assert set(seen) <= {before.text, *texts}

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(editor_module.os, "replace", broken_replace)
    with pytest.raises(OSError):
        editor.save("mika", before.text, version=version)
    assert path.read_text() == texts[-1]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_a_stale_save_from_another_tab_or_after_a_hand_edit_is_refused(editor):
    tab1 = editor.read("mika")
    tab2 = editor.read("mika")
    saved = editor.save("mika", tab1.text.replace("max_tokens: 96", "max_tokens: 80"),
                        version=tab1.version)
    with pytest.raises(EditConflict, match="changed since you opened it") as stale:
        editor.save("mika", tab2.text.replace("max_tokens: 96", "max_tokens: 70"),
                    version=tab2.version)
    assert stale.value.current == saved.version
    assert "max_tokens: 80" in editor.read("mika").text  # the first save is not lost
    # By hand, while the page is open:
    saved.path.write_text(saved.text.replace("speed: 1.0", "speed: 1.1"))
    with pytest.raises(EditConflict):
        editor.save("mika", saved.text, version=saved.version)
    assert "speed: 1.1" in editor.read("mika").text


@pytest.mark.parametrize("bad", ["../vstage", "..", "Mika", "a/b", "mika.yaml", "", "x" * 40,
                                 "/etc/passwd", "mika\x00"])
def test_names_that_are_not_persona_ids_never_reach_the_file_system(editor, bad, tmp_path):
    with pytest.raises(ConfigError, match="is not a persona id"):
        editor.save(bad, BASE, version=None, create=True)
    with pytest.raises(ConfigError, match="is not a persona id"):
        editor.read(bad)
    with pytest.raises(ConfigError, match="is not a persona id"):
        editor.duplicate("mika", bad)
    assert sorted(p.name for p in tmp_path.rglob("*.yaml") if "personas" not in p.parts
                  and "avatars" not in p.parts) == ["vstage.yaml"]


def test_duplicate_and_delete(editor):
    copy = editor.duplicate("mika", "mika-two", name="Mika Two")
    assert copy.persona is not None and copy.persona.name == "Mika Two"
    assert copy.text.startswith("# Mika: the default persona.")
    with pytest.raises(EditConflict, match="already exists"):
        editor.duplicate("mika", "mika-two")
    with pytest.raises(ConfigError, match="default persona"):
        editor.delete("mika", version=None)
    with pytest.raises(EditConflict):
        editor.delete("mika-two", version="0" * 16)
    kept = editor.delete("mika-two", version=copy.version)
    assert kept.parent.name == ".trash" and kept.read_text() == copy.text
    assert "mika-two" not in editor.ids()
    with pytest.raises(PersonaMissing):
        editor.read("mika-two")


# --------------------------------------------------------------------------- sprite art

DEFAULT_ART = REPO / "config" / "avatars" / "default"


def test_a_complete_sprite_folder_passes_and_a_partial_one_lists_everything_missing(
        tmp_path):
    assert check_sprite_folder(DEFAULT_ART).ok
    partial = tmp_path / "partial"
    shutil.copytree(DEFAULT_ART, partial)
    manifest = yaml.safe_load((partial / "manifest.yaml").read_text())
    (partial / manifest["eyes"]["closed"]).unlink()
    (partial / manifest["mouths"]["C"] if isinstance(manifest["mouths"]["C"], str)
     else partial / manifest["mouths"]["C"]["file"]).unlink()
    del manifest["mouths"]["A"]
    (partial / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    check = check_sprite_folder(partial)
    assert not check.ok
    text = "\n".join(check.problems)
    assert "mouths.A is missing" in text
    assert "eyes.closed: file" in text and "mouths.C: file" in text  # all of them, at once
    no_manifest = tmp_path / "pngs"
    no_manifest.mkdir()
    (no_manifest / "base.png").write_bytes((DEFAULT_ART / "base.png").read_bytes())
    check = check_sprite_folder(no_manifest)
    assert not check.ok and "manifest.yaml is missing" in check.problems[0]
    assert "base.png" in check.problems[0]


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_uploaded_art_is_installed_only_when_complete(tmp_path):
    art = {p.name: p.read_bytes() for p in DEFAULT_ART.iterdir() if p.is_file()}
    avatars = tmp_path / "avatars"
    folder, check = install_sprite_upload(avatars, "mine", [("set.zip", _zip(
        {f"my-set/{k}": v for k, v in art.items()}))])
    assert check.ok and folder == avatars / "mine"
    assert sorted(p.name for p in folder.iterdir()) == sorted(art)
    partial = {k: v for k, v in art.items() if not k.startswith("mouth_")}
    folder, check = install_sprite_upload(avatars, "half", list(partial.items()))
    assert not check.ok and folder == avatars / ".incoming" / "half"
    assert not (avatars / "half").exists()
    assert any("file" in p and "missing" in p for p in check.problems)


@pytest.mark.parametrize("files, reason", [
    ([("evil.zip", _zip({"../../escape.png": b"x"}))], None),
    ([("a.exe", b"MZ")], "PNG files and manifest.yaml only"),
    ([("base.png", b"x"), ("base.png", b"y")], "twice"),
    ([("..png", b"x")], "file name"),
    ([("big.png", b"\0" * (editor_module.MAX_UPLOAD_BYTES + 1))], "MB"),
    ([("bomb.zip", _zip({"a.png": b"\0" * (editor_module.MAX_UPLOAD_BYTES + 1)}))],
     "unpacks to more than"),
])
def test_bad_uploads_are_refused_with_a_reason(tmp_path, files, reason):
    avatars = tmp_path / "avatars"
    if reason is None:
        # A zip entry's folders are dropped: the file lands inside the set, not outside it.
        folder, _ = install_sprite_upload(avatars, "zipped", files)
        assert (folder / "escape.png").exists() and not (tmp_path / "escape.png").exists()
        return
    with pytest.raises(ConfigError, match=reason):
        install_sprite_upload(avatars, "bad", files)
    assert not (avatars / "bad").exists()
    assert not [p for p in avatars.glob(".bad.*")] if avatars.exists() else True


def test_the_persona_list_shows_a_hand_broken_file_with_its_problem(editor):
    path = editor.personas_dir / "lena.yaml"
    path.write_text(path.read_text().replace("name: Lena", "name: ''"))
    rows = {s.id: s for s in editor.summaries()}
    assert rows["mika"].problems == ()
    assert len(rows["lena"].problems) == 1 and "name: String should have at least 1" in (
        rows["lena"].problems[0])
