"""``TicketingSystem``: the stores, projections and subscriptions, wired and started.

One system runs, in one process: the inventory store, the payment store (on its own
executor, so a slow gateway cannot starve the rest), the saga store, the projector
(consumer group ``ticketing-projections``) and the saga's event bus (consumer group
``ticketing-saga``), on one backend: in memory, or on Redis. Several systems may share
a Redis backend (in one process or many): the consumer groups share the work between
them, and optimistic concurrency keeps every store's decisions correct.

Threads: the caller's thread validates input and waits; the stores each run on their
own thread; the subscriptions each on theirs; effects on the executors; the listener
of outcome notices (from other systems on the backend, see ``_Waiters``) on its own.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import threading
import time
from _thread import allocate_lock as _allocate_lock
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType

from actors import Clock, EffectPool, StoreRef, StoreStopped, SystemClock, Timeout
from actors import Store as _Store
from domain._errors import (
    BackendUnavailable,
    EventConflict,
    InvalidRequest,
    ReservationTimeout,
    SystemStopped,
    TicketingError,
    UnknownEvent,
    UnknownSection,
)
from domain._events import (
    SAGA_INDEX,
    SAGA_INDEX_PARTITIONS,
    EventCreated,
    EventListed,
    SagaOpened,
    catalog_stream,
    event_stream,
    inventory_stream,
    make_codec,
    payment_stream,
    reservation_id_of,
    reservation_stream,
)
from domain._gateway import DemoGateway, PaymentGateway
from domain._inventory import (
    CommandApplied,
    CommandRejected,
    InitializeSection,
    InventoryAction,
    InventoryCommand,
    InventoryEnvironment,
    InventorySettings,
    InventoryState,
    Rejection,
    SectionKey,
    SectionState,
    decode_section,
    evolve_section,
    reduce_inventory,
)
from domain._outcome import Availability, ReservationOutcome, decode_outcome, encode_outcome
from domain._payment import (
    PaymentAction,
    PaymentCommand,
    PaymentEnvironment,
    PaymentSettings,
    PaymentsState,
    PaymentState,
    evolve_payment,
    reduce_payments,
)
from domain._projections import (
    Projector,
    availability_from,
    availability_key,
    outcome_from,
    reservation_key,
)
from domain._read_side import (
    backend,
    default_node,
    projections_caught_up,
    start_on_backend,
    stop_subscriptions,
    subscribe_projections,
    wait_until,
)
from domain._repository import EventSourcedRepository
from domain._saga import (
    CHILD_EVENTS,
    Deliver,
    DeliverySettled,
    ResumeSaga,
    Saga,
    SagaAction,
    SagaEnvironment,
    SagaSettings,
    SagaState,
    StartRefused,
    StartReservation,
    evolve_saga,
    outcome_of,
    reduce_saga,
)
from domain._validation import (
    check_card,
    check_consumers,
    check_customer,
    check_id,
    check_price,
    check_quantity,
    check_seats,
    check_sections,
    check_timeout,
)
from domain._verify import InvariantReport, verify_store
from persistence import (
    ANY,
    NO_STREAM,
    ConcurrencyError,
    Listening,
    Persistence,
    PersistenceError,
    RecordedEvent,
    Subscription,
    new_event_id,
)

__all__ = ["DEFAULT_CARD", "TicketingSystem"]

log = logging.getLogger("domain.system")

DEFAULT_CARD = "4242424242424242"
SAGA_GROUP = "ticketing-saga"
ORPHAN_GRACE = 60.0
"""Seconds an entry of the earlier ``sagas-{n}`` index without a saga stream is kept
open: its start may be in flight."""
SAGA_INDEX_CHECKPOINT = "sagas-index"
"""The snapshot that checkpoints the saga index: the ids still open when it was read,
and the index cursor it was read to."""
OUTCOMES_TOPIC = "ticketing-outcomes"
"""Notices of reservations that ended in a system where nobody waited for them."""
POLL_INTERVAL = 1.0
"""Seconds between two looks at the saga's stream of a caller whose notice is late."""


