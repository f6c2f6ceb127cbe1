"""Configuration: the shipped files load, and bad files fail naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from bots.config import load_config, load_persona, studio_token
from vstage_core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_shipped_config_loads():
    cfg = load_config(REPO / "config")
    mika = cfg.persona()
    assert mika.id == "mika" and mika.name == "Mika" and mika.language == "en"
    assert mika.llm.provider == "local"
    assert mika.avatar.sprites.is_absolute() and (mika.avatar.sprites / "manifest.yaml").exists()
    assert cfg.app.studio.host == "127.0.0.1"


def _persona(tmp_path: Path, body: str, name: str = "mika") -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(body)
    return p


GOOD = """\
id: mika
name: Mika
personality: cheerful
llm:
  provider: local
  temperature: 0.5
voice:
  speed: 1.0
"""


def test_bad_field_names_file_line_and_field(tmp_path):
    p = _persona(tmp_path, GOOD.replace("temperature: 0.5", "temperature: 5"))
    with pytest.raises(ConfigError) as e:
        load_persona(p)
    msg = str(e.value)
    assert str(p) in msg and "line 6" in msg and "llm.temperature" in msg


def test_unknown_field_is_named_with_its_line(tmp_path):
    p = _persona(tmp_path, GOOD + "voice_model: x\n")
    with pytest.raises(ConfigError, match=r"line 9: voice_model: Extra inputs"):
        load_persona(p)


def test_missing_required_field(tmp_path):
    p = _persona(tmp_path, GOOD.replace("personality: cheerful\n", ""))
    with pytest.raises(ConfigError, match=r"personality: Field required"):
        load_persona(p)


def test_invalid_yaml_names_line(tmp_path):
    p = _persona(tmp_path, GOOD + "voice:\n  speed: [1,\n")
    with pytest.raises(ConfigError, match=rf"{p.name}, line \d+: invalid YAML"):
        load_persona(p)


def test_id_must_match_file_name(tmp_path):
    p = _persona(tmp_path, GOOD, name="other")
    with pytest.raises(ConfigError, match=r"line 1: id: 'mika' must match the file name"):
        load_persona(p)


def test_openai_key_comes_from_env_and_stays_secret(tmp_path):
    body = GOOD.replace("provider: local", "provider: openai\n  model: gpt-4o-mini\n"
                        "  api_key_env: MY_KEY")
    p = _persona(tmp_path, body)
    persona = load_persona(p, env={"MY_KEY": "sk-secret-123"})
    assert persona.llm.api_key.get_secret_value() == "sk-secret-123"
    assert "sk-secret-123" not in repr(persona) and "sk-secret-123" not in str(persona)
    with pytest.raises(ConfigError, match=r"needs the API key in \$MY_KEY"):
        load_persona(p, env={})


def test_every_bad_persona_is_reported_at_once(config_copy):
    personas = config_copy / "personas"
    (personas / "a.yaml").write_text("id: a\nname: A\npersonality: x\nlanguage: 12\n")
    (personas / "b.yaml").write_text("id: b\nname: B\npersonality: x\nllm: {max_tokens: 1}\n")
    with pytest.raises(ConfigError) as e:
        load_config(config_copy)
    assert "a.yaml, line 4: language" in str(e.value)
    assert "b.yaml, line 4: llm.max_tokens" in str(e.value)


def test_app_settings_error_and_env_override(config_copy, monkeypatch):
    cfg = load_config(config_copy)
    assert cfg.app.studio.port == 8765
    monkeypatch.setenv("VSTAGE_STUDIO__PORT", "9123")
    assert load_config(config_copy).app.studio.port == 9123
    monkeypatch.delenv("VSTAGE_STUDIO__PORT")
    app = config_copy / "vstage.yaml"
    app.write_text(app.read_text().replace("port: 8765", "port: http"))
    with pytest.raises(ConfigError, match=r"vstage.yaml, line \d+: studio.port"):
        load_config(config_copy)


def test_default_persona_must_exist(config_copy):
    app = config_copy / "vstage.yaml"
    app.write_text(app.read_text().replace("default_persona: mika", "default_persona: zed"))
    with pytest.raises(ConfigError, match=r"default_persona: no persona 'zed'"):
        load_config(config_copy)


def test_studio_token_is_generated_once_and_private(config_copy):
    cfg = load_config(config_copy)
    t1 = studio_token(cfg)
    t2 = studio_token(cfg)
    assert t1.get_secret_value() == t2.get_secret_value() and len(t1.get_secret_value()) >= 24
    mode = (cfg.state_dir / "studio-token").stat().st_mode & 0o777
    assert mode == 0o600


def test_wav2lip_persona_without_a_checkpoint_refuses_to_start(config_copy):
    from bots.personas.runtime import create_renderer
    from vstage_core.errors import MissingDependency

    p = config_copy / "personas" / "mika.yaml"
    body = p.read_text()
    start = body.index("avatar:")
    p.write_text(body[:start] + "avatar:\n  renderer: wav2lip\n  avatar_image: avatars/"
                 "default/base.png\n  face_box: [176, 150, 160, 160]\n")
    cfg = load_config(config_copy)
    avatar = cfg.persona("mika").avatar
    assert avatar.renderer == "wav2lip" and avatar.checkpoint.is_absolute()
    with pytest.raises(MissingDependency, match=r"models/wav2lip\.pth"):
        create_renderer(avatar)


def test_unknown_renderer_is_named(config_copy):
    p = config_copy / "personas" / "mika.yaml"
    p.write_text(p.read_text().replace("renderer: sprite", "renderer: live2d"))
    with pytest.raises(ConfigError, match=r"mika\.yaml, line \d+: avatar"):
        load_config(config_copy)
