"""Slash commands and text mentions. Discord's gateway cannot run here, so the commands'
logic (plain adapter methods) is tested directly and their registration on a real
discord.py CommandTree is checked; mentions go through the same path ``on_message`` uses."""

from __future__ import annotations

from types import SimpleNamespace

import discord
from discord import app_commands

from bots.adapters.discord.adapter import DiscordAdapter, register_commands, viewer_of
from bots.adapters.discord.settings import DiscordSettings
from bots.events import ChatMessage, Outcome, Role, Utterance, Viewer
from tests.discord.fakes import Channel, Member, Sink, VoiceClient

BOT = 555


def _adapter(**settings) -> tuple[DiscordAdapter, Sink]:
    adapter = DiscordAdapter(settings=DiscordSettings(**settings), personas=["mika", "leo"])
    sink = Sink()
    adapter.bind(sink)
    return adapter, sink


def test_commands_are_registered_on_a_real_tree():
    client = discord.Client(intents=discord.Intents.default())
    tree = app_commands.CommandTree(client)
    register_commands(tree, _adapter()[0])
    names = {c.name for c in tree.get_commands()}
    assert names == {"join", "leave", "persona", "language", "transcript"}
    transcript = tree.get_command("transcript")
    assert [c.value for c in transcript.parameters[0].choices] == ["on", "off"]
    payload = tree.get_command("language").to_dict(tree)
    assert payload["options"][0]["name"] == "code" and payload["options"][0]["type"] == 3


def test_secret_token_never_prints():
    s = DiscordSettings(token="abc.def")
    assert "abc.def" not in repr(s) and s.token.get_secret_value() == "abc.def"


async def test_persona_language_transcript_logic():
    adapter, _ = _adapter()
    assert "Unknown persona" in adapter.set_persona(1, "nobody")
    assert "mika" in adapter.set_persona(1, "Mika")
    assert adapter.settings.persona == "mika"
    assert adapter.set_language(1, "fr") == "Listening in fr."
    assert "not a language code" in adapter.set_language(1, "french!")
    assert adapter.settings.language == "fr"
    assert adapter.set_transcripts(1, False) == "Transcripts off."
    assert adapter.settings.transcripts is False
    assert "voice channel first" in await adapter.join(guild_id=1, voice_channel=None,
                                                       text_channel=Channel())
    assert "not in a voice channel" in await adapter.leave(1)


async def test_mention_becomes_chat_message_and_reply_is_posted():
    adapter, sink = _adapter(persona="mika")
    channel = Channel()
    author = Member(id=42, display_name="Ana")
    assert await adapter.on_mention(author=author, content=f"<@{BOT}> comment ça va ?",
                                    message_id=9001, channel=channel, bot_id=BOT)
    (event,) = sink.events
    assert isinstance(event, ChatMessage) and event.platform == "discord"
    assert event.message == "comment ça va ?" and event.persona == "mika"
    assert event.viewer == Viewer(id="discord:42", name="Ana") and event.msg_id == "9001"
    await adapter.deliver(Outcome(event, "spoken", reply_text="Ça va bien !"))
    assert channel.sent == ["Ça va bien !"]
    # not mentioned, or the bot itself: ignored
    assert not await adapter.on_mention(author=author, content="hello", message_id=1,
                                        channel=channel, bot_id=BOT)
    assert not await adapter.on_mention(author=Member(id=BOT, display_name="me"),
                                        content=f"<@{BOT}> hi", message_id=2,
                                        channel=channel, bot_id=BOT)


async def test_refused_mention_is_told():
    adapter, sink = _adapter()
    sink.accept = False
    channel = Channel()
    await adapter.on_mention(author=Member(id=1, display_name="x"), content=f"<@!{BOT}> hi",
                             message_id=3, channel=channel, bot_id=BOT)
    assert channel.sent == ["(not answered: queue full)"]


def test_owner_and_managers_are_moderators():
    guild = SimpleNamespace(owner_id=1)
    owner = Member(id=1, display_name="o", guild=guild)
    mod = Member(id=2, display_name="m", guild=guild,
                 guild_permissions=SimpleNamespace(manage_messages=True))
    assert Role.BROADCASTER in viewer_of(owner).roles
    assert viewer_of(mod).is_mod and not viewer_of(Member(id=3, display_name="u")).is_mod


