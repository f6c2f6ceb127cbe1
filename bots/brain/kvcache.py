"""Saved model states for llama.cpp, so a turn reads only the tokens it does not share with an
earlier one.

llama.cpp keeps one conversation's keys and values (its KV cache) and llama-cpp-python reuses
the part of it that the next prompt starts with. A show rarely asks the same conversation
twice in a row: personas sharing one model take turns, every viewer and every private session
has its own history, so the next prompt usually shares only a few tokens with what the
context holds, and the model reads a persona's whole instructions again (about 200 tokens,
1-2 s on one CPU thread for the embedded SmolLM2) before its first word.

:class:`KVStates` keeps the state of each finished generation (its tokens and llama.cpp's
sequence state, a few MB) in RAM, least recently used first out, within a byte budget.
Before a prompt is read, the saved state that shares the longest prefix with it is put back
when that beats what the context already holds, and llama-cpp-python then reads only the rest.
Only sequence 0's keys and values are saved (``llama_state_seq_*``): the logits buffer that
``Llama.save_state`` copies too (about 100 MB for a 49k vocabulary) is not needed, since the
first token after a restore is always decoded afresh.

:class:`StatefulLlama` is the ``Llama`` that does this; its chat formatting is llama-cpp-
python's own (the chat handler calls :meth:`StatefulLlama.create_completion` with the prompt's
tokens), so the tokens compared are exactly the ones the model reads.
"""

from __future__ import annotations

import ctypes
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from llama_cpp import Llama, llama_cpp

__all__ = ["KVStates", "StatefulLlama", "shared_prefix"]

logger = logging.getLogger(__name__)

MIN_GAIN_TOKENS = 16
"""A saved state is put back only when it saves at least this many tokens of reading (a
restore costs a copy of a few MB: about what the model reads in a handful of tokens)."""


def shared_prefix(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray) -> int:
    """How many leading tokens ``a`` and ``b`` have in common."""
    x, y = np.asarray(a), np.asarray(b)
    n = min(len(x), len(y))
    if not n:
        return 0
    differ = np.flatnonzero(x[:n] != y[:n])
    return int(differ[0]) if len(differ) else n


@dataclass(eq=False, slots=True)
class _Saved:
    tokens: np.ndarray  # intc, the tokens the state holds, in order
    data: Any = field(repr=False)  # ctypes uint8 array: llama_state_seq_get_data's bytes

    @property
    def nbytes(self) -> int:
        return len(self.data) + self.tokens.nbytes


