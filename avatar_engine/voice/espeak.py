"""espeak-ng voices: any of its ~100 languages, offline, with phoneme timings for the mouth
taken from espeak-ng's own synthesis events.

espeak-ng is called through its C library (``libespeak-ng.so.1``, Debian package
``libespeak-ng1``, pulled in by ``espeak-ng``) with ctypes: the library reports each phoneme
(in IPA) and each word with its position in the audio while it synthesises, which is exactly
what the mouth needs. The library keeps global state (one voice, one rate, one callback), so
every call takes one process-wide lock and sets the voice and rate it needs.

It sounds robotic (formant synthesis), but it speaks nearly every language and costs nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from avatar_engine.settings import VoiceSettings
from avatar_engine.types import PhonemeTiming, Speech
from avatar_engine.voice.base import language_matches, normalize_language
from vstage_core.errors import MissingDependency, ProviderError

__all__ = [
    "DEFAULT_WPM",
    "EspeakTTS",
    "EspeakVoice",
    "espeak_languages",
    "espeak_voice_languages",
    "espeak_voices",
]

logger = logging.getLogger(__name__)

DEFAULT_WPM = 175
"""espeak-ng's own default rate in words per minute: ``speed: 1.0``."""

# espeak_AUDIO_OUTPUT / espeak_Initialize options / espeak_Synth flags (speak_lib.h).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_INIT_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
# espeak_EVENT_TYPE
_EV_LIST_TERMINATED = 0
_EV_WORD = 1
_EV_END = 5
_EV_MSG_TERMINATED = 6
_EV_PHONEME = 7
# espeak_PARAMETER
_RATE = 1
_EE_OK = 0

_PAUSE = " "
"""What a phoneme event with an empty name (espeak's pause phonemes ``_``, ``_:``) becomes:
a space, which the viseme map reads as a pause."""


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """``espeak_EVENT``. ``sample`` is the event's position in samples from the start of the
    synthesis (finer than ``audio_position``, which is in milliseconds)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    """``espeak_VOICE``: ``languages`` is a run of (priority byte, name, NUL), ending in 0."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True, slots=True)
class EspeakVoice:
    """One voice espeak-ng has installed.

    Attributes:
        name: its display name (``German``).
        identifier: its file (``gmw/de``).
        languages: the language codes it speaks, most preferred first (``("de",)``).
    """

    name: str
    identifier: str
    languages: tuple[str, ...]


@dataclass(slots=True)
class _Capture:
    """What one synthesis produced: 16-bit samples and ``(sample, ipa)`` phoneme events."""

    audio: list[bytes]
    phonemes: list[tuple[int, str]]
    end_sample: int = 0


