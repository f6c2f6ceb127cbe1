"""The shipped teachers, Lena (German) and Camille (French): valid, teaching their language
with a voice of that language, each with a look of their own beside Mika's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avatar_engine.renderers.factory import create_renderer
from avatar_engine.settings import AvatarSettings
from bots.config import load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config():
    return load_config(REPO / "config")


@pytest.mark.parametrize(("pid", "language"), [("lena", "de"), ("camille", "fr")])
def test_teacher_personas_teach_their_language(config, pid, language):
    p = config.personas[pid]
    assert p.language == language
    assert p.teacher is not None and p.teacher.target_language == language
    assert p.teacher.learner_language == "en"
    assert p.voice.provider == "espeak" and p.voice.voice == language
    assert p.queue.user_cooldown_s == 0  # "!slower" right after an answer is accepted
    assert p.twitch.reward_title is None
    assert config.app.default_persona == "mika"


def _hair_and_top(sprites: Path) -> tuple[np.ndarray, np.ndarray]:
    renderer = create_renderer(AvatarSettings(sprites=sprites, device="cpu"))
    frame = renderer.idle(1, start_frame=0)[0].cpu().numpy()
    return frame[150, 256, :3].astype(int), frame[470, 120, :3].astype(int)


def test_each_has_a_look_of_their_own(config):
    looks = {pid: _hair_and_top(config.personas[pid].avatar.sprites)  # type: ignore[union-attr]
             for pid in ("mika", "lena", "camille")}
    for a, b in (("mika", "lena"), ("mika", "camille"), ("lena", "camille")):
        hair_a, top_a = looks[a]
        hair_b, top_b = looks[b]
        assert np.abs(hair_a - hair_b).sum() > 60, (a, b)  # hair colour
        assert np.abs(top_a - top_b).sum() > 60, (a, b)  # clothes colour


@pytest.mark.models
@pytest.mark.parametrize(("pid", "text"), [
    ("lena", "Guten Morgen! Wie geht es dir heute?"),
    ("camille", "Bonjour ! Comment ça va aujourd'hui ?"),
])
def test_their_voice_slows_down_with_the_level_and_for_a_replay(config, pid, text):
    from avatar_engine.voice import create_tts
    from bots.teacher.pace import level_speed, slower, synthesize_at

    p = config.personas[pid]
    tts = create_tts(p.voice)
    assert tts.speaks(p.language)
    normal = synthesize_at(tts, text, 1.0, base=p.voice.speed)
    level = synthesize_at(tts, text, level_speed(p.teacher), base=p.voice.speed)
    replay = synthesize_at(tts, text, slower(level_speed(p.teacher)), base=p.voice.speed)
    assert normal.duration < level.duration < replay.duration
    assert replay.text == text