async def test_replies_are_voiced_sentence_by_sentence_and_transcribed(tts):
    from bots.adapters.discord.adapter import VoiceSession
    from overlays.stage import Performed, ReplyCancelled, ReplyFinished

    adapter = DiscordAdapter(settings=DiscordSettings(persona="mika"))
    channel = Channel()
    session = VoiceSession(guild_id=1, text_channel=channel, persona="mika", language="en",
                           transcripts=True, voice_client=VoiceClient())
    adapter.sessions[1] = session
    first = performance(tts, "r1", 0, "Hello there.")
    await adapter.handle(Performed(first))
    audio = session.voice_client.source
    # The pipeline's own speech, padded to the sentence's frames.
    assert audio is not None and abs(audio.buffered_s - first.duration) < 0.021
    await adapter.handle(Performed(performance(tts, "r1", 1, "Nice to meet you.")))
    await adapter.handle(ReplyFinished(persona="mika", reply_id="r1", text=""))
    assert audio.sentences == 2
    utter = Utterance(viewer=Viewer(id="discord:3", name="Ana"), message="hi",
                      persona="mika", platform="discord")
    await adapter.deliver(Outcome(utter, "spoken", reply_text="Hello there. Nice to meet you."))
    assert channel.sent == ["**Mika**: Hello there. Nice to meet you."]
    await adapter.handle(ReplyCancelled(persona="mika", reply_id="r1"))
    assert audio.read() == b""


def performance(tts, reply_id: str, index: int, text: str, *, persona: str = "mika"):
    """``text`` voiced by Piper as the pipeline hands it on: a Performance (tiny frames)."""
    import numpy as np

    from avatar_engine.types import Performance, frame_count

    speech = tts.synthesize(text)
    n = frame_count(speech.duration, 25)
    return Performance(persona=persona, reply_id=reply_id, index=index, speech=speech,
                       frames=np.zeros((n, 2, 2, 4), np.uint8), fps=25, start_frame=0)


async def test_teacher_correction_and_gloss_follow_the_reply_as_subtext():
    adapter, sink = _adapter(persona="lena")
    channel = Channel()
    await adapter.on_mention(author=Member(id=42, display_name="Ana"),
                             content=f"<@{BOT}> ich bin gegangen gestern @everyone",
                             message_id=9002, channel=channel, bot_id=BOT)
    (event,) = sink.events
    await adapter.deliver(Outcome(event, "spoken", reply_text="Schön! Wohin denn?",
                                  correction="Ich bin gestern gegangen @everyone",
                                  gloss="Nice! Where to?"))
    assert channel.sent == ["Schön! Wohin denn?\n-# ✎ Ich bin gestern gegangen @\u200beveryone"
                            "\n-# ≈ Nice! Where to?"]
    # In a voice session's transcript too, and only the notes that are set.
    from bots.adapters.discord.adapter import VoiceSession

    voice_text = Channel()
    adapter.sessions[1] = VoiceSession(guild_id=1, text_channel=voice_text, persona="mika",
                                       language="en", transcripts=True,
                                       voice_client=VoiceClient())
    utter = Utterance(viewer=Viewer(id="discord:3", name="Ana"), message="hi",
                      persona="mika", platform="discord")
    await adapter.deliver(Outcome(utter, "spoken", reply_text="Hallo!", gloss="Hello!"))
    assert voice_text.sent == ["**Mika**: Hallo!\n-# ≈ Hello!"]


class _Ear:
    """A stand-in hearing pipeline that only records what it is told to listen for."""

    def __init__(self, *, language: str, persona: str | None, **_: object) -> None:
        self.language, self.persona = language, persona

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


async def test_a_session_listens_in_the_answering_personas_language():
    adapter = DiscordAdapter(settings=DiscordSettings(), personas=["mika", "lena"],
                             languages={"mika": "en", "lena": "de"}, default_persona="lena",
                             listener_factory=_Ear)
    session = await adapter.open_session(guild_id=1, text_channel=Channel())
    assert session.language == "de" and session.listener.language == "de"  # the default: Lena
    adapter.set_persona(1, "mika")
    assert session.language == "en" and session.listener.language == "en"
    adapter.set_language(1, "fr")  # /language still wins over the persona's own
    assert session.listener.language == "fr"


async def test_a_configured_language_overrides_the_personas():
    adapter = DiscordAdapter(settings=DiscordSettings(language="es"), personas=["mika", "lena"],
                             languages={"mika": "en", "lena": "de"}, default_persona="lena",
                             listener_factory=_Ear)
    session = await adapter.open_session(guild_id=1, text_channel=Channel())
    adapter.set_persona(1, "mika")
    assert session.listener.language == "es"
