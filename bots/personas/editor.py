"""Persona files as the dashboard edits them: list, read, validate, write, duplicate, delete.

Validation is the loader's own (:func:`bots.config.load_persona`): the same model, the same
extra checks (an OpenAI key, the languages, the id matching the file name) and the same
messages, but as a list of :class:`FieldError` (field, message, line) so a page can show each
one beside its field. ``FieldError.describe(path)`` is the line the loader would print.

Writes are atomic: the new text goes to a hidden temporary file in the personas folder, is
flushed to disk and renamed over the old file (``os.replace``), so the app, ``vstage check``
or another tab never read half a file. Each read carries a ``version`` (a hash of the bytes);
a save names the version it was edited from and is refused with :class:`EditConflict` when
the file changed since (another tab, or an edit by hand), so nothing is silently overwritten.

Comments: PyYAML drops them. A save from the form keeps the file's leading comment block
(the lines of ``#`` at the top) and loses comments further down; a save of the raw YAML text
(the page's "YAML" tab) writes the text as typed, comments and all. Deleted files are moved to
``.trash/`` in the personas folder, never erased.

Everything here is blocking file I/O: call it from a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import tempfile
import threading
import time
import types
import typing
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError
from pydantic_core import PydanticUndefined

from bots.config import PersonaConfig, language_problem
from vstage_core.errors import ConfigError

__all__ = [
    "PERSONA_ID",
    "EditConflict",
    "FieldError",
    "FieldSpec",
    "PersonaEditor",
    "PersonaFile",
    "PersonaInvalid",
    "SpriteCheck",
    "check_sprite_folder",
    "field_specs",
    "install_sprite_upload",
]

logger = logging.getLogger(__name__)

PERSONA_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
"""A persona id (and so its file name): the same pattern the persona model checks."""

MAX_PERSONA_BYTES = 512 * 1024
"""The largest persona file the dashboard reads or writes (a big lorebook fits easily)."""

_LONG_TEXT = frozenset({"personality", "scenario", "example_dialogue",
                        "post_history_instructions", "greeting", "fallback_line",
                        "lorebook.description", "twitch.reward_prompt"})
_TRASH = ".trash"


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem of a persona, placed on a field.

    Attributes:
        field: the dotted field as the loader names it (``llm.temperature``, ``tags.2``);
            ``(top level)`` for the whole mapping; ``""`` for a problem of the file itself
            (invalid YAML, not a mapping).
        message: the loader's message for it.
        line: the line in the file (1-based), when known.
    """

    field: str
    message: str
    line: int | None = None

    def describe(self, path: Path | str) -> str:
        """The line :func:`bots.config.load_persona` reports for this problem."""
        where = f", line {self.line}" if self.line else ""
        name = f" {self.field}:" if self.field else ""
        return f"{path}{where}:{name} {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "message": self.message, "line": self.line}


class PersonaInvalid(ConfigError):
    """A persona does not validate; ``errors`` says where and why (nothing was written)."""

    def __init__(self, path: Path, errors: Sequence[FieldError]) -> None:
        super().__init__("\n".join(e.describe(path) for e in errors))
        self.path = path
        self.errors = tuple(errors)


class EditConflict(ConfigError):
    """The file changed since the version a save was made from (another tab, or by hand).

    Attributes:
        current: the version on disk now (None: the file is gone).
    """

    def __init__(self, message: str, *, current: str | None) -> None:
        super().__init__(message)
        self.current = current


class PersonaMissing(ConfigError):
    """No file for this persona id."""


# --------------------------------------------------------------------------- field specs


