"""The Discord adapter: a discord.py bot with slash commands that joins a voice channel, hears
everyone there (per-speaker VAD + whisper), submits what they say as
:class:`~bots.events.Utterance` events and voices the persona's replies into the channel
sentence by sentence. Mentions of the bot in text become :class:`~bots.events.ChatMessage`
events. With transcripts on, both sides of the voice conversation are posted in text.

It is an :class:`~bots.adapters.base.Adapter` (events out, outcomes in) and a
:class:`~overlays.stage.Stage` on the stage bus: each performed sentence's own speech (the
pipeline's audio, in the answering persona's voice) is played into the channel; nothing is
synthesised a second time.
The logic behind each slash command is a plain method (``join``, ``leave``, ``set_persona``,
``set_language``, ``set_transcripts``, ``memory_command``) so it can be tested without
Discord's gateway.

A viewer's memory commands (``/memory``, ``/forget``, ``/link [code]``) are answered only to
them (ephemeral): this is the private place where a link code is handed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np

from avatar_engine.types import Performance
from bots.adapters.base import EventSink
from bots.adapters.commands import (
    MemoryCommandName,
    MemoryCommandSink,
    MemoryRequest,
    parse_memory_command,
)
from bots.adapters.discord.errors import platform_error
from bots.adapters.discord.playback import ReplyAudio
from bots.adapters.discord.receive import DaveStep, VoiceReceiver, make_sink
from bots.adapters.discord.settings import DiscordSettings
from bots.events import ChatMessage, Outcome, Role, Utterance, Viewer
from bots.hearing.audio import tts_to_discord_pcm
from bots.hearing.listener import Heard, Listener
from overlays.stage import Performed, ReplyCancelled, ReplyFinished, StageEvent
from vstage_core.errors import ConfigError, MissingDependency
from vstage_core.extras import install_hint
from vstage_core.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

PLATFORM = "discord"
_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")


@dataclass(eq=False)
class VoiceSession:
    """One guild's voice conversation: where we talk, who answers, what we post."""

    guild_id: int
    text_channel: Any  # discord.abc.Messageable where transcripts go
    persona: str | None
    language: str
    transcripts: bool
    voice_client: Any = None
    listener: Listener | None = None
    receiver: VoiceReceiver | None = None
    replies: dict[str, ReplyAudio] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)


def viewer_of(member: Any) -> Viewer:
    """A Discord user/member as a :class:`Viewer`; server owners and members who can manage
    messages count as moderators."""
    roles: set[Role] = set()
    guild = getattr(member, "guild", None)
    if guild is not None and getattr(guild, "owner_id", None) == member.id:
        roles.add(Role.BROADCASTER)
    perms = getattr(member, "guild_permissions", None)
    if perms is not None and getattr(perms, "manage_messages", False):
        roles.add(Role.MODERATOR)
    name = str(getattr(member, "display_name", None) or getattr(member, "name", member.id))
    return Viewer(id=f"discord:{member.id}", name=name, roles=frozenset(roles))