class _DeliveryNotRecorded(TicketingError):
    """The saga could not record its reaction: the bus delivers the event again."""


@dataclass(frozen=True, slots=True)
class _Answers:
    command: InventoryCommand

    def __call__(self, action: InventoryAction) -> bool:
        return (
            isinstance(action, CommandApplied | CommandRejected) and action.command == self.command
        )


class _Gate:
    """A one-shot ``threading.Event``: closed until ``set``, then open for good.

    A bare lock held until ``set`` releases it, because a reservation makes four of
    these (its caller's, one per child event the bus delivers) and a ``threading.Event``
    builds a ``Condition`` per instance and another lock per ``wait``.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = _allocate_lock()
        self._lock.acquire()

    def set(self) -> None:
        with contextlib.suppress(RuntimeError):  # set already: it stays open
            self._lock.release()

    def wait(self, timeout: float) -> bool:
        if not self._lock.acquire(timeout=timeout):
            return False
        with contextlib.suppress(RuntimeError):  # a second set() came in between
            self._lock.release()  # open for a later wait too, as an Event stays
        return True


class _Waiter:
    __slots__ = ("error", "event", "outcome", "settled")

    def __init__(self) -> None:
        self.event = _Gate()
        self.outcome: ReservationOutcome | None = None
        self.settled: DeliverySettled | None = None
        self.error: TicketingError | None = None


class _Waiters:
    """Threads waiting on the saga: ``reserve`` callers for their reservation's end
    (keyed by reservation id), the bus's handlers for their delivery to be recorded
    (keyed by delivery id).

    The saga store's listener: its methods run on executor threads. Systems sharing a
    backend share the saga bus, so a reservation started here may end in another
    system's saga store: the end of one nobody here waits for is published, for the
    system whose caller waits (``noticed``).
    """

    def __init__(self, publish: Callable[[ReservationOutcome], None]) -> None:
        self._publish = publish
        self._lock = threading.Lock()
        self._waiting: dict[str, list[_Waiter]] = {}
        self._deliveries: dict[str, _Waiter] = {}

    def expect_delivery(self, delivery_id: str) -> _Waiter:
        waiter = _Waiter()
        with self._lock:
            self._deliveries[delivery_id] = waiter
        return waiter

    def forget_delivery(self, delivery_id: str) -> None:
        with self._lock:
            self._deliveries.pop(delivery_id, None)

    def delivered(self, settled: DeliverySettled) -> None:
        with self._lock:
            waiter = self._deliveries.pop(settled.delivery_id, None)
        if waiter is not None:
            waiter.settled = settled
            waiter.event.set()

    def register(self, reservation_id: str) -> _Waiter:
        waiter = _Waiter()
        with self._lock:
            self._waiting.setdefault(reservation_id, []).append(waiter)
        return waiter

    def discard(self, reservation_id: str, waiter: _Waiter) -> None:
        with self._lock:
            waiters = self._waiting.get(reservation_id)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._waiting[reservation_id]

    def settled(self, outcome: ReservationOutcome) -> None:
        if not self.noticed(outcome):
            self._publish(outcome)

    def noticed(self, outcome: ReservationOutcome) -> bool:
        """Wake the callers waiting for ``outcome``; False if there were none. Called
        directly for an outcome another system published (never published again)."""
        waiters = self._take(outcome.reservation_id)
        for waiter in waiters:
            waiter.outcome = outcome
            waiter.event.set()
        return bool(waiters)

    def refused(self, refusal: StartRefused) -> None:
        error: TicketingError
        if refusal.reason.startswith("unavailable"):
            error = BackendUnavailable(f"reservation {refusal.reservation_id}: {refusal.reason}")
        else:
            error = InvalidRequest("reservation_id", refusal.reason)
        for waiter in self._take(refusal.reservation_id):
            waiter.error = error
            waiter.event.set()

    def fail_all(self, error: TicketingError) -> None:
        with self._lock:
            everyone = [w for waiters in self._waiting.values() for w in waiters]
            everyone.extend(self._deliveries.values())
            self._waiting.clear()
            self._deliveries.clear()
        for waiter in everyone:
            waiter.error = error
            waiter.event.set()

    def _take(self, reservation_id: str) -> list[_Waiter]:
        with self._lock:
            return self._waiting.pop(reservation_id, [])


class _Children:
    """The saga's way to its children: a send to their stores (never blocks)."""

    def __init__(
        self,
        inventory: StoreRef[InventoryState, InventoryAction],
        payments: StoreRef[PaymentsState, PaymentAction],
    ) -> None:
        self._inventory = inventory
        self._payments = payments

    def inventory(self, command: InventoryCommand) -> None:
        try:
            self._inventory.send(command)
        except StoreStopped:
            # Shutting down: the saga re-sends its step when it is resumed.
            log.info("inventory stopped; %r not sent", command)

    def payment(self, command: PaymentCommand) -> None:
        try:
            self._payments.send(command)
        except StoreStopped:
            log.info("payments stopped; %r not sent", command)


