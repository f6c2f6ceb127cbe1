"""Voices from any OpenAI-compatible speech server (``POST {base_url}/audio/speech``): OpenAI,
Kokoro-FastAPI, openedai-speech, Piper HTTP servers.

The audio is read as it arrives (WAV or raw 16-bit PCM) and decoded incrementally: servers
that stream send a WAV header whose sizes are placeholders, so the data runs to the end of the
body, never to the size the header claims. No phoneme timings come back: ``Speech.phonemes`` is
None and the avatar's mouth follows the audio envelope.
"""

from __future__ import annotations

import logging
import os
import struct
import time
from typing import Any, Literal

import numpy as np

from avatar_engine.settings import VoiceSettings
from avatar_engine.types import Speech
from avatar_engine.voice.base import language_matches
from vstage_core.errors import ProviderError, require

__all__ = ["OPENAI_BASE_URL", "OpenAITTS", "SpeechServerError", "WavStreamDecoder"]

logger = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
"""Where ``base_url`` points when unset."""

_CHUNK = 8192


class SpeechServerError(ProviderError):
    """The speech server answered with an error status, or not at all.

    Attributes:
        status: the HTTP status (``401``, ``404``, ``503``), or None when no answer came
            (a timeout, a refused connection).
        code: machine-readable: ``http_<status>``, ``timeout``, ``connection_failed``,
            ``bad_audio``.
    """

    def __init__(self, message: str, *, status: int | None, code: str, retryable: bool) -> None:
        super().__init__(message, retryable=retryable)
        self.status = status
        self.code = code


class WavStreamDecoder:
    """Decode WAV (PCM 8/16/24/32-bit integer or 32-bit float, any channels) or raw 16-bit
    mono PCM fed in arbitrary pieces.

    Args:
        response_format: ``wav`` (header first) or ``pcm`` (samples only).
        pcm_sample_rate: the rate of ``pcm`` bodies; a WAV header gives its own.
    """

    def __init__(self, response_format: Literal["wav", "pcm"], *, pcm_sample_rate: int) -> None:
        self._buffer = bytearray()
        self._data_started = response_format == "pcm"
        self.sample_rate = pcm_sample_rate
        self.channels = 1
        self._format = 1  # 1: integer PCM, 3: IEEE float
        self._bytes_per_sample = 2
        self._pieces: list[np.ndarray] = []

    def feed(self, data: bytes) -> None:
        """Take the next piece of the body (any length)."""
        self._buffer += data
        if not self._data_started:
            self._parse_header()
        if self._data_started:
            self._take_samples()

    def _parse_header(self) -> None:
        buf = self._buffer
        if len(buf) < 12:
            return
        if buf[:4] != b"RIFF" or buf[8:12] != b"WAVE":
            raise SpeechServerError(
                f"the speech server did not send WAV (first bytes {bytes(buf[:12])!r}); "
                "set voice.response_format to what it sends (wav or pcm)",
                status=None, code="bad_audio", retryable=False,
            )
        offset = 12
        while len(buf) >= offset + 8:
            chunk_id = bytes(buf[offset:offset + 4])
            size = struct.unpack_from("<I", buf, offset + 4)[0]
            if chunk_id == b"data":
                # The size may be a placeholder (0 or 0xFFFFFFFF) on a streamed body: ignored,
                # the data runs to the end of the body.
                del buf[:offset + 8]
                self._data_started = True
                return
            if len(buf) < offset + 8 + size:
                return  # the rest of this chunk has not arrived yet
            if chunk_id == b"fmt ":
                fmt, channels, rate = struct.unpack_from("<HHI", buf, offset + 8)
                bits = struct.unpack_from("<H", buf, offset + 22)[0]
                if fmt == 0xFFFE and size >= 40:  # WAVE_FORMAT_EXTENSIBLE: the real format
                    fmt = struct.unpack_from("<H", buf, offset + 32)[0]
                if fmt not in (1, 3) or bits not in (8, 16, 24, 32) or (fmt == 3 and bits != 32):
                    raise SpeechServerError(
                        f"unsupported WAV encoding (format {fmt}, {bits} bits)",
                        status=None, code="bad_audio", retryable=False,
                    )
                self._format, self.channels, self.sample_rate = fmt, max(1, channels), rate
                self._bytes_per_sample = bits // 8
            offset += 8 + size + (size & 1)  # chunks are padded to even sizes

    def _take_samples(self) -> None:
        frame = self._bytes_per_sample * self.channels
        usable = len(self._buffer) - len(self._buffer) % frame
        if usable <= 0:
            return
        raw = bytes(self._buffer[:usable])
        del self._buffer[:usable]
        self._pieces.append(self._to_float(raw))

    def _to_float(self, raw: bytes) -> np.ndarray:
        width = self._bytes_per_sample
        if self._format == 3:
            x = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif width == 1:
            x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
        elif width == 2:
            x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
        elif width == 3:
            b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
            v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
            x = (np.where(v >= 1 << 23, v - (1 << 24), v) / float(1 << 23)).astype(np.float32)
        else:
            x = (np.frombuffer(raw, dtype="<i4") / float(1 << 31)).astype(np.float32)
        if self.channels > 1:
            x = x.reshape(-1, self.channels).mean(axis=1).astype(np.float32)
        return x

    def finish(self) -> np.ndarray:
        """All samples so far, mono float32 in [-1, 1].

        Raises:
            SpeechServerError: a WAV body ended before its header did.
        """
        if not self._data_started:
            raise SpeechServerError(
                "the speech server's WAV ended before its audio started",
                status=None, code="bad_audio", retryable=True,
            )
        if not self._pieces:
            return np.zeros(0, np.float32)
        audio: np.ndarray = np.clip(np.concatenate(self._pieces), -1.0, 1.0).astype(np.float32)
        return audio


