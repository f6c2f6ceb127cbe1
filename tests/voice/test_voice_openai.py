"""The openai provider against a scripted OpenAI-compatible speech server in the test (aiohttp):
it streams a WAV that espeak-ng made (German, French), in small pieces, with the placeholder
sizes a streaming server writes; the mouth follows the audio envelope. Errors keep their
status, timeouts are explicit.

The server follows OpenAI's reference for ``POST /v1/audio/speech`` (JSON body with ``model``,
``input``, ``voice``, ``response_format``, ``speed``; bearer auth; binary audio body; errors
as ``{"error": {"message", "type", "code"}}``)."""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from voice_helpers import FRENCH, GERMAN, assert_mouth_moves, mouth_of

from avatar_engine.settings import VoiceSettings
from avatar_engine.voice import create_tts, voice_languages, voice_speaks
from avatar_engine.voice.openai import OpenAITTS, SpeechServerError, WavStreamDecoder
from tests.netutil import free_port

LANG_OF_VOICE = {"de_voice": "de", "fr_voice": "fr"}


def espeak_wav(lang: str, text: str, *, wpm: int = 175) -> bytes:
    """A WAV from the espeak-ng program itself, written to a pipe: its header's sizes are
    placeholders (it cannot seek back), as on any streamed WAV."""
    return subprocess.run(
        ["espeak-ng", "-v", lang, "-s", str(wpm), "--stdout", text],
        check=True, capture_output=True,
    ).stdout


def samples_of(wav: bytes) -> np.ndarray:
    assert wav[36:40] == b"data"
    return np.frombuffer(wav[44:], dtype="<i2").astype(np.float32) / 32768.0