Kind = Literal["text", "textarea", "integer", "number", "bool", "choice", "list", "yaml",
               "section", "variant"]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of the persona form, made from the persona model (so a new setting appears
    on the page without touching it).

    Attributes:
        path: dotted path in the file (``llm.temperature``).
        kind: how it is edited: ``text``/``textarea``, ``integer``/``number``, ``bool``,
            ``choice`` (``options``), ``list`` (one item per line), ``yaml`` (structured
            values as a YAML snippet), ``section`` (an optional group: on or off) or
            ``variant`` (a group whose ``renderer``-like key picks its fields).
        description: the model's description of the field.
        default: the default, as JSON (None when required or unset).
        required: the file must give it.
        nullable: it may be left empty (None).
        options: the values of a ``choice`` or ``variant``.
        variant: for a field that belongs to one variant of a group, ``"<group>:<tag>"``.
        key: a ``variant``'s discriminating field (``renderer``), whose value is the tag.
    """

    path: str
    kind: Kind
    description: str = ""
    default: Any = None
    required: bool = False
    nullable: bool = False
    options: tuple[str, ...] = ()
    variant: str | None = None
    key: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "description": self.description,
                "default": self.default, "required": self.required, "nullable": self.nullable,
                "options": list(self.options), "variant": self.variant, "key": self.key}


def _strip_none(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; anything else -> ``(annotation, False)``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) < len(typing.get_args(annotation)):
            return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), True  # noqa: UP007
    return annotation, False


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _is_scalar_item(tp: Any) -> bool:
    return tp is str or (isinstance(tp, type) and issubclass(tp, Enum))


def _json_default(annotation: Any, info: Any) -> tuple[Any, bool]:
    """The field's default as JSON, and whether the field is required."""
    if info.default_factory is not None:
        value = info.default_factory()
    elif info.default is PydanticUndefined:
        return None, True
    else:
        value = info.default
    try:
        return TypeAdapter(annotation).dump_python(value, mode="json"), False
    except Exception:  # an annotation TypeAdapter cannot take alone: fall back to the model's
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json"), False
        return value, False


def field_specs(model: type[BaseModel] = PersonaConfig) -> list[FieldSpec]:
    """Every editable field of ``model``, depth first, in the model's order."""
    specs: list[FieldSpec] = []
    _walk(model, "", None, specs)
    return specs


def _walk(model: type[BaseModel], prefix: str, variant: str | None,
          out: list[FieldSpec], *, skip: str | None = None) -> None:
    for name, info in model.model_fields.items():
        if info.exclude or name == skip:
            continue  # filled at load time (an API key), or a variant's tag
        path = f"{prefix}{name}"
        tp, nullable = _strip_none(info.annotation)
        if tp is SecretStr:
            continue
        default, required = _json_default(info.annotation, info)
        common: dict[str, Any] = {"description": info.description or "", "default": default,
                                  "required": required, "nullable": nullable,
                                  "variant": variant}
        members = typing.get_args(tp) if typing.get_origin(tp) in (
            typing.Union, types.UnionType) else ()
        if members and info.discriminator and all(_is_model(m) for m in members):
            key = str(info.discriminator)
            tags = []
            for member in members:
                tag = typing.get_args(member.model_fields[key].annotation)[0]
                tags.append(str(tag))
            out.append(FieldSpec(path=path, kind="variant", options=tuple(tags), key=key,
                                 **common))
            for member, tag in zip(members, tags, strict=True):
                _walk(member, f"{path}.", f"{path}:{tag}", out, skip=key)
            continue
        if _is_model(tp):
            if nullable:
                out.append(FieldSpec(path=path, kind="section", **common))
            _walk(tp, f"{path}.", variant, out)
            continue
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        kind: Kind
        options: tuple[str, ...] = ()
        if origin is Literal:
            kind, options = "choice", tuple(str(a) for a in args)
        elif tp is bool:
            kind = "bool"
        elif tp is int:
            kind = "integer"
        elif tp is float:
            kind = "number"
        elif tp is str or tp is Path:
            kind = "textarea" if path in _LONG_TEXT else "text"
        elif (origin in (tuple, frozenset, list, set) and args
              and _is_scalar_item(args[0]) and (len(args) == 1 or args[1] is Ellipsis)):
            kind = "list"
        else:
            kind = "yaml"
        out.append(FieldSpec(path=path, kind=kind, options=options, **common))


# --------------------------------------------------------------------------- YAML


class _Dumper(yaml.SafeDumper):
    """Block style; text with line breaks as ``|`` blocks, as people write persona files."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def dump_yaml(data: Mapping[str, Any]) -> str:
    """``data`` as a persona file's YAML (block style, keys in the given order)."""
    return yaml.dump(dict(data), Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False, width=100)


