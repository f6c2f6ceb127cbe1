"""Command line of long-term memory (registered by :mod:`bots.cli`), for the streamer:

    vstage memory show VIEWER [--persona P]     what is kept about a viewer
    vstage memory export VIEWER [--out FILE]    all of it as JSON (a viewer's data request)
    vstage memory forget VIEWER [--persona P] [--yes]
    vstage memory link A B                      make two accounts one person

VIEWER is ``platform:id`` (``twitch:12345``, ``discord:8101``), a person id or a display name.
The commands open the configured store directly (SQLite under ``state_dir`` or
``memory.url``); they work while the show runs, which sees a link or a forget within
half a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vstage_core.errors import VStageError

if TYPE_CHECKING:
    from bots.memory.store import MemoryStore

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``vstage memory ...`` to the command line."""
    memory = sub.add_parser("memory", help="what the personas remember about viewers")
    msub = memory.add_subparsers(dest="memory_command", required=True)
    viewer_help = "platform:id (twitch:12345), a person id or a display name"
    show = msub.add_parser("show", help="what is kept about a viewer")
    show.add_argument("viewer", help=viewer_help)
    show.add_argument("--persona", help="only this persona's notes")
    export = msub.add_parser("export", help="everything kept about a viewer, as JSON")
    export.add_argument("viewer", help=viewer_help)
    export.add_argument("--out", help="write the JSON to this file (default: print it)")
    forget = msub.add_parser("forget", help="erase everything kept about a viewer (and the "
                                            "accounts linked to them)")
    forget.add_argument("viewer", help=viewer_help)
    forget.add_argument("--persona", help="erase only this persona's notes and history")
    forget.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    link = msub.add_parser("link", help="make two accounts one person (they share memories)")
    link.add_argument("a", help="platform:id or a name, e.g. twitch:12345")
    link.add_argument("b", help="platform:id or a name, e.g. discord:8101")
    memory.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run one ``vstage memory`` command; the exit code."""
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    from bots.config import load_config
    from bots.memory.store import MemoryStore

    config = load_config(Path(args.config) if args.config else None)
    settings = config.app.memory
    url = settings.url.get_secret_value() if settings.url is not None else None
    async with await MemoryStore.open(url, state_dir=config.state_dir) as store:
        if args.memory_command == "link":
            return await _link(store, args.a, args.b)
        person = await _person(store, args.viewer)
        if args.memory_command == "show":
            return await _show(store, person, persona=args.persona)
        if args.memory_command == "export":
            return await _export(store, person, out=args.out)
        return await _forget(store, person, persona=args.persona, yes=args.yes,
                             viewer=args.viewer)


async def _person(store: MemoryStore, query: str) -> str:
    """The one person ``query`` names; a clear error for none or several."""
    found = await store.find_viewer(query.strip())
    persons = sorted({v["person"] for v in found})
    if not persons:
        raise VStageError(f"no viewer matches {query!r}: give platform:id (e.g. twitch:12345), "
                          "a person id or the exact display name")
    if len(persons) > 1:
        names = ", ".join(f"{v['platform']}:{v['viewer_id']} ({v['name'] or '?'})"
                          for v in found)
        raise VStageError(f"{query!r} matches {len(persons)} different people: {names}; "
                          "name one as platform:id")
    return persons[0]


async def _account(store: MemoryStore, query: str) -> tuple[str, str]:
    """One account for ``link``: a known viewer, or ``platform:id`` not seen yet."""
    found = await store.find_viewer(query.strip())
    if len(found) == 1:
        return found[0]["platform"], found[0]["viewer_id"]
    if len(found) > 1:
        names = ", ".join(f"{v['platform']}:{v['viewer_id']}" for v in found)
        raise VStageError(f"{query!r} matches several accounts ({names}); name one as "
                          "platform:id")
    platform, sep, viewer_id = query.strip().partition(":")
    if not sep or not platform or not viewer_id:
        raise VStageError(f"no viewer matches {query!r}; to link an account not seen yet, "
                          "give it as platform:id (e.g. discord:8101)")
    return platform.lower(), viewer_id


async def _show(store: MemoryStore, person: str, *, persona: str | None) -> int:
    data = await store.export(person)
    print(f"person {person}")
    for v in data["viewers"]:
        print(f"  {v['platform']}:{v['viewer_id']}  {v['name'] or '-'}  "
              f"(first seen {v['first_seen'][:10]})")
    notes = [m for m in data["memories"] if persona is None or m["persona"] == persona]
    turns = Counter(t["persona"] for t in data["turns"]
                    if persona is None or t["persona"] == persona)
    if not notes and not turns:
        print("nothing is kept" + (f" by {persona}" if persona else ""))
        return 0
    for pid in sorted({m["persona"] for m in notes} | set(turns)):
        print(f"\n{pid}: {turns.get(pid, 0)} turn(s) of conversation kept")
        for m in notes:
            if m["persona"] == pid:
                where = m["platform"] or "-"
                print(f"  [{m['kind']}] {m['text']}   ({m['created_at'][:10]}, {where})")
    return 0


async def _export(store: MemoryStore, person: str, *, out: str | None) -> int:
    data: dict[str, Any] = await store.export(person)
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        sys.stdout.write(text)
        return 0
    path = Path(out)
    await asyncio.to_thread(_write_private, path, text)
    print(f"wrote {path} ({len(data['memories'])} notes, {len(data['turns'])} turns)")
    return 0


def _write_private(path: Path, text: str) -> None:
    """Blocking: write ``text`` to ``path``, readable by its owner only (personal data)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode otherwise
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


async def _forget(store: MemoryStore, person: str, *, persona: str | None, yes: bool,
                  viewer: str) -> int:
    what = f"{persona}'s notes and history of" if persona else "everything kept about"
    if not yes:
        if not sys.stdin.isatty():
            raise VStageError("forgetting cannot be undone: add --yes to confirm")
        answer = await asyncio.to_thread(
            input, f"Erase {what} {viewer} (person {person})? [y/N] ")
        if answer.strip().casefold() not in ("y", "yes"):
            print("nothing erased")
            return 1
    erased = await store.forget(person, persona=persona)
    print(f"erased {erased} row(s): {what} {viewer}")
    return 0


async def _link(store: MemoryStore, a: str, b: str) -> int:
    first, second = await _account(store, a), await _account(store, b)
    if first == second:
        raise VStageError("that is the same account twice")
    person = await store.link(first, second)
    print(f"linked {first[0]}:{first[1]} and {second[0]}:{second[1]} as person {person}")
    return 0