@dataclass
class ScriptedServer:
    """What the server saw, and how it misbehaves (``mode``)."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    mode: str = "ok"  # ok | 401 | 503 | stall | drip
    pieces_sent: int = 0


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    state = ScriptedServer()

    async def speech(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        state.requests.append(body)
        state.headers.append(dict(request.headers))
        if state.mode in ("401", "503"):
            status = int(state.mode)
            return web.json_response(
                {"error": {"message": "Incorrect API key provided" if status == 401
                           else "model is loading", "type": "invalid_request_error",
                           "code": None}},
                status=status,
            )
        if state.mode == "stall":
            await asyncio.sleep(2)
        lang = LANG_OF_VOICE[body["voice"]]
        wpm = round(175 * float(body.get("speed", 1.0)))
        wav = await asyncio.to_thread(espeak_wav, lang, body["input"], wpm=wpm)
        if body.get("response_format") == "pcm":  # raw 16-bit mono at 24 kHz, like OpenAI
            pcm = samples_of(wav)
            resampled = np.interp(
                np.arange(round(len(pcm) * 24000 / 22050)) * 22050 / 24000,
                np.arange(len(pcm)), pcm,
            )
            payload = (resampled * 32767).astype("<i2").tobytes()
            content_type = "audio/pcm"
        else:
            payload, content_type = wav, "audio/wav"
        response = web.StreamResponse(headers={"Content-Type": content_type})
        await response.prepare(request)
        piece = 4096 if state.mode != "drip" else 2048
        for i in range(0, len(payload), piece):
            await response.write(payload[i : i + piece])
            state.pieces_sent += 1
            await asyncio.sleep(0.002 if state.mode != "drip" else 0.1)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/audio/speech", speech)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}/v1"
    try:
        yield state
    finally:
        await runner.cleanup()


def settings(server: ScriptedServer, voice: str = "de_voice", **fields: Any) -> VoiceSettings:
    return VoiceSettings(provider="openai", model="kokoro", voice=voice, base_url=server.url,
                         **fields)


@pytest.mark.parametrize(("voice", "lang", "text"),
                         [("de_voice", "de", GERMAN), ("fr_voice", "fr", FRENCH)])
async def test_streamed_wav_drives_the_mouth(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, voice: str, lang: str, text: str
) -> None:
    monkeypatch.setenv("SPEECH_KEY", "sk-test-123")
    tts = create_tts(settings(server, voice, api_key_env="SPEECH_KEY", languages=(lang,)))
    assert isinstance(tts, OpenAITTS)
    speech = await asyncio.to_thread(tts.synthesize, text)

    assert server.requests == [
        {"model": "kokoro", "voice": voice, "input": text, "response_format": "wav"}
    ]
    assert server.headers[0]["Authorization"] == "Bearer sk-test-123"
    assert server.pieces_sent > 10  # it came in many pieces
    expected = samples_of(espeak_wav(lang, text))
    assert speech.sample_rate == 22050 and speech.phonemes is None
    assert speech.audio.shape == expected.shape
    assert np.allclose(speech.audio, expected)
    assert_mouth_moves(mouth_of(speech))  # from the envelope: no timings came
    assert tts.speaks(lang) and not tts.speaks("ja")


async def test_pcm_and_speed(server: ScriptedServer) -> None:
    tts = create_tts(settings(server, "fr_voice", response_format="pcm"))
    normal = await asyncio.to_thread(tts.synthesize, FRENCH)
    slow = await asyncio.to_thread(tts.synthesize, FRENCH, speed=0.7)
    assert server.requests[0]["response_format"] == "pcm" and "speed" not in server.requests[0]
    assert server.requests[1]["speed"] == pytest.approx(0.7)
    assert normal.sample_rate == 24000
    assert slow.duration > 1.2 * normal.duration
    assert_mouth_moves(mouth_of(normal))


@pytest.mark.parametrize(("mode", "retryable"), [("401", False), ("503", True)])
async def test_error_status_is_kept(server: ScriptedServer, mode: str, retryable: bool) -> None:
    server.mode = mode
    tts = create_tts(settings(server))
    with pytest.raises(SpeechServerError) as info:
        await asyncio.to_thread(tts.synthesize, "Hallo")
    assert info.value.status == int(mode) and info.value.code == f"http_{mode}"
    assert info.value.retryable is retryable
    assert mode in str(info.value) and server.url in str(info.value)
    assert ("Incorrect API key" if mode == "401" else "model is loading") in str(info.value)


async def test_timeouts_are_explicit(server: ScriptedServer) -> None:
    # No first byte within the read timeout.
    server.mode = "stall"
    tts = create_tts(settings(server, timeout_s=0.5))
    t0 = time.monotonic()
    with pytest.raises(SpeechServerError) as info:
        await asyncio.to_thread(tts.synthesize, "Hallo")
    assert info.value.code == "timeout" and info.value.retryable
    assert time.monotonic() - t0 < 3.0
    # Bytes keep coming, each in time, but the whole sentence takes too long.
    server.mode = "drip"
    tts = create_tts(settings(server, timeout_s=0.8))
    t0 = time.monotonic()
    with pytest.raises(SpeechServerError) as info:
        await asyncio.to_thread(tts.synthesize, GERMAN)
    assert info.value.code == "timeout" and "0.8 s" in str(info.value)
    assert time.monotonic() - t0 < 3.0


async def test_nobody_listening() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    tts = create_tts(VoiceSettings(provider="openai", model="tts-1", voice="alloy", base_url=url))
    with pytest.raises(SpeechServerError) as info:
        await asyncio.to_thread(tts.synthesize, "Hallo")
    assert info.value.code == "connection_failed" and info.value.status is None
    assert url in str(info.value)


def test_decoder_takes_any_split_and_any_wav() -> None:
    wav = espeak_wav("de", "Guten Tag")
    expected = samples_of(wav)
    rng = np.random.default_rng(3)
    for _ in range(5):  # random piece sizes, including 1-byte pieces inside the header
        d = WavStreamDecoder("wav", pcm_sample_rate=24000)
        i = 0
        while i < len(wav):
            n = int(rng.integers(1, 700))
            d.feed(wav[i : i + n])
            i += n
        assert d.sample_rate == 22050 and np.array_equal(d.finish(), expected)
    # A stereo float WAV with an extra chunk before "data" and honest sizes.
    left = np.linspace(-0.5, 0.5, 1000, dtype=np.float32)
    frames = np.stack([left, left], axis=1).astype("<f4").tobytes()
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 3, 2, 16000, 128000, 8, 32)
    junk = b"LIST" + (3).to_bytes(4, "little") + b"abc\0"  # odd size: padded
    data = b"data" + len(frames).to_bytes(4, "little") + frames
    body = b"WAVE" + fmt + junk + data
    d = WavStreamDecoder("wav", pcm_sample_rate=24000)
    d.feed(b"RIFF" + len(body).to_bytes(4, "little") + body)
    assert d.sample_rate == 16000 and np.allclose(d.finish(), left)
    with pytest.raises(SpeechServerError) as info:
        WavStreamDecoder("wav", pcm_sample_rate=24000).feed(b"ID3\x03" + bytes(20))
    assert info.value.code == "bad_audio" and "response_format" in str(info.value)


def test_settings_and_languages() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="needs model"):
        VoiceSettings(provider="openai", voice="alloy")
    with pytest.raises(ValidationError, match="needs voice"):
        VoiceSettings(provider="openai", model="tts-1")
    unknown = VoiceSettings(provider="openai", model="tts-1", voice="alloy")
    assert voice_languages(unknown) is None and voice_speaks(unknown, "de") is None
    declared = unknown.model_copy(update={"languages": ("de", "fr")})
    assert voice_speaks(declared, "fr-CA") is True and voice_speaks(declared, "ja") is False
    # The key never prints.
    keyed = VoiceSettings(provider="openai", model="tts-1", voice="alloy", api_key="sk-secret")
    assert "sk-secret" not in repr(keyed) and "sk-secret" not in json.dumps(keyed.model_dump())
