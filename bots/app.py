"""The studio app: personas, orchestrator, stage bus and stages wired together (``vstage demo``).

The orchestrator publishes on one :class:`~overlays.bus.StageBus`; the stages on it are the
studio server (pages and overlays), each persona's live stream (WebRTC to the pages, MPEG-TS to
OBS), OBS's scenes and subtitles, Discord voice and the clip recorder, each in its own task.
Platform adapters run under a :class:`~bots.adapters.supervise.Supervisor` whose health the
studio serves at ``/api/health``. Private conversations (``/talk``, a
:class:`~bots.talk.hub.TalkHub`) run beside the show, off the bus, and take turns on the LLM
with it through one :class:`~bots.orchestrator.fairshare.FairShare`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from avatar_engine.clips.encode import encode_clip
from avatar_engine.renderers.base import Renderer
from avatar_engine.workers import LocalRenderPool, RenderPool
from bots.adapters.studio import StudioAdapter
from bots.adapters.supervise import RetryPolicy, Supervisor
from bots.config import Config, extras_needed, studio_token
from bots.hearing.settings import HearingSettings
from bots.memory.errors import MemoryStoreError
from bots.memory.service import MemoryService
from bots.moderation.audit import AuditLog
from bots.orchestrator.fairshare import FairShare
from bots.orchestrator.orchestrator import Orchestrator
from bots.orchestrator.tracing import Tracer
from bots.personas.runtime import PersonaRuntime, prune_clips
from overlays.bus import StageBus
from overlays.live import LiveStage, LiveStream
from overlays.recorder import ClipRecorder
from overlays.stage import Stage
from overlays.studio.dashboard import install_dashboard
from overlays.studio.server import ChatHandler, ChatResult, StudioServer
from overlays.studio.talk_routes import TALK_PREFIXES, TalkRoutes
from vstage_core.errors import ConfigError, MissingDependency
from vstage_core.extras import require_extra

if TYPE_CHECKING:
    from bots.talk.hub import TalkHub
    from overlays.live.webrtc import LiveRTC
    from overlays.obs.keying import KeyColour

logger = logging.getLogger(__name__)

IDLE_SECONDS = 8.0


async def load_personas(
    config: Config, ids: list[str] | None = None, *, pool: RenderPool | None = None
) -> dict[str, PersonaRuntime]:
    """Load the personas (all of them by default), each with its models."""
    clips_dir = config.state_dir / "clips"
    chosen = ids or list(config.personas)
    loaded = await asyncio.gather(
        *(
            PersonaRuntime.create(config.persona(pid), clips_dir=clips_dir,
                                  clip_settings=config.app.clips, pool=pool)
            for pid in chosen
        )
    )
    return {p.id: p for p in loaded}


def make_idle_loop(persona: PersonaRuntime) -> dict[str, Path]:
    """Blocking: render and encode the persona's idle loop (blinks and breathing, no speech)."""
    fps = persona.renderer.fps
    n = int(IDLE_SECONDS * fps)
    frames = persona.renderer.idle(n, start_frame=0)
    files = encode_clip(
        frames=frames, audio=np.zeros(int(IDLE_SECONDS * 22050), np.float32), sample_rate=22050,
        fps=fps, out_base=persona.clips_dir / "idle", formats=persona.clip_settings.formats,
    )
    return {f.format: f.path for f in files}


def _port_problem(host: str, port: int, err: OSError) -> ConfigError:
    if err.errno == errno.EADDRINUSE:
        why = "is already in use (another vstage demo?)"
    else:
        why = f"cannot be opened ({err.strerror or err})"
    return ConfigError(
        f"port {port} on {host} {why}: stop the program using it, or choose another port "
        f"with studio.port in config/vstage.yaml, VSTAGE_STUDIO__PORT=<port> or --port <port>"
    )


def check_port(host: str, port: int) -> None:
    """Fail with one clear line if the studio cannot listen on ``host:port``; checked before
    any model loads, so a busy port costs a second, not the whole start-up."""
    if port == 0:
        return  # any free port
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as e:
        raise ConfigError(f"studio.host {host!r} is not an address of this machine "
                          f"({e.strerror}); set studio.host or VSTAGE_STUDIO__HOST") from None
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            s.bind(addr)
        except OSError as e:
            raise _port_problem(host, port, e) from None


def display_order(ids: list[str], default: str) -> list[str]:
    """Persona ids with the default persona first: the overlay without ``&persona=`` shows it
    and the studio selects it."""
    return sorted(ids, key=lambda pid: pid != default)


