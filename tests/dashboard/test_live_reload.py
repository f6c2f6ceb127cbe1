"""Personas applied to a running show: a new one answers at once, an edit waits for the
reply in flight to play out, the default persona can be edited, a removed one leaves."""

from __future__ import annotations

import asyncio
import time

from bots.personas.editor import resolved
from bots.personas.live_reload import UPDATED, LiveReload, moderator_of
from tests.dashboard.conftest import QUICK, fake_create, until
from tests.orchestrator.fakes import chat


class Roster:
    def __init__(self) -> None:
        self.shown: dict[str, tuple[str, str]] = {}
        self.hidden: list[str] = []

    def show_persona(self, pid: str, name: str, language: str) -> None:
        self.shown[pid] = (name, language)

    def hide_persona(self, pid: str) -> None:
        self.hidden.append(pid)


def _config(editor, config, pid, text):
    editor.save(pid, text, version=editor.version(pid), create=editor.version(pid) is None)
    persona = editor.read(pid).persona
    assert persona is not None
    persona = persona.model_copy(update={"queue": persona.queue.model_copy(update=QUICK)})
    return resolved(persona, config.root)


async def test_a_new_persona_answers_on_the_running_show(show, editor, config):
    roster = Roster()
    reload = LiveReload(app=show.app, roster=roster, create=fake_create)
    refused = show.orch.submit(chat("ann", "hi nova", persona="nova"))
    assert not refused.accepted and "unknown persona" in (refused.reason or "")
    nova = _config(editor, config, "nova",
                   "id: nova\nname: Nova\nlanguage: en\npersonality: A calm streamer.\n")
    applied = await reload.apply(nova)
    assert applied.added and applied.persona == "nova"
    assert roster.shown["nova"] == ("Nova", "en")
    d = show.orch.submit(chat("ann", "hi nova", persona="nova"))
    assert d.accepted
    await until(lambda: show.adapter.status_of(d.trace_id) == ["spoken"])
    runtime, line = show.pipeline.runtimes[-1]
    assert line == "hi nova" and runtime is show.orch.personas["nova"]
    assert runtime.config.personality == "A calm streamer."
    await reload.aclose()


async def test_an_edit_mid_reply_lets_the_reply_finish_first(show, editor, config):
    reload = LiveReload(app=show.app, create=fake_create)
    show.pipeline.clip_s = 0.8  # the reply plays for 0.8 s once on stage
    old = show.orch.personas["lena"]
    playing = show.orch.submit(chat("ann", "wie geht's?", persona="lena"))
    waiting = show.orch.submit(chat("bob", "und dann?", persona="lena"))
    await until(lambda: any(x[1] == "chat" and x[2] == "lena" for x in show.stage.log))
    text = editor.read("lena").text.replace("personality: |",
                                            "personality: |\n  Neu: sehr geduldig.")
    edited = _config(editor, config, "lena", text)
    t0 = time.monotonic()
    applied = await reload.apply(edited)
    took = time.monotonic() - t0
    # The reply on stage played to its end before the swap; it was not cut.
    assert show.adapter.status_of(playing.trace_id) == ["spoken"]
    assert not any(x[1] == "cancelled" for x in show.stage.log)
    assert applied.waited_s > 0.3 and took >= applied.waited_s
    assert not applied.added and applied.reused == ("avatar", "llm", "voice")
    # What waited is told to ask again (the new persona starts with an empty queue).
    await until(lambda: show.adapter.status_of(waiting.trace_id) == ["refused"])
    outcome = next(o for o in show.adapter.outcomes if o.event.trace_id == waiting.trace_id)
    assert outcome.reason == UPDATED
    new = show.orch.personas["lena"]
    assert new is not old and new.config.personality.startswith("Neu: sehr geduldig.")
    assert new.llm is old.llm and new.performer is old.performer  # nothing reloaded
    assert new.conversations is old.conversations  # viewers' recent turns go on
    show.pipeline.clip_s = 0.0
    d = show.orch.submit(chat("ann", "noch einmal", persona="lena"))
    await until(lambda: show.adapter.status_of(d.trace_id) == ["spoken"])
    assert show.pipeline.runtimes[-1][0] is new
    await reload.aclose()


async def test_the_default_persona_is_edited_live_and_a_pause_is_kept(show, editor, config):
    reload = LiveReload(app=show.app, create=fake_create)
    show.orch.pause("mika")
    old = show.orch.personas["mika"]
    text = editor.read("mika").text.replace("max_tokens: 96", "max_tokens: 64")
    applied = await reload.apply(_config(editor, config, "mika", text))
    assert applied.reused == ("avatar", "voice")  # the LLM settings changed: a new LLM
    assert old.llm.closed and show.orch.personas["mika"].llm is not old.llm
    assert show.orch.default_persona == "mika"
    assert show.orch.is_paused("mika")  # it was paused; it stays paused
    show.orch.resume("mika")
    d = show.orch.submit(chat("ann", "hello"))  # names no persona: the default answers
    await until(lambda: show.adapter.status_of(d.trace_id) == ["spoken"])
    assert show.pipeline.runtimes[-1][0].config.llm.max_tokens == 64
    await reload.aclose()


async def test_a_reply_that_never_ends_is_cut_after_the_settle_timeout(show, editor, config):
    reload = LiveReload(app=show.app, create=fake_create, settle_timeout_s=0.3)
    show.pipeline.clip_s = 30.0
    d = show.orch.submit(chat("ann", "tell me everything", persona="camille"))
    await until(lambda: any(x[1] == "chat" and x[2] == "camille" for x in show.stage.log))
    assert reload.busy("camille")
    text = editor.read("camille").text.replace("name: Camille", "name: Camille B")
    t0 = time.monotonic()
    await reload.apply(_config(editor, config, "camille", text))
    assert time.monotonic() - t0 < 5
    await until(lambda: show.adapter.status_of(d.trace_id) != [])
    assert show.adapter.status_of(d.trace_id) == ["interrupted"]  # cut on stage
    assert show.orch.personas["camille"].config.name == "Camille B"
    await reload.aclose()


async def test_a_dropped_persona_leaves_after_its_reply(show, editor, config):
    roster = Roster()
    reload = LiveReload(app=show.app, roster=roster, create=fake_create)
    show.pipeline.clip_s = 0.4
    d = show.orch.submit(chat("ann", "bonjour", persona="camille"))
    await until(lambda: any(x[1] == "chat" and x[2] == "camille" for x in show.stage.log))
    await reload.drop("camille")
    assert show.adapter.status_of(d.trace_id) == ["spoken"]
    assert "camille" not in show.orch.personas and roster.hidden == ["camille"]
    later = show.orch.submit(chat("ann", "bonjour?", persona="camille"))
    assert not later.accepted


async def test_mod_only_switches_live_and_is_audited(show):
    moderator = moderator_of(show.orch, "mika")
    moderator.settings = moderator.settings.model_copy(update={"mod_only": True})
    d = show.orch.submit(chat("ann", "hello there"))
    assert not d.accepted and "mod-only" in (d.reason or "")
    await asyncio.sleep(0.2)
    show.audit.flush()
    log = (show.app.config.state_dir / "audit.jsonl").read_text()
    assert '"rule":"mod_only"' in log and "hello there" in log
