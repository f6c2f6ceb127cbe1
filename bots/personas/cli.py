"""Command line of this package (registered by :mod:`bots.cli`): ``vstage persona import`` and
``vstage persona export`` (Character Cards, see docs/cards.md)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from vstage_core.errors import VStageError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``vstage persona ...`` to ``vstage``."""
    persona = sub.add_parser("persona", help="personas: import and export Character Cards")
    persona_sub = persona.add_subparsers(dest="persona_command", required=True)
    imp = persona_sub.add_parser(
        "import", help="make a persona from a Character Card (V2/V3 PNG or JSON)")
    imp.add_argument("card", type=Path, help="the card file (.png or .json)")
    imp.add_argument("--personas-dir", type=Path,
                     help="where persona files go (default: the config's personas folder); "
                     "the avatar goes to avatars/ beside it")
    imp.add_argument("--id", dest="persona_id",
                     help="the persona's id (default: made from the card's name)")
    imp.set_defaults(run=_import)
    exp = persona_sub.add_parser("export", help="write a persona as a V3 Character Card PNG")
    exp.add_argument("persona_id", metavar="ID", help="the persona's id")
    exp.add_argument("--out", type=Path, help="the card to write (default: ./ID.png)")
    exp.set_defaults(run=_export)


def _import(args: argparse.Namespace) -> int:
    from bots.config import default_config_dir, load_config, persona_file
    from bots.personas.cards import import_card

    card: Path = args.card
    try:
        raw = card.read_bytes()
    except OSError as e:
        raise VStageError(f"cannot read the card {card}: {e.strerror or e}") from e
    taken: tuple[str, ...] = ()
    if args.personas_dir is not None:
        personas_dir = Path(args.personas_dir).resolve()
        config_dir = Path(args.config).resolve() if args.config else personas_dir.parent
    else:
        config = load_config(Path(args.config) if args.config else default_config_dir())
        config_dir = config.root
        personas_dir = persona_file(config, config.app.default_persona).parent
        taken = tuple(config.personas)
    result = import_card(raw, personas_dir=personas_dir, config_dir=config_dir,
                         persona_id=args.persona_id, taken=taken, source=card.name)
    p = result.persona
    print(f"{p.id} {result.file}")
    print(f"  imported {p.name!r} from {card}", file=sys.stderr)
    if result.avatar_dir is not None:
        print(f"  avatar: {result.avatar_dir} (renderer: portrait)", file=sys.stderr)
    for warning in result.warnings:
        print(f"  note: {warning}", file=sys.stderr)
    print(f"  try it: vstage ask --persona {p.id} \"hi {p.name}!\"", file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
    from bots.config import default_config_dir, load_config
    from bots.personas.cards import export_card

    config = load_config(Path(args.config) if args.config else default_config_dir())
    persona = config.persona(args.persona_id)
    png = export_card(persona)
    out: Path = args.out or Path(f"{persona.id}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written beside its place and renamed: a reader never sees half a card.
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}-", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(png)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    print(out)
    return 0
