"""Character Cards (the SillyTavern V2 and V3 formats people share personalities in): read one
from a PNG or a JSON file, turn it into a persona file and an avatar folder, and write a persona
back as a V3 card.

A card is JSON, ``{"spec": "chara_card_v2" | "chara_card_v3", "spec_version", "data": {...}}``.
In a PNG it is base64 text in a ``tEXt`` chunk whose keyword is ``chara`` (V2) or ``ccv3``
(V3); the picture itself is the character. The mapping (docs/cards.md):

============================  =================================================================
card (``data.``)              persona
============================  =================================================================
name                          ``name`` (the id is made from it, or given)
description, personality,     ``personality``, in that order; the system prompt as "Character
system_prompt                 instructions", inside vstage's own prompt, never replacing it
first_mes                     ``greeting`` (macros filled: it is spoken as it is)
scenario, mes_example,        ``scenario``, ``example_dialogue``,
post_history_instructions     ``post_history_instructions`` (macros filled in the prompt)
tags                          ``tags``
character_book                ``lorebook`` (entries brought up by keywords)
the PNG's picture             ``config/avatars/<id>/portrait.png``, ``renderer: portrait``
everything else               ``card``, kept as it was and written back on export
============================  =================================================================

A bad card (not a PNG or JSON, no card chunk, bad base64 or JSON, no known ``spec``, no name,
a field of the wrong type or absurd size) raises :class:`CardError` with a machine-readable
``code`` and writes nothing. :func:`import_card` takes the card's bytes, as an upload would
give them, and returns the new persona.
"""

from __future__ import annotations

import base64
import binascii
import copy
import io
import json
import logging
import math
import os
import re
import shutil
import struct
import tempfile
import unicodedata
import zlib
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from avatar_engine.settings import PortraitSettings, Wav2LipSettings
from bots.config import PersonaConfig, load_persona
from bots.personas.lore import Lorebook, LoreEntry
from bots.personas.prompt import fill_macros
from vstage_core.errors import ConfigError, VStageError

__all__ = [
    "CHUNK_V2",
    "CHUNK_V3",
    "MAX_CARD_BYTES",
    "MAX_TEXT_CHARS",
    "SPEC_V2",
    "SPEC_V3",
    "CardError",
    "CharacterCard",
    "ImportedPersona",
    "card_from_json",
    "card_to_persona",
    "embed_card",
    "export_card",
    "import_card",
    "persona_document",
    "persona_id_for",
    "persona_to_card",
    "png_text_chunks",
    "read_card",
]

logger = logging.getLogger(__name__)

SPEC_V2 = "chara_card_v2"
SPEC_V3 = "chara_card_v3"
CHUNK_V2 = "chara"
CHUNK_V3 = "ccv3"
MAX_CARD_BYTES = 16 * 1024 * 1024
"""The largest card file read (the biggest shared cards, art and lorebook, are a few MB)."""
MAX_TEXT_CHARS = 100_000
"""The longest text a card field may hold; a longer one is refused, not cut."""
MAX_PICTURE_PIXELS = 40_000_000

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = (b"tEXt", b"iTXt", b"zTXt")
_NAME_CHARS = 40
_GREETING_USER = "chat"  # a greeting is said to the whole chat
_INSTRUCTIONS = "Character instructions: "
_PERSONA_FIELDS = ("name", "scenario", "mes_example", "post_history_instructions", "tags",
                   "character_book")  # held by the persona itself, not kept in `card`
_USED_TEXT = ("name", "description", "personality", "system_prompt", "first_mes", "scenario",
              "mes_example", "post_history_instructions")
_ENTRY_FIELDS = ("keys", "content", "enabled", "insertion_order", "case_sensitive", "name",
                 "priority", "selective", "secondary_keys", "constant", "position", "use_regex")
_BOOK_FIELDS = ("entries", "name", "description", "recursive_scanning")
_DEFAULT_BOOK = Lorebook()
# A V3 card's required fields, with the value written when a persona has none.
_V3_DEFAULTS: dict[str, Any] = {
    "name": "", "description": "", "personality": "", "scenario": "", "first_mes": "",
    "mes_example": "", "creator_notes": "", "system_prompt": "",
    "post_history_instructions": "", "alternate_greetings": [], "tags": [], "creator": "",
    "character_version": "", "extensions": {}, "group_only_greetings": [],
}
_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")  # PersonaConfig.id's pattern
_CHARS_PER_TOKEN = 3.5
_EMBEDDED_CONTEXT_MAX = 8192  # SmolLM2's training context


