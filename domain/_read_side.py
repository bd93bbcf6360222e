"""``TicketingProjections``: the ticketing system's read side, in a process of its own.

A ``TicketingSystem`` keeps its projections (availability per section, each
reservation's status) up to date itself by default: a consumer of the
``ticketing-projections`` group among its threads. On Redis that consumer may run
elsewhere, as in any CQRS deployment: the write side with
``TicketingSystem.start(redis_url, projection_consumers=0)``, the read side with
``TicketingProjections.start(redis_url)`` (or ``bin/run-projections``) in another
process, on the same key prefix. Both sides share nothing but Redis; the consumer
group is the contract (each event projected once, in order per stream, after a
crash by the next consumer), so either side may be restarted, and several read-side
processes may share the group.

Why: one Python process runs one thread of Python at a time, and the projections'
consumer took 17% of the CPU of a reservation on Redis (0.20 of 1.19 ms, 64 callers).
In a process of its own it runs on another core, and the write side's process has
that much more for the sagas (``bin/bench ticketing --redis URL --projections-apart``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import TypeVar

from domain._errors import BackendUnavailable
from domain._events import make_codec
from domain._projections import Projector
from domain._validation import check_consumers
from persistence import Persistence, PersistenceError, Subscription

__all__ = [
    "PROJECTIONS_GROUP",
    "TicketingProjections",
    "backend",
    "default_node",
    "projections_caught_up",
    "start_on_backend",
    "stop_subscriptions",
    "subscribe_projections",
    "wait_until",
]

T = TypeVar("T")

PROJECTIONS_GROUP = "ticketing-projections"


@contextlib.contextmanager
def backend(doing: str) -> Iterator[None]:
    """Persistence errors as ``BackendUnavailable`` (none leaks out of the facade raw)."""
    try:
        yield
    except PersistenceError as error:
        raise BackendUnavailable(f"{doing}: {error}") from error


def default_node() -> str:
    """A name for this process in the consumer groups, unique per start."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def open_persistence(redis_url: str | None, key_prefix: str) -> Persistence:
    """The ticketing system's backend: in memory, or on Redis under ``key_prefix``."""
    codec = make_codec()
    with backend("opening the backend"):
        if redis_url is None:
            return Persistence.in_memory(codec)
        return Persistence.on_redis(redis_url, codec, prefix=key_prefix)


def start_on_backend(
    redis_url: str | None,
    key_prefix: str,
    persistence: Persistence | None,
    build: Callable[[Persistence, bool], T],
) -> T:
    """``build(backend, owned)`` on ``persistence``, or on a backend opened for it
    (``owned``: the built object closes it), closed again if ``build`` raises."""
    owns = persistence is None
    if persistence is None:
        persistence = open_persistence(redis_url, key_prefix)
    try:
        return build(persistence, owns)
    except BaseException:
        if owns:
            persistence.close()
        raise


def stop_subscriptions(subscriptions: Sequence[Subscription], timeout: float) -> None:
    for subscription in subscriptions:
        subscription.stop(0)  # tell them all first: each may be blocked in a read
    for subscription in subscriptions:
        subscription.stop(timeout)


def subscribe_projections(
    persistence: Persistence, projector: Projector, node: str, n: int, claim_idle: float
) -> Subscription:
    """The ``n``-th projections consumer of ``node``."""
    return persistence.subscriptions.subscribe(
        PROJECTIONS_GROUP,
        projector,
        consumer=f"{node}-projections-{n}",
        claim_idle=claim_idle,
        max_deliveries=1000,
        retry_delay=0.1,
        types=Projector.TYPES,
    )


def projections_caught_up(persistence: Persistence) -> bool:
    """Whether the projections' group, wherever its consumers run, has handled every
    event appended so far (one ``Subscriptions.backlog``)."""
    return persistence.subscriptions.backlog(PROJECTIONS_GROUP) == 0


def wait_until(done: Callable[[], bool], timeout: float) -> bool:
    """Poll ``done`` (1 ms apart at first, 50 ms at most) until it holds; False on timeout."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    return True


class TicketingProjections:
    """The consumers that keep the ticketing projections, and nothing else.

    Example (a process of its own; the systems run with ``projection_consumers=0``)::

        with TicketingProjections.start("redis://localhost:6379/0") as read_side:
            read_side.wait()        # until stop() from another thread, or a signal
    """

    def __init__(
        self,
        persistence: Persistence,
        *,
        owns_persistence: bool,
        consumers: int,
        node: str,
        claim_idle: float,
        wait_timeout: float,
    ) -> None:
        self.persistence = persistence
        self.node = node
        self._owns_persistence = owns_persistence
        self._wait_timeout = wait_timeout
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self._subscriptions: list[Subscription] = []
        projector = Projector(persistence.events, persistence.projections)
        try:
            with backend("starting the projections"):
                for n in range(consumers):
                    self._subscriptions.append(
                        subscribe_projections(persistence, projector, node, n, claim_idle)
                    )
        except BaseException:
            self._owns_persistence = False  # start() closes it
            self.stop()
            raise

    @classmethod
    def start(
        cls,
        redis_url: str | None = None,
        *,
        key_prefix: str = "ticketing",
        persistence: Persistence | None = None,
        consumers: int = 1,
        node: str | None = None,
        claim_idle: float = 5.0,
        wait_timeout: float = 30.0,
    ) -> TicketingProjections:
        """Start projecting what the systems on this backend record.

        Args:
            redis_url: the Redis server of the systems; None runs in memory (useful
                only with ``persistence``: another process cannot see this one's).
            key_prefix: the systems' key prefix.
            persistence: an already open backend (e.g. ``system.persistence``);
                overrides ``redis_url``; not closed by ``stop()``.
            consumers: consumers of the group in this process (one suffices: each
                reads a batch at a time).
            node: this process's name in the consumer group. A read side restarted
                in place should pass its predecessor's, to take over the events it
                left pending at once (otherwise they are claimed after ``claim_idle``).
            claim_idle: seconds before an event pending on a silent consumer (of any
                process) is claimed by another.
            wait_timeout: the default timeout of ``settle``.

        Raises:
            InvalidRequest: fewer than one consumer.
            BackendUnavailable: the backend cannot be reached.
        """
        check_consumers("consumers", consumers, least=1)
        return start_on_backend(
            redis_url,
            key_prefix,
            persistence,
            lambda backend, owned: cls(
                backend,
                owns_persistence=owned,
                consumers=consumers,
                node=node or default_node(),
                claim_idle=claim_idle,
                wait_timeout=wait_timeout,
            ),
        )

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until the projections reflect every event stored; False on timeout."""
        with backend("settling the projections"):
            return wait_until(
                lambda: projections_caught_up(self.persistence),
                self._wait_timeout if timeout is None else timeout,
            )

    def wait(self, timeout: float | None = None) -> bool:
        """Block until ``stop()`` (from another thread or a signal handler); False if
        ``timeout`` passed first."""
        return self._stopped.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the consumers; what they read and did not project stays pending in the
        group, for the next consumer. Idempotent."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
        stop_subscriptions(self._subscriptions, timeout)
        if self._owns_persistence:
            self.persistence.close()

    @property
    def running(self) -> bool:
        return not self._stopped.is_set()

    def __enter__(self) -> TicketingProjections:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