class _Library:
    """The loaded espeak-ng library, initialised once per process."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError as e:
            raise MissingDependency(
                "espeak-ng is not installed: `apt-get install espeak-ng` (Debian/Ubuntu), "
                "`brew install espeak-ng` (macOS)"
            ) from e
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_Callback]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
            _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT,
        )
        if rate <= 0:
            raise ProviderError(
                f"espeak-ng failed to initialise ({rate}): is espeak-ng-data installed?"
            )
        self.sample_rate: int = rate
        self.lock = threading.Lock()
        self._lib = lib
        self._capture: _Capture | None = None
        # Keep the ctypes callback object alive as long as the library may call it.
        self._callback = _Callback(self._on_synth)
        lib.espeak_SetSynthCallback(self._callback)

    def _on_synth(self, wav: ctypes._Pointer[ctypes.c_short], n: int,
                  events: ctypes._Pointer[_Event]) -> int:
        capture = self._capture
        if capture is None:
            return 1  # nobody is listening: abort
        if wav and n > 0:
            capture.audio.append(ctypes.string_at(wav, n * 2))
        i = 0
        while (ev := events[i]).type != _EV_LIST_TERMINATED:
            if ev.type == _EV_PHONEME:
                raw = ctypes.string_at(ctypes.addressof(ev.id), 8).split(b"\0", 1)[0]
                capture.phonemes.append((ev.sample, raw.decode("utf-8", "replace") or _PAUSE))
            elif ev.type in (_EV_END, _EV_MSG_TERMINATED):
                capture.end_sample = max(capture.end_sample, ev.sample)
            i += 1
        return 0

    def voices(self) -> tuple[EspeakVoice, ...]:
        with self.lock:
            array = self._lib.espeak_ListVoices(None)
            out: list[EspeakVoice] = []
            i = 0
            while array[i]:
                v = array[i].contents
                out.append(EspeakVoice(
                    name=(v.name or b"").decode("utf-8", "replace"),
                    identifier=(v.identifier or b"").decode("utf-8", "replace"),
                    languages=_parse_languages(v.languages),
                ))
                i += 1
        return tuple(out)

    def synthesize(self, text: str, *, voice: str, wpm: int) -> tuple[np.ndarray, _Capture]:
        data = text.encode("utf-8")
        with self.lock:
            if self._lib.espeak_SetVoiceByName(voice.encode("utf-8")) != _EE_OK:
                raise ProviderError(f"espeak-ng could not load the voice {voice!r}")
            self._lib.espeak_SetParameter(_RATE, wpm, 0)
            capture = _Capture(audio=[], phonemes=[])
            self._capture = capture
            try:
                err = self._lib.espeak_Synth(
                    data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None
                )
                self._lib.espeak_Synchronize()
            finally:
                self._capture = None
        if err != _EE_OK:
            raise ProviderError(f"espeak-ng failed ({err}) on {text[:60]!r}", retryable=True)
        pcm = np.frombuffer(b"".join(capture.audio), dtype=np.int16)
        return pcm.astype(np.float32) / 32768.0, capture


def _parse_languages(pointer: int | None) -> tuple[str, ...]:
    """Decode ``espeak_VOICE.languages``: (priority byte, name, NUL) repeated, then a 0 byte."""
    if not pointer:
        return ()
    out: list[str] = []
    offset = 0
    while ctypes.string_at(pointer + offset, 1) != b"\0":
        name = ctypes.string_at(pointer + offset + 1)  # up to the NUL
        out.append(name.decode("utf-8", "replace"))
        offset += 2 + len(name)
    return tuple(out)


_library: _Library | None = None
_library_lock = threading.Lock()


def _lib() -> _Library:
    global _library
    with _library_lock:
        if _library is None:
            _library = _Library()
        return _library


@lru_cache(maxsize=1)
def espeak_voices() -> tuple[EspeakVoice, ...]:
    """Every voice espeak-ng has installed (its MBROLA voices included when installed).

    Raises:
        MissingDependency: espeak-ng's library is not installed.
    """
    return _lib().voices()


def espeak_languages() -> frozenset[str]:
    """Every language code espeak-ng speaks (``de``, ``fr``, ``en-gb``, ``pt-br``, ...)."""
    return frozenset(normalize_language(code) for v in espeak_voices() for code in v.languages)


def _resolve(name: str) -> EspeakVoice | None:
    """The installed voice ``name`` means: a language code (``de``, ``fr-BE``; ``de-AT`` falls
    back to ``de``), a voice file (``gmw/de``) or a voice name (``German``); None if none."""
    voices = espeak_voices()

    def find(wanted: str) -> EspeakVoice | None:
        # espeak-ng names a language's main voice file after the bare code (roa/fr for fr,
        # while fr-BE also lists fr); then a voice whose own language it is; then any voice
        # that speaks it; then a file path or a display name.
        checks = (
            lambda v: v.identifier.rsplit("/", 1)[-1].lower() == wanted,
            lambda v: bool(v.languages) and normalize_language(v.languages[0]) == wanted,
            lambda v: wanted in (normalize_language(c) for c in v.languages),
            lambda v: wanted in (v.identifier.lower(), v.name.lower()),
        )
        for check in checks:
            for v in voices:
                if check(v):
                    return v
        return None

    wanted = normalize_language(name)
    return find(wanted) or (find(wanted.split("-")[0]) if "-" in wanted else None)


def espeak_voice_languages(name: str) -> frozenset[str]:
    """Languages the espeak voice ``name`` speaks; empty when espeak-ng has no such voice."""
    voice = _resolve(name)
    return frozenset(normalize_language(c) for c in voice.languages) if voice else frozenset()


def _unknown_voice(name: str) -> ProviderError:
    # Primary codes only (de, fr, pt): the regional variants (fr-be, pt-br) would triple the
    # list, and `espeak-ng --voices` shows them.
    codes = sorted({normalize_language(c).split("-")[0] for c in espeak_languages_list()})
    return ProviderError(
        f"espeak-ng has no voice for {name!r}. It speaks {len(codes)} languages: "
        f"{', '.join(codes)}. Regional voices (en-us, fr-be, pt-br, ...): see "
        "`espeak-ng --voices`."
    )


def espeak_languages_list() -> list[str]:
    """Every language code of every installed voice, in espeak-ng's order."""
    return [code for v in espeak_voices() for code in v.languages]


class EspeakTTS:
    """An espeak-ng voice for one language, with phoneme timings from espeak-ng's events.

    Args:
        settings: the persona's voice settings; ``voice`` names the language or voice
            (``de``, ``fr``, ``es``, ``en-gb``, ``gmw/de``), ``words_per_minute`` or
            ``speed`` x 175 the rate.
        language: the persona's language, used when ``settings.voice`` is unset.

    Raises:
        ProviderError: espeak-ng has no such voice; the message lists what it has.
        MissingDependency: the espeak-ng library is not installed.
    """

    def __init__(self, *, settings: VoiceSettings, language: str | None = None) -> None:
        self._lib = _lib()
        requested = settings.voice or language or "en"
        voice = _resolve(requested)
        if voice is None:
            raise _unknown_voice(requested)
        self.voice = voice
        self._voice_name = voice.identifier or voice.name
        self.sample_rate: int = self._lib.sample_rate
        self._settings = settings

    def words_per_minute(self, speed: float | None = None) -> int:
        """The rate a call at ``speed`` (None: the settings' ``speed``) speaks at: the
        settings' ``words_per_minute`` (default 175) is the rate at speed 1.0."""
        s = self._settings
        factor = s.speed if speed is None else speed
        # espeak-ng accepts 80..450 wpm (outside that it clamps silently).
        return int(min(450, max(80, round((s.words_per_minute or DEFAULT_WPM) * factor))))

    def languages(self) -> frozenset[str]:
        """The languages of this voice (``{"de"}``)."""
        return frozenset(normalize_language(c) for c in self.voice.languages)

    def speaks(self, language: str) -> bool:
        return language_matches(language, self.languages())

    def synthesize(self, text: str, *, speed: float | None = None) -> Speech:
        """Voice ``text`` with phoneme timings (IPA, as espeak-ng reports them)."""
        audio, capture = self._lib.synthesize(
            text, voice=self._voice_name, wpm=self.words_per_minute(speed)
        )
        rate = self.sample_rate
        total = len(audio)
        events = sorted(capture.phonemes)
        timings: list[PhonemeTiming] = []
        for i, (sample, phoneme) in enumerate(events):
            end = events[i + 1][0] if i + 1 < len(events) else max(capture.end_sample, total)
            start_s, end_s = min(sample, total) / rate, min(max(end, sample), total) / rate
            timings.append(PhonemeTiming(phoneme, start_s, end_s))
        return Speech(text=text, audio=audio, sample_rate=rate, phonemes=tuple(timings))