class CardError(ConfigError):
    """A Character Card that cannot be read or imported.

    Args:
        message: what is wrong, for a person.
        code: what is wrong, for code: ``too_large``, ``not_a_card``, ``bad_png``,
            ``no_card_chunk``, ``bad_base64``, ``bad_json``, ``bad_spec``, ``missing_name``,
            ``bad_field``, ``field_too_long``, ``empty_character``, ``bad_image``, ``bad_id``,
            ``exists``, ``no_image``.
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class CharacterCard:
    """A card as read: its JSON, and the picture it came in.

    Attributes:
        spec: ``chara_card_v2`` or ``chara_card_v3``.
        spec_version: as written (``"2.0"``, ``"3.0"``).
        data: the card's ``data`` object.
        extra: other top-level fields (kept for export).
        image: the PNG the card was embedded in; None for a JSON card.
    """

    spec: str
    spec_version: str
    data: Mapping[str, Any]
    extra: Mapping[str, Any]
    image: bytes | None = None

    @property
    def name(self) -> str:
        return str(self.data["name"])


@dataclass(frozen=True)
class ImportedPersona:
    """What :func:`import_card` made.

    Attributes:
        persona: the new persona, as the loader reads it back.
        file: its persona file.
        avatar_dir: the folder holding its picture (None for a card without one: the persona
            gets the default avatar).
        warnings: things the streamer should know (a guessed mouth, a long card).
    """

    persona: PersonaConfig
    file: Path
    avatar_dir: Path | None
    warnings: tuple[str, ...] = ()


# --------------------------------------------------------------------------- PNG chunks


def _png_chunks(png: bytes) -> Iterator[tuple[bytes, bytes, int, int]]:
    """Every chunk of ``png``: (type, payload, start, end) with ``start:end`` the whole chunk
    (length, type, payload, CRC). Checks the signature, each length and each CRC."""
    if not png.startswith(_PNG_SIGNATURE):
        raise CardError("not a PNG file", code="bad_png")
    pos = len(_PNG_SIGNATURE)
    while pos < len(png):
        if pos + 8 > len(png):
            raise CardError(f"the PNG is cut short at byte {pos}", code="bad_png")
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        end = pos + 12 + length
        if end > len(png):
            raise CardError(f"the PNG is cut short inside its {kind.decode('latin-1')!r} chunk",
                            code="bad_png")
        payload = png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[end - 4 : end])
        if zlib.crc32(kind + payload) != crc:
            raise CardError(f"the PNG's {kind.decode('latin-1')!r} chunk is damaged (bad CRC)",
                            code="bad_png")
        yield kind, payload, pos, end
        pos = end
        if kind == b"IEND":
            return
    raise CardError("the PNG has no end (IEND chunk)", code="bad_png")


def _inflate(data: bytes) -> bytes:
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, MAX_CARD_BYTES + 1)
    except zlib.error as e:
        raise CardError(f"a compressed text chunk is damaged: {e}", code="bad_png") from e
    if len(out) > MAX_CARD_BYTES or d.unconsumed_tail:
        raise CardError(f"a compressed text chunk unpacks to more than "
                        f"{MAX_CARD_BYTES // 2**20} MB", code="too_large")
    return out


def _text_chunk(kind: bytes, payload: bytes) -> tuple[str, bytes]:
    """(keyword, text bytes) of a tEXt, zTXt or iTXt chunk."""
    keyword, sep, rest = payload.partition(b"\0")
    if not sep:
        raise CardError("a PNG text chunk has no keyword separator", code="bad_png")
    if kind == b"zTXt":
        return keyword.decode("latin-1"), _inflate(rest[1:])
    if kind == b"iTXt":
        compressed = rest[:1] == b"\1"
        _, _, rest = rest[2:].partition(b"\0")  # language tag
        _, _, text = rest.partition(b"\0")  # translated keyword
        return keyword.decode("latin-1"), _inflate(text) if compressed else text
    return keyword.decode("latin-1"), rest


def png_text_chunks(png: bytes) -> dict[str, bytes]:
    """The text chunks of a PNG by keyword (the first of each), raw.

    Raises:
        CardError: not a PNG, or a damaged one.
    """
    out: dict[str, bytes] = {}
    for kind, payload, _, _ in _png_chunks(png):
        if kind in _TEXT_CHUNKS:
            keyword, text = _text_chunk(kind, payload)
            out.setdefault(keyword, text)
    return out


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload)))


def embed_card(png: bytes, card: Mapping[str, Any]) -> bytes:
    """``png`` with ``card`` (V3 JSON) in a ``ccv3`` chunk and, for older readers, its V2 form
    in a ``chara`` chunk; card chunks already there are replaced."""
    v3 = json.dumps(card, ensure_ascii=False).encode("utf-8")
    v2 = json.dumps({**card, "spec": SPEC_V2, "spec_version": "2.0"},
                    ensure_ascii=False).encode("utf-8")
    texts = [_chunk(b"tEXt", f"{key}\0".encode("latin-1") + base64.b64encode(value))
             for key, value in ((CHUNK_V2, v2), (CHUNK_V3, v3))]
    out = [_PNG_SIGNATURE]
    for kind, payload, start, end in _png_chunks(png):
        if kind in _TEXT_CHUNKS and _text_chunk(kind, payload)[0] in (CHUNK_V2, CHUNK_V3):
            continue
        if kind == b"IEND":
            out.extend(texts)
        out.append(png[start:end])
    return b"".join(out)


# --------------------------------------------------------------------------- reading


def read_card(raw: bytes) -> CharacterCard:
    """A card from a PNG (``ccv3`` preferred over ``chara``) or a JSON file's bytes.

    Raises:
        CardError: what is wrong, with its code (see :class:`CardError`).
    """
    if len(raw) > MAX_CARD_BYTES:
        raise CardError(f"the card is {len(raw) / 2**20:.1f} MB; cards up to "
                        f"{MAX_CARD_BYTES // 2**20} MB are read", code="too_large")
    if raw.startswith(_PNG_SIGNATURE):
        texts = png_text_chunks(raw)
        keyword = next((k for k in (CHUNK_V3, CHUNK_V2) if k in texts), None)
        if keyword is None:
            found = ", ".join(sorted(texts)) or "none"
            raise CardError(f"the PNG holds no character card: no {CHUNK_V3!r} or {CHUNK_V2!r} "
                            f"text chunk (its text chunks: {found})", code="no_card_chunk")
        text = re.sub(rb"\s+", b"", texts[keyword])
        try:
            decoded = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as e:
            raise CardError(f"the PNG's {keyword!r} chunk is not valid base64: {e}",
                            code="bad_base64") from e
        return card_from_json(_parse_json(decoded, f"the PNG's {keyword!r} chunk"), image=raw)
    head = raw.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head == b"{":
        return card_from_json(_parse_json(raw.lstrip(b"\xef\xbb\xbf"), "the JSON card"))
    if raw.startswith(b"PK"):
        raise CardError("this is a zip file (a CHARX card?); vstage reads cards as PNG or JSON: "
                        "export the card as PNG from the app it came from", code="not_a_card")
    raise CardError("not a character card: neither a PNG nor a JSON file", code="not_a_card")


def _parse_json(data: bytes, what: str) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CardError(f"{what} is not UTF-8 text: {e}", code="bad_json") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CardError(f"{what} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}",
                        code="bad_json") from e
    except RecursionError:
        raise CardError(f"{what} nests its JSON too deeply to be a card",
                        code="bad_json") from None


def _check_sizes(value: Any, path: str) -> None:
    """Refuse any text in the card longer than :data:`MAX_TEXT_CHARS` (a walk with a stack of
    its own: a card may nest as deep as the JSON reader allows)."""
    todo = [(value, path)]
    while todo:
        item, where = todo.pop()
        if isinstance(item, str):
            if len(item) > MAX_TEXT_CHARS:
                raise CardError(f"{where} is {len(item):,} characters; a card field may hold "
                                f"{MAX_TEXT_CHARS:,} at most", code="field_too_long")
        elif isinstance(item, dict):
            todo.extend((v, f"{where}.{k}") for k, v in item.items())
        elif isinstance(item, list):
            todo.extend((v, f"{where}[{i}]") for i, v in enumerate(item))


def _kind(value: Any) -> str:
    return {bool: "true/false", int: "a number", float: "a number", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def card_from_json(obj: Any, *, image: bytes | None = None) -> CharacterCard:
    """A card from its parsed JSON, its shape checked.

    Raises:
        CardError: no known ``spec``, no ``data`` object, no name, a used field of the wrong
            type, a field too long.
    """
    if not isinstance(obj, dict):
        raise CardError(f"a card is a JSON object, this is {_kind(obj)}", code="bad_spec")
    spec = obj.get("spec")
    if spec not in (SPEC_V2, SPEC_V3):
        if spec is None:
            v1 = " (it looks like an old V1 card)" if "name" in obj else ""
            raise CardError(f"the card has no 'spec' field{v1}; vstage reads {SPEC_V2!r} and "
                            f"{SPEC_V3!r} cards", code="bad_spec")
        raise CardError(f"unknown card spec {spec!r}; vstage reads {SPEC_V2!r} and {SPEC_V3!r}",
                        code="bad_spec")
    data = obj.get("data")
    if not isinstance(data, dict):
        raise CardError(f"the card's 'data' must be an object, it is {_kind(data)}",
                        code="bad_spec")
    _check_sizes(data, "data")
    for field in _USED_TEXT:
        value = data.get(field)
        if value is not None and not isinstance(value, str):
            raise CardError(f"data.{field} must be text, it is {_kind(value)}", code="bad_field")
    tags = data.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str)
                                                                 for t in tags)):
        raise CardError("data.tags must be a list of texts", code="bad_field")
    book = data.get("character_book")
    if book is not None and not isinstance(book, dict):
        raise CardError(f"data.character_book must be an object, it is {_kind(book)}",
                        code="bad_field")
    if book is not None and not isinstance(book.get("entries", []), list):
        raise CardError("data.character_book.entries must be a list", code="bad_field")
    if not (data.get("name") or "").strip():
        raise CardError("the card has no name (data.name)", code="missing_name")
    version = obj.get("spec_version")
    extra = {k: v for k, v in obj.items() if k not in ("spec", "spec_version", "data")}
    return CharacterCard(spec=str(spec), spec_version=str(version or ""), data=data,
                         extra=extra, image=image)


# --------------------------------------------------------------------------- card -> persona


def persona_id_for(name: str) -> str:
    """A persona id made from a character's name: ``"Seraphina the Kind"`` ->
    ``seraphina-the-kind`` (ASCII, at most 32 characters; ``card`` when nothing is left)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:32].strip("-") or "card"