class StudioApp:
    """Runs the local studio until cancelled: ``await StudioApp(config).run()``."""

    def __init__(self, config: Config, *, host: str | None = None, port: int | None = None):
        self.config = config
        self.host = host or config.app.studio.host
        self.port = config.app.studio.port if port is None else port
        self.ready = asyncio.Event()
        self.server: StudioServer | None = None
        self.bus: StageBus | None = None
        self.orchestrator: Orchestrator | None = None
        self.supervisor: Supervisor | None = None
        self.streams: dict[str, LiveStream] = {}
        self.memory: MemoryService | None = None  # long-term memory, once started
        self.rtc: LiveRTC | None = None  # the live streams' WebRTC side, when live is on
        self.talk: TalkHub | None = None  # the private conversations, when /talk is on
        # One turn at a time on the shared LLM, round robin between each persona's show and
        # every private conversation.
        self.fair = FairShare(slots=1)

    def talk_url(self) -> str | None:
        """The ``/talk`` page's URL with the token in it, once started with ``/talk`` on."""
        if self.server is None or self.talk is None:
            return None
        return self.server.url("talk")

    async def run(self) -> None:
        cfg = self.config
        show = cfg.app.show
        for extra, setting in extras_needed(cfg.app).items():  # before any model loads
            require_extra(extra, feature=setting)
        check_port(self.host, self.port)
        async with contextlib.AsyncExitStack() as stack:
            pool: RenderPool
            if show.broker_url is not None:  # render jobs go to `vstage worker` processes
                from avatar_engine.workers.rabbit import RabbitRenderPool

                pool = await stack.enter_async_context(
                    RabbitRenderPool(url=show.broker_url.get_secret_value()))
            else:
                pool = await stack.enter_async_context(
                    LocalRenderPool(workers=show.render_workers))
            personas = await load_personas(cfg, pool=pool)
            for p in personas.values():
                stack.push_async_callback(p.aclose)
            idle = await asyncio.gather(
                *(asyncio.to_thread(make_idle_loop, p) for p in personas.values())
            )
            tracer = Tracer(keep=show.traces_kept)
            server = StudioServer(
                host=self.host, port=self.port, token=studio_token(cfg),
                clips_dir=cfg.state_dir / "clips",
                personas={pid: personas[pid].config.name
                          for pid in display_order(list(personas), cfg.app.default_persona)},
                metrics=tracer.exposition,
                languages={pid: p.config.language for pid, p in personas.items()},
            )
            server.set_traces(tracer.recent)
            server.set_queues(lambda: {  # the personas on the show now (the dashboard edits it)
                pid: self.orchestrator.queue_snapshot(pid) for pid in self.orchestrator.personas
            } if self.orchestrator is not None else {})
            for p, files in zip(personas.values(), idle, strict=True):
                server.set_idle(p.id, files)
            audit = None
            if show.audit_log is not None:
                audit = await stack.enter_async_context(
                    AuditLog(cfg.state_dir / show.audit_log))
            studio_chat = StudioAdapter(
                notify=lambda persona, text, level: server.notice(persona, text, level=level))
            server.set_chat_handler(_studio_inbox(studio_chat))
            adapters: list = [studio_chat]
            twitch = None
            if cfg.app.twitch.enabled:
                from bots.adapters.twitch.setup import build_adapter

                twitch = build_adapter(cfg, [p.config for p in personas.values()])
                if twitch is not None:
                    adapters.append(twitch)
            bus = StageBus(on_error=lambda stage: tracer.errors.labels("stage").inc())
            stages: list[Stage] = [server]
            # Clip files for the pages' fallback player and recordings, off the reply's path.
            # With the live stream on, clips are encoded only while a page plays from them.
            stages.append(ClipRecorder(
                folders={pid: p.clips_dir for pid, p in personas.items()},
                formats=cfg.app.clips.formats, publish=bus.publish,
                needed=server.clips_wanted if cfg.app.live.enabled else lambda: True))
            streams: dict = {}
            if cfg.app.live.enabled:
                streams = await self._live(stack, cfg, personas, server)
                stages.append(LiveStage(streams))
            if cfg.app.obs.enabled:
                from overlays.obs.live import ObsLiveOutput
                from overlays.obs.stage import ObsStage

                keys = await asyncio.to_thread(
                    key_colours, {pid: p.renderer for pid, p in personas.items()})
                obs = await stack.enter_async_context(
                    ObsStage(settings=cfg.app.obs, personas=list(personas), keys=keys))
                stages.append(obs)  # OBS away: the overlays go on
                # OBS reads each persona's live stream as MPEG-TS over UDP (connectionless:
                # OBS restarting just reads it again); ports in config order, as `vstage obs
                # setup` made the sources.
                for n, pid in enumerate(cfg.personas):
                    if pid in streams:
                        await stack.enter_async_context(ObsLiveOutput(
                            stream=streams[pid], url=cfg.app.obs.live_url(n),
                            key_colour=keys[pid].rgb, on_air=obs.on_air))
            discord = None
            if cfg.app.discord is not None:
                from bots.adapters.discord.adapter import DiscordAdapter

                # Discord is both a platform (voice and mentions in) and a stage (voice out:
                # each performance's own speech, in the answering persona's voice).
                discord = DiscordAdapter(
                    settings=cfg.app.discord, personas=list(personas),
                    languages={pid: p.config.language for pid, p in personas.items()},
                    default_persona=cfg.app.default_persona)
                adapters.append(discord)
                stages.append(discord)
            for stage in stages:
                bus.add_stage(stage)
            await stack.enter_async_context(bus)  # left after the orchestrator stops
            self.server = server
            self.bus = bus
            # Long-term memory of the viewers; a store that cannot open (PostgreSQL down)
            # leaves the show running without it.
            memory: MemoryService | None = None
            try:
                memory = await stack.enter_async_context(await MemoryService.from_config(cfg))
            except MemoryStoreError as e:
                logger.error("memory is off for this run: %s", e)
            self.memory = memory
            self.orchestrator = await stack.enter_async_context(Orchestrator(
                personas=personas, bus=bus, default_persona=cfg.app.default_persona,
                adapters=adapters, exclusive_stage=show.exclusive_stage, audit=audit,
                tracer=tracer, lookahead=show.lookahead, fair=self.fair, memory=memory,
            ))
            if cfg.app.talk.enabled:
                await self._talk(stack, cfg, personas, server, audit)
            await stack.enter_async_context(studio_chat)
            supervisor = await stack.enter_async_context(Supervisor(
                [a for a in (twitch, discord) if a is not None],
                policy=RetryPolicy(max_s=cfg.app.twitch.retry_max_s)))
            self.supervisor = supervisor
            server.set_health(supervisor.health_json)
            # The control room: personas edited and applied live, queue and moderation.
            install_dashboard(server, app=self, rtc=self.rtc)
            try:
                await stack.enter_async_context(server)
            except OSError as e:  # taken while the models loaded
                raise _port_problem(self.host, self.port, e) from None
            self.ready.set()
            while True:
                await asyncio.sleep(30)
                for p in personas.values():
                    await asyncio.to_thread(prune_clips, p.clips_dir, keep=cfg.app.clips.keep)

    async def _live(self, stack: contextlib.AsyncExitStack, cfg: Config,
                    personas: dict[str, PersonaRuntime], server: StudioServer
                    ) -> dict[str, LiveStream]:
        """Start each persona's live stream and the WebRTC side the pages connect to."""
        from overlays.live.webrtc import LiveRTC

        live = cfg.app.live
        streams: dict[str, LiveStream] = {}
        for pid, p in personas.items():
            streams[pid] = await stack.enter_async_context(LiveStream(
                persona=pid, performer=p.performer, sample_rate=live.sample_rate,
                lead_frames=live.lead_frames, idle_batch=live.idle_batch,
                max_late_s=live.max_late_s))
        rtc = await stack.enter_async_context(LiveRTC(streams, settings=live))
        server.set_live(rtc.answer)
        self.streams = streams
        self.rtc = rtc
        return streams


    async def _talk(self, stack: contextlib.AsyncExitStack, cfg: Config,
                    personas: dict[str, PersonaRuntime], server: StudioServer,
                    audit: AuditLog | None) -> None:
        """Serve ``/talk``: the conversations' hub, their WebRTC side and the routes. Without
        the live stream or the ``hearing`` extra the studio starts anyway and ``/talk`` says
        why it is off."""
        talk = cfg.app.talk
        hub: TalkHub | None = None
        answer = None
        why = ""
        if not cfg.app.live.enabled:
            why = "private conversations need the live stream: set live.enabled to true"
        else:
            try:
                require_extra("hearing", feature="/talk (talk.enabled)")
            except MissingDependency as e:
                why = str(e)
        if why:
            logger.warning("/talk is off: %s", why)
        else:
            from bots.talk.hub import TalkHub
            from overlays.live.talk_rtc import TalkRTC

            # Discord's hearing settings when set (one place for the whisper models), else
            # the defaults.
            hearing = (cfg.app.discord.hearing if cfg.app.discord is not None
                       else HearingSettings())
            hub = await stack.enter_async_context(TalkHub(
                personas=personas, settings=talk, hearing=hearing, live=cfg.app.live,
                fair=self.fair, audit=audit))
            # Left before the hub: connections close, then the sessions end.
            rtc = await stack.enter_async_context(TalkRTC(settings=cfg.app.live))
            answer = rtc.answer
        routes = TalkRoutes(hub=hub, answer=answer, authorized=server.authorized,
                            invites=talk.access == "invite", max_sessions=talk.max_sessions,
                            idle_timeout_s=talk.idle_timeout_s, unavailable=why,
                            memory=self.memory)  # visitors' long-term memory, when open
        server.add_routes(routes.register, self_guarded=TALK_PREFIXES)
        stack.push_async_callback(routes.aclose)  # after the server stopped
        self.talk = hub


def key_colours(renderers: dict[str, Renderer]) -> dict[str, KeyColour]:
    """Blocking: per persona the OBS key colour farthest from its avatar's colours (judged on
    an idle frame as the renderer draws it). The app and ``vstage obs setup`` both use it."""
    from overlays.obs.keying import choose_key

    return {pid: choose_key(r.idle(1, start_frame=0).cpu().numpy())
            for pid, r in renderers.items()}


def _studio_inbox(adapter: StudioAdapter) -> ChatHandler:
    """The studio server's chat handler: lines typed on the page go to the studio adapter."""

    async def on_chat(user: str, text: str, persona: str | None, role: str) -> ChatResult:
        d = await adapter.on_chat(user, text, persona, role)
        return ChatResult(accepted=d.accepted, trace_id=d.trace_id or None, reason=d.reason)

    return on_chat