def _parse(text: str) -> tuple[Any, dict[tuple[Any, ...], int], FieldError | None]:
    """The YAML document, the line of every key and item by its path (as the loader keeps
    them), or the error the loader reports for text that is not YAML."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        return None, {}, FieldError("", f"invalid YAML: {problem}",
                                    mark.line + 1 if mark else None)
    lines: dict[tuple[Any, ...], int] = {}

    def walk(n: yaml.Node, loc: tuple[Any, ...]) -> None:
        lines.setdefault(loc, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                lines[(*loc, k.value)] = k.start_mark.line + 1
                walk(v, (*loc, k.value))
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, (*loc, i))

    if node is not None:
        walk(node, ())
    return data, lines, None


def _leading_comments(text: str) -> str:
    """The comment block at the top of a file (kept when the form rewrites the rest)."""
    kept = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            break
        kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept) + "\n" if kept else ""


def _version(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


# --------------------------------------------------------------------------- validation


def validate_document(data: Any, lines: Mapping[tuple[Any, ...], int], *, file_id: str,
                      env: Mapping[str, str]) -> tuple[PersonaConfig | None, list[FieldError]]:
    """Validate a parsed persona document as :func:`bots.config.load_persona` does.

    Returns:
        The persona (None when invalid) and every problem found. The loader stops at the first
        check after the model's; this reports them all.
    """
    if not isinstance(data, dict):
        return None, [FieldError("", "a persona file must be a mapping of fields", 1)]
    try:
        persona = PersonaConfig.model_validate(data)
    except ValidationError as e:
        errors = []
        for err in e.errors():
            loc = tuple(x for x in err["loc"]
                        if not (isinstance(x, str) and x.startswith("function-")))
            line = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines),
                        None)
            errors.append(FieldError(".".join(str(x) for x in loc) or "(top level)",
                                     err["msg"], line))
        return None, errors
    errors = []
    if persona.llm.provider == "openai" and not env.get(persona.llm.api_key_env) and (
            not persona.llm.base_url):
        errors.append(FieldError(
            "llm", f"provider 'openai' with no base_url needs the API key in "
            f"${persona.llm.api_key_env}", lines.get(("llm", "provider"))))
    checks = [("language", persona.language)]
    if persona.teacher is not None:
        checks += [("teacher.target_language", persona.teacher.target_language),
                   ("teacher.learner_language", persona.teacher.learner_language)]
    for name, code in checks:
        problem = language_problem(code, voice=persona.voice if name == "language" else None)
        if problem is not None:
            errors.append(FieldError(name, f"persona {persona.id!r}: {problem}",
                                     lines.get(tuple(name.split(".")))))
    if persona.id != file_id:
        errors.append(FieldError("id", f"{persona.id!r} must match the file name {file_id!r}",
                                 lines.get(("id",))))
    return (None, errors) if errors else (persona, [])


# --------------------------------------------------------------------------- the editor


@dataclass(frozen=True, slots=True)
class PersonaFile:
    """One persona file as read: its text, the parsed document and its version."""

    id: str
    path: Path
    text: str
    data: Any
    version: str
    errors: tuple[FieldError, ...] = ()
    persona: PersonaConfig | None = None


@dataclass(frozen=True, slots=True)
class Summary:
    """A line of the persona list."""

    id: str
    name: str
    language: str
    file: str
    problems: tuple[str, ...] = ()


def _get(data: Any, path: Sequence[str]) -> tuple[bool, Any]:
    """Whether nested ``data`` has ``path``, and its value there."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return False, None
        data = data[key]
    return True, data


def _set(data: dict[str, Any], path: Sequence[str], value: Any) -> None:
    for key in path[:-1]:
        nxt = data.get(key)
        if not isinstance(nxt, dict):
            nxt = data[key] = {}
        data = nxt
    data[path[-1]] = value


def _ordered_like(new: dict[str, Any], original: Any) -> dict[str, Any]:
    """``new`` with its keys in the original file's order (new keys after), recursively."""
    if not isinstance(original, dict):
        return new
    keys = [k for k in original if k in new] + [k for k in new if k not in original]
    return {k: _ordered_like(new[k], original.get(k)) if isinstance(new[k], dict) else new[k]
            for k in keys}