def _persona_name(name: str) -> str:
    """The card's name as a persona name (at most 40 characters, cut at a word)."""
    name = " ".join(name.split())
    if len(name) <= _NAME_CHARS:
        return name
    cut = name[:_NAME_CHARS]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).strip()


def _compose_personality(data: Mapping[str, Any]) -> str:
    """The persona's ``personality``: the card's description, personality and system prompt
    (labelled as the character's instructions), as written (macros are filled at prompt
    time)."""
    parts = [(data.get("description") or "").strip(), (data.get("personality") or "").strip()]
    system = (data.get("system_prompt") or "").strip()
    if system:
        parts.append(_INSTRUCTIONS + system)
    return "\n\n".join(p for p in parts if p)


def _greeting(first_mes: str | None, name: str) -> str | None:
    text = fill_macros(first_mes or "", char=name, user=_GREETING_USER).strip()
    return text or None


def _lore_error(e: ValidationError, prefix: str) -> CardError:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return CardError(f"{prefix}{'.' + loc if loc else ''}: {err['msg']}", code="bad_field")


def _entry_document(entry: Any, index: int) -> dict[str, Any]:
    where = f"data.character_book.entries[{index}]"
    if not isinstance(entry, dict):
        raise CardError(f"{where} must be an object, it is {_kind(entry)}", code="bad_field")
    doc = {k: entry[k] for k in _ENTRY_FIELDS if k in entry and entry[k] is not None}
    if doc.get("position") not in ("before_char", "after_char"):
        doc.pop("position", None)  # another app's number: kept in `card` as it was
    rest = {k: v for k, v in entry.items() if k not in doc}
    if rest:
        doc["card"] = rest
    try:
        return LoreEntry.model_validate(doc).model_dump(mode="json", exclude_defaults=True)
    except ValidationError as e:
        raise _lore_error(e, where) from None


