"""A render worker: takes jobs from the RabbitMQ job queue, runs them and sends each result
straight back to the process that asked (Direct Reply-to); also the registry of job kinds that
can cross machines.

A job is a registered *kind* (a plain name both sides know) plus its pickled arguments; see
docs/workers.md. Run one per GPU (or per CPU box)::

    python -m avatar_engine.workers.worker --broker amqp://user:pass@host/ --import my.jobs
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import pickle
import signal
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from avatar_engine.workers.outage import BrokerOutageLog
from vstage_core.errors import ProviderError, require

if TYPE_CHECKING:
    from aio_pika.abc import AbstractChannel, AbstractRobustConnection

logger = logging.getLogger(__name__)

DEFAULT_QUEUE = "vstage.render"
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672/"
JOB_CONTENT_TYPE = "application/x-vstage-job+pickle"
RESULT_OK, RESULT_ERROR = "result", "error"

F = TypeVar("F", bound=Callable[..., Any])

JOBS: dict[str, Callable[..., Any]] = {}
"""Registered job kinds: name -> blocking function. Both the pool and the worker import the
modules that register them, so a name means the same code on every machine."""


def job(name: str) -> Callable[[F], F]:
    """Register a blocking function as a job kind that can run on remote workers.

    Its arguments and result must pickle. The function keeps working as a plain function (and
    in the local pool); ``RabbitRenderPool.run`` accepts it or its name.
    """

    def register(fn: F) -> F:
        if JOBS.get(name, fn) is not fn:
            raise ValueError(f"job kind {name!r} is already registered to another function")
        JOBS[name] = fn
        # A function takes new attributes; the Callable type F does not declare this one.
        fn.__vstage_job__ = name  # type: ignore[attr-defined]
        return fn

    return register


def job_name(fn_or_name: Callable[..., Any] | str) -> str:
    """The registered kind of a job function (or the name itself)."""
    name: str | None
    if isinstance(fn_or_name, str):
        name = fn_or_name
    else:
        name = getattr(fn_or_name, "__vstage_job__", None)
        if name is None:
            raise TypeError(
                f"{fn_or_name!r} is not a registered job: decorate it with "
                "@avatar_engine.workers.worker.job(name) to run it on remote workers"
            )
    if name not in JOBS:
        raise KeyError(f"unknown job kind {name!r}; registered: {sorted(JOBS)}")
    return name


def redact(url: str) -> str:
    """The broker URL without its password, for messages and logs."""
    from yarl import URL

    u = URL(url)
    return str(u.with_password("***")) if u.password else str(u)


async def connect(
    url: str, *, connect_timeout: float = 10.0, reconnect_interval: float = 1.0
) -> AbstractRobustConnection:
    """A robust (self-reconnecting) aio-pika connection.

    Raises:
        ProviderError: the broker cannot be reached now (retryable); the message names it.
    """
    aio_pika = require("aio_pika", extra="rabbit")
    try:
        return await aio_pika.connect_robust(
            url, timeout=connect_timeout, reconnect_interval=reconnect_interval
        )
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as e:
        raise ProviderError(
            f"cannot reach the RabbitMQ broker at {redact(url)}: {e or type(e).__name__}. "
            "Is rabbitmq-server running and the URL right?",
            retryable=True,
        ) from e


MALLOC_MMAP_THRESHOLD = 16 << 20
MALLOC_TRIM_THRESHOLD = 64 << 20


def keep_freed_memory(
    *, mmap_threshold: int = MALLOC_MMAP_THRESHOLD, trim_threshold: int = MALLOC_TRIM_THRESHOLD
) -> bool:
    """Make glibc's allocator keep freed memory for reuse (process-wide); True if it applied.

    Every job and answer crosses several short-lived copies of its body (pickle, aiormq's
    frame buffers, the assembled message), each a megabyte or so for a clip. By default glibc
    serves blocks of that size with ``mmap`` or trims them off the heap when freed, so every
    copy of every message is page-faulted in again (zeroed by the kernel): that was about half
    of the CPU a remote render job spent outside rendering. With these thresholds blocks below
    ``mmap_threshold`` come from the heap and up to ``trim_threshold`` bytes of freed heap are
    kept, so the next message reuses warm pages. No-op (False) off glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from <malloc.h>
    return bool(mallopt(m_mmap_threshold, mmap_threshold)) and bool(
        mallopt(m_trim_threshold, trim_threshold)
    )


# --- built-in job kinds (diagnostics, tests and benchmarks) --------------------------------


@job("echo")
def echo(value: Any) -> Any:
    """Return ``value``: measures the round trip."""
    return value


@job("sleep_then_echo")
def sleep_then_echo(seconds: float, value: Any, mark_dir: str | None = None) -> Any:
    """Sleep, then return ``value``. With ``mark_dir``, first append ``value`` to
    ``mark_dir/started-<pid>``, so a test sees which worker started which job."""
    if mark_dir is not None:
        with open(Path(mark_dir) / f"started-{os.getpid()}", "a") as f:
            f.write(f"{value!r}\n")
    time.sleep(seconds)
    return value


# --- the worker ----------------------------------------------------------------------------