class PersonaEditor:
    """Reads and writes the persona files of one config folder.

    Args:
        personas_dir: the folder of ``<id>.yaml`` files.
        default_persona: the default persona's id, asked at the time (it cannot be deleted).
        env: where an OpenAI key is looked up (the process environment by default).
        max_bytes: the largest file read or written.
    """

    def __init__(self, *, personas_dir: Path, default_persona: Callable[[], str],
                 env: Mapping[str, str] | None = None,
                 max_bytes: int = MAX_PERSONA_BYTES) -> None:
        self.personas_dir = Path(personas_dir)
        self._default = default_persona
        self._env = os.environ if env is None else env
        self.max_bytes = max_bytes
        self.specs = field_specs()
        self._specs = {(s.path, s.variant): s for s in self.specs}
        self._lock = threading.Lock()  # one write at a time (check version, then replace)

    # ------------------------------------------------------------------ paths

    def path_of(self, pid: str) -> Path:
        """The file of persona ``pid`` (``.yaml``, or an existing ``.yml``).

        Raises:
            ConfigError: ``pid`` is not a persona id (a path, ``..``, capitals).
        """
        if not isinstance(pid, str) or not PERSONA_ID.fullmatch(pid):
            raise ConfigError(
                f"{str(pid)[:40]!r} is not a persona id: 1-32 of a-z, 0-9, '_' and '-', "
                "starting with a letter or digit")
        yml = self.personas_dir / f"{pid}.yml"
        return yml if yml.exists() and not (self.personas_dir / f"{pid}.yaml").exists() else (
            self.personas_dir / f"{pid}.yaml")

    def ids(self) -> list[str]:
        """The ids of the persona files in the folder, sorted."""
        found = {p.stem for ext in ("*.yaml", "*.yml") for p in self.personas_dir.glob(ext)
                 if PERSONA_ID.fullmatch(p.stem)}
        return sorted(found)

    # ------------------------------------------------------------------ reading

    def read(self, pid: str) -> PersonaFile:
        """Read and validate persona ``pid``'s file (a broken file is returned with its
        ``errors``, so the page can show and fix it).

        Raises:
            PersonaMissing: no such file. ConfigError: a bad id, unreadable or too big.
        """
        path = self.path_of(pid)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise PersonaMissing(f"no persona {pid!r} in {self.personas_dir}") from None
        except OSError as e:
            raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from e
        if len(raw) > self.max_bytes:
            raise ConfigError(f"{path}: {len(raw)} bytes is more than the "
                              f"{self.max_bytes} a persona file may have")
        text = raw.decode("utf-8", "replace")
        data, lines, bad = _parse(text)
        if bad is not None:
            return PersonaFile(pid, path, text, None, _version(raw), (bad,))
        persona, errors = validate_document(data, lines, file_id=path.stem, env=self._env)
        return PersonaFile(pid, path, text, data, _version(raw), tuple(errors), persona)

    def version(self, pid: str) -> str | None:
        """The version on disk now (None: no file)."""
        try:
            return _version(self.path_of(pid).read_bytes())
        except FileNotFoundError:
            return None

    def summaries(self) -> list[Summary]:
        """Every persona file with its name and language, and its problems if it is broken."""
        out = []
        for pid in self.ids():
            try:
                f = self.read(pid)
            except ConfigError as e:
                out.append(Summary(pid, pid, "", str(self.path_of(pid)), (str(e),)))
                continue
            data = f.data if isinstance(f.data, dict) else {}
            out.append(Summary(
                pid, str(data.get("name") or pid), str(data.get("language") or "en"),
                str(f.path), tuple(e.describe(f.path) for e in f.errors)))
        return out

    def form_values(self, f: PersonaFile | None) -> dict[str, Any]:
        """What the form shows for each field: the file's value, else the default (a
        ``yaml`` field as YAML text, a ``section`` as whether it is on)."""
        data = f.data if f is not None and isinstance(f.data, dict) else {}
        values: dict[str, Any] = {}
        for spec in self.specs:
            parts = spec.path.split(".")
            if spec.variant is not None:
                group, tag = spec.variant.split(":")
                chosen = self._variant_of(data, group)
                if chosen != tag:
                    values[f"{spec.path}@{tag}"] = self._shown(spec, spec.default)
                    continue
                present, value = _get(data, parts)
                values[f"{spec.path}@{tag}"] = self._shown(
                    spec, value if present else spec.default)
                continue
            present, value = _get(data, parts)
            if spec.kind == "variant":
                values[spec.path] = self._variant_of(data, spec.path)
            elif spec.kind == "section":
                values[spec.path] = present and value is not None
            else:
                values[spec.path] = self._shown(spec, value if present else spec.default)
        return values

    def _variant_of(self, data: Any, group: str) -> str:
        """The tag a variant group has in ``data`` (else its default's)."""
        spec = self._specs[(group, None)]
        key = spec.key or ""
        present, value = _get(data, [*group.split("."), key])
        if present and str(value) in spec.options:
            return str(value)
        default = spec.default if isinstance(spec.default, dict) else {}
        return str(default.get(key, spec.options[0]))

    @staticmethod
    def _shown(spec: FieldSpec, value: Any) -> Any:
        if spec.kind != "yaml":
            return value
        if value is None:
            return ""
        # Short lists of numbers ([x, y, w]) read best inline; mappings as blocks.
        return yaml.dump(value, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                         default_flow_style=None, width=100).rstrip().removesuffix("...").rstrip()

    # ------------------------------------------------------------------ form -> document

    def document_from_form(self, fields: Mapping[str, Any], *, original: Any = None
                           ) -> tuple[dict[str, Any], list[FieldError]]:
        """Build the file's document from the form's values (``path`` -> value; a variant's
        fields as ``path@tag``). A value equal to its default is left out unless the original
        file spells it out, so a saved file stays as short as the streamer wrote it.

        Returns:
            The document and the problems found before validation (a YAML field that is not
            YAML, an unknown field).
        """
        original = original if isinstance(original, dict) else {}
        doc: dict[str, Any] = {}
        errors: list[FieldError] = []
        known = {s.path if s.variant is None else f"{s.path}@{s.variant.split(':')[1]}"
                 for s in self.specs}
        for name in fields:
            if name not in known:
                errors.append(FieldError(str(name)[:80], "unknown field"))
        sections_off = {s.path for s in self.specs if s.kind == "section"
                        and not fields.get(s.path)}
        chosen: dict[str, str] = {}
        for spec in self.specs:
            if spec.kind == "variant":
                tag = fields.get(spec.path)
                chosen[spec.path] = str(tag) if tag in spec.options else self._variant_of(
                    original, spec.path)
        for spec in self.specs:
            if spec.kind in ("section", "variant"):
                continue
            if any(spec.path.startswith(f"{off}.") for off in sections_off):
                continue
            key = spec.path
            default = spec.default
            if spec.variant is not None:
                group, tag = spec.variant.split(":")
                if chosen.get(group) != tag:
                    continue
                key = f"{spec.path}@{tag}"
            if key not in fields:
                present, value = _get(original, spec.path.split("."))
                if present:
                    _set(doc, spec.path.split("."), value)
                continue
            value, problem = self._parsed(spec, fields[key])
            if problem is not None:
                errors.append(FieldError(spec.path, problem))
                continue
            present, _ = _get(original, spec.path.split("."))
            if not present and (value == default or (value is None and not spec.required)):
                continue
            if value is None and not spec.nullable and not spec.required:
                continue  # emptied: back to the default
            _set(doc, spec.path.split("."), value)
        for group, tag in chosen.items():
            # The tag goes first in its group: without it the other fields mean nothing.
            key = self._specs[(group, None)].key or ""
            present, inner = _get(doc, group.split("."))
            in_original, _ = _get(original, [*group.split("."), key])
            if present or in_original or tag != self._variant_of({}, group):
                rest = inner if isinstance(inner, dict) else {}
                _set(doc, group.split("."), {key: tag, **{k: v for k, v in rest.items()
                                                          if k != key}})
        for spec in self.specs:  # a section switched on with every field at its default
            if spec.kind == "section" and fields.get(spec.path):
                present, _ = _get(doc, spec.path.split("."))
                if not present:
                    _set(doc, spec.path.split("."), {})
        return _ordered_like(doc, original), errors

    @staticmethod
    def _parsed(spec: FieldSpec, raw: Any) -> tuple[Any, str | None]:
        """A form value as the file's value; the YAML of a ``yaml`` field parsed."""
        if spec.kind == "yaml":
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                return None, None
            if not isinstance(raw, str):
                return raw, None
            try:
                return yaml.safe_load(raw), None
            except yaml.YAMLError as e:
                mark = getattr(e, "problem_mark", None)
                where = f" (line {mark.line + 1} of the field)" if mark else ""
                return None, f"invalid YAML{where}: {getattr(e, 'problem', None) or e}"
        if spec.kind == "list":
            if raw is None:
                return (None if spec.nullable else []), None
            if isinstance(raw, str):
                lines = [x.strip() for x in raw.splitlines() if x.strip()]
                return (None if not lines and spec.nullable else lines), None
            if isinstance(raw, list):
                items = [x.strip() if isinstance(x, str) else x for x in raw
                         if not (isinstance(x, str) and not x.strip())]
                return (None if not items and spec.nullable else items), None
            return raw, None
        if spec.kind in ("integer", "number"):
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                return None, None
            if isinstance(raw, str):
                text = raw.strip()
                try:
                    return (int(text) if spec.kind == "integer" else float(text)), None
                except ValueError:
                    return text, None  # the model says what is wrong with it
            return raw, None
        if spec.kind in ("text", "textarea"):
            if raw is None or (isinstance(raw, str) and not raw.strip() and spec.nullable):
                return None, None
            return raw, None
        return raw, None

    # ------------------------------------------------------------------ validating

    def check(self, pid: str, text: str) -> tuple[PersonaConfig | None, list[FieldError]]:
        """Validate ``text`` as persona ``pid``'s file would be validated by the loader."""
        if len(text.encode("utf-8")) > self.max_bytes:
            return None, [FieldError("", f"the file would be more than {self.max_bytes} bytes")]
        data, lines, bad = _parse(text)
        if bad is not None:
            return None, [bad]
        return validate_document(data, lines, file_id=pid, env=self._env)

    def text_for(self, doc: Mapping[str, Any], *, previous: str | None) -> str:
        """The file text for ``doc``: the previous file's leading comments, then the YAML."""
        header = _leading_comments(previous) if previous else ""
        return header + dump_yaml(doc)

    # ------------------------------------------------------------------ writing

    def save(self, pid: str, text: str, *, version: str | None, create: bool = False
             ) -> PersonaFile:
        """Validate ``text`` and write it as persona ``pid``'s file, atomically.

        Args:
            version: the version the edit started from; None with ``create``.
            create: a new persona: refused if the file exists.

        Raises:
            PersonaInvalid: the text does not validate (nothing written).
            EditConflict: the file changed since ``version``, or exists when creating.
            PersonaMissing: saving an edit of a file that is gone.
        """
        path = self.path_of(pid)
        persona, errors = self.check(pid, text)
        if errors:
            raise PersonaInvalid(path, errors)
        with self._lock:
            current = self.version(pid)
            if create and current is not None:
                raise EditConflict(f"a persona {pid!r} already exists ({path.name}); choose "
                                   "another id, or open it to edit it", current=current)
            if not create:
                if current is None:
                    raise PersonaMissing(
                        f"{path.name} is gone (deleted in another tab or by hand): save it "
                        "as a new persona to keep these edits")
                if current != version:
                    raise EditConflict(
                        f"{path.name} changed since you opened it (in another tab or by hand); "
                        "your edits are still in the form: reload the file to see the other "
                        "change, then edit again", current=current)
            _write_atomically(path, text.encode("utf-8"))
        logger.info("persona %s written to %s", pid, path)
        return self.read(pid)

    def duplicate(self, pid: str, new_id: str, *, name: str | None = None) -> PersonaFile:
        """Copy persona ``pid`` to a new file ``new_id`` (its id, and name if given, changed;
        comments kept)."""
        source = self.read(pid)
        if not isinstance(source.data, dict):
            raise ConfigError(f"{source.path.name} is not a valid persona file: fix it first")
        doc = dict(source.data)
        doc["id"] = new_id
        if name is not None:
            doc["name"] = name
        text = self.text_for(doc, previous=source.text)
        return self.save(new_id, text, version=None, create=True)

    def delete(self, pid: str, *, version: str | None) -> Path:
        """Move persona ``pid``'s file to ``.trash/`` in the personas folder.

        Raises:
            ConfigError: it is the default persona. EditConflict: it changed since
                ``version`` (None: delete whatever is there). PersonaMissing: no such file.
        """
        path = self.path_of(pid)
        if pid == self._default():
            raise ConfigError(f"{pid!r} is the default persona (default_persona in "
                              "vstage.yaml): choose another default before deleting it")
        with self._lock:
            current = self.version(pid)
            if current is None:
                raise PersonaMissing(f"no persona {pid!r} in {self.personas_dir}")
            if version is not None and current != version:
                raise EditConflict(f"{path.name} changed since you opened it; reload it "
                                   "before deleting", current=current)
            trash = self.personas_dir / _TRASH
            trash.mkdir(exist_ok=True)
            target = trash / f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}"
            os.replace(path, target)
        logger.info("persona %s deleted (moved to %s)", pid, target)
        return target


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a hidden temporary file and a rename: readers see
    the old file or the new one, never a mix; a crash leaves the old one."""
    mode = 0o644
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # the rename itself survives a power cut once the folder is synced
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def resolved(persona: PersonaConfig, config_root: Path) -> PersonaConfig:
    """``persona`` with its avatar's paths made absolute against the config folder, as
    :func:`bots.config.load_config` does at start-up (any path field of any renderer)."""
    avatar = persona.avatar
    update = {}
    for name in type(avatar).model_fields:
        value = getattr(avatar, name)
        if isinstance(value, Path):
            p = Path(os.path.expanduser(value))
            update[name] = p if p.is_absolute() else (config_root / p).resolve()
    return persona.model_copy(update={"avatar": avatar.model_copy(update=update)})


# --------------------------------------------------------------------------- sprite art


@dataclass(frozen=True, slots=True)
class SpriteCheck:
    """What a sprite folder has and lacks (docs/avatars.md).

    Attributes:
        ok: it loads as a sprite set.
        problems: what must be fixed, one line each (missing files and fields first).
        notes: what works but could be better (mouth shapes drawn by a substitute).
        files: the files in the folder.
    """

    ok: bool
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    files: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": list(self.problems), "notes": list(self.notes),
                "files": list(self.files)}


def check_sprite_folder(folder: Path) -> SpriteCheck:
    """Check a sprite folder against docs/avatars.md and list *everything* missing (the
    renderer's own loader stops at the first problem; a streamer uploading art wants the
    whole list at once)."""
    from avatar_engine.renderers.spriteset import (
        MANIFEST,
        MOUTH_FALLBACKS,
        OPEN_MOUTHS,
        REQUIRED_MOUTHS,
        SpriteSet,
    )

    files = tuple(sorted(p.name for p in folder.iterdir() if p.is_file())) if (
        folder.is_dir()) else ()
    pngs = [f for f in files if f.lower().endswith(".png")]
    manifest = folder / MANIFEST
    if not manifest.is_file():
        hint = (f" (found {len(pngs)} PNG: {', '.join(pngs[:12])})" if pngs else "")
        return SpriteCheck(False, (
            f"{MANIFEST} is missing: it names the base, the eyes and each mouth drawing"
            f"{hint}; copy config/avatars/default/{MANIFEST} and edit the file names",), (),
            files)
    data, _, bad = _parse(manifest.read_text(encoding="utf-8", errors="replace"))
    if bad is not None:
        return SpriteCheck(False, (f"{MANIFEST}: {bad.message}",), (), files)
    if not isinstance(data, dict):
        return SpriteCheck(False, (f"{MANIFEST}: must be a mapping of fields",), (), files)
    problems: list[str] = []
    notes: list[str] = []
    for key in ("name", "size", "base", "eyes", "mouths"):
        if key not in data:
            problems.append(f"{MANIFEST}: '{key}' is missing (required)")

    def named(entry: Any) -> str | None:
        if isinstance(entry, str):
            return entry
        if isinstance(entry, dict) and isinstance(entry.get("file"), str):
            return str(entry["file"])
        return None

    wanted: list[tuple[str, Any]] = [("base", data.get("base"))]
    eyes = data.get("eyes")
    if isinstance(eyes, dict):
        for k in ("open", "closed"):
            if k not in eyes:
                problems.append(f"{MANIFEST}: eyes.{k} is missing (required)")
        wanted += [(f"eyes.{k}", v) for k, v in eyes.items()]
    mouths = data.get("mouths")
    if isinstance(mouths, dict):
        for shape in REQUIRED_MOUTHS:
            if shape not in mouths:
                problems.append(f"{MANIFEST}: mouths.{shape} is missing (required)")
        if not any(s in mouths for s in OPEN_MOUTHS):
            problems.append(f"{MANIFEST}: no open mouth: draw at least one of "
                            f"{', '.join(OPEN_MOUTHS)}")
        for shape, subs in MOUTH_FALLBACKS.items():
            if shape not in mouths and shape not in REQUIRED_MOUTHS:
                sub = next((s for s in subs if s in mouths), None)
                if sub is not None:
                    notes.append(f"mouth {shape} is not drawn: {sub} is shown instead")
        wanted += [(f"mouths.{k}", v) for k, v in mouths.items()]
    for where, entry in wanted:
        if entry is None:
            continue
        name = named(entry)
        if name is None:
            problems.append(f"{MANIFEST}: {where} must be a file name or {{file, at}}")
            continue
        target = (folder / name).resolve()
        if not target.is_relative_to(folder.resolve()):
            problems.append(f"{MANIFEST}: {where}: {name!r} is outside the folder")
        elif not target.is_file():
            problems.append(f"{where}: file {name!r} is missing")
    if not problems:
        try:
            SpriteSet.load(folder)
        except ConfigError as e:  # sizes, unreadable PNGs, field values
            problems.append(str(e).replace(str(folder.resolve()), ".").replace(
                str(folder), "."))
    return SpriteCheck(not problems, tuple(problems), tuple(notes), files)


MAX_UPLOAD_BYTES = 20 * 1024 * 1024
"""The most a sprite upload may hold, all files together (unpacked)."""
_MAX_UPLOAD_FILES = 64
_ART_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")


def _art_files(uploads: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The upload's files (a zip unpacked), names checked: flat, plain names only."""
    out: list[tuple[str, bytes]] = []
    total = 0
    for name, data in uploads:
        if name.lower().endswith(".zip"):
            try:
                with zipfile.ZipFile(io.BytesIO(data)) as z:
                    members = [i for i in z.infolist() if not i.is_dir()]
                    if len(members) > _MAX_UPLOAD_FILES:
                        raise ConfigError(f"{name}: {len(members)} files; a sprite set has "
                                          f"at most {_MAX_UPLOAD_FILES}")
                    for info in members:
                        total += info.file_size
                        if total > MAX_UPLOAD_BYTES:
                            raise ConfigError(
                                f"{name} unpacks to more than {MAX_UPLOAD_BYTES // 2**20} MB")
                        inner = PurePosixPath(info.filename)
                        if inner.name.startswith(".") or "__MACOSX" in inner.parts:
                            continue
                        out.append((inner.name, z.read(info)))
            except zipfile.BadZipFile as e:
                raise ConfigError(f"{name} is not a readable zip file: {e}") from None
            continue
        total += len(data)
        if total > MAX_UPLOAD_BYTES:
            raise ConfigError(f"the upload is more than {MAX_UPLOAD_BYTES // 2**20} MB")
        out.append((PurePosixPath(name.replace("\\", "/")).name, data))
    if not out:
        raise ConfigError("the upload has no files")
    if len(out) > _MAX_UPLOAD_FILES:
        raise ConfigError(f"{len(out)} files; a sprite set has at most {_MAX_UPLOAD_FILES}")
    seen: set[str] = set()
    for name, _ in out:
        if not _ART_NAME.fullmatch(name):
            raise ConfigError(f"file name {name[:60]!r}: use letters, digits, '_', '-' and '.'")
        if not name.lower().endswith((".png", ".yaml", ".yml")):
            raise ConfigError(f"{name}: a sprite set holds PNG files and manifest.yaml only")
        if name in seen:
            raise ConfigError(f"{name} is in the upload twice")
        seen.add(name)
    return out


