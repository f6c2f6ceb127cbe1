"""The moderator façade: decisions come back as verdicts and every one lands in the audit log."""

from __future__ import annotations

import json

from bots.events import ChatMessage, ModCommand, Role, Viewer
from bots.moderation.audit import AuditLog
from bots.moderation.moderator import Moderator
from bots.moderation.settings import ModerationSettings

ANN = Viewer(id="100", name="Ann")
MOD = Viewer(id="200", name="Mo", roles=frozenset({Role.MODERATOR}))


def chat(text: str, viewer: Viewer = ANN) -> ChatMessage:
    return ChatMessage(viewer=viewer, message=text, platform="twitch", persona="mika")


def read(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def test_every_decision_is_audited(tmp_path):
    path = tmp_path / "audit.jsonl"
    async with AuditLog(path) as audit:
        mod = Moderator(settings=ModerationSettings(), audit=audit, persona="mika")
        hello = chat("  hello   mika ")
        assert mod.check_input(hello).text == "hello mika"
        bad = chat("what the fuck")
        v = mod.check_input(bad)
        assert not v.allowed and v.reason == "message contains a blocked word"
        assert not mod.check_input(ModCommand(viewer=ANN, command="skip")).allowed
        assert mod.check_input(ModCommand(viewer=MOD, command="skip")).allowed
        assert mod.check_output("Hello Ann!", event=hello).allowed
        assert not mod.check_output("Mail me at a@b.com", event=hello).allowed
        mod.record(hello, stage="queue", decision="drop", reason="mika has too many questions")
    records = read(path)
    assert [(r["stage"], r["decision"], r["rule"]) for r in records] == [
        ("input", "allow", None),
        ("input", "reject", "blocked_word"),
        ("mod", "reject", "mod_command"),
        ("mod", "allow", None),
        ("output", "allow", None),
        ("output", "block", "personal_info"),
        ("queue", "drop", None),
    ]
    rejected = records[1]
    assert rejected["trace_id"] == bad.trace_id and rejected["persona"] == "mika"
    assert rejected["platform"] == "twitch" and rejected["viewer_name"] == "Ann"
    assert rejected["detail"] == "*fuck*"  # the audit log says what matched...
    assert "fuck" not in rejected["reason"]  # ...the viewer-facing reason does not
    assert records[0]["text"] == "hello mika"
    assert records[2]["text"] == "!skip"
    assert records[5]["detail"] == "email"
    assert mod.counts == {
        "input:allow": 1, "input:blocked_word": 1, "mod:mod_command": 1, "mod:allow": 1,
        "output:allow": 1, "output:personal_info": 1,
    }


async def test_input_allows_can_be_sampled(tmp_path):
    path = tmp_path / "audit.jsonl"
    async with AuditLog(path) as audit:
        every_5th = Moderator(settings=ModerationSettings(audit_allow_every=5), audit=audit)
        for i in range(20):
            every_5th.check_input(chat(f"message number {i}"))
        every_5th.check_input(chat("fuck"))  # refusals are always written
        none = Moderator(settings=ModerationSettings(audit_allow_every=0), audit=audit)
        for i in range(5):
            none.check_input(chat(f"quiet {i}"))
    records = read(path)
    assert [r["decision"] for r in records] == ["allow"] * 4 + ["reject"]
    assert every_5th.counts["input:allow"] == 20 and none.counts["input:allow"] == 5


def test_without_audit_log_decisions_are_still_counted():
    mod = Moderator(settings=ModerationSettings())
    assert mod.check_input(chat("hi")).allowed
    assert not mod.check_input(chat("see example.com")).allowed
    assert not mod.check_output("shit.").allowed
    assert mod.counts == {"input:allow": 1, "input:links": 1, "output:blocked_word": 1}


def test_settings_can_change_live():
    mod = Moderator(settings=ModerationSettings())
    assert mod.check_input(chat("hi")).allowed
    mod.settings = mod.settings.model_copy(update={"mod_only": True})
    assert mod.check_input(chat("hi")).rule == "mod_only"
    assert mod.check_input(chat("hi", MOD)).allowed


def test_speakable_name():
    mod = Moderator(settings=ModerationSettings())
    assert mod.speakable_name(ANN) == "Ann"
    assert mod.speakable_name(Viewer(id="9", name="xXsh1tlordXx")) == "friend"
    assert mod.speakable_name(Viewer(id="9", name="xXsh1tlordXx"), fallback="chat") == "chat"
