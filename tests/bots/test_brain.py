"""The brain's providers against real models: SmolLM2 in process, and the OpenAI client
against llama.cpp's OpenAI-compatible server. Plus retry behaviour on our own fake."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence

import pytest

from bots.brain.base import ChatTurn, RetryPolicy, stream_with_retry
from bots.brain.local import LocalLLM, embedded_model
from bots.brain.openai import OpenAILLM
from bots.brain.settings import LLMSettings
from tests.netutil import free_port
from vstage_core.errors import ProviderError

MESSAGES = [
    ChatTurn("system", "You are Mika, a cheerful streamer. Answer in one short sentence."),
    ChatTurn("user", "bob: What is your favourite colour?"),
]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """llama.cpp's own OpenAI-compatible server on the embedded model."""
    port = free_port()
    log = (tmp_path_factory.mktemp("llama") / "server.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_model()),
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"llama_cpp.server died: {log.read()[-2000:]}")
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("llama_cpp.server did not listen within 60 s")
    yield f"http://127.0.0.1:{port}/v1"
    proc.terminate()
    proc.wait(10)


@pytest.mark.models
async def test_local_llm_streams_several_deltas():
    llm = LocalLLM(settings=LLMSettings(max_tokens=40, temperature=0.0))
    deltas = [d async for d in llm.stream(MESSAGES)]
    assert len(deltas) > 3 and len("".join(deltas).split()) >= 2


@pytest.mark.models
async def test_local_llm_stops_when_the_stream_is_closed():
    llm = LocalLLM(settings=LLMSettings(max_tokens=400, temperature=0.0))
    stream = llm.stream(MESSAGES)
    first = await anext(stream)
    await stream.aclose()
    assert first
    # The worker released the model: a new stream starts at once.
    t = time.monotonic()
    again = llm.stream(MESSAGES)
    await anext(again)
    await again.aclose()
    assert time.monotonic() - t < 5


@pytest.mark.models
async def test_openai_provider_streams_from_llama_cpp_server(llama_server):
    llm = OpenAILLM(settings=LLMSettings(provider="openai", model="smollm2",
                                         base_url=llama_server, max_tokens=40))
    deltas = [d async for d in llm.stream(MESSAGES)]
    await llm.aclose()
    assert len(deltas) > 3 and "".join(deltas).strip()


async def test_openai_provider_dead_endpoint_is_retryable_error():
    port = free_port()  # nothing listens there
    llm = OpenAILLM(settings=LLMSettings(provider="openai", model="x",
                                         base_url=f"http://127.0.0.1:{port}/v1", timeout_s=2))
    with pytest.raises(ProviderError) as e:
        [d async for d in llm.stream(MESSAGES)]
    assert e.value.retryable
    await llm.aclose()


class FlakyLLM:
    """A fake of our own LLM base: fails ``failures`` times, then streams ``text``."""

    name = "flaky"

    def __init__(self, failures: int, *, retryable: bool = True, text: str = "Hello there.",
                 fail_after_first: bool = False):
        self.failures = failures
        self.retryable = retryable
        self.text = text
        self.fail_after_first = fail_after_first
        self.calls = 0

    async def load(self) -> None: ...

    async def aclose(self) -> None: ...

    async def stream(self, messages: Sequence[ChatTurn]) -> AsyncIterator[str]:
        self.calls += 1
        if self.fail_after_first:
            yield "Hel"
            raise ProviderError("dropped mid-stream", retryable=True)
        if self.calls <= self.failures:
            raise ProviderError("HTTP 500", retryable=self.retryable)
        for word in self.text.split(" "):
            await asyncio.sleep(0)
            yield word + " "


NO_WAIT = RetryPolicy(max_attempts=3, base_delay_s=0, max_delay_s=0)


async def test_retry_recovers_from_transient_failures():
    llm = FlakyLLM(2)
    out = "".join([d async for d in stream_with_retry(llm, MESSAGES, policy=NO_WAIT)])
    assert out.strip() == "Hello there." and llm.calls == 3


async def test_retry_gives_up_after_max_attempts():
    llm = FlakyLLM(5)
    with pytest.raises(ProviderError):
        [d async for d in stream_with_retry(llm, MESSAGES, policy=NO_WAIT)]
    assert llm.calls == 3


async def test_non_retryable_and_mid_stream_failures_are_not_retried():
    llm = FlakyLLM(1, retryable=False)
    with pytest.raises(ProviderError):
        [d async for d in stream_with_retry(llm, MESSAGES, policy=NO_WAIT)]
    assert llm.calls == 1
    mid = FlakyLLM(0, fail_after_first=True)
    with pytest.raises(ProviderError):
        [d async for d in stream_with_retry(mid, MESSAGES, policy=NO_WAIT)]
    assert mid.calls == 1


@pytest.mark.models
async def test_local_llm_pauses_when_its_reader_does():
    """Back-pressure: a reader that stops reading stops the model a few tokens later."""
    llm = LocalLLM(settings=LLMSettings(max_tokens=200, temperature=0.0))
    stream = llm.stream(MESSAGES)
    await anext(stream)
    await asyncio.sleep(1.0)  # ~75 tokens/s: unthrottled it would be far ahead by now
    queued = 0
    try:
        while True:
            await asyncio.wait_for(anext(stream), 0.001)
            queued += 1
    except (TimeoutError, StopAsyncIteration):
        pass
    await stream.aclose()
    assert queued <= LocalLLM.READ_AHEAD + 1


class SilentLLM(FlakyLLM):
    """Hangs before its first token the first ``failures`` times."""

    async def stream(self, messages):
        self.calls += 1
        if self.calls <= self.failures:
            await asyncio.sleep(3600)
        yield "Back again."


async def test_a_silent_model_times_out_and_is_retried():
    llm = SilentLLM(1)
    policy = RetryPolicy(max_attempts=2, base_delay_s=0, max_delay_s=0,
                         first_token_timeout_s=0.05)
    out = "".join([d async for d in stream_with_retry(llm, MESSAGES, policy=policy)])
    assert out == "Back again." and llm.calls == 2


@pytest.mark.models
async def test_personas_on_the_same_gguf_share_one_model_and_both_answer():
    """Two personas on the embedded model: one llama.cpp model, each call with its own
    settings, both streams answered at once (turns taken on the model, no crash)."""
    from bots.brain.base import create_llm

    terse = create_llm(LLMSettings(max_tokens=8, temperature=0.0))
    chatty = create_llm(LLMSettings(max_tokens=40, temperature=0.9))
    assert isinstance(terse, LocalLLM) and isinstance(chatty, LocalLLM)
    await asyncio.gather(terse.load(), chatty.load())
    assert terse.model is not None and terse.model is chatty.model

    async def answer(llm: LocalLLM) -> list[str]:
        return [d async for d in llm.stream(MESSAGES)]

    short, long = await asyncio.gather(answer(terse), answer(chatty))
    assert 1 <= len(short) <= 8 < len(long)  # each call's own token limit
    assert "".join(short).strip() and len("".join(long).split()) >= 2
    # One persona closing leaves the model to the other; a new LLM still shares it.
    model = chatty.model
    await terse.aclose()
    assert terse.model is None and chatty.model is model
    assert [d async for d in chatty.stream(MESSAGES)]
    later = LocalLLM(settings=LLMSettings(max_tokens=8))
    await later.load()
    assert later.model is model
    await asyncio.gather(chatty.aclose(), later.aclose())