class OpenAITTS:
    """A voice on an OpenAI-compatible ``/v1/audio/speech`` server, read as it streams.

    Args:
        settings: ``model``, ``voice``, ``base_url``, ``api_key`` (or the variable
            ``api_key_env`` names), ``response_format``, ``speed``, ``languages`` and the
            timeouts.
        language: the persona's language; unused (the server's voice decides).

    Raises:
        MissingDependency: the ``openai`` package is not installed.
    """

    def __init__(self, *, settings: VoiceSettings, language: str | None = None) -> None:
        openai = require("openai")
        key = (
            settings.api_key.get_secret_value()
            if settings.api_key is not None
            else os.environ.get(settings.api_key_env)
        )
        self.base_url = (settings.base_url or OPENAI_BASE_URL).rstrip("/")
        # Local servers (Kokoro-FastAPI, Piper HTTP) accept any key; the client wants one.
        self._client = openai.OpenAI(
            api_key=key or "not-needed",
            base_url=self.base_url,
            timeout=openai.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            max_retries=0,  # retries belong to the caller's policy, not hidden in here
        )
        self._openai = openai
        self._settings = settings
        self.sample_rate: int = settings.pcm_sample_rate  # a WAV's header may say otherwise

    def languages(self) -> frozenset[str] | None:
        """What ``voice.languages`` declares; None (unknown) when unset."""
        langs = self._settings.languages
        return frozenset(langs) if langs is not None else None

    def speaks(self, language: str) -> bool:
        return language_matches(language, self.languages())

    def synthesize(self, text: str, *, speed: float | None = None) -> Speech:
        """Ask the server for ``text`` and decode the body as it arrives.

        Raises:
            SpeechServerError: an error status (``status`` set; 408, 429 and 5xx retryable),
                a timeout (connecting, between bytes, or the whole body past ``timeout_s``),
                a refused connection, or audio that is not what ``response_format`` says.
        """
        s = self._settings
        pace = s.speed if speed is None else speed
        decoder = WavStreamDecoder(s.response_format, pcm_sample_rate=s.pcm_sample_rate)
        deadline = time.monotonic() + s.timeout_s
        extra: dict[str, Any] = {}
        if abs(pace - 1.0) > 1e-6:
            extra["speed"] = pace  # OpenAI accepts 0.25..4.0; sent only when it matters
        openai = self._openai
        try:
            with self._client.audio.speech.with_streaming_response.create(
                model=s.model, voice=s.voice or "", input=text,
                response_format=s.response_format, **extra,
            ) as response:
                for piece in response.iter_bytes(_CHUNK):
                    decoder.feed(piece)
                    if time.monotonic() > deadline:
                        raise SpeechServerError(
                            f"the speech server at {self.base_url} took over {s.timeout_s:g} s "
                            f"for {text[:40]!r}", status=None, code="timeout", retryable=True,
                        )
        except openai.APIStatusError as e:
            status = int(e.status_code)
            raise SpeechServerError(
                f"the speech server at {self.base_url} answered {status}: {_detail(e)}",
                status=status, code=f"http_{status}",
                retryable=status in (408, 409, 429) or status >= 500,
            ) from e
        except openai.APITimeoutError as e:
            raise SpeechServerError(
                f"the speech server at {self.base_url} timed out (connect "
                f"{s.connect_timeout_s:g} s, read {s.timeout_s:g} s)",
                status=None, code="timeout", retryable=True,
            ) from e
        except openai.APIConnectionError as e:
            raise SpeechServerError(
                f"cannot reach the speech server at {self.base_url}: {e}",
                status=None, code="connection_failed", retryable=True,
            ) from e
        audio = decoder.finish()
        self.sample_rate = decoder.sample_rate
        return Speech(text=text, audio=audio, sample_rate=decoder.sample_rate, phonemes=None)


def _detail(error: Any) -> str:
    """The server's own reason, short."""
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if message:
            return str(message)[:200]
    return str(error.message)[:200]
