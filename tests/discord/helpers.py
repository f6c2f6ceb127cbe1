"""Audio helpers for the Discord tests and benchmark: Piper speech as Discord would carry it
(real opus packets of 20 ms 48 kHz stereo frames) and word error rate."""

from __future__ import annotations

import re

import numpy as np

from bots.hearing.audio import FRAME_BYTES, FRAME_SAMPLES, tts_to_discord_pcm


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level Levenshtein distance / reference length, ignoring case and punctuation."""
    ref = re.findall(r"[a-z0-9']+", reference.lower())
    hyp = re.findall(r"[a-z0-9']+", hypothesis.lower())
    d = np.arange(len(hyp) + 1)
    for i, r in enumerate(ref, 1):
        prev, d[0] = d.copy(), i
        for j, h in enumerate(hyp, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (r != h))
    return float(d[len(hyp)]) / max(1, len(ref))


def pcm_frames(pcm: bytes, *, lead_s: float = 0.0, tail_s: float = 0.0) -> list[bytes]:
    """Split Discord PCM into 20 ms frames, with silence before and after."""
    silence = bytes(FRAME_BYTES)
    body = pcm + bytes((-len(pcm)) % FRAME_BYTES)
    frames = [body[i:i + FRAME_BYTES] for i in range(0, len(body), FRAME_BYTES)]
    return [silence] * round(lead_s * 50) + frames + [silence] * round(tail_s * 50)


def trim_silence(audio: np.ndarray, sample_rate: int, *, keep_s: float = 0.02) -> np.ndarray:
    """``audio`` without the near-silence Piper puts before and after a sentence (it keeps
    ``keep_s`` either side): a client's voice activity sends only while someone talks."""
    loud = np.nonzero(np.abs(audio) > 0.02 * float(np.abs(audio).max(initial=0.0)))[0]
    if loud.size == 0:
        return audio[:0]
    keep = round(keep_s * sample_rate)
    return audio[max(0, loud[0] - keep): loud[-1] + 1 + keep]


def speech_packets(tts, text: str, *, lead_s: float = 0.3, tail_s: float = 1.0,
                   trim: bool = False) -> tuple[list[bytes], float]:
    """``text`` voiced by Piper, resampled to 48 kHz stereo and opus-encoded the way a Discord
    client sends it (``trim``: only while the voice is heard, without Piper's own silence
    around the sentence). Returns the packets and the speech duration in seconds."""
    from discord import opus

    speech = tts.synthesize(text)
    audio = trim_silence(speech.audio, speech.sample_rate) if trim else speech.audio
    frames = pcm_frames(tts_to_discord_pcm(audio, speech.sample_rate),
                        lead_s=lead_s, tail_s=tail_s)
    encoder = opus.Encoder()
    packets = [encoder.encode(f, FRAME_SAMPLES) for f in frames]
    return packets, audio.size / speech.sample_rate
