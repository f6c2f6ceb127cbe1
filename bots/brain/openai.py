"""Any OpenAI-compatible chat server through the ``openai`` SDK's async client: OpenAI itself,
Ollama, LM Studio, vLLM, llama.cpp's server."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Sequence
from typing import TYPE_CHECKING

from bots.brain.base import ChatTurn
from bots.brain.settings import LLMSettings
from vstage_core.errors import MissingDependency, ProviderError

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

logger = logging.getLogger(__name__)


def _message(turn: ChatTurn) -> ChatCompletionMessageParam:
    """One turn as the SDK's typed message (a TypedDict per role)."""
    if turn.role == "system":
        return {"role": "system", "content": turn.content}
    if turn.role == "user":
        return {"role": "user", "content": turn.content}
    return {"role": "assistant", "content": turn.content}


class OpenAILLM:
    """Streams chat completions from an OpenAI-compatible ``base_url``."""

    def __init__(self, *, settings: LLMSettings) -> None:
        try:
            import openai
        except ImportError as e:
            raise MissingDependency("the openai package is not installed: make install") from e
        self._openai = openai
        self._settings = settings
        key = settings.api_key.get_secret_value() if settings.api_key else "not-needed"
        # Retries are ours (RetryPolicy), so the SDK's own are off.
        self._client = openai.AsyncOpenAI(
            api_key=key, base_url=settings.base_url, timeout=settings.timeout_s, max_retries=0
        )
        self.name = f"openai:{settings.model}@{settings.base_url or 'api.openai.com'}"

    async def load(self) -> None:
        return None

    async def stream(self, messages: Sequence[ChatTurn]) -> AsyncGenerator[str, None]:
        o = self._openai
        try:
            response = await self._client.chat.completions.create(
                model=self._settings.model,
                messages=[_message(m) for m in messages],
                temperature=self._settings.temperature,
                max_tokens=self._settings.max_tokens,
                stream=True,
            )
            async with response:
                async for chunk in response:
                    if not chunk.choices:
                        continue
                    delta = chunk.choices[0].delta.content
                    if delta:
                        yield delta
        except (o.APITimeoutError, o.APIConnectionError) as e:
            raise ProviderError(f"{self.name}: {type(e).__name__}: {e}", retryable=True) from e
        except o.APIStatusError as e:
            retryable = e.status_code == 429 or e.status_code >= 500
            raise ProviderError(
                f"{self.name}: HTTP {e.status_code}: {e.message}", retryable=retryable
            ) from e
        except o.OpenAIError as e:
            raise ProviderError(f"{self.name}: {e}", retryable=False) from e

    async def aclose(self) -> None:
        await self._client.close()