_SAGA_BUS_TYPES = frozenset(model.__name__ for model in CHILD_EVENTS)
"""What the saga reacts to (``make_codec`` registers class names): the rest of the
feed, its own events included, is acknowledged by the bus without being decoded."""


class _SagaBus:
    """The ``ticketing-saga`` group's handler. Besides the per-event call it has
    ``begin`` (see ``persistence._subscription``): a consumer hands every event of a
    read to the saga at once and then waits for each, so a batch costs one saga round
    trip, not one per event."""

    __slots__ = ("begin",)

    def __init__(self, begin: Callable[[RecordedEvent], Callable[[], None]]) -> None:
        self.begin = begin

    def __call__(self, recorded: RecordedEvent) -> None:
        self.begin(recorded)()


def _nothing_to_wait_for() -> None:
    pass


class TicketingSystem:
    """The ticketing system, embeddable: start it, use it from any thread, stop it.

    Example::

        with TicketingSystem.start() as tickets:          # in memory
            tickets.create_event("gig", sections={"A": 100}, price_cents=2500)
            outcome = tickets.reserve("alice", "gig", "A", 2)
            assert outcome.completed, outcome.reason
    """

    def __init__(
        self,
        persistence: Persistence,
        *,
        owns_persistence: bool,
        gateway: PaymentGateway,
        node: str,
        clock: Clock,
        inventory: InventorySettings,
        payment: PaymentSettings,
        saga: SagaSettings,
        saga_consumers: int,
        projection_consumers: int,
        payment_workers: int,
        claim_idle: float,
        wait_timeout: float,
    ) -> None:
        self.persistence = persistence
        self.gateway = gateway
        self.node = node
        self.clock = clock
        self._owns_persistence = owns_persistence
        self._wait_timeout = wait_timeout
        self._stopped = False
        self._stop_lock = threading.Lock()
        self._catalog: dict[str, EventCreated] = {}
        self.resumed_at_start = 0
        """How many unfinished reservations ``start`` found and resumed."""
        notices = persistence.notices

        def publish(outcome: ReservationOutcome) -> None:
            notices.publish(OUTCOMES_TOPIC, encode_outcome(outcome))

        self._waiters = _Waiters(publish)
        self._deliveries = itertools.count(1)
        events = persistence.events

        sections: EventSourcedRepository[SectionKey, SectionState] = EventSourcedRepository(
            events,
            stream_of=lambda key: inventory_stream(key.event_id, key.section),
            initial=lambda key: SectionState(),
            evolve=evolve_section,
            snapshots=persistence.snapshots,
            decode_snapshot=decode_section,
        )
        payments: EventSourcedRepository[str, PaymentState] = EventSourcedRepository(
            events,
            stream_of=payment_stream,
            initial=lambda payment_id: PaymentState(),
            evolve=evolve_payment,
        )
        sagas: EventSourcedRepository[str, Saga | None] = EventSourcedRepository(
            events,
            stream_of=reservation_stream,
            initial=lambda reservation_id: None,
            evolve=evolve_saga,
            index=SAGA_INDEX,  # listed by its first append: found again after a crash
        )
        # Its own pool, so that a slow gateway cannot starve the other stores' effects;
        # an EffectPool, not a ThreadPoolExecutor: a job is a queue put, not a Future
        # with its locks (4-5% more reservations/s with 64 callers on Redis).
        self._payment_executor = EffectPool(
            max_workers=payment_workers, thread_name_prefix=f"payment-{node}"
        )
        self._inventory: StoreRef[InventoryState, InventoryAction] = _Store.start(
            reduce_inventory,
            InventoryState,
            InventoryEnvironment(sections, clock, inventory),
            name=f"inventory@{node}",
        )
        self._payments: StoreRef[PaymentsState, PaymentAction] = _Store.start(
            reduce_payments,
            PaymentsState,
            PaymentEnvironment(payments, gateway, clock, payment),
            name=f"payments@{node}",
            executor=self._payment_executor,
        )
        self._saga: StoreRef[SagaState, SagaAction] = _Store.start(
            reduce_saga,
            SagaState,
            SagaEnvironment(
                sagas, _Children(self._inventory, self._payments), self._waiters, clock, saga
            ),
            name=f"saga@{node}",
        )
        self._projector = Projector(events, persistence.projections)
        self._subscriptions: list[Subscription] = []
        self._listening: Listening | None = None
        try:
            self._listening = notices.listen(OUTCOMES_TOPIC, self._outcome_noticed)
            for n in range(projection_consumers):
                self._subscriptions.append(
                    subscribe_projections(persistence, self._projector, node, n, claim_idle)
                )
            subscribe = persistence.subscriptions.subscribe
            for n in range(saga_consumers):
                self._subscriptions.append(
                    subscribe(
                        SAGA_GROUP,
                        _SagaBus(self._begin_delivery),
                        consumer=f"{node}-saga-{n}",
                        claim_idle=claim_idle,
                        max_deliveries=1000,
                        retry_delay=0.1,
                        types=_SAGA_BUS_TYPES,
                    )
                )
            self.resumed_at_start = self.recover()
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
        gateway: PaymentGateway | None = None,
        node: str | None = None,
        clock: Clock | None = None,
        inventory: InventorySettings | None = None,
        payment: PaymentSettings | None = None,
        saga: SagaSettings | None = None,
        saga_consumers: int = 2,
        projection_consumers: int = 1,
        payment_workers: int = 32,
        claim_idle: float = 5.0,
        wait_timeout: float = 30.0,
    ) -> TicketingSystem:
        """Start the system, and resume every reservation left unfinished on the backend.

        Args:
            redis_url: run on this Redis server; None runs in memory.
            key_prefix: the Redis keys' prefix (several systems may share it).
            persistence: an already open backend (e.g. ``other.persistence``, to
                restart on the same in-memory data); overrides ``redis_url``.
            gateway: the payment gateway (default: a ``DemoGateway``).
            node: this system's name in the consumer groups. A system restarted in
                place should pass its predecessor's, to take over the events it left
                pending at once (otherwise they are claimed after ``claim_idle``).
            clock: time for the reducers and the timers (default: wall clock).
            inventory, payment, saga: the stores' settings (limits, timeouts).
            saga_consumers, projection_consumers: consumers per group in this system.
                Each takes a batch at a time (the saga's consumer begins every event
                of its batch before it waits on any), so a few suffice; more threads
                only compete for the GIL (2 and 1 gave 10-15% more reservations/s
                at concurrency 64 than 8 and 2, on Redis and in memory).
                ``projection_consumers=0`` leaves the projections to a
                ``TicketingProjections`` in another process (on Redis: the read
                side on another core); until one runs, ``availability``,
                ``reservation`` and ``settle`` lag, and ``create_event`` waits up to
                ``wait_timeout`` for its sections' availability.
            payment_workers: threads for gateway calls.
            claim_idle: seconds before an event pending on a silent consumer is
                claimed by another.
            wait_timeout: how long internal waits (create_event, settle) may take.

        Raises:
            InvalidRequest: a negative number of consumers.
            BackendUnavailable: the backend cannot be reached (or refuses to run:
                Redis with an eviction policy, another partition layout).
        """
        check_consumers("saga_consumers", saga_consumers, least=0)
        check_consumers("projection_consumers", projection_consumers, least=0)

        def build(opened: Persistence, owned: bool) -> TicketingSystem:
            with backend("starting"):
                return cls(
                    opened,
                    owns_persistence=owned,
                    gateway=gateway or DemoGateway(),
                    node=node or default_node(),
                    clock=clock or SystemClock(),
                    inventory=inventory or InventorySettings(),
                    payment=payment or PaymentSettings(),
                    saga=saga or SagaSettings(),
                    saga_consumers=saga_consumers,
                    projection_consumers=projection_consumers,
                    payment_workers=payment_workers,
                    claim_idle=claim_idle,
                    wait_timeout=wait_timeout,
                )

        return start_on_backend(redis_url, key_prefix, persistence, build)

    # -- lifecycle ----------------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully: subscriptions, then the saga, then its children.

        What was in flight finishes (or is cancelled after ``timeout``); reservations
        not finished stay recorded and are resumed by the next system on the backend.
        ``reserve`` calls still waiting raise ``SystemStopped``. Idempotent.
        """
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        stop_subscriptions(getattr(self, "_subscriptions", []), timeout)
        listening = getattr(self, "_listening", None)
        if listening is not None:
            listening.stop(timeout)
        for store in (self._saga, self._payments, self._inventory):
            try:
                store.stop(timeout)
            except Timeout:
                log.warning("%r did not stop within %s s", store, timeout)
        self._payment_executor.shutdown(wait=False, cancel_futures=True)
        self._waiters.fail_all(SystemStopped("the system was stopped"))
        if self._owns_persistence:
            self.persistence.close()

    def __enter__(self) -> TicketingSystem:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return not self._stopped

    def _check_running(self) -> None:
        if self._stopped:
            raise SystemStopped("the system is stopped")

    # -- commands -----------------------------------------------------------------------

    def create_event(
        self, event_id: str, sections: Mapping[str, int], price_cents: int = 0
    ) -> None:
        """Create an event with its sections' capacities, priced per seat.

        Idempotent: creating it again with the same definition changes nothing (and
        finishes what an interrupted call began).

        Raises:
            InvalidRequest: a malformed id, no sections, a capacity or price out of range.
            EventConflict: the event exists with another definition.
            BackendUnavailable: the backend failed.
        """
        self._check_running()
        wanted = EventCreated(
            event_id=check_id("event_id", event_id),
            sections=check_sections(sections),
            price_cents=check_price(price_cents),
        )
        events = self.persistence.events
        with backend(f"creating event {event_id!r}"):
            existing = self._read_event(event_id)
            if existing is None:
                # The catalog entry first: an event is never left out of the catalog.
                events.append(catalog_stream(), [EventListed(event_id=event_id)], ANY)
                try:
                    events.append(event_stream(event_id), [wanted], NO_STREAM)
                except ConcurrencyError:
                    existing = self._read_event(event_id)
            if existing is not None and existing != wanted:
                raise EventConflict(
                    f"event {event_id!r} exists with sections {existing.sections} at "
                    f"{existing.price_cents} cents"
                )
        for name, capacity in wanted.sections.items():
            command = InitializeSection(event_id, name, capacity, wanted.price_cents)
            try:
                reply = self._inventory.send_and_wait_for(
                    command, _Answers(command), timeout=self._wait_timeout
                )
            except StoreStopped as error:
                raise SystemStopped("the system is stopped") from error
            except Timeout as error:
                raise BackendUnavailable(f"section {name!r} was not initialized in time") from error
            if isinstance(reply, CommandRejected):
                if reply.reason is Rejection.ALREADY_INITIALIZED:
                    raise EventConflict(f"section {name!r} exists with {reply.detail}")
                raise BackendUnavailable(f"section {name!r}: {reply.reason}: {reply.detail}")
        self._catalog[event_id] = wanted
        # Availability is read from the projection: make it answer as soon as we return.
        keys = [availability_key(event_id, name) for name in wanted.sections]
        self._wait_until(lambda: all(self.persistence.projections.get(k) for k in keys))

    def reserve(
        self,
        customer_id: str,
        event_id: str,
        section: str,
        quantity: int,
        card_number: str = DEFAULT_CARD,
        *,
        seats: list[int] | tuple[int, ...] | None = None,
        timeout: float = 30.0,
        reservation_id: str | None = None,
    ) -> ReservationOutcome:
        """Reserve and pay for seats; returns once the reservation's saga has ended.

        A reservation that could not complete is an outcome, not an error: see
        ``ReservationOutcome.status`` and ``reason`` (sold out, card declined...).

        Args:
            seats: specific seat numbers (as many as ``quantity``); any free ones
                when None.
            timeout: seconds to wait for the end; the saga goes on after that.
            reservation_id: makes the call idempotent: the same id again returns
                the same reservation's outcome (a fresh id by default).

        Raises:
            InvalidRequest: malformed input (nothing is written).
            UnknownEvent, UnknownSection: no such event or section.
            ReservationTimeout: the saga did not end within ``timeout``.
            SystemStopped: the system stopped while waiting (the reservation
                continues when a system is started on the backend again).
            BackendUnavailable: the backend failed.
        """
        self._check_running()
        customer = check_customer(customer_id)
        created = self._event(check_id("event_id", event_id))
        capacity = created.sections.get(check_id("section", section))
        if capacity is None:
            raise UnknownSection(event_id, section)
        count = check_quantity(quantity, capacity)
        chosen = check_seats(seats, count, capacity)
        card = check_card(card_number)
        wait = check_timeout(timeout)
        rid = (
            new_event_id()  # the form of uuid4().hex, without a system call per id
            if reservation_id is None
            else check_id("reservation_id", reservation_id)
        )
        token = self.gateway.tokenize(card)
        waiter = self._waiters.register(rid)
        try:
            try:
                self._saga.send(
                    StartReservation(rid, customer, event_id, section, count, chosen, token)
                )
            except StoreStopped as error:
                raise SystemStopped("the system is stopped") from error
            return self._wait(rid, waiter, wait)
        finally:
            self._waiters.discard(rid, waiter)

    def _outcome_noticed(self, payload: bytes) -> None:
        try:
            outcome = decode_outcome(payload)
        except (ValueError, KeyError, TypeError) as error:
            log.warning("a notice of an outcome could not be read: %s", error)
            return
        self._waiters.noticed(outcome)

    def _wait(self, rid: str, waiter: _Waiter, timeout: float) -> ReservationOutcome:
        deadline = time.monotonic() + timeout
        # The saga store that ends the reservation tells the waiter: this system's
        # directly, another's on the backend by a notice. Notices may be lost, so
        # the stream is looked at now and then too.
        slice_ = POLL_INTERVAL
        while True:
            left = deadline - time.monotonic()
            if waiter.event.wait(max(0.0, min(slice_, left))):
                if waiter.error is not None:
                    raise waiter.error
                assert waiter.outcome is not None
                return waiter.outcome
            # Another system sharing the backend may have finished this saga: its end
            # is in the saga's stream even though this system's store did not see it.
            try:
                saga = self._read_saga(rid)
            except PersistenceError:
                # The backend is down: this look is only a fallback, and the saga goes
                # on (it ends once the backend is back). Keep waiting for the timeout
                # rather than let a raw persistence error out of reserve().
                saga = None
            if saga is not None and saga.status.terminal:
                return outcome_of(saga)
            if time.monotonic() >= deadline:
                raise ReservationTimeout(rid, timeout)

    # -- queries ------------------------------------------------------------------------

    def availability(self, event_id: str, section: str) -> Availability:
        """A section's seats (from the availability projection: eventually consistent).

        Raises:
            UnknownEvent, UnknownSection, InvalidRequest, BackendUnavailable.
        """
        created = self._event(check_id("event_id", event_id))
        if check_id("section", section) not in created.sections:
            raise UnknownSection(event_id, section)
        with backend("reading availability"):
            fields = self.persistence.projections.get(availability_key(event_id, section))
        if fields is None or "capacity" not in fields:
            raise BackendUnavailable(f"availability of {event_id}/{section} is not projected yet")
        return availability_from(fields)

    def reservation(self, reservation_id: str) -> ReservationOutcome | None:
        """A reservation as projected (eventually consistent); None if unknown.

        Raises:
            InvalidRequest, BackendUnavailable.
        """
        rid = check_id("reservation_id", reservation_id)
        with backend("reading a reservation"):
            fields = self.persistence.projections.get(reservation_key(rid))
        if fields is None or "status" not in fields:
            return None
        return outcome_from(rid, fields)

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until the projections reflect every event stored; False on timeout.

        That is, until the projections' consumer group (of any system on the backend)
        has handled every event appended so far: one ``Subscriptions.backlog`` per
        poll, however many reservations there are.
        """
        with backend("settling the projections"):
            return self._wait_until(lambda: projections_caught_up(self.persistence), timeout)

    def verify(self, timeout: float | None = None) -> InvariantReport:
        """Settle the projections, then check every invariant against the backend.

        Raises:
            BackendUnavailable: the backend failed.
        """
        self.settle(timeout)
        with backend("verifying"):
            return verify_store(self.persistence.events, self.persistence.projections)

    @staticmethod
    def verify_backend(
        redis_url: str | None = None,
        *,
        key_prefix: str = "ticketing",
        persistence: Persistence | None = None,
    ) -> InvariantReport:
        """Check the invariants of what a backend stores, with no system running.

        Raises:
            BackendUnavailable: the backend cannot be reached.
        """
        owned = persistence is None
        with backend("verifying"):
            if persistence is None:
                if redis_url is None:
                    raise InvalidRequest("redis_url", "give the Redis URL to verify")
                persistence = Persistence.on_redis(redis_url, make_codec(), prefix=key_prefix)
            try:
                return verify_store(persistence.events, persistence.projections)
            finally:
                if owned:
                    persistence.close()

    # -- recovery -----------------------------------------------------------------------

    def recover(self) -> int:
        """Resume every unfinished reservation on the backend (done by ``start``).

        Reads the saga index from its checkpoint (the event store's stream index
        ``sagas``, in which the append creating a saga's stream lists it, so that no
        saga exists unlisted), resumes the sagas that are not terminal (their timers
        are re-armed, their steps re-sent), and checkpoints the index again with only
        the open ones. Data recorded by earlier versions, whose index was the
        ``sagas-{n}`` streams, is read the same way from those.

        Returns:
            How many sagas were resumed.
        """
        resumed = self._resume_indexed() + self._resume_from_index_streams()
        if resumed:
            log.info("node %s resumed %d unfinished reservations", self.node, resumed)
        return resumed

    def _resume_indexed(self) -> int:
        snapshots = self.persistence.snapshots
        checkpoint = snapshots.load(SAGA_INDEX_CHECKPOINT)
        version, kept, page = 0, [], None
        if checkpoint is not None:
            version = checkpoint.version
            try:
                state = json.loads(checkpoint.state)
                kept = [str(rid) for rid in state["open"]]
                page = self.persistence.events.read_index(SAGA_INDEX, after=state["cursor"])
            except (ValueError, KeyError, TypeError) as error:
                # Only a shortcut: the whole index finds every saga again.
                log.warning("the saga index's checkpoint is unreadable (%s); reading it all", error)
                kept = []
        if page is None:
            page = self.persistence.events.read_index(SAGA_INDEX)
        candidates = dict.fromkeys(kept)
        for stream_id in page.stream_ids:
            rid = reservation_id_of(stream_id)
            if rid is not None:
                candidates.setdefault(rid)
        still_open = [rid for rid in candidates if self._resume_if_open(rid, self._read_saga(rid))]
        if page.stream_ids or len(still_open) != len(kept):
            state = {"open": still_open, "cursor": list(page.cursor)}
            snapshots.save(SAGA_INDEX_CHECKPOINT, version + 1, json.dumps(state).encode())
        return len(still_open)

    def _resume_from_index_streams(self) -> int:
        """The ``sagas-{n}`` index streams of data recorded by earlier versions."""
        events = self.persistence.events
        snapshots = self.persistence.snapshots
        now = self.clock.now()
        resumed = 0
        for n in range(SAGA_INDEX_PARTITIONS):
            stream_id = f"sagas-{n}"
            snapshot = snapshots.load(stream_id)
            candidates: dict[str, float] = {}
            version = 0
            if snapshot is not None:
                candidates.update(json.loads(snapshot.state))
                version = snapshot.version
            tail = events.read(stream_id, from_version=version)
            for recorded in tail:
                opened = recorded.event
                if isinstance(opened, SagaOpened):
                    candidates.setdefault(opened.reservation_id, opened.opened_at)
                version = recorded.version
            still_open: dict[str, float] = {}
            for rid, opened_at in candidates.items():
                saga = self._read_saga(rid)
                if self._resume_if_open(rid, saga):
                    still_open[rid] = opened_at
                    resumed += 1
                elif saga is None and now - opened_at < ORPHAN_GRACE:
                    # Written before the saga's first append, which may be in flight.
                    still_open[rid] = opened_at
            if tail or (snapshot is not None and len(still_open) != len(candidates)):
                snapshots.save(stream_id, version, json.dumps(still_open).encode())
        return resumed

    def _resume_if_open(self, rid: str, saga: Saga | None) -> bool:
        """Resume the saga (as read now) if it exists and is not terminal; whether it was."""
        if saga is None or saga.status.terminal:
            return False
        self._saga.send(ResumeSaga(rid))
        return True

    # -- internals ----------------------------------------------------------------------

    def _begin_delivery(self, recorded: RecordedEvent) -> Callable[[], None]:
        """The saga group's handling of an event: hand a child's event to the saga now;
        the function returned waits until its reaction is recorded (raises if it was
        not), so that the bus acknowledges only what is safe."""
        event = recorded.event
        if not isinstance(event, CHILD_EVENTS):
            return _nothing_to_wait_for
        delivery_id = f"{self.node}:{next(self._deliveries)}"
        waiter = self._waiters.expect_delivery(delivery_id)
        try:
            self._saga.send(Deliver(event, delivery_id))  # type: ignore[arg-type]
        except BaseException:
            self._waiters.forget_delivery(delivery_id)
            raise
        waiters, wait_timeout = self._waiters, self._wait_timeout

        def finish() -> None:
            try:
                if not waiter.event.wait(wait_timeout):
                    raise _DeliveryNotRecorded(f"no answer within {wait_timeout} s")
            finally:
                waiters.forget_delivery(delivery_id)
            settled = waiter.settled
            if waiter.error is not None:
                raise waiter.error
            assert settled is not None
            if not settled.ok:
                raise _DeliveryNotRecorded(settled.detail)

        return finish

    def _event(self, event_id: str) -> EventCreated:
        created = self._catalog.get(event_id)
        if created is None:
            with backend("reading the event"):
                created = self._read_event(event_id)
            if created is None:
                raise UnknownEvent(event_id)
            self._catalog[event_id] = created
        return created

    def _read_event(self, event_id: str) -> EventCreated | None:
        for recorded in self.persistence.events.read(event_stream(event_id), to_version=1):
            if isinstance(recorded.event, EventCreated):
                return recorded.event
        return None

    def _read_saga(self, reservation_id: str) -> Saga | None:
        saga: Saga | None = None
        for recorded in self.persistence.events.read(reservation_stream(reservation_id)):
            saga = evolve_saga(saga, recorded.event)  # type: ignore[arg-type]
        return saga

    def _wait_until(self, done: Callable[[], bool], timeout: float | None = None) -> bool:
        return wait_until(done, self._wait_timeout if timeout is None else timeout)