class KVStates:
    """Saved sequence states of one llama.cpp context, least recently used out first.

    Not thread-safe by itself: use it only while holding the lock that serialises the
    model's generations (the context is not re-entrant either).

    Args:
        capacity_bytes: the most RAM the states may take (0: nothing is kept).
    """

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = max(0, capacity_bytes)
        self._saved: OrderedDict[int, _Saved] = OrderedDict()
        self._serial = 0
        self.nbytes = 0
        # Counters (tests, benchmarks, logs).
        self.saves = 0
        self.restores = 0
        self.restored_tokens = 0
        self.failures = 0

    def __len__(self) -> int:
        return len(self._saved)

    def clear(self) -> None:
        self._saved.clear()
        self.nbytes = 0

    def best(self, prompt: Sequence[int], *, have: int) -> tuple[int, _Saved] | None:
        """The saved state sharing the longest prefix with ``prompt``, if it beats ``have``
        (the prefix the context already holds) by :data:`MIN_GAIN_TOKENS`; with its key."""
        found: tuple[int, _Saved] | None = None
        longest = have + MIN_GAIN_TOKENS - 1
        for key, saved in self._saved.items():
            n = shared_prefix(saved.tokens, prompt)
            if n > longest:
                found, longest = (key, saved), n
        return found

    def restore(self, llama: Llama, prompt: Sequence[int]) -> int:
        """Put back the best saved state for ``prompt`` (see :meth:`best`); returns the
        tokens it holds in common with ``prompt`` (0: nothing was restored)."""
        if not self._saved:
            return 0
        have = shared_prefix(llama.input_ids[: llama.n_tokens], prompt)
        found = self.best(prompt, have=have)
        if found is None:
            return 0
        key, saved = found
        ctx = llama._ctx.ctx
        read = llama_cpp.llama_state_seq_set_data(ctx, saved.data, len(saved.data), 0)
        if not read:
            # llama.cpp refused the state (it clears the sequence when it does): forget it,
            # and tell llama-cpp-python that the context holds nothing.
            self.failures += 1
            self._drop(key)
            llama.n_tokens = 0
            llama._requires_eval = True
            logger.warning("llama.cpp refused a saved state of %d tokens; reading the prompt "
                           "in full", len(saved.tokens))
            return 0
        n = len(saved.tokens)
        llama.input_ids[:n] = saved.tokens
        llama.n_tokens = n
        llama._requires_eval = True  # the next token must be decoded, not sampled from logits
        self._saved.move_to_end(key)
        self.restores += 1
        common = shared_prefix(saved.tokens, prompt)
        self.restored_tokens += common
        return common

    def save(self, llama: Llama) -> bool:
        """Keep the state the context holds now; returns whether it was kept.

        A saved state that is a prefix of the new one is dropped (the new one serves every
        prompt the old one did), and nothing is saved when a kept state already holds it."""
        if not self.capacity_bytes:
            return False
        n = int(llama.n_tokens)
        if n <= 0:
            return False
        tokens = np.array(llama.input_ids[:n], dtype=np.intc)
        for key, saved in list(self._saved.items()):
            common = shared_prefix(saved.tokens, tokens)
            if common == n:  # already held, by this state or a longer one
                self._saved.move_to_end(key)
                return False
            if common == len(saved.tokens):
                self._drop(key)
        ctx = llama._ctx.ctx
        size = int(llama_cpp.llama_state_seq_get_size(ctx, 0))
        if size <= 0 or size + tokens.nbytes > self.capacity_bytes:
            return False
        data = (ctypes.c_uint8 * size)()
        got = int(llama_cpp.llama_state_seq_get_data(ctx, data, size, 0))
        if not got or got > size:
            self.failures += 1
            return False
        if got < size:
            data = (ctypes.c_uint8 * got).from_buffer_copy(data)
        saved = _Saved(tokens, data)
        self._serial += 1
        self._saved[self._serial] = saved
        self.nbytes += saved.nbytes
        self.saves += 1
        while self.nbytes > self.capacity_bytes and self._saved:
            self._drop(next(iter(self._saved)))
        return True

    def _drop(self, key: int) -> None:
        saved = self._saved.pop(key, None)
        if saved is not None:
            self.nbytes -= saved.nbytes


class StatefulLlama(Llama):
    """A ``Llama`` that puts back the best saved state before reading a prompt.

    ``states`` is filled by :meth:`save_state_now`, called by the owner after a generation
    while it still holds the model's lock."""

    def __init__(self, *args: Any, kv_cache_bytes: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.states = KVStates(kv_cache_bytes)
        self.tokens_read = 0  # every token the model has read (prompts and replies)

    def eval(self, tokens: Sequence[int]) -> None:
        self.tokens_read += len(tokens)
        super().eval(tokens)

    def create_completion(self, prompt: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], int):
            try:
                self.states.restore(self, prompt)
            except Exception:  # a cache must never cost the answer
                self.states.failures += 1
                logger.exception("restoring a saved llama.cpp state failed")
        return super().create_completion(prompt, *args, **kwargs)

    def save_state_now(self) -> bool:
        """Keep the context's current state for later prompts that start the same way."""
        try:
            return self.states.save(self)
        except Exception:
            self.states.failures += 1
            logger.exception("saving a llama.cpp state failed")
            return False
