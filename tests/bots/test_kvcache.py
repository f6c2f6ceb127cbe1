"""Saved llama.cpp states (bots/brain/kvcache.py) on the real embedded model: a turn whose
prompt starts like an earlier one reads only its new tokens, and answers exactly as it would
have without the cache."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from bots.brain.base import ChatTurn
from bots.brain.kvcache import KVStates, StatefulLlama, shared_prefix
from bots.brain.local import LocalLLM, embedded_model
from bots.brain.settings import LLMSettings

pytest.importorskip("llama_cpp")

# Two personas' instructions, long enough that reading them again is what a restore saves.
MIKA = ("You are Mika, a cheerful streamer who loves cozy games, tea and rainy days. Keep "
        "every answer to two short sentences, friendly and playful. " * 3)
LENA = ("Du bist Lena, eine geduldige Deutschlehrerin. Antworte auf Deutsch, in einfachen "
        "Sätzen, und stelle am Ende eine kurze Frage. " * 3)


def _chat(system: str, line: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": line}]


@pytest.fixture(scope="module")
def llama() -> StatefulLlama:
    model = StatefulLlama(model_path=str(embedded_model()), n_ctx=2048, n_threads=1,
                          n_threads_batch=1, verbose=False, kv_cache_bytes=64 << 20)
    yield model
    model.close()


def _answer(llama: StatefulLlama, messages: list[dict[str, str]]) -> tuple[str, int]:
    """Greedy answer (12 tokens) and how many tokens the model read for it."""
    before = llama.tokens_read
    text = ""
    for chunk in llama.create_chat_completion(messages=messages, stream=True, max_tokens=12,
                                              temperature=0.0):
        text += chunk["choices"][0]["delta"].get("content") or ""
    llama.save_state_now()
    return text, llama.tokens_read - before


def test_shared_prefix_counts_leading_equal_tokens():
    assert shared_prefix([1, 2, 3, 4], [1, 2, 9]) == 2
    assert shared_prefix([1, 2], [1, 2, 3]) == 2
    assert shared_prefix([], [1]) == 0
    assert shared_prefix(np.array([5, 6], np.intc), [5, 6]) == 2


def test_alternating_personas_read_only_their_new_tokens_and_answer_the_same(llama):
    llama.states.clear()
    mika_1, read_cold = _answer(llama, _chat(MIKA, 'Ann says: "What tea do you like?"'))
    _answer(llama, _chat(LENA, 'Ben says: "Wie geht es dir?"'))
    restores = llama.states.restores
    mika_2, read_warm = _answer(llama, _chat(MIKA, 'Cid says: "What tea do you like?"'))
    assert llama.states.restores == restores + 1
    # Without the saved state the model would read Mika's instructions again after Lena's.
    assert read_cold > 100
    assert read_warm < 30, (read_cold, read_warm)
    # Same answer as a model that never saw a saved state (greedy decoding).
    fresh = StatefulLlama(model_path=str(embedded_model()), n_ctx=2048, n_threads=1,
                          n_threads_batch=1, verbose=False, kv_cache_bytes=0)
    try:
        expected, read_fresh = _answer(fresh, _chat(MIKA, 'Cid says: "What tea do you like?"'))
    finally:
        fresh.close()
    assert read_fresh > 100 and len(fresh.states) == 0
    assert mika_2 == expected


def test_a_budget_too_small_keeps_nothing_and_an_old_state_goes_first(llama):
    llama.states.clear()
    sizes = KVStates(capacity_bytes=1 << 30)
    _answer(llama, _chat(MIKA, 'Ann says: "Hi!"'))
    assert sizes.save(llama)
    mika_bytes = sizes.nbytes
    assert KVStates(capacity_bytes=mika_bytes // 2).save(llama) is False  # does not fit
    _answer(llama, _chat(LENA, 'Ben says: "Hallo!"'))
    assert sizes.save(llama)
    lena_bytes = sizes.nbytes - mika_bytes
    budget = KVStates(capacity_bytes=int(max(mika_bytes, lena_bytes) * 1.3))
    assert budget.capacity_bytes < mika_bytes + lena_bytes
    _answer(llama, _chat(MIKA, 'Ann says: "Hi!"'))
    assert budget.save(llama)
    _answer(llama, _chat(LENA, 'Ben says: "Hallo!"'))
    assert budget.save(llama)
    assert len(budget) == 1 and budget.nbytes <= budget.capacity_bytes  # Mika's went first
    (kept,) = budget._saved.values()
    assert shared_prefix(kept.tokens, llama.input_ids[: llama.n_tokens]) == llama.n_tokens


def test_a_longer_state_replaces_its_own_prefix(llama):
    llama.states.clear()
    _answer(llama, _chat(MIKA, 'Ann says: "Hi!"'))
    first = llama.states.saves
    # The same conversation one exchange later: its state starts with the first one.
    text, _ = _answer(llama, _chat(MIKA, 'Ann says: "Hi!"'))
    assert llama.states.saves == first  # already held: nothing new to keep
    longer = [*_chat(MIKA, 'Ann says: "Hi!"'), {"role": "assistant", "content": text},
              {"role": "user", "content": 'Ann says: "And what about rainy days?"'}]
    _answer(llama, longer)
    assert len(llama.states) == 1  # the longer state replaced the one it starts with


async def test_local_llm_personas_on_one_model_keep_their_states():
    settings = LLMSettings(max_tokens=8, temperature=0.0)
    mika, lena = LocalLLM(settings=settings), LocalLLM(settings=settings)
    try:
        async def ask(llm: LocalLLM, system: str, line: str) -> str:
            return "".join([d async for d in llm.stream(
                [ChatTurn("system", system), ChatTurn("user", line)])])

        await ask(mika, MIKA, 'Ann says: "Hello!"')
        await ask(lena, LENA, 'Ben says: "Hallo!"')
        model = mika.model
        assert isinstance(model, StatefulLlama) and model is lena.model
        before, restores = model.tokens_read, model.states.restores
        await ask(mika, MIKA, 'Cid says: "Good evening!"')
        assert model.states.restores == restores + 1
        assert model.tokens_read - before < 45  # the new line and the reply, not the prompt
    finally:
        await asyncio.gather(mika.aclose(), lena.aclose())