def install_sprite_upload(avatars_dir: Path, name: str,
                          uploads: Iterable[tuple[str, bytes]]) -> tuple[Path, SpriteCheck]:
    """Put uploaded sprite art (PNG files and a manifest.yaml, or a zip of them) in
    ``avatars_dir/name``, checked. A complete set replaces the folder at once (a new folder
    renamed into place); an incomplete one is kept aside in ``avatars_dir/.incoming/name`` and
    its check lists what is missing, so a persona never points at half a set.

    Raises:
        ConfigError: a bad folder name, too many or too big files, odd file names.
    """
    if not PERSONA_ID.fullmatch(name):
        raise ConfigError(f"{name[:40]!r} is not a folder name: 1-32 of a-z, 0-9, '_' and '-'")
    files = _art_files(uploads)
    avatars_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=avatars_dir))
    try:
        for fname, data in files:
            (staging / fname).write_bytes(data)
        check = check_sprite_folder(staging)
        target = avatars_dir / name
        if not check.ok:
            target = avatars_dir / ".incoming" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            old = target.with_name(f".{name}.old-{time.time_ns()}")
            os.replace(target, old)
            os.replace(staging, target)
            _remove_tree(old)
        else:
            os.replace(staging, target)
    except BaseException:
        _remove_tree(staging)
        raise
    return target, check


def _remove_tree(folder: Path) -> None:
    if not folder.exists():
        return
    for p in sorted(folder.rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink(missing_ok=True)
    folder.rmdir()
