"""A render pool over RabbitMQ: the same ``run(key, fn, *args)`` as the local pool, with the
jobs done by worker processes on any machine that reaches the broker.

Jobs go to one durable queue as persistent messages (a registered job kind + pickled
arguments, see :mod:`avatar_engine.workers.worker`); results come back through Direct
Reply-to. Each job has an id that stays the same when it is published again, so a result that
arrives twice (a worker died after answering but before its ack, or the pool re-sent the job
after a reconnect) is shown once. Results of one key (persona) are handed out in the order
the jobs were submitted, and each key has a bounded number of jobs on the broker at a time,
so a persona with a long backlog cannot fill the queue ahead of the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from avatar_engine.workers.outage import BrokerOutageLog
from vstage_core.errors import ProviderError

if TYPE_CHECKING:
    from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from avatar_engine.workers.worker import (
    DEFAULT_BROKER,
    DEFAULT_QUEUE,
    JOB_CONTENT_TYPE,
    RESULT_ERROR,
    connect,
    job_name,
    keep_freed_memory,
    redact,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

REPLY_TO = "amq.rabbitmq.reply-to"


@dataclass(eq=False)
class _Pending:
    job_id: str
    key: str
    kind: str
    body: bytes
    future: asyncio.Future = field(repr=False)
    outcome: tuple[str, bytes] | None = None
    sent: bool = False  # published at least once (a reconnect re-sends only those)


class RabbitRenderPool:
    """A :class:`~avatar_engine.workers.pool.RenderPool` whose workers are
    ``python -m avatar_engine.workers.worker`` processes; use as ``async with``.

    Args:
        url: the broker, ``amqp://user:pass@host:port/vhost``.
        queue: the job queue (the workers' ``--queue``).
        max_in_flight_per_key: jobs of one key on the broker at once; later ones wait here.
        reconnect_interval: seconds between reconnection attempts after the broker goes away.
        reuse_memory: let this process's allocator keep freed memory for the next answers
            (:func:`~avatar_engine.workers.worker.keep_freed_memory`): each clip's answer is
            a megabyte or so, copied several times on its way in, and page-faulting those
            copies in afresh was a large part of the remote overhead. Process-wide (glibc).

    ``run`` takes a function registered with :func:`~avatar_engine.workers.worker.job` (or its
    name) and picklable arguments. Cancelling a caller drops its result; a job already on the
    broker may still run. Jobs in flight when the connection drops are sent again once it is
    back, under the same id.
    """

    remote: Literal[True] = True
    """Jobs leave this process: callers must submit registered jobs with arguments that pickle
    (see :mod:`avatar_engine.workers.jobs`), never closures over in-process objects."""

    def __init__(
        self,
        *,
        url: str = DEFAULT_BROKER,
        queue: str = DEFAULT_QUEUE,
        max_in_flight_per_key: int = 4,
        reconnect_interval: float = 1.0,
        reuse_memory: bool = True,
    ) -> None:
        if max_in_flight_per_key < 1:
            raise ValueError("max_in_flight_per_key must be >= 1")
        self.url = url
        self.queue_name = queue
        self.max_in_flight_per_key = max_in_flight_per_key
        self.reconnect_interval = reconnect_interval
        self.reuse_memory = reuse_memory
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._ready = asyncio.Event()  # connected, and consuming the reply-to pseudo-queue
        self._pending: dict[str, _Pending] = {}
        self._order: dict[str, deque[_Pending]] = {}
        self._windows: dict[str, asyncio.Semaphore] = {}
        self.duplicates = 0
        self.resent = 0
        self.served: dict[str, int] = {}
        self.outage_log = BrokerOutageLog(url, what="render pool", logger=logger)

    async def __aenter__(self) -> RabbitRenderPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect, declare the job queue and listen for results.

        Raises:
            ProviderError: the broker cannot be reached (the message names it).
        """
        if self._connection is not None:
            return
        self._connection = connection = await connect(
            self.url, reconnect_interval=self.reconnect_interval
        )
        if self.reuse_memory:
            keep_freed_memory()
        self.outage_log.install()
        connection.close_callbacks.add(self._on_connection_lost)
        connection.reconnect_callbacks.add(self._on_reconnected)
        self._channel = channel = await connection.channel()
        await channel.declare_queue(self.queue_name, durable=True)
        await self._listen()
        logger.info("rabbit render pool on %s, queue %r", redact(self.url), self.queue_name)

    async def stop(self) -> None:
        """Close the connection; callers still waiting get ``CancelledError``."""
        self._ready.clear()
        for p in self._pending.values():
            p.future.cancel()
        self._pending.clear()
        self._order.clear()
        if self._connection is not None:
            connection, self._connection, self._channel = self._connection, None, None
            with contextlib.suppress(Exception):
                await connection.close()
        self.outage_log.remove()

    def pending(self, key: str | None = None) -> int:
        """Jobs submitted and not answered yet (of ``key``, or of all keys)."""
        if key is not None:
            return len(self._order.get(key, ()))
        return len(self._pending)

    async def run(self, key: str, fn: Callable[..., T] | str, *args: Any) -> T:
        """Run the registered job ``fn(*args)`` on a worker; return its result (or raise its
        exception). Results of one ``key`` are returned in submission order."""
        if self._connection is None:
            raise RuntimeError("the render pool is not started (use `async with pool:`)")
        kind = job_name(fn)
        body = pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL)
        window = self._windows.setdefault(key, asyncio.Semaphore(self.max_in_flight_per_key))
        async with window:
            p = _Pending(
                uuid.uuid4().hex, key, kind, body, asyncio.get_running_loop().create_future()
            )
            self._pending[p.job_id] = p
            self._order.setdefault(key, deque()).append(p)
            try:
                await self._publish(p)
                return await p.future
            finally:
                self._pending.pop(p.job_id, None)
                order = self._order.get(key)
                if order is not None and p in order:
                    order.remove(p)
                    self._release(key)

    # --- internals -------------------------------------------------------------------------

    async def _listen(self) -> None:
        """Consume the Direct Reply-to pseudo-queue on our channel: it must come before any
        request that names it as ``reply_to`` on the same channel."""
        if self._channel is None:
            raise RuntimeError("the render pool is stopped")
        replies = await self._channel.get_queue(REPLY_TO, ensure=False)
        await replies.consume(self._on_reply, no_ack=True)
        self._ready.set()

    async def _publish(self, p: _Pending) -> None:
        import aio_pika

        message = aio_pika.Message(
            p.body,
            message_id=p.job_id,
            correlation_id=p.job_id,
            reply_to=REPLY_TO,
            type=p.kind,
            headers={"key": p.key},
            content_type=JOB_CONTENT_TYPE,
            # Transient: only this pool can take the answer (its Direct Reply-to address dies
            # with its channel), and it re-sends every unanswered job after a reconnect. A copy
            # persisted across a broker restart would be rendered for nobody; writing every
            # job's audio to the broker's disk cost time on each job.
            delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
        )
        while True:
            await self._ready.wait()
            try:
                if self._channel is None:  # stopped meanwhile: handled as a dropped connection
                    raise ConnectionError("the render pool has no channel")
                await self._channel.default_exchange.publish(message, routing_key=self.queue_name)
                p.sent = True
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the connection dropped: wait for it, then send again
                if self._connection is None:
                    raise ProviderError("the render pool was stopped", retryable=True) from e
                # Once per attempt during an outage: the outage itself is logged once.
                logger.debug("publishing job %s failed (%r); retrying", p.job_id, e)
                self._ready.clear()
                await asyncio.sleep(self.reconnect_interval / 4)
                if not self._connection.is_closed and not self._connection.reconnecting:
                    self._ready.set()

    async def _on_reply(self, message) -> None:
        p = self._pending.get(message.correlation_id or "")
        if p is None or p.outcome is not None:
            self.duplicates += 1  # answered already (or given up): show it once
            return
        p.outcome = (message.type or "", message.body)
        self._release(p.key)

    def _release(self, key: str) -> None:
        """Hand out the answered jobs at the head of ``key``'s order, oldest first."""
        order = self._order.get(key)
        while order and (order[0].outcome is not None or order[0].future.done()):
            p = order.popleft()
            if p.future.done() or p.outcome is None:
                continue
            kind, body = p.outcome
            try:
                value = pickle.loads(body)
            except Exception as e:
                p.future.set_exception(ProviderError(f"job {p.job_id}: undecodable result: {e}"))
                continue
            if kind == RESULT_ERROR:
                if not isinstance(value, BaseException):
                    value = ProviderError(f"job {p.job_id} failed: {value!r}")
                p.future.set_exception(value)
            else:
                p.future.set_result(value)
            self.served[key] = self.served.get(key, 0) + 1
        if order is not None and not order:
            del self._order[key]

    def _on_connection_lost(self, *_: Any) -> None:
        """Called on the loss and again on every failed reconnection attempt."""
        self._ready.clear()
        if self._connection is not None:  # not our own stop()
            self.outage_log.lost(self.reconnect_interval)

    async def _on_reconnected(self, *_: Any) -> None:
        """Listen again on the restored channel, then re-send every unanswered job: its
        answer, if any, went to the old channel's reply address and is lost."""
        try:
            await self._listen()
        except Exception:
            logger.exception("could not listen for results after reconnecting")
            return
        # Jobs never sent yet are sent by their own caller, now that we are ready again.
        unanswered = [p for p in self._pending.values() if p.outcome is None and p.sent]
        self.outage_log.recovered(f"re-sending {len(unanswered)} unanswered jobs")
        for p in unanswered:
            self.resent += 1
            await self._publish(p)
