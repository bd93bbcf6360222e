"""The consumer loop both adapters run: one thread per subscription.

The adapters provide a ``GroupBackend`` (reading, claiming, acknowledging and
dead-lettering feed entries of one consumer of one group); the loop here decides what
happens to an entry, so the memory and Redis subscriptions share their semantics
(see ``persistence._ports.Subscriptions``) by construction.

Threads: ``subscribe()`` creates the group on the caller's thread (so ``start="now"``
means now, not whenever the thread gets going); everything else, the handler
included, runs on the subscription's own thread.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from persistence._common import error_text, new_event_id
from persistence._errors import CodecError, EventStoreUnavailable
from persistence._ports import RecordedEvent, SubscriptionHandler

__all__ = ["Delivery", "GroupBackend", "RunningSubscription", "default_consumer_name"]

log = logging.getLogger("persistence.subscriptions")

READ_BLOCK = 0.1
"""Seconds a read waits for new entries: the most ``stop()`` waits for an idle loop."""

ACK_BATCH = 64
"""Acknowledgements are sent together: after each read batch, after this many, or
after ``claim_idle / 4`` seconds (so that no other consumer claims an entry this one
has handled but not yet acknowledged), whichever comes first."""


@dataclass(slots=True)
class Delivery:
    """One delivery of a feed entry to this consumer.

    ``deliveries`` counts this one (1 on the first delivery); ``event`` is None when
    the entry could not be decoded, ``decode_error`` then says why, or when it was
    ``skipped``: of a type the subscription does not want, so never decoded.
    """

    partition: int
    entry_id: str
    deliveries: int
    event: RecordedEvent | None
    decode_error: CodecError | None = None
    raw: object = None  # what the adapter needs to dead-letter the entry
    skipped: bool = False


class GroupBackend(Protocol):
    """One consumer of one group, over every partition feed."""

    def ensure_group(self) -> None:
        """Create the group on every feed if it does not exist."""
        ...

    def own_pending(self, counted: bool = True) -> list[Delivery]:
        """Entries pending on this consumer already, delivered again.

        ``counted``: each counts as a new delivery, as after a restart, where the
        handler may have died on them; all of them are returned. After a connection
        error within the loop the handler died on nothing, so the counts are left as
        they are (otherwise lost replies alone would push entries never handled past
        ``max_deliveries``), and a backend may return the first page only: the loop
        asks again, once that page is handled, until nothing comes back.
        """
        ...

    def read_new(self, block: float, ack: Sequence[Delivery] = ()) -> list[Delivery]:
        """Entries no consumer of the group has been given yet; waits up to ``block``.

        ``ack``: deliveries handled since the last acknowledgement, acknowledged first
        (in the same round trip where the backend has them). Their acknowledgement may
        be lost with a lost reply: they then stay pending and come back, as any
        delivery may.
        """
        ...

    def claim(self, min_idle: float) -> list[Delivery]:
        """Entries pending (on any consumer) for at least ``min_idle`` seconds, taken over."""
        ...

    def redeliver(self, delivery: Delivery) -> Delivery | None:
        """The entry delivered again to this consumer; None if it is no longer pending."""
        ...

    def ack(self, deliveries: Sequence[Delivery]) -> None: ...

    def dead_letter(self, delivery: Delivery, error: str, traceback: str) -> None:
        """Record the entry and the error in the dead letters and acknowledge it."""
        ...

    def close(self) -> None: ...


def default_consumer_name() -> str:
    """``<host>-<pid>-<random>``: unique per subscription, recognisable in XINFO."""
    return f"{socket.gethostname()}-{os.getpid()}-{new_event_id()[:8]}"


class RunningSubscription:
    """A subscription's thread and its controls (implements ``Subscription``)."""

    def __init__(
        self,
        backend: GroupBackend,
        *,
        group: str,
        consumer: str,
        handler: SubscriptionHandler,
        claim_idle: float,
        max_deliveries: int,
        retry_delay: float,
        types: frozenset[str] | None = None,
    ) -> None:
        if max_deliveries < 1:
            raise ValueError(f"max_deliveries must be >= 1, got {max_deliveries}")
        if claim_idle <= 0:
            raise ValueError(f"claim_idle must be > 0, got {claim_idle}")
        self._backend = backend
        self._group = group
        self._consumer = consumer
        self._handler = handler
        self._claim_idle = claim_idle
        self._claim_every = max(0.01, min(claim_idle / 2, 5.0))
        self._max_deliveries = max_deliveries
        self._retry_delay = max(0.0, retry_delay)
        self._types = types
        self._stopping = threading.Event()
        self._error: BaseException | None = None
        self._unacked: list[Delivery] = []
        self._unacked_since = 0.0
        self._ack_within = claim_idle / 4
        # The group exists before subscribe() returns: "start now" means now.
        backend.ensure_group()
        self._thread = threading.Thread(
            target=self._run, name=f"subscription-{group}-{consumer}", daemon=True
        )
        self._thread.start()

    @property
    def group(self) -> str:
        return self._group

    @property
    def consumer(self) -> str:
        return self._consumer

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stopping.is_set()

    @property
    def error(self) -> BaseException | None:
        return self._error

    def stop(self, timeout: float | None = None) -> bool:
        """Stop after the event being handled; True when the thread ended in time."""
        self._stopping.set()
        if threading.current_thread() is self._thread:
            return False  # a handler stopping its own subscription: it ends on return
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Subscription {self._group}/{self._consumer} {state}>"

    # -- the loop (subscription thread) ------------------------------------------------

    def _run(self) -> None:
        backoff = 0.05
        try:
            first = True
            reconnecting = False
            next_claim = 0.0
            while not self._stopping.is_set():
                # Whether the server answered a step of this pass: a connection that
                # loses replies now and then is no server that is down, so it gets
                # no backoff growing to 2 s per error (a pass takes several round
                # trips, and few passes would get through whole).
                answered = False
                try:
                    if first or reconnecting:
                        # Counted once: a retry after a lost reply is no new delivery.
                        counted, first, reconnecting = first, False, True
                        deliveries = self._backend.own_pending(counted=counted)
                        answered = True
                        self._process(deliveries)
                        if deliveries and not counted:
                            backoff = 0.05
                            continue  # maybe a page of more: all of them before new ones
                        reconnecting = False
                    now = time.monotonic()
                    if now >= next_claim:
                        # Before claiming: an entry handled but not acknowledged yet
                        # may be idle long enough to be claimed and handled again.
                        self._flush_acks()
                        claimed = self._backend.claim(self._claim_idle)
                        answered = True
                        self._process(claimed)
                        next_claim = now + self._claim_every
                    block = min(READ_BLOCK, max(0.0, next_claim - time.monotonic()))
                    # The acknowledgements of the last batch travel with this read.
                    acks, self._unacked = self._unacked, []
                    self._process(self._backend.read_new(block, acks), flush=False)
                    backoff = 0.05
                except EventStoreUnavailable as error:
                    if answered:
                        backoff = 0.05
                    # Keep consuming through a server restart: unacked entries stay
                    # pending and come back through own_pending() / claim().
                    log.warning("subscription %s/%s: %s; retrying in %.2fs",
                                self._group, self._consumer, error, backoff)
                    self._unacked.clear()
                    reconnecting = True
                    if self._stopping.wait(backoff):
                        break
                    backoff = min(backoff * 2, 2.0)
        except BaseException as error:  # the thread ends; say why instead of dying silently
            self._error = error
            if isinstance(error, Exception):
                log.exception("subscription %s/%s ended", self._group, self._consumer)
            else:
                log.warning("subscription %s/%s ended by %r", self._group, self._consumer, error)
        finally:
            try:
                self._flush_acks()
            except Exception:
                log.exception("subscription %s/%s: final acknowledgements failed",
                              self._group, self._consumer)
            finally:
                self._stopping.set()
                self._backend.close()

    def _process(self, deliveries: Sequence[Delivery], flush: bool = True) -> None:
        """Handle ``deliveries``; acknowledge them now, or (``flush`` False) leave the
        acknowledgements to the next ``read_new``, which sends them with its read."""
        begin: Callable[[RecordedEvent], Callable[[], None]] | None = getattr(
            self._handler, "begin", None
        )
        if begin is not None and len(deliveries) > 1:
            self._process_begun(deliveries, begin)
        else:
            self._process_each(deliveries)
        if flush:
            self._flush_acks()

    def _process_each(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            if self._stopping.is_set():
                break  # the rest stay pending on this consumer
            if self._unwanted(delivery):
                self._handled(delivery)
            else:
                self._deliver(delivery)

    def _process_begun(
        self,
        deliveries: Sequence[Delivery],
        begin: Callable[[RecordedEvent], Callable[[], None]],
    ) -> None:
        """A handler with ``begin(event) -> finish`` (the saga's bus, whose handling
        waits on another thread): every first delivery of the batch is begun, then each
        is finished in order. A handler that waits event by event would make a batch
        cost the sum of its waits, and entries pile up behind it on this consumer.

        A delivery whose ``begin`` or ``finish`` raises, and any delivery past the
        limit, goes the per-event way (retried, dead-lettered) as in ``_deliver``.
        """
        begun: list[tuple[Delivery, Callable[[], None] | Exception | None]] = []
        for delivery in deliveries:
            if self._stopping.is_set():
                break  # the rest stay pending on this consumer
            if self._unwanted(delivery):
                self._handled(delivery)
                continue
            if delivery.event is None or delivery.deliveries > self._max_deliveries:
                begun.append((delivery, None))
                continue
            try:
                begun.append((delivery, begin(delivery.event)))
            except Exception as error:
                begun.append((delivery, error))
        for delivery, finish in begun:
            if finish is None:  # undecodable or past the limit: the ordinary path
                self._deliver(delivery)
            elif isinstance(finish, Exception):
                self._deliver(delivery, failed=finish)
            else:
                try:
                    finish()
                except Exception as error:
                    self._deliver(delivery, failed=error)
                else:
                    self._handled(delivery)

    def _unwanted(self, delivery: Delivery) -> bool:
        """Of a type the subscription does not want: acknowledged, never handled."""
        if delivery.skipped:
            return True
        types, event = self._types, delivery.event
        return types is not None and event is not None and event.type_name not in types

    def _deliver(self, delivery: Delivery, failed: Exception | None = None) -> None:
        """Handle ``delivery`` until it is handled or dead-lettered (or the loop stops).

        ``failed``: what its first handling (begun by ``_process_begun``) raised.
        """
        current: Delivery | None = delivery
        while current is not None:
            if current.deliveries > self._max_deliveries:
                self._dead_letter(
                    current,
                    f"delivered {current.deliveries} times without acknowledgement"
                    " (consumers died handling it)",
                    "",
                )
                return
            try:
                if failed is not None:
                    error, failed = failed, None
                    raise error
                if current.event is None:
                    assert current.decode_error is not None
                    raise current.decode_error
                self._handler(current.event)
            except Exception as error:
                summary, tb = error_text(error)
                if current.deliveries >= self._max_deliveries:
                    self._dead_letter(current, summary, tb)
                    return
                log.warning(
                    "subscription %s/%s: delivery %d of %s/%s failed: %s",
                    self._group, self._consumer, current.deliveries,
                    current.partition, current.entry_id, summary,
                )
                if self._stopping.wait(self._retry_delay):
                    return  # stays pending: resumed or claimed later
                self._flush_acks()
                current = self._backend.redeliver(current)
            else:
                self._handled(current)
                return

    def _handled(self, delivery: Delivery) -> None:
        now = time.monotonic()
        if not self._unacked:
            self._unacked_since = now
        self._unacked.append(delivery)
        if len(self._unacked) >= ACK_BATCH or now - self._unacked_since >= self._ack_within:
            self._flush_acks()

    def _dead_letter(self, delivery: Delivery, error: str, tb: str) -> None:
        log.error(
            "subscription %s/%s: %s/%s dead-lettered after %d deliveries: %s",
            self._group, self._consumer, delivery.partition, delivery.entry_id,
            delivery.deliveries, error,
        )
        self._backend.dead_letter(delivery, error, tb)

    def _flush_acks(self) -> None:
        if self._unacked:
            batch, self._unacked = self._unacked, []
            self._backend.ack(batch)
