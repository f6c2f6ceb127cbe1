"""The ``vstage`` command line: ``demo`` (the local studio), ``ask`` (one reply from the shell),
``worker`` (render clips for a studio over RabbitMQ) and ``check`` (validate the
configuration)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import sys
import time
from pathlib import Path

import numpy as np

from avatar_engine.workers.worker import DEFAULT_QUEUE
from bots.logs import setup_logging
from vstage_core.errors import MissingDependency, VStageError
from vstage_core.extras import require_extra

logger = logging.getLogger("vstage")


def _load(args):
    from bots.config import load_config

    return load_config(Path(args.config) if args.config else None)


async def _demo(args) -> int:
    from bots.app import StudioApp

    app = StudioApp(_load(args), host=args.host, port=args.port)
    runner = asyncio.create_task(app.run(), name="studio")
    ready = asyncio.create_task(app.ready.wait(), name="studio:ready")
    await asyncio.wait({runner, ready}, return_when=asyncio.FIRST_COMPLETED)
    if runner.done():
        ready.cancel()
        runner.result()  # raises the start-up error
        return 1
    assert app.server is not None
    print("\n  vstage studio is live.\n")
    print(f"  Studio (type as a viewer):   {app.server.url('studio')}")
    print(f"  OBS browser source overlay:  {app.server.url('overlay')}")
    print(f"  Chat overlay (on stage):     {app.server.url('overlay/chat')}")
    print(f"  Queue overlay:               {app.server.url('overlay/queue')}")
    print(f"  Dashboard (run the show):    {app.server.url('dashboard')}")
    if (talk := app.talk_url()) is not None:
        print(f"  Private talk (/talk):        {talk}")
    print("\n  These URLs carry your access token; keep them private. Ctrl-C stops.\n",
          flush=True)
    try:
        if args.exit_after:
            await asyncio.wait_for(asyncio.shield(runner), args.exit_after)
        else:
            await runner
    except TimeoutError:
        pass
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    return 0


async def _ask(args) -> int:
    """One reply from the shell, moderated as a chat line from ``--user`` with ``--role``."""
    async with contextlib.AsyncExitStack() as stack:
        config = _load(args)
        audit = None
        if config.app.show.audit_log is not None and not args.no_moderation:
            from bots.moderation.audit import AuditLog

            audit = await stack.enter_async_context(
                AuditLog(config.state_dir / config.app.show.audit_log))
        return await _ask_moderated(args, config, audit)


async def _ask_moderated(args, config, audit) -> int:
    from avatar_engine.clips.encode import encode_clip
    from bots.adapters.studio import ROLES
    from bots.app import load_personas
    from bots.events import ChatMessage, Viewer
    from bots.moderation.input import clean_viewer_text
    from bots.moderation.moderator import Moderator
    from bots.orchestrator.pipeline import perform
    from bots.personas.prompt import system_prompt

    persona_cfg = config.persona(args.persona)
    viewer = Viewer(id=args.user.casefold(), name=args.user, roles=ROLES[args.role])
    event = ChatMessage(viewer=viewer, message=args.text, persona=persona_cfg.id, platform="cli")
    moderator = None
    if args.no_moderation:
        print("vstage: moderation is OFF (--no-moderation): neither the line nor the reply "
              "is checked", file=sys.stderr)
        text = clean_viewer_text(args.text, max_chars=persona_cfg.moderation.max_chars)
        name = args.user
    else:
        moderator = Moderator(settings=persona_cfg.moderation, audit=audit, persona=persona_cfg.id,
                              instructions=(system_prompt(persona_cfg), persona_cfg.personality))
        verdict = moderator.check_input(event)  # before any model loads: a refusal is instant
        if not verdict.allowed:
            print(f"vstage: not answered, refused by moderation: {verdict.reason} "
                  f"(rule {verdict.rule}; --no-moderation bypasses it)", file=sys.stderr)
            return 1
        text, name = verdict.text, moderator.speakable_name(viewer)

    def screen(sentence: str) -> str | None:  # output moderation, as the orchestrator does
        assert moderator is not None
        verdict = moderator.check_output(sentence, event=event)
        return verdict.text or sentence if verdict.allowed else None

    t0 = time.monotonic()
    personas = await load_personas(config, [persona_cfg.id])
    persona = personas[persona_cfg.id]
    loaded = time.monotonic() - t0
    reply = await perform(persona, viewer=name, text=text,
                          screen=screen if moderator is not None else None,
                          context_key=f"{event.platform}:{viewer.id}")
    print(reply.text)
    # A teacher's notes: shown in chat under the answer, never spoken.
    if reply.correction:
        print(f"✎ {reply.correction}")
    if reply.gloss:
        print(f"≈ {reply.gloss}")
    t = reply.trace
    print(
        f"\n[{persona.config.name}] models loaded in {loaded:.1f}s; first clip after "
        f"{t.since_start('first_clip'):.2f}s, reply done after {t.since_start('done'):.2f}s",
        file=sys.stderr,
    )
    # The pipeline hands out frames and audio; the clip files of each sentence are made here,
    # as the clip recorder makes them for a show.
    for p in reply.performances:
        files = await asyncio.to_thread(
            encode_clip, frames=p.frames, audio=p.speech.audio, sample_rate=p.speech.sample_rate,
            fps=p.fps, out_base=persona.clips_dir / f"{reply.reply_id}-{p.index:02d}",
            formats=persona.clip_settings.formats)
        for f in files:
            print(f"  clip {p.index}: {f.path}", file=sys.stderr)
    if args.out:
        out = Path(args.out)
        fmt = out.suffix.lstrip(".").lower()
        if fmt not in ("mp4", "webm"):
            raise VStageError(f"--out must end in .mp4 or .webm, not {out.suffix!r}")
        if not reply.performances:
            raise VStageError("the reply has no sentence to write (output moderation blocked "
                              f"them all); {out} not written")
        sr = reply.performances[0].speech.sample_rate
        fps = reply.performances[0].fps
        audio = []
        for p in reply.performances:  # each sentence's audio padded to its frames' length
            n = round(p.n_frames * sr / fps)
            audio.append(np.pad(p.speech.audio, (0, max(0, n - len(p.speech.audio))))[:n])
        out.parent.mkdir(parents=True, exist_ok=True)
        whole = await asyncio.to_thread(
            encode_clip, frames=np.concatenate([p.frames for p in reply.performances]),
            audio=np.concatenate(audio), sample_rate=sr, fps=fps, out_base=out.with_suffix(""),
            formats=(fmt,))
        print(f"  whole reply: {whole[0].path}", file=sys.stderr)
    await persona.aclose()
    return 0


def _trace(args) -> int:
    """Show the last traces of the running studio (it keeps them in memory)."""
    import json
    import urllib.error
    import urllib.request

    from bots.config import studio_token

    config = _load(args)
    studio = config.app.studio
    host = "127.0.0.1" if studio.host in ("0.0.0.0", "::") else studio.host
    url = f"http://{host}:{args.port or studio.port}/api/traces?n={args.n}"
    req = urllib.request.Request(url, headers={
        "Authorization": f"Bearer {studio_token(config).get_secret_value()}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            traces = json.loads(r.read())["traces"]
    except urllib.error.URLError as e:
        raise VStageError(f"no studio answering at {url} ({e.reason}); is `vstage demo` "
                          "running?") from e
    if args.json:
        print(json.dumps(traces, indent=2))
        return 0
    cols = ("first_clip", "on_stage", "done")
    print(f"{'trace':12} {'persona':8} {'user':12} {'status':11} "
          + " ".join(f"{c:>10}" for c in cols) + "  text / reason")
    for t in traces:
        st = t["stages"]
        times = " ".join(f"{st[c]:>9.2f}s" if c in st else f"{'-':>10}" for c in cols)
        tail = t["text"][:40] + (f"  [{t['reason']}]" if t.get("reason") else "")
        print(f"{t['trace_id']:12} {t['persona'][:8]:8} {t['user'][:12]:12} "
              f"{t['status']:11} {times}  {tail}")
    return 0


async def _twitch_login(args) -> int:
    require_extra("twitch", feature="vstage twitch login")
    from bots.adapters.twitch.auth import BROADCASTER_SCOPES, SCOPES, device_login
    from bots.adapters.twitch.setup import broadcaster_token_store, token_store

    config = _load(args)
    client_id = args.client_id or config.app.twitch.client_id
    if not client_id:
        raise VStageError("no Twitch client id: set twitch.client_id in config/vstage.yaml "
                          "or pass --client-id (see docs/twitch.md)")
    scopes: tuple[str, ...]
    if args.broadcaster:
        store, scopes, who = broadcaster_token_store(config), BROADCASTER_SCOPES, "broadcaster"
        print("Approve with the broadcaster's account (the channel owner), not the bot's.")
    else:
        store, scopes, who = token_store(config), SCOPES, "bot"
    tokens = await device_login(client_id=client_id, store=store, scopes=scopes)
    print(f"Logged in to Twitch as {tokens.login} ({who}); tokens saved to {store.path} (0600).")
    return 0


async def _twitch_setup(args) -> int:
    """Create each persona's channel-point reward through Helix, so vstage may fulfil and
    refund its redemptions (Twitch allows that only to the app that made the reward)."""
    require_extra("twitch", feature="vstage twitch setup")
    from bots.adapters.twitch.auth import Helix, TokenManager
    from bots.adapters.twitch.rewards import ensure_rewards, reward_specs
    from bots.adapters.twitch.setup import broadcaster_token_store, token_store

    config = _load(args)
    tw = config.app.twitch
    specs = reward_specs(config.personas.values())
    if not specs:
        print("No persona names a channel-point reward (twitch.reward_title): nothing to do.")
        return 0
    if not tw.client_id:
        raise VStageError("no Twitch client id: set twitch.client_id in config/vstage.yaml "
                          "(see docs/twitch.md)")
    store = broadcaster_token_store(config)
    if not store.exists():
        store = token_store(config)
    if not store.exists():
        raise VStageError("not logged in to Twitch: run `vstage twitch login` first")
    secret = tw.client_secret.get_secret_value() if tw.client_secret else None
    tokens = TokenManager(store=store, client_id=tw.client_id, client_secret=secret)
    broadcaster_id = tw.broadcaster_id or tokens.tokens.user_id
    if tokens.tokens.user_id != broadcaster_id:
        raise VStageError("channel-point rewards are made with the broadcaster's login: run "
                          "`vstage twitch login --broadcaster`, then this again")
    async with Helix(tokens=tokens) as helix:
        report = await ensure_rewards(helix, broadcaster_id=broadcaster_id, specs=specs)
    for title in report.created:
        print(f"  created the reward {title!r}")
    for title in report.kept:
        print(f"  the reward {title!r} is there (made by vstage)")
    for problem in report.problems:
        print(f"  problem: {problem}")
    print("Twitch rewards are set up" + (" (nothing to change)" if not report.created else "")
          + ("; see the problems above." if report.problems else "."))
    return 2 if report.problems else 0


async def _obs_setup(args) -> int:
    require_extra("obs", feature="vstage obs setup")
    from avatar_engine.renderers.factory import create_renderer
    from bots.app import key_colours
    from overlays.obs.driver import ObsDriver
    from overlays.obs.setup import setup_obs

    config = _load(args)
    obs = config.app.obs

    def keys_for_avatars() -> dict:
        # The same key colour per persona as the running app picks (farthest from its art).
        return key_colours({pid: create_renderer(config.persona(pid).avatar)
                            for pid in config.personas})

    keys = await asyncio.to_thread(keys_for_avatars)
    async with ObsDriver(settings=obs) as driver:
        if not await driver.wait_ready(10):
            raise VStageError(f"OBS is not reachable at {obs.host}:{obs.port}: is it running, "
                              "with the WebSocket server on and VSTAGE_OBS__PASSWORD right?")
        report = await setup_obs(driver, obs, list(config.personas), keys)
    for item in report.created:
        print(f"  created {item}")
    for item in report.repaired:
        print(f"  put back in place {item}")
    for warning in report.warnings:
        print(f"  warning: {warning}")
    changed = report.created or report.repaired
    print("OBS is set up" + (" (nothing to change)" if not changed else "") + ".")
    return 0


def _worker(args) -> int:
    """Serve render jobs from RabbitMQ until SIGINT/SIGTERM (see docs/workers.md)."""
    import os

    require_extra("rabbit", feature="vstage worker")

    from avatar_engine.workers import jobs, worker

    broker = args.broker or os.environ.get("VSTAGE_BROKER")
    if broker is None:
        url = _load(args).app.show.broker_url
        if url is None:
            raise VStageError("no broker: pass --broker amqp://user:pass@host:5672/ or set "
                              "VSTAGE_SHOW__BROKER_URL (see docs/workers.md)")
        broker = url.get_secret_value()
    argv = ["--broker", broker, "--queue", args.queue, "--prefetch", str(args.prefetch),
            "--import", jobs.__name__]
    return worker.main([*argv, *(["--verbose"] if args.verbose else [])])


def _check(args) -> int:
    from avatar_engine.settings import PortraitSettings, Wav2LipSettings
    from bots.config import extras_needed, language_warnings, missing_files

    config = _load(args)
    missing = missing_files(config)
    for extra, setting in extras_needed(config.app).items():
        try:
            require_extra(extra, feature=setting)
        except MissingDependency as e:
            missing.append(str(e))
    for line in missing:
        print(f"vstage: {line}", file=sys.stderr)
    # Warnings do not fail the check: the persona runs, only not (well) in its language.
    warnings = language_warnings(config)
    for line in warnings:
        print(f"vstage: warning: {line}", file=sys.stderr)
    noted = f" ({len(warnings)} warning{'s' if len(warnings) > 1 else ''})" if warnings else ""
    print(f"config {'has missing files' if missing else 'OK'}{noted}: {config.root}")
    for p in config.personas.values():
        av = p.avatar
        avatar = (f"wav2lip:{av.checkpoint}" if isinstance(av, Wav2LipSettings)
                  else f"portrait:{av.image}" if isinstance(av, PortraitSettings)
                  else f"sprites:{av.sprites}")
        print(f"  persona {p.id}: {p.name} ({p.language}), llm={p.llm.provider}:{p.llm.model}, "
              f"voice={p.voice.provider}:{p.voice.model}, avatar={avatar}")
    return 2 if missing else 0


_COMMAND_MODULES = ("bots.talk.cli", "bots.memory.cli", "bots.personas.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vstage", description="AI virtual streamers.")
    parser.add_argument("--config", help="config folder (default: the repo's config/)")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--log-json", action="store_true", help="one JSON object per log line")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the local studio on the embedded models")
    demo.add_argument("--host", help="bind address (default from config: 127.0.0.1)")
    demo.add_argument("--port", type=int, help="port (default from config: 8765)")
    demo.add_argument("--exit-after", type=float, help=argparse.SUPPRESS)

    ask = sub.add_parser("ask", help="one reply from the shell; prints it and writes clips")
    ask.add_argument("text")
    ask.add_argument("--persona", help="persona id (default from config)")
    ask.add_argument("--user", default="viewer", help="viewer name the persona sees")
    ask.add_argument("--out", help="also write the whole reply as one .mp4 or .webm")
    ask.add_argument("--role", choices=("viewer", "subscriber", "vip", "mod", "broadcaster"),
                     default="viewer", help="who asks, for moderation (default %(default)s)")
    ask.add_argument("--no-moderation", action="store_true",
                     help="answer without checking the line or the reply (printed as such)")

    sub.add_parser("check", help="validate the configuration and list the personas")

    twitch = sub.add_parser("twitch", help="Twitch set-up")
    twitch_sub = twitch.add_subparsers(dest="twitch_command", required=True)
    login = twitch_sub.add_parser("login", help="log the bot in (Device Code Grant flow)")
    login.add_argument("--client-id", help="the application's client id (default: config)")
    login.add_argument("--broadcaster", action="store_true",
                       help="log the broadcaster in instead (channel events and redemptions "
                       "when the bot is another account); tokens go to "
                       "twitch.broadcaster_token_file")
    twitch_sub.add_parser("setup", help="create each persona's channel-point reward so vstage "
                          "may fulfil and refund it (idempotent)")

    obs = sub.add_parser("obs", help="OBS set-up")
    obs_sub = obs.add_subparsers(dest="obs_command", required=True)
    obs_sub.add_parser("setup", help="create the personas' scenes and sources (idempotent)")

    work = sub.add_parser("worker", help="render clips for a studio on this machine (RabbitMQ)")
    work.add_argument("--broker", help="amqp://user:pass@host:5672/vhost (default: "
                      "$VSTAGE_BROKER, then show.broker_url)")
    work.add_argument("--queue", default=DEFAULT_QUEUE, help="job queue (default %(default)s)")
    work.add_argument("--prefetch", type=int, default=1, help="jobs held at once (default 1)")

    # Command groups of their own modules: each `register(sub)` adds its parsers and sets
    # `run` (args -> exit code) as their default.
    for module in _COMMAND_MODULES:
        importlib.import_module(module).register(sub)

    trace = sub.add_parser("trace", help="show the last traces of the running studio")
    trace.add_argument("-n", type=int, default=20, help="how many (default 20)")
    trace.add_argument("--port", type=int, help="studio port (default from config)")
    trace.add_argument("--json", action="store_true", help="raw JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(verbose=args.verbose, json_lines=args.log_json)
    try:
        if getattr(args, "run", None) is not None:
            return int(args.run(args))
        if args.command == "demo":
            return asyncio.run(_demo(args))
        if args.command == "ask":
            return asyncio.run(_ask(args))
        if args.command == "trace":
            return _trace(args)
        if args.command == "twitch":
            if args.twitch_command == "setup":
                return asyncio.run(_twitch_setup(args))
            return asyncio.run(_twitch_login(args))
        if args.command == "worker":
            return _worker(args)
        if args.command == "obs":
            return asyncio.run(_obs_setup(args))
        return _check(args)
    except VStageError as e:
        print(f"vstage: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
