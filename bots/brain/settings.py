"""Settings of the brain: which LLM a persona thinks with (the ``llm:`` section of a persona
file). The API key itself is filled by the loader from the environment variable it names."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from vstage_core.settings import FrozenModel

__all__ = ["LLMSettings"]


class LLMSettings(FrozenModel):
    """Which LLM a persona thinks with, and how long its replies may be."""

    provider: Literal["local", "openai"] = "local"
    model: str = Field(
        "embedded",
        description="local: 'embedded' (SmolLM2-135M from PyPI) or a .gguf path; "
        "openai: the model name the server knows (gpt-4o-mini, llama3.2, ...)",
    )
    base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:11434/v1 (Ollama)"
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="name of the environment variable holding the API key"
    )
    api_key: SecretStr | None = Field(None, exclude=True, description="filled from api_key_env")
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(96, ge=8, le=4096)
    max_sentences: int = Field(3, ge=1, le=20, description="the reply is cut after this many")
    max_chars: int = Field(360, ge=20, le=4000, description="hard cap on the spoken reply")
    history_turns: int = Field(
        4, ge=0, le=50, description="past exchanges with the same viewer kept as context"
    )
    stage_note: bool = Field(
        True, description="tell the model what it just said on stage (its own words only)"
    )
    timeout_s: float = Field(
        20.0, gt=0, description="seconds the first token may take before a retry"
    )
    context_tokens: int = Field(2048, ge=256, description="local models: context window")
    threads: int | None = Field(None, ge=1, description="local models: CPU threads")
    kv_cache_mb: int = Field(
        256, ge=0, le=65536,
        description="local models: RAM kept for finished conversations' model states, so "
        "the next turn of a persona or viewer reads only its new tokens (0: off)",
    )