class RenderWorker:
    """Consumes the durable job queue one job at a time (prefetch 1) and answers each on the
    asker's Direct Reply-to address, acking only after the answer is published: a worker that
    dies mid-job leaves its job unacked, and the broker hands it to another worker.

    Answers are remembered by job id for the last ``cache_size`` jobs, so a job redelivered
    to the same worker (its ack was lost) is answered again without running twice.

    Args:
        url: the broker, ``amqp://user:pass@host:port/vhost``.
        queue: the job queue's name.
        prefetch: jobs held at once; 1 keeps the queue fair across workers.
        reconnect_interval: seconds between reconnection attempts after the broker goes away.
    """

    def __init__(
        self,
        *,
        url: str = DEFAULT_BROKER,
        queue: str = DEFAULT_QUEUE,
        prefetch: int = 1,
        reconnect_interval: float = 1.0,
        cache_size: int = 1024,
    ) -> None:
        self.url = url
        self.queue_name = queue
        self.prefetch = prefetch
        self.reconnect_interval = reconnect_interval
        self._cache: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self._cache_size = cache_size
        self._executor: ThreadPoolExecutor | None = None
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._stopped = asyncio.Event()
        self.executed = 0
        self.answered = 0
        self.failed = 0
        self.outage_log = BrokerOutageLog(url, what=f"worker {os.getpid()}", logger=logger)

    async def __aenter__(self) -> RenderWorker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect, declare the queue and start consuming.

        Raises:
            ProviderError: the broker cannot be reached.
        """
        if self._connection is not None:
            return
        self._stopped.clear()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="render-job")
        self._connection = connection = await connect(
            self.url, reconnect_interval=self.reconnect_interval
        )
        self.outage_log.install()
        connection.close_callbacks.add(self._on_connection_lost)
        connection.reconnect_callbacks.add(self._on_reconnected)
        # No publisher confirms: an answer goes to a Direct Reply-to address, which the broker
        # never stores, so a confirm would only cost a round trip before the ack. Frames on one
        # channel stay in order: if the ack reaches the broker, the answer did too; if the
        # connection breaks first, the job is redelivered.
        self._channel = channel = await connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=self.prefetch)
        queue = await channel.declare_queue(self.queue_name, durable=True)
        await queue.consume(self._on_job)
        logger.info("worker %d consuming %r on %s", os.getpid(), self.queue_name, redact(self.url))

    async def stop(self) -> None:
        """Close the connection (an unfinished job goes back to the queue) and the executor."""
        self._stopped.set()
        if self._connection is not None:
            connection, self._connection, self._channel = self._connection, None, None
            with contextlib.suppress(Exception):
                await connection.close()
        self.outage_log.remove()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _on_connection_lost(self, *_: Any) -> None:
        """Called on the loss and again on every failed reconnection attempt."""
        if self._connection is not None:  # not our own stop()
            self.outage_log.lost(self.reconnect_interval)

    def _on_reconnected(self, *_: Any) -> None:
        self.outage_log.recovered("consuming again")

    async def serve_forever(self) -> None:
        """Run until :meth:`stop`."""
        await self._stopped.wait()

    async def _on_job(self, message) -> None:
        import aio_pika

        job_id = message.message_id or message.correlation_id or ""
        try:
            reply = self._cache.get(job_id) if job_id else None
            if reply is None:
                reply = await self._execute(message)
                if job_id:
                    self._cache[job_id] = reply
                    while len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
            else:
                logger.info("job %s redelivered: answering from the cache", job_id)
            if message.reply_to:
                kind, body = reply
                channel = self._channel
                if channel is None:  # stopped meanwhile: left unacked, so redelivered
                    raise ConnectionError("the worker is stopped")
                await channel.default_exchange.publish(
                    aio_pika.Message(
                        body,
                        correlation_id=job_id,
                        type=kind,
                        content_type=JOB_CONTENT_TYPE,
                    ),
                    routing_key=message.reply_to,
                    mandatory=False,
                )
            self.answered += 1
            await message.ack()
        except asyncio.CancelledError:
            raise
        except Exception:  # the connection went away: the broker redelivers the job
            logger.exception("job %s: could not answer or ack; it will be redelivered", job_id)

    async def _execute(self, message) -> tuple[str, bytes]:
        kind = message.type or ""
        loop = asyncio.get_running_loop()
        try:
            fn = JOBS.get(kind)
            if fn is None:
                raise ProviderError(f"worker {os.getpid()} does not know job kind {kind!r}")
            args = pickle.loads(message.body)
            self.executed += 1
            result = await loop.run_in_executor(self._executor, fn, *args)
            return RESULT_OK, pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a failing job never stops the worker: its asker gets it
            self.failed += 1
            logger.warning("job %s (%s) failed: %r", message.message_id, kind, e)
            try:
                body = pickle.dumps(e, protocol=pickle.HIGHEST_PROTOCOL)
                pickle.loads(body)
            except Exception:
                body = pickle.dumps(ProviderError(f"{type(e).__name__}: {e}"))
            return RESULT_ERROR, body


def main(argv: list[str] | None = None) -> int:
    """``python -m avatar_engine.workers.worker``: serve render jobs until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m avatar_engine.workers.worker", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--broker",
        default=os.environ.get("VSTAGE_BROKER", DEFAULT_BROKER),
        help="amqp:// URL of RabbitMQ (default $VSTAGE_BROKER or %(default)s)",
    )
    parser.add_argument("--queue", default=DEFAULT_QUEUE, help="job queue (default %(default)s)")
    parser.add_argument("--prefetch", type=int, default=1, help="jobs held at once (default 1)")
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="module that registers job kinds (repeatable)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    import importlib

    keep_freed_memory()  # this process only serves jobs: reuse message buffers' pages
    for module in args.imports:
        importlib.import_module(module)

    async def serve() -> None:
        worker = RenderWorker(url=args.broker, queue=args.queue, prefetch=args.prefetch)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker._stopped.set)
        async with worker:
            print(f"worker ready: pid {os.getpid()}, queue {args.queue}", flush=True)
            await worker.serve_forever()

    try:
        asyncio.run(serve())
    except ProviderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy: job modules given with --import
    # register into ``avatar_engine.workers.worker.JOBS``, which must be the registry served.
    from avatar_engine.workers.worker import main as _main

    sys.exit(_main())