class DiscordAdapter:
    """Discord as a platform adapter and a voice stage.

    Args:
        settings: token, guilds, persona, language, hearing.
        personas: ids of the loaded personas (for ``/persona``).
        languages: each persona's language: with ``settings.language`` unset, a session
            listens in the answering persona's language (and follows ``/persona``).
        default_persona: who answers when ``settings.persona`` is unset.
        listener_factory: builds the hearing pipeline per voice session (tests share models).
        clock: monotonic clock.
    """

    platform = PLATFORM
    name = PLATFORM
    wants: frozenset[type[StageEvent]] = frozenset({Performed, ReplyFinished, ReplyCancelled})

    def __init__(self, *, settings: DiscordSettings, personas: Collection[str] = (),
                 languages: Mapping[str, str] | None = None, default_persona: str = "",
                 listener_factory: Callable[..., Listener] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.personas = set(personas)
        self._languages = dict(languages or {})  # persona id -> the language it speaks
        self._default_persona = default_persona  # who answers when no persona is chosen
        self._listener_factory = listener_factory or Listener
        self._clock = clock
        self._sink: EventSink | None = None
        self.sessions: dict[int, VoiceSession] = {}
        self.client: Any = None
        self._tasks: set[asyncio.Task] = set()
        self._gateway: asyncio.Task | None = None
        self._voice_lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._text_channels: dict[str, Any] = {}  # chat msg id -> channel to answer in

    # ------------------------------------------------------------------ Adapter

    def bind(self, sink: EventSink) -> None:
        self._sink = sink

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        token = self.settings.token.get_secret_value() if self.settings.token else \
            os.environ.get("DISCORD_TOKEN", "")
        if not token:
            raise ConfigError("Discord needs a bot token: set DISCORD_TOKEN (see docs/discord.md)")
        self.client = build_client(self)
        try:
            await self.client.login(token)
        except Exception as e:  # a refused token is fatal, a 5xx or no network is not
            await self.client.close()
            raise platform_error(e) from e
        self._gateway = self._own(self.client.connect(reconnect=True), "discord:gateway")
        return self

    async def wait_closed(self) -> None:
        """Until the gateway task ends on its own (the supervisor's watch): discord.py
        reconnects inside it, so it ends only on what it cannot recover from, e.g. close
        4014 (a missing privileged intent) or 4004 (a bad token), raised as PlatformError."""
        gateway = self._gateway
        if gateway is None:
            return
        await asyncio.wait([gateway])
        if not gateway.cancelled() and (e := gateway.exception()) is not None:
            raise platform_error(e) from e

    async def __aexit__(self, *exc: object) -> None:
        for guild_id in list(self.sessions):
            with contextlib.suppress(Exception):
                await self.leave(guild_id)
        if self.client is not None:
            await self.client.close()
        await cancel_and_wait(list(self._tasks))
        self._tasks.clear()

    def _own(self, coro, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def deliver(self, outcome: Outcome) -> None:
        event = outcome.event
        try:
            if isinstance(event, Utterance):
                session = self._session_for(event)
                if session is not None and outcome.status == "spoken" and session.transcripts \
                        and outcome.reply_text:
                    await self._post(session.text_channel,
                                     f"**{self._persona_name(session)}**: {outcome.reply_text}"
                                     + _teacher_notes(outcome))
            elif isinstance(event, ChatMessage):
                channel = self._text_channels.pop(event.msg_id, None)
                if channel is None:
                    return
                if outcome.status == "spoken" and outcome.reply_text:
                    await self._post(channel, outcome.reply_text + _teacher_notes(outcome))
                elif outcome.status in ("refused", "failed"):
                    await self._post(channel, f"(not answered: {outcome.reason})")
        except Exception:  # a failing post never stops the show
            logger.exception("discord: delivering %s failed", outcome.status)

    # ------------------------------------------------------------------ Stage

    async def handle(self, event: StageEvent) -> None:
        """Voice a performed sentence, end or cut a reply (called by the stage bus)."""
        if isinstance(event, Performed):
            await self.play(event.performance)
            return
        if not isinstance(event, ReplyFinished | ReplyCancelled):
            return
        session = self._voice_session_of(event.persona)
        if session is None:
            return
        if isinstance(event, ReplyFinished):
            if (audio := session.replies.get(event.reply_id)) is not None:
                audio.finish()
        elif (audio := session.replies.pop(event.reply_id, None)) is not None:
            audio.stop()

    async def play(self, performance: Performance) -> None:
        """Play one sentence's speech into the voice channel its persona talks in."""
        session = self._voice_session_of(performance.persona)
        speech = performance.speech
        if session is None or speech.audio.size == 0:
            return
        audio = session.replies.get(performance.reply_id)
        if audio is None:
            audio = self.start_reply(session, performance.reply_id)
        # Padded to the sentence's frames, as every stage plays it, so the voice here stays
        # in step with the avatar elsewhere; resampled to 48 kHz stereo off the loop.
        pcm = await asyncio.to_thread(_discord_pcm, speech.audio, speech.sample_rate,
                                      performance.duration)
        audio.append_pcm(pcm)

    def start_reply(self, session: VoiceSession, reply_id: str) -> ReplyAudio:
        """Open the audio of one reply and start playing it (silence until the first
        sentence is voiced). A reply still playing is cut: the newest answer wins."""
        for old_id, old in list(session.replies.items()):
            if old.done or old_id != reply_id:
                session.replies.pop(old_id, None)
        audio = ReplyAudio(reply_id=reply_id, clock=self._clock)
        session.replies[reply_id] = audio
        vc = session.voice_client
        if vc is not None:
            if vc.is_playing():
                vc.stop()
            if session.listener is not None:
                session.listener.speaking = True

            def after(error: Exception | None, s: VoiceSession = session) -> None:
                if error:
                    logger.warning("discord: playback ended with %s", error)
                if s.listener is not None:
                    s.listener.speaking = False

            vc.play(audio, after=after)
        return audio

    def barge_in(self, session: VoiceSession) -> int:
        """Someone started talking over the persona: stop what it is saying. Returns the
        number of replies cut."""
        cut = 0
        for audio in session.replies.values():
            if not audio.done:
                audio.stop()
                cut += 1
        session.replies.clear()
        return cut

    # ------------------------------------------------------------------ commands' logic

    async def join(self, *, guild_id: int, voice_channel: Any, text_channel: Any) -> str:
        """``/join``: connect to ``voice_channel`` (the caller's) and start listening."""
        if voice_channel is None:
            return "Join a voice channel first, then use /join."
        try:
            from discord.ext import voice_recv
        except ImportError as e:
            raise MissingDependency(
                f"discord-ext-voice-recv is not installed: {install_hint('discord')}") from e
        async with self._voice_lock:
            if guild_id in self.sessions:
                await self._stop_session(self.sessions.pop(guild_id))
            session = await self.open_session(guild_id=guild_id, text_channel=text_channel)
            vc = await voice_channel.connect(cls=voice_recv.VoiceRecvClient, self_deaf=False)
            session.voice_client = vc
            receiver = session.receiver
            assert receiver is not None  # open_session made it
            receiver.dave = DaveStep(vc._connection)
            bot_id = getattr(getattr(self.client, "user", None), "id", None)
            if bot_id is not None:
                receiver.ignore_ids.add(bot_id)
            vc.listen(make_sink(receiver))
        return f"Joined **{voice_channel.name}**. Talk to me!"

    async def open_session(self, *, guild_id: int, text_channel: Any) -> VoiceSession:
        """Create the hearing side of a voice session (no Discord connection needed)."""
        session = VoiceSession(guild_id=guild_id, text_channel=text_channel,
                               persona=self.settings.persona,
                               language=self._listening_language(self.settings.persona),
                               transcripts=self.settings.transcripts)
        listener = self._listener_factory(
            settings=self.settings.hearing, on_heard=lambda h: self._on_heard(session, h),
            on_speech_start=lambda v: self._on_speech_start(session, v),
            platform=PLATFORM, language=session.language, persona=session.persona)
        await listener.__aenter__()
        session.listener = listener

        def speaker(user_id: int, s: VoiceSession = session) -> Viewer:
            name = s.names.get(user_id) or self._member_name(s.guild_id, user_id)
            return Viewer(id=f"discord:{user_id}", name=name)

        session.receiver = VoiceReceiver(
            on_pcm=lambda user_id, pcm: listener.feed(speaker(user_id), pcm),
            on_stop=lambda user_id: listener.stopped_sending(speaker(user_id)))
        self.sessions[guild_id] = session
        return session

    async def leave(self, guild_id: int) -> str:
        """``/leave``: disconnect from the guild's voice channel."""
        session = self.sessions.pop(guild_id, None)
        if session is None:
            return "I'm not in a voice channel here."
        await self._stop_session(session)
        return "Bye!"

    async def _stop_session(self, session: VoiceSession) -> None:
        self.barge_in(session)
        vc = session.voice_client
        if vc is not None:
            with contextlib.suppress(Exception):
                if hasattr(vc, "stop_listening") and vc.is_listening():
                    vc.stop_listening()
                await vc.disconnect(force=True)
        if session.listener is not None:
            await session.listener.__aexit__(None, None, None)

    def set_persona(self, guild_id: int, name: str) -> str:
        """``/persona NAME``: who answers in this guild."""
        pid = name.strip().lower()
        if self.personas and pid not in self.personas:
            return f"Unknown persona {name!r}. Known: {', '.join(sorted(self.personas))}."
        session = self.sessions.get(guild_id)
        if session is None:
            self.settings = self.settings.model_copy(update={"persona": pid})
            return f"{pid} will answer here."
        session.persona = pid
        session.language = self._listening_language(pid, current=session.language)
        if session.listener is not None:
            session.listener.persona = pid
            session.listener.language = session.language
        return f"{pid} is now listening."

    def _listening_language(self, persona: str | None, *, current: str | None = None) -> str:
        """What to hear in: the configured (or /language) language, else the persona's own."""
        if self.settings.language:
            return current or self.settings.language
        return self._languages.get(persona or self._default_persona, current or "en")

    def set_language(self, guild_id: int, code: str) -> str:
        """``/language CODE``: the language the persona listens in (ISO 639-1, e.g. ``fr``)."""
        code = code.strip()
        if not _LANG.match(code):
            return f"{code!r} is not a language code (try en, fr, es, de, ja)."
        session = self.sessions.get(guild_id)
        if session is None:
            self.settings = self.settings.model_copy(update={"language": code})
        else:
            session.language = code
            if session.listener is not None:
                session.listener.language = code
        return f"Listening in {code}."

    def set_transcripts(self, guild_id: int, on: bool) -> str:
        """``/transcript on|off``."""
        session = self.sessions.get(guild_id)
        if session is None:
            self.settings = self.settings.model_copy(update={"transcripts": on})
        else:
            session.transcripts = on
        return "Transcripts on." if on else "Transcripts off."

    @property
    def answers_memory(self) -> bool:
        """Whether the sink answers memory commands (then /memory, /forget, /link exist)."""
        return isinstance(self._sink, MemoryCommandSink)

    async def memory_command(self, *, user: Any, command: MemoryCommandName,
                             argument: str = "", guild_id: int | None = None,
                             public: bool = False) -> str:
        """``/memory``, ``/forget``, ``/link [code]``: what the personas keep about ``user``,
        erase it, or link their accounts. The answer goes to them alone (``public`` when it
        is posted in a channel instead)."""
        if not isinstance(self._sink, MemoryCommandSink):
            return "Memory commands are not available here."
        session = self.sessions.get(guild_id) if guild_id is not None else None
        persona = session.persona if session else self.settings.persona
        request = MemoryRequest(command=command, viewer=viewer_of(user), platform=PLATFORM,
                                persona=persona, argument=argument.strip(), public=public)
        answer = await self._sink.memory_command(request)
        return answer or "You asked a moment ago; try again in a few seconds."

    async def on_mention(self, *, author: Any, content: str, message_id: int, channel: Any,
                         bot_id: int, guild_id: int | None = None) -> bool:
        """A text message; if it mentions the bot it becomes a :class:`ChatMessage` (a
        memory command is answered in the channel instead)."""
        if author.id == bot_id or getattr(author, "bot", False):
            return False
        if f"<@{bot_id}>" not in content and f"<@!{bot_id}>" not in content:
            return False
        text = re.sub(rf"<@!?{bot_id}>", "", content).strip()
        if not text or self._sink is None:
            return False
        if (parsed := parse_memory_command(text)) is not None and isinstance(
                self._sink, MemoryCommandSink):
            answer = await self.memory_command(user=author, command=parsed[0],
                                               argument=parsed[1], guild_id=guild_id,
                                               public=True)
            await self._post(channel, answer)
            return False
        session = self.sessions.get(guild_id) if guild_id is not None else None
        persona = session.persona if session else self.settings.persona
        event = ChatMessage(viewer=viewer_of(author), message=text, persona=persona,
                            platform=PLATFORM, msg_id=str(message_id))
        self._text_channels[event.msg_id] = channel
        decision = self._sink.submit(event)
        if not decision.accepted:
            self._text_channels.pop(event.msg_id, None)
            await self._post(channel, f"(not answered: {decision.reason})")
        return decision.accepted

    # ------------------------------------------------------------------ hearing

    async def _on_heard(self, session: VoiceSession, heard: Heard) -> None:
        utterance = heard.utterance
        if session.transcripts:
            await self._post(session.text_channel,
                             f"**{utterance.viewer.name}**: {utterance.message}")
        if self._sink is None:
            return
        decision = self._sink.submit(utterance)
        if not decision.accepted:
            logger.info("discord: utterance of %s not answered: %s", utterance.viewer.name,
                        decision.reason)

    def _on_speech_start(self, session: VoiceSession, viewer: Viewer) -> None:
        if self.settings.barge_in and session.replies:
            if self.barge_in(session):
                logger.info("discord: %s barged in", viewer.name)
                if self._sink is not None:  # the reply still being made is dropped too
                    self._sink.interrupt(session.persona or self.settings.persona,
                                         reason=f"{viewer.name} started talking")

    # ------------------------------------------------------------------ helpers

    def _voice_session_of(self, persona: str) -> VoiceSession | None:
        for session in self.sessions.values():
            if (session.persona or persona) == persona:
                return session
        return None

    def _session_for(self, event: Utterance) -> VoiceSession | None:
        return self._voice_session_of(event.persona or "") or next(
            iter(self.sessions.values()), None)

    def _persona_name(self, session: VoiceSession) -> str:
        return (session.persona or "persona").title()

    def _member_name(self, guild_id: int, user_id: int) -> str:
        guild = self.client.get_guild(guild_id) if self.client is not None else None
        member = guild.get_member(user_id) if guild is not None else None
        return member.display_name if member is not None else str(user_id)

    async def _post(self, channel: Any, text: str) -> None:
        if channel is None:
            return
        try:
            await channel.send(text[:2000])
        except Exception:
            logger.exception("discord: posting to %s failed", getattr(channel, "id", channel))


def _teacher_notes(outcome: Outcome) -> str:
    """A teacher's correction and gloss as Discord subtext lines (small and grey, under the
    answer in the same message), or "" when there are none. They quote the viewer's words, so
    a mention in them is broken up: a correction never pings anyone."""
    lines = [f"\n-# {mark} {text.strip()}".replace("@", "@\u200b")
             for mark, text in (("✎", outcome.correction), ("≈", outcome.gloss))
             if text and text.strip()]
    return "".join(lines)


def _discord_pcm(audio: np.ndarray, sample_rate: int, seconds: float) -> bytes:
    """Blocking: mono speech, padded with silence to ``seconds``, as Discord PCM."""
    missing = round(seconds * sample_rate) - audio.size
    if missing > 0:
        audio = np.concatenate([audio, np.zeros(missing, audio.dtype)])
    return tts_to_discord_pcm(audio, sample_rate)


def build_client(adapter: DiscordAdapter):
    """The discord.py client: intents, slash commands and listeners wired to ``adapter``."""
    try:
        import discord
        from discord import app_commands
    except ImportError as e:
        raise MissingDependency(f"discord.py is not installed: {install_hint('discord')}") from e

    intents = discord.Intents.default()
    intents.message_content = True  # privileged: enable it in the developer portal
    intents.voice_states = True
    intents.members = False

    class _Bot(discord.Client):
        def __init__(self) -> None:
            super().__init__(intents=intents)
            self.tree = app_commands.CommandTree(self)
            register_commands(self.tree, adapter)

        async def setup_hook(self) -> None:
            for gid in adapter.settings.guild_ids:
                guild = discord.Object(id=gid)
                self.tree.copy_global_to(guild=guild)
                await self.tree.sync(guild=guild)
            if not adapter.settings.guild_ids:
                await self.tree.sync()

        async def on_message(self, message: discord.Message) -> None:
            if self.user is None:
                return
            await adapter.on_mention(author=message.author, content=message.content,
                                     message_id=message.id, channel=message.channel,
                                     bot_id=self.user.id,
                                     guild_id=message.guild.id if message.guild else None)

    return _Bot()


def register_commands(tree: Any, adapter: DiscordAdapter) -> None:
    """Add /join, /leave, /persona, /language and /transcript to ``tree``, and /memory,
    /forget and /link when the adapter's sink answers memory commands."""
    import discord
    from discord import app_commands

    async def answer(interaction: discord.Interaction, text: str) -> None:
        if interaction.response.is_done():
            await interaction.followup.send(text)
        else:
            await interaction.response.send_message(text)

    @tree.command(name="join", description="Join your voice channel and talk")
    @app_commands.guild_only()
    async def join(interaction: discord.Interaction) -> None:
        voice = getattr(interaction.user, "voice", None)
        await interaction.response.defer(thinking=True)
        text = await adapter.join(guild_id=interaction.guild_id or 0,
                                  voice_channel=voice.channel if voice else None,
                                  text_channel=interaction.channel)
        await answer(interaction, text)

    @tree.command(name="leave", description="Leave the voice channel")
    @app_commands.guild_only()
    async def leave(interaction: discord.Interaction) -> None:
        await answer(interaction, await adapter.leave(interaction.guild_id or 0))

    @tree.command(name="persona", description="Choose who answers")
    @app_commands.describe(name="persona id")
    async def persona(interaction: discord.Interaction, name: str) -> None:
        await answer(interaction, adapter.set_persona(interaction.guild_id or 0, name))

    @tree.command(name="language", description="Language to listen in (en, fr, es, ...)")
    @app_commands.describe(code="ISO 639-1 code")
    async def language(interaction: discord.Interaction, code: str) -> None:
        await answer(interaction, adapter.set_language(interaction.guild_id or 0, code))

    @tree.command(name="transcript", description="Post voice transcripts in this channel")
    @app_commands.choices(state=[app_commands.Choice(name="on", value="on"),
                                 app_commands.Choice(name="off", value="off")])
    async def transcript(interaction: discord.Interaction, state: str) -> None:
        await answer(interaction, adapter.set_transcripts(interaction.guild_id or 0,
                                                          state == "on"))

    if not adapter.answers_memory:
        return

    async def private(interaction: discord.Interaction, command: MemoryCommandName,
                      argument: str = "") -> None:
        """A memory command's answer, seen only by who asked (a link code must stay theirs)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        text = await adapter.memory_command(user=interaction.user, command=command,
                                            argument=argument, guild_id=interaction.guild_id)
        await interaction.followup.send(text[:2000], ephemeral=True)

    @tree.command(name="memory", description="What the personas remember about you")
    async def memory(interaction: discord.Interaction) -> None:
        await private(interaction, "memory")

    @tree.command(name="forget", description="Erase everything the personas remember about you")
    async def forget(interaction: discord.Interaction) -> None:
        await private(interaction, "forget")

    @tree.command(name="link", description="Link your Twitch and Discord accounts: get a "
                  "code, or enter one")
    @app_commands.describe(code="a code you got elsewhere (leave empty to get one)")
    async def link(interaction: discord.Interaction, code: str = "") -> None:
        await private(interaction, "link", code)
