"""Moderation settings: documented defaults, clear errors, and the docs' YAML example loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from bots.events import ChatMessage, Role, Viewer
from bots.moderation.moderator import Moderator
from bots.moderation.settings import DEFAULT_BLOCKED_WORDS, ModerationSettings


def chat(text: str) -> ChatMessage:
    return ChatMessage(viewer=Viewer(id="1", name="ann"), message=text)


DOCS = Path(__file__).resolve().parents[2] / "docs" / "moderation.md"


def test_defaults_suit_a_family_stream():
    s = ModerationSettings()
    assert s.blocklist.defaults and "*fuck*" in DEFAULT_BLOCKED_WORDS
    assert s.links.policy == "roles" and s.links.roles == {Role.VIP} and s.links.mods_exempt
    assert s.spam.enabled and s.output.block_links and s.output.personal_info
    assert not s.mod_only and s.max_chars == 300


def test_bad_regex_is_a_validation_error_naming_it():
    with pytest.raises(ValidationError) as e:
        ModerationSettings(blocklist={"patterns": ["ok", "free(v?bucks"]})
    assert "free(v?bucks" in str(e.value) and "blocklist.patterns" in str(e.value)
    with pytest.raises(ValidationError, match=re.escape("'[a-'")):
        ModerationSettings(output={"patterns": ["[a-"]})
    with pytest.raises(ValidationError, match="phone"):
        ModerationSettings(output={"personal_info": {"phone": "(\\d"}})


def test_regex_matching_empty_text_is_refused():
    with pytest.raises(ValidationError, match="matches empty text"):
        ModerationSettings(blocklist={"patterns": ["x*"]})


def test_unknown_fields_and_bad_values_are_refused():
    with pytest.raises(ValidationError, match="extra"):
        ModerationSettings(blocklist={"word": ["x"]})
    with pytest.raises(ValidationError):
        ModerationSettings(links={"policy": "sometimes"})
    with pytest.raises(ValidationError):
        ModerationSettings(spam={"caps_max_ratio": 2})
    with pytest.raises(ValidationError, match="no letters"):
        ModerationSettings(blocklist={"words": ["***"]})


def test_frozen():
    s = ModerationSettings()
    with pytest.raises(ValidationError):
        s.mod_only = True  # type: ignore[misc]


def test_live_change_recompiles_the_moderators_matchers():
    s = ModerationSettings(blocklist={"words": ["pineapple"]})
    mod = Moderator(settings=s)
    assert mod.check_input(chat("pineapple pizza")).rule == "blocked_word"
    mod.settings = s.model_copy(
        update={"blocklist": s.blocklist.model_copy(update={"words": ("kiwi",)})}
    )
    assert mod.check_input(chat("pineapple pizza")).allowed
    assert mod.check_input(chat("kiwi pizza")).rule == "blocked_word"
    mod.settings = mod.settings.model_copy(update={"mod_only": True})
    assert mod.settings.mod_only and mod.check_input(chat("hi")).rule == "mod_only"


def test_live_change_is_validated():
    # model_copy(update=...) skips validation; the moderator validates again and keeps the
    # settings it had when the new ones are bad.
    s = ModerationSettings()
    bad = s.model_copy(update={"blocklist": s.blocklist.model_copy(update={"patterns": ("(",)})})
    mod = Moderator(settings=s)
    with pytest.raises(ValidationError, match="invalid regex"):
        mod.settings = bad
    assert mod.settings == s and mod.check_input(chat("hello")).allowed


def test_yaml_example_in_docs_loads():
    text = DOCS.read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(moderation:\n.*?)```", text, re.S)
    assert block, "docs/moderation.md has a ```yaml moderation: example"
    data = yaml.safe_load(block.group(1))["moderation"]
    s = ModerationSettings(**data)
    assert s.model_dump(mode="json")["links"]["policy"] in ("allow", "block", "roles")
