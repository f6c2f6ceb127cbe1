"""Command line of private conversations (registered by :mod:`bots.cli`):
``vstage talk invite [--persona P] [--uses N] [--port PORT]`` asks the running studio for a
one-time invite link to ``/talk`` and prints it."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

from vstage_core.errors import VStageError

__all__ = ["register"]

_TIMEOUT_S = 5.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``vstage talk ...`` to the command line."""
    talk = sub.add_parser("talk", help="private conversations (/talk)")
    talk_sub = talk.add_subparsers(dest="talk_command", required=True)
    invite = talk_sub.add_parser(
        "invite", help="print a one-time invite link to /talk (asks the running studio; "
                       "needs talk.access: invite)")
    invite.add_argument("--persona", help="the link opens a conversation with this persona "
                                          "only (default: any)")
    invite.add_argument("--uses", type=int, default=1,
                        help="conversations the link opens (default %(default)s)")
    invite.add_argument("--port", type=int, help="studio port (default from config)")
    invite.set_defaults(run=_invite)


def _invite(args: argparse.Namespace) -> int:
    """Ask the running studio (``POST /api/talk/invites`` with the token) for an invite."""
    from bots.config import load_config, studio_token

    if not 1 <= args.uses <= 100:
        raise VStageError(f"--uses must be from 1 to 100, not {args.uses}")
    config = load_config(Path(args.config) if args.config else None)
    studio = config.app.studio
    host = "127.0.0.1" if studio.host in ("0.0.0.0", "::") else studio.host
    url = f"http://{host}:{args.port or studio.port}/api/talk/invites"
    body: dict[str, object] = {"uses": args.uses}
    if args.persona:
        body["persona"] = args.persona
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {studio_token(config).get_secret_value()}",
        "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=_TIMEOUT_S) as r:
            answer = json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise VStageError(f"the studio refused the invite: {_reason(e)}") from None
    except urllib.error.URLError as e:
        raise VStageError(f"no studio answering at {url} ({e.reason}); is `vstage demo` "
                          "running?") from None
    except (OSError, json.JSONDecodeError) as e:
        raise VStageError(f"the studio at {url} did not answer properly ({e})") from None
    print(answer["url"])
    who = f"with {args.persona}" if args.persona else "with any persona"
    times = "once" if args.uses == 1 else f"{args.uses} times"
    print(f"(opens a conversation {who}, {times}; keep it private until you hand it over)",
          file=sys.stderr)
    return 0


def _reason(error: urllib.error.HTTPError) -> str:
    """The ``error`` field of a JSON error response, else the HTTP status."""
    if error.code == 404:
        return "this studio does not serve /talk (talk.enabled is false, or an older vstage)"
    try:
        reason = json.loads(error.read()).get("error")
    except (OSError, ValueError, AttributeError):
        reason = None
    return f"{reason} (HTTP {error.code})" if reason else f"HTTP {error.code} {error.reason}"
