"""``vstage memory show|export|forget|link`` on the configured store (SQLite in state_dir)."""

from __future__ import annotations

import asyncio
import io
import json
import stat
from pathlib import Path

import pytest

from bots.cli import main
from bots.memory.store import MemoryStore


def seed(state: Path) -> dict[str, str]:
    """Two viewers named Ann on two platforms (not linked) and Bob; their person ids."""

    async def go() -> dict[str, str]:
        async with await MemoryStore.open(None, state_dir=state) as store:
            ann = await store.person("twitch", "1001", name="Ann")
            ann_d = await store.person("discord", "8101", name="Ann")
            bob = await store.person("twitch", "1002", name="Bob")
            await store.remember("mika", ann, ["They have a cat called Miso"], source="s",
                                 platform="twitch")
            await store.add_turn("mika", ann, "I have a cat called Miso", "Cute!",
                                 platform="twitch")
            await store.remember("lena", ann, ["They are learning German"], source="s",
                                 platform="twitch")
            await store.remember("mika", bob, ["They live in Oslo"], source="s",
                                 platform="twitch")
            return {"ann": ann, "ann_d": ann_d, "bob": bob}

    return asyncio.run(go())


def people(state: Path, query: str) -> list[dict[str, str]]:
    async def go() -> list[dict[str, str]]:
        async with await MemoryStore.open(None, state_dir=state) as store:
            return await store.find_viewer(query)

    return asyncio.run(go())


@pytest.fixture
def state(config_copy: Path, tmp_path: Path) -> Path:
    return tmp_path / "var"  # config_copy's state_dir


def vstage(config_copy: Path, *args: str) -> int:
    return main(["--config", str(config_copy), "memory", *args])


def test_show_lists_each_personas_notes(config_copy, state, capsys):
    ids = seed(state)
    assert vstage(config_copy, "show", "twitch:1001") == 0
    out = capsys.readouterr().out
    assert f"person {ids['ann']}" in out and "twitch:1001  Ann" in out
    assert "mika: 1 turn(s)" in out and "[fact] They have a cat called Miso" in out
    assert "They are learning German" in out and "Oslo" not in out
    assert vstage(config_copy, "show", "twitch:1001", "--persona", "lena") == 0
    out = capsys.readouterr().out
    assert "They are learning German" in out and "Miso" not in out


def test_a_name_two_people_share_is_refused_with_the_choices(config_copy, state, capsys):
    seed(state)
    assert vstage(config_copy, "show", "ann") == 2
    err = capsys.readouterr().err
    assert "matches 2 different people" in err
    assert "twitch:1001" in err and "discord:8101" in err
    assert vstage(config_copy, "show", "nobody") == 2
    assert "no viewer matches 'nobody'" in capsys.readouterr().err
    assert vstage(config_copy, "show", "Bob") == 0  # a unique name is enough


def test_export_writes_everything_as_private_json(config_copy, state, tmp_path, capsys):
    ids = seed(state)
    out = tmp_path / "ann.json"
    assert vstage(config_copy, "export", "twitch:1001", "--out", str(out)) == 0
    data = json.loads(out.read_text())
    assert data["person"] == ids["ann"]
    assert {m["text"] for m in data["memories"]} == {"They have a cat called Miso",
                                                     "They are learning German"}
    assert data["turns"][0]["said"] == "I have a cat called Miso"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    capsys.readouterr()
    assert vstage(config_copy, "export", "Bob") == 0
    assert json.loads(capsys.readouterr().out)["memories"][0]["text"] == "They live in Oslo"


def test_forget_needs_confirmation_and_erases_one_person(config_copy, state, capsys,
                                                         monkeypatch):
    seed(state)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal
    assert vstage(config_copy, "forget", "twitch:1001") == 2
    assert "--yes" in capsys.readouterr().err
    assert people(state, "twitch:1001")  # nothing erased
    assert vstage(config_copy, "forget", "twitch:1001", "--persona", "lena", "--yes") == 0
    capsys.readouterr()
    assert vstage(config_copy, "show", "twitch:1001") == 0
    assert "German" not in capsys.readouterr().out
    assert vstage(config_copy, "forget", "twitch:1001", "--yes") == 0
    assert "erased" in capsys.readouterr().out
    assert people(state, "twitch:1001") == []
    assert people(state, "twitch:1002")  # Bob stays


def test_link_makes_two_accounts_one_person(config_copy, state, capsys):
    ids = seed(state)
    assert vstage(config_copy, "link", "twitch:1001", "discord:8101") == 0
    assert ids["ann"] in capsys.readouterr().out
    assert people(state, "discord:8101")[0]["person"] == ids["ann"]
    # an account not seen yet is linked by platform:id
    assert vstage(config_copy, "link", "Bob", "discord:9000") == 0
    assert people(state, "discord:9000")[0]["person"] == ids["bob"]
    assert vstage(config_copy, "link", "Bob", "nobody") == 2
    assert "platform:id" in capsys.readouterr().err