def _turns_for_depth(depth: Any) -> int | None:
    if isinstance(depth, int | float) and not isinstance(depth, bool) and depth >= 0:
        return min(20, math.ceil(depth / 2))  # scan_depth counts messages, turns are pairs
    return None


def _chars_for_tokens(tokens: Any) -> int | None:
    if isinstance(tokens, int | float) and not isinstance(tokens, bool) and tokens >= 0:
        return min(20_000, int(tokens * 4))
    return None


def _lorebook_document(book: Mapping[str, Any]) -> dict[str, Any]:
    entries = [_entry_document(e, i) for i, e in enumerate(book.get("entries") or [])]
    doc: dict[str, Any] = {"entries": entries}
    for key in ("name", "description", "recursive_scanning"):
        if book.get(key) is not None:
            doc[key] = book[key]
    turns = _turns_for_depth(book.get("scan_depth"))
    if turns is not None:
        doc["scan_turns"] = turns
    chars = _chars_for_tokens(book.get("token_budget"))
    if chars is not None:
        doc["budget_chars"] = chars
    rest = {k: v for k, v in book.items() if k not in _BOOK_FIELDS}
    if rest:
        doc["card"] = rest  # scan_depth and token_budget too, as written
    try:
        return Lorebook.model_validate(doc).model_dump(mode="json", exclude_defaults=True)
    except ValidationError as e:
        raise _lore_error(e, "data.character_book") from None


