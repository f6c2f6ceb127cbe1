"""One log line when the broker goes away and one when it is back, for the render pool and the
workers, instead of several lines per reconnection attempt.

aio-pika retries a lost connection every ``reconnect_interval`` seconds, and every failed
attempt is logged by aio-pika and aiormq (an error, a warning, an info line each); a 10 s
outage wrote about 70 lines. :class:`BrokerOutageLog` says "lost" once and "back after N s"
once, and moves the libraries' records about this broker's connection to DEBUG while the
outage lasts (they stay available with ``--verbose``).
"""

from __future__ import annotations

import logging
import time

from yarl import URL

LIBRARY_LOGGERS = (
    "aiormq.connection",
    "aiormq.channel",
    "aio_pika.connection",
    "aio_pika.channel",
    "aio_pika.robust_connection",
    "aio_pika.robust_channel",
    "aio_pika.robust_queue",
    "aio_pika.robust_exchange",
    "aio_pika.queue",
    "aio_pika.tools",
)
"""Loggers whose records about a connection are demoted during an outage (a logger's filters
only see records logged on that very logger, so each is listed)."""


class BrokerOutageLog(logging.Filter):
    """Tracks one connection's outages and logs each once; use :meth:`install` / :meth:`remove`.

    Args:
        url: the broker (only its host and port are used, to recognise library records about
            this connection: they name it as ``host:port`` or ``('host', port)``).
        what: who is talking, for the messages ("render pool", "worker 123").
        logger: where the two lines go.
    """

    def __init__(self, url: str, *, what: str, logger: logging.Logger) -> None:
        super().__init__()
        u = URL(url)
        host, port = u.host or "localhost", u.port or 5672
        self._marks = (f"{host}:{port}", f"'{host}', {port}")
        self.shown = u.with_password("***") if u.password else u
        self.what = what
        self.logger = logger
        self.down_since: float | None = None  # monotonic time the outage began
        self.outages = 0
        self._announced = False

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def install(self) -> None:
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).addFilter(self)

    def remove(self) -> None:
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).removeFilter(self)

    def lost(self, reconnect_interval: float) -> None:
        """The connection is gone: say so once per outage."""
        if self.down_since is None:
            self.down_since = time.monotonic()
        if not self._announced:
            self._announced = True
            self.outages += 1
            self.logger.warning(
                "%s lost the broker at %s; reconnecting every %g s (attempts are logged at "
                "DEBUG)", self.what, self.shown, reconnect_interval,
            )

    def recovered(self, detail: str = "") -> None:
        """The connection is back: say so once, with how long it was down."""
        if self.down_since is None:
            return
        seconds = time.monotonic() - self.down_since
        self.down_since, self._announced = None, False
        self.logger.warning(
            "%s reconnected to %s after %.1f s%s", self.what, self.shown, seconds,
            f"; {detail}" if detail else "",
        )

    def filter(self, record: logging.LogRecord) -> bool:
        """Demote a library's record about this connection (from its close to the
        reconnection) to DEBUG; drop it where DEBUG is not logged."""
        if record.levelno <= logging.DEBUG:
            return True
        if self.down_since is None:
            try:
                message = record.getMessage()
            except Exception:  # a library's own repr can fail mid-outage; leave the record be
                return True
            if not any(mark in message for mark in self._marks):
                return True
            # "Unexpected connection close from <this broker>": the outage starts now; the
            # library lines that follow it (no address in them) belong to it too.
            self.down_since = time.monotonic()
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        # Handlers rarely have a level of their own: keep the record only where its logger
        # would have let a DEBUG record through in the first place.
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
