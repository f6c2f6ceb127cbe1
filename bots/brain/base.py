"""The LLM interface, its retry policy and the registry that builds a provider from settings."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from bots.brain.settings import LLMSettings
from vstage_core.errors import ProviderError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """One message of the conversation the LLM sees."""

    role: Literal["system", "user", "assistant"]
    content: str


@runtime_checkable
class LLM(Protocol):
    """A chat model that streams its answer as text deltas."""

    name: str

    async def load(self) -> None:
        """Load weights or open connections; called once before the first ``stream``."""
        ...

    def stream(self, messages: Sequence[ChatTurn]) -> AsyncGenerator[str, None]:
        """Yield the reply piece by piece. Raises :class:`ProviderError` on failure.

        Closing the iterator early (``aclose``, task cancellation) stops generation.
        """
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a failed LLM call is retried (tests pass zero delays)."""

    max_attempts: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 4.0
    first_token_timeout_s: float | None = 20.0  # a silent model counts as a retryable failure

    def delay(self, attempt: int) -> float:
        """Jittered exponential backoff before attempt ``attempt + 1``."""
        d = min(self.max_delay_s, self.base_delay_s * (2.0**attempt))
        return d * random.uniform(0.5, 1.0)


async def stream_with_retry(
    llm: LLM, messages: Sequence[ChatTurn], *, policy: RetryPolicy | None = None
) -> AsyncGenerator[str, None]:
    """Stream from ``llm``, retrying retryable failures that happen before the first token.

    Once text has been yielded it may already be on stage, so a later failure is raised
    rather than retried (the caller ends the reply cleanly).
    """
    policy = policy or RetryPolicy()
    attempt = 0
    while True:
        started = False
        stream = llm.stream(messages)
        try:
            try:
                async with asyncio.timeout(policy.first_token_timeout_s):
                    first = await anext(stream)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise ProviderError(
                    f"{llm.name} said nothing within {policy.first_token_timeout_s:g}s",
                    retryable=True,
                ) from None
            started = True
            yield first
            async for delta in stream:
                yield delta
            return
        except ProviderError as e:
            attempt += 1
            if started or not e.retryable or attempt >= policy.max_attempts:
                raise
            wait = policy.delay(attempt - 1)
            logger.warning("%s failed (%s); retry %d in %.2fs", llm.name, e, attempt, wait)
            await asyncio.sleep(wait)
        finally:
            await stream.aclose()


def create_llm(settings: LLMSettings) -> LLM:
    """Build the LLM a persona's settings ask for."""
    if settings.provider == "local":
        from bots.brain.local import LocalLLM

        return LocalLLM(settings=settings)
    if settings.provider == "openai":
        from bots.brain.openai import OpenAILLM

        return OpenAILLM(settings=settings)
    raise ValueError(f"unknown LLM provider {settings.provider!r}")