def _context_tokens(doc: Mapping[str, Any]) -> int:
    """Tokens the persona's prompt may take: its text, the lore budget, a reply and a few
    turns, at ~3.5 characters a token."""
    chars = sum(len(str(doc.get(k) or "")) for k in (
        "personality", "scenario", "example_dialogue", "post_history_instructions"))
    if doc.get("lorebook"):
        chars += int(doc["lorebook"].get("budget_chars", _DEFAULT_BOOK.budget_chars))
    return int(chars / _CHARS_PER_TOKEN) + 1200


def persona_document(card: CharacterCard, *, persona_id: str,
                     avatar: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The persona file's content for ``card`` (plain data, ready for YAML).

    Args:
        card: the card.
        persona_id: the new persona's id.
        avatar: the ``avatar:`` section; None keeps the default avatar.

    Raises:
        CardError: the card says nothing about who the character is, or its lorebook is
            malformed.
    """
    data = card.data
    name = _persona_name(card.name)
    personality = _compose_personality(data)
    if not personality:
        raise CardError("the card has no description, personality or system_prompt: nothing "
                        "says who the character is", code="empty_character")
    doc: dict[str, Any] = {"id": persona_id, "name": name, "language": "en",
                           "personality": personality}
    greeting = _greeting(data.get("first_mes"), name)
    if greeting:
        doc["greeting"] = greeting
    for field, key in (("scenario", "scenario"), ("example_dialogue", "mes_example"),
                       ("post_history_instructions", "post_history_instructions")):
        if (data.get(key) or "").strip():
            doc[field] = data[key]
    if data.get("tags"):
        doc["tags"] = list(data["tags"])
    if isinstance(data.get("character_book"), dict):
        doc["lorebook"] = _lorebook_document(data["character_book"])
    if avatar is not None:
        doc["avatar"] = dict(avatar)
    tokens = _context_tokens(doc)
    if tokens > 2048:
        doc["llm"] = {"context_tokens": min(_EMBEDDED_CONTEXT_MAX, -(-tokens // 1024) * 1024)}
    kept = {k: v for k, v in data.items() if k not in _PERSONA_FIELDS}
    if name != card.name:
        kept["name"] = card.name  # the persona's name is cut to 40 characters
    doc["card"] = {"spec": card.spec, "spec_version": card.spec_version, "data": kept,
                   **card.extra}
    return doc


def card_to_persona(card: CharacterCard, *, persona_id: str,
                    avatar: Mapping[str, Any] | None = None) -> PersonaConfig:
    """The persona ``card`` describes (validated; nothing is written).

    Raises:
        CardError: the card cannot make a valid persona (the message names the field).
    """
    return _validated(persona_document(card, persona_id=persona_id, avatar=avatar))


def _validated(doc: Mapping[str, Any]) -> PersonaConfig:
    try:
        return PersonaConfig.model_validate(doc)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise CardError(f"the card makes an invalid persona: {loc}: {err['msg']}",
                        code="bad_field") from None


# --------------------------------------------------------------------------- persona -> card


def _entry_to_card(entry: LoreEntry) -> dict[str, Any]:
    out = copy.deepcopy(entry.card or {})
    out.update({"keys": list(entry.keys), "content": entry.content, "enabled": entry.enabled,
                "insertion_order": entry.insertion_order})
    for key in ("case_sensitive", "constant", "priority", "selective", "name", "position",
                "use_regex"):
        value = getattr(entry, key)
        if value is not None:
            out[key] = value
    if entry.secondary_keys is not None:
        out["secondary_keys"] = list(entry.secondary_keys)
    out.setdefault("use_regex", False)  # required by V3
    out.setdefault("extensions", {})
    return out


def _book_to_card(book: Lorebook) -> dict[str, Any]:
    out = copy.deepcopy(book.card or {})
    out["entries"] = [_entry_to_card(e) for e in book.entries]
    out.setdefault("extensions", {})
    for key in ("name", "description", "recursive_scanning"):
        value = getattr(book, key)
        if value is not None:
            out[key] = value
    # The card's own numbers when they still say what the lorebook does, else ours.
    if _turns_for_depth(out.get("scan_depth")) != book.scan_turns and not (
            "scan_depth" not in out and book.scan_turns == _DEFAULT_BOOK.scan_turns):
        out["scan_depth"] = book.scan_turns * 2
    if _chars_for_tokens(out.get("token_budget")) != book.budget_chars and not (
            "token_budget" not in out and book.budget_chars == _DEFAULT_BOOK.budget_chars):
        out["token_budget"] = book.budget_chars // 4
    return out


def persona_to_card(persona: PersonaConfig) -> dict[str, Any]:
    """The V3 card of ``persona`` (JSON-able): the fields it was imported from where the
    persona still says the same, its own text where it was changed, and every field of the
    original card it does not use, as it was."""
    card = copy.deepcopy(persona.card or {})
    data: dict[str, Any] = dict(card.pop("data", None) or {})
    card.pop("spec", None)
    card.pop("spec_version", None)
    original_name = data.pop("name", None)
    name = (original_name if isinstance(original_name, str)
            and _persona_name(original_name) == persona.name else persona.name)
    if _compose_personality(data) != persona.personality:
        data.update(description=persona.personality, personality="", system_prompt="")
    if _greeting(data.get("first_mes"), persona.name) != persona.greeting:
        data["first_mes"] = persona.greeting or ""
    data.update({
        "name": name, "scenario": persona.scenario or "",
        "mes_example": persona.example_dialogue or "",
        "post_history_instructions": persona.post_history_instructions or "",
        "tags": list(persona.tags),
    })
    if persona.lorebook is not None:
        data["character_book"] = _book_to_card(persona.lorebook)
    for key, default in _V3_DEFAULTS.items():
        if data.get(key) is None:
            data[key] = copy.deepcopy(default)
    return {"spec": SPEC_V3, "spec_version": "3.0", "data": data, **card}


def _picture_png(raw: bytes, *, what: str) -> bytes:
    """``raw`` (any image Pillow reads) as a plain RGBA PNG with no text chunks."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as im:
            if im.width * im.height > MAX_PICTURE_PIXELS:
                raise CardError(f"{what} is {im.width}x{im.height} pixels; pictures up to "
                                f"{MAX_PICTURE_PIXELS // 1_000_000} megapixels are used",
                                code="bad_image")
            im.load()
            out = io.BytesIO()
            im.convert("RGBA").save(out, format="PNG")
            return out.getvalue()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise CardError(f"{what} cannot be read as a picture: {e}", code="bad_image") from e


def _still_png(persona: PersonaConfig) -> bytes:
    """A picture of the persona's avatar: a portrait's or Wav2Lip's own picture, else the
    renderer's first idle frame."""
    avatar = persona.avatar
    if isinstance(avatar, PortraitSettings | Wav2LipSettings):
        path = avatar.image if isinstance(avatar, PortraitSettings) else avatar.avatar_image
        try:
            raw = Path(path).read_bytes()
        except OSError as e:
            raise CardError(f"cannot read the avatar's picture {path}: {e.strerror or e}",
                            code="no_image") from e
        return _picture_png(raw, what=f"the avatar's picture {path}")
    from PIL import Image

    from avatar_engine.renderers.factory import create_renderer

    try:
        frame = create_renderer(avatar).idle(1)[0].cpu().numpy()
    except VStageError as e:
        raise CardError(f"cannot draw the avatar for the card's picture: {e}",
                        code="no_image") from e
    out = io.BytesIO()
    Image.fromarray(frame).save(out, format="PNG")
    return out.getvalue()


def export_card(persona: PersonaConfig, *, image: bytes | None = None) -> bytes:
    """Blocking: ``persona`` as a V3 card PNG (the avatar's picture, or ``image``, with the
    card embedded). Paths in the persona must be resolved (as :func:`bots.config.load_config`
    leaves them).

    Raises:
        CardError: the avatar's picture cannot be read or drawn.
    """
    png = _picture_png(image, what="the picture") if image is not None else _still_png(persona)
    return embed_card(png, persona_to_card(persona))


# --------------------------------------------------------------------------- import


class _Dumper(yaml.SafeDumper):
    """YAML that reads well: multi-line text as ``|`` blocks, keys in the order given."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # A block would turn the other line breaks YAML knows into "\n": those stay quoted.
    odd = any(c in value for c in "\r\x85\u2028\u2029")
    style = '"' if odd else "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _yaml_text(doc: Mapping[str, Any], header: str) -> str:
    body = yaml.dump(dict(doc), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return header + body


def _persona_exists(persona_id: str, personas_dir: Path, taken: Collection[str]) -> bool:
    return persona_id in taken or any(
        (personas_dir / f"{persona_id}{ext}").exists() for ext in (".yaml", ".yml"))


def _choose_id(card: CharacterCard, persona_id: str | None, personas_dir: Path,
               avatars_dir: Path, taken: Collection[str]) -> str:
    if persona_id is not None:
        if not _ID.fullmatch(persona_id):
            raise CardError(f"bad persona id {persona_id!r}: use 1 to 32 lower-case letters, "
                            "digits, - or _, starting with a letter or digit",
                            code="bad_id")
        if _persona_exists(persona_id, personas_dir, taken) or (avatars_dir / persona_id).exists():
            raise CardError(f"a persona {persona_id!r} already exists (or its avatar folder "
                            f"{avatars_dir / persona_id}); choose another id with --id",
                            code="exists")
        return persona_id
    base = persona_id_for(card.name)
    candidate, n = base, 1
    while _persona_exists(candidate, personas_dir, taken) or (avatars_dir / candidate).exists():
        n += 1
        candidate = f"{base[:28]}-{n}"
    return candidate


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def import_card(
    raw: bytes,
    *,
    personas_dir: Path,
    config_dir: Path,
    persona_id: str | None = None,
    taken: Collection[str] = (),
    source: str = "",
) -> ImportedPersona:
    """Blocking: make a persona (and its avatar folder) from a card's bytes.

    The persona file is written to ``personas_dir/<id>.yaml`` and the card's picture to
    ``config_dir/avatars/<id>/portrait.png`` (``renderer: portrait``); the file is read back
    with the app's own loader before it is put in place, and nothing is left behind when any
    step fails.

    Args:
        raw: the card file (PNG or JSON), as uploaded or read.
        personas_dir: the folder of persona files.
        config_dir: the config folder (avatar paths in persona files are relative to it).
        persona_id: the id to give the persona; default: made from the card's name, with
            ``-2``, ``-3``... when taken.
        taken: ids in use besides the files in ``personas_dir`` (personas loaded elsewhere).
        source: where the card came from (a file name), for the persona file's header.

    Raises:
        CardError: the card is bad, or the id is bad or taken; nothing was written.
        ConfigError: the persona made from the card does not load (the loader's message).
    """
    card = read_card(raw)
    avatars_dir = config_dir / "avatars"
    pid = _choose_id(card, persona_id, personas_dir, avatars_dir, taken)
    warnings: list[str] = []
    avatar: dict[str, Any] | None = None
    picture: bytes | None = None
    avatar_dir = avatars_dir / pid
    if card.image is not None:
        picture = _picture_png(card.image, what="the card's picture")
        from PIL import Image

        from avatar_engine.renderers.portrait import guess_mouth

        with Image.open(io.BytesIO(picture)) as im:
            mouth = guess_mouth(im)
        avatar = {"renderer": "portrait",
                  "image": _relative(avatar_dir / "portrait.png", config_dir),
                  "mouth": list(mouth)}
        warnings.append(
            f"the mouth is placed by a guess at {list(mouth)} (x, y, width in pixels of the "
            f"picture): check it with `python -m avatar_engine.renderers.portrait "
            f"{avatar_dir / 'portrait.png'} --mouth {mouth[0]} {mouth[1]} {mouth[2]} --sheet "
            f"preview.png` and set avatar.mouth (and avatar.eyes for blinking), see "
            "docs/cards.md")
    else:
        warnings.append("the card has no picture (a JSON card): the persona has the default "
                        "avatar")
    doc = persona_document(card, persona_id=pid, avatar=avatar)
    persona = _validated(doc)  # before anything is written
    if "llm" in doc:
        tokens = _context_tokens(doc)
        note = (f"; that is more than the embedded model reads ({_EMBEDDED_CONTEXT_MAX}): "
                "shorten the description or use a larger model" if tokens >
                _EMBEDDED_CONTEXT_MAX else "")
        warnings.append(f"the card's text needs a prompt of about {tokens} tokens: "
                        f"llm.context_tokens is set to {doc['llm']['context_tokens']}{note}")
    header = (f"# Imported by `vstage persona import` from the {card.spec} card"
              f"{' ' + repr(source) if source else ''}; see docs/cards.md.\n"
              "# `card` keeps the card's other fields for `vstage persona export`.\n")
    text = _yaml_text(doc, header)

    personas_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".import-", dir=personas_dir))
    placed_avatar = False
    try:
        staged = work / f"{pid}.yaml"
        staged.write_text(text, encoding="utf-8")
        loaded = load_persona(staged)  # the app's own loader, before anything is in place
        if loaded != persona:
            raise CardError("the persona file does not read back as written (a vstage bug: "
                            "please report it with the card)", code="bad_field")
        if picture is not None:
            avatars_dir.mkdir(parents=True, exist_ok=True)
            staged_avatar = Path(tempfile.mkdtemp(prefix=f".{pid}-", dir=avatars_dir))
            staged_avatar.chmod(0o755)  # mkdtemp makes it private
            (staged_avatar / "portrait.png").write_bytes(picture)
            try:
                staged_avatar.rename(avatar_dir)  # fails if the folder appeared meanwhile
            except OSError as e:
                shutil.rmtree(staged_avatar, ignore_errors=True)
                raise CardError(f"cannot create the avatar folder {avatar_dir}: {e}",
                                code="exists") from e
            placed_avatar = True
        final = personas_dir / f"{pid}.yaml"
        try:
            os.link(staged, final)  # atomic, and never replaces a file made meanwhile
        except FileExistsError:
            raise CardError(f"a persona file {final} appeared while importing; try again",
                            code="exists") from None
    except BaseException:
        if placed_avatar:
            shutil.rmtree(avatar_dir, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("imported persona %s from a %s card into %s", pid, card.spec, final)
    return ImportedPersona(persona=loaded, file=final,
                           avatar_dir=avatar_dir if picture is not None else None,
                           warnings=tuple(warnings))
