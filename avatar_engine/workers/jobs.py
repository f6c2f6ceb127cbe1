"""Render jobs that can cross machines: ``render_clip`` renders and encodes one sentence on a
worker and sends the encoded files back as bytes; :func:`save_clip` writes them into the
caller's clips folder.

Both the app and the workers import this module (``vstage worker`` does it for you), so the
kind ``render_clip`` means the same code everywhere. Its arguments are plain data: the
avatar's settings, the formats, the :class:`~avatar_engine.types.Speech`, and the avatar's
frame index to start at. The worker builds the renderer itself (once per distinct settings)
from those settings, so every path in them (sprite folder, Wav2Lip checkpoint and image) must
exist at the same place on the worker machine.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from avatar_engine.clips.encode import encode_clip
from avatar_engine.settings import AvatarSettings, Wav2LipSettings
from avatar_engine.types import Clip, ClipFile, Speech
from avatar_engine.workers.worker import job
from vstage_core.errors import ProviderError

logger = logging.getLogger(__name__)

RENDERERS_KEPT = 4
"""Renderers a worker keeps loaded, one per distinct avatar settings (least recently used
goes first)."""

AnyAvatarSettings = AvatarSettings | Wav2LipSettings
_SETTINGS = TypeAdapter(Annotated[AnyAvatarSettings, Field(discriminator="renderer")])


@dataclass(frozen=True, slots=True)
class EncodedFile:
    """One encoded file of a clip, carried as bytes."""

    format: str  # "webm" or "mp4"
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class RenderedClip:
    """What ``render_clip`` sends back: the encoded files and how many frames they hold."""

    frames: int
    fps: int
    files: tuple[EncodedFile, ...]
    work_s: float = 0.0
    """Seconds the worker spent rendering and encoding: the rest of a job's round trip is the
    cost of running it remotely (what ``bench/avatar.py`` reports)."""

    @property
    def duration(self) -> float:
        return self.frames / self.fps


def avatar_payload(settings: AnyAvatarSettings) -> dict[str, Any]:
    """The avatar settings as plain JSON-able data, for :func:`render_clip`'s first argument."""
    return settings.model_dump(mode="json")


_renderers: OrderedDict[str, Any] = OrderedDict()
_renderers_lock = threading.Lock()


def cached_renderer(settings: AnyAvatarSettings | Mapping[str, Any]) -> Any:
    """The renderer for ``settings``, built on first use and kept for the next jobs.

    Blocking (loads the sprite set or the model). Keyed by the settings' JSON, so equal settings
    sent by any number of callers share one renderer.
    """
    from avatar_engine.renderers.factory import create_renderer

    # The key of a job's payload is its JSON as sent, so a hit costs no validation; a model
    # passed in is keyed by the same JSON (``avatar_payload``).
    payload = avatar_payload(settings) if isinstance(settings, AnyAvatarSettings) else settings
    key = json.dumps(payload, sort_keys=True, default=str)
    # One lock for look-up and load: a worker runs one job at a time, and two threads building
    # the same model at once would only waste memory.
    with _renderers_lock:
        renderer = _renderers.get(key)
        if renderer is None:
            model = (settings if isinstance(settings, AnyAvatarSettings)
                     else _SETTINGS.validate_python(dict(settings)))
            logger.info("loading a %s renderer for %s", model.renderer, key)
            renderer = create_renderer(model)
            _renderers[key] = renderer
            while len(_renderers) > RENDERERS_KEPT:
                _renderers.popitem(last=False)
        else:
            _renderers.move_to_end(key)
        return renderer


@job("render_clip")
def render_clip(
    avatar: AnyAvatarSettings | Mapping[str, Any],
    formats: Sequence[str],
    speech: Speech,
    reply_id: str,
    index: int,
    start_frame: int,
) -> RenderedClip:
    """Blocking: render one sentence from ``start_frame`` on and encode it in ``formats``.

    Args:
        avatar: the persona's avatar settings (model or :func:`avatar_payload`); their paths
            must exist on this machine.
        formats: the clip formats to encode ("webm", "mp4").
        speech: the sentence voiced.
        reply_id, index: name the clip (only used for the temporary files and logs here).
        start_frame: the avatar's global frame index of the clip's first frame, so blinks and
            breathing carry on from the previous clip.

    Returns:
        The encoded files' bytes and the frame count; the caller advances its frame clock by
        ``frames`` and writes the files with :func:`save_clip`.
    """
    renderer = cached_renderer(avatar)
    with tempfile.TemporaryDirectory(prefix="vstage-render-") as tmp:
        t0 = time.perf_counter()
        frames = renderer.render(speech, start_frame=start_frame)
        n = int(frames.shape[0])
        files = encode_clip(
            frames=frames,
            audio=speech.audio,
            sample_rate=speech.sample_rate,
            fps=renderer.fps,
            out_base=Path(tmp) / f"{reply_id}-{index:02d}",
            formats=tuple(formats),
        )
        work_s = time.perf_counter() - t0
        encoded = tuple(EncodedFile(f.format, f.path.read_bytes()) for f in files)
    return RenderedClip(frames=n, fps=renderer.fps, files=encoded, work_s=work_s)


def save_clip(
    rendered: RenderedClip, *, clips_dir: Path, reply_id: str, index: int, text: str
) -> Clip:
    """Blocking: write a rendered clip's files into ``clips_dir`` and describe them.

    Each file appears atomically (written under a hidden temporary name, then renamed), like
    the files :func:`~avatar_engine.clips.encode.encode_clip` writes.

    Raises:
        ProviderError: the files could not be written.
    """
    base = Path(clips_dir) / f"{reply_id}-{index:02d}"
    token = uuid.uuid4().hex[:8]
    written: list[ClipFile] = []
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        for f in rendered.files:
            final = base.with_suffix(f".{f.format}")
            tmp = final.with_name(f".{final.name}.{token}.part")
            try:
                tmp.write_bytes(f.data)
                os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
            written.append(ClipFile(format=f.format, path=final))
    except OSError as e:
        raise ProviderError(f"writing clip {base} failed: {e}") from e
    return Clip(
        reply_id=reply_id, index=index, text=text, duration=rendered.duration,
        fps=rendered.fps, frames=rendered.frames, files=tuple(written),
    )
