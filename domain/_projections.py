"""Read models: seat availability per section, and the status of each reservation.

Both are hashes in a ``ProjectionStore``, updated by a subscription (the
``projections`` consumer group) and keyed so that any Redis client can read them:

``availability:{event_id}:{section}``  capacity, available, reserved, sold, price_cents
``reservation:{reservation_id}``      status, customer_id, event_id, section, quantity,
                                      seats ("3,4"), amount_cents, reason, refunded_cents

Each hash records the version of its stream it reflects (``_position``), so a
replayed event changes nothing. Events may arrive out of order (several consumers
share the group, a failed delivery is retried later), and each update only makes
sense after the ones before it (availability is kept by increments); so the
projector applies a stream's events strictly in version order: an event that arrives
ahead of the hash's position catches up from the event store first, and one at or
below it is skipped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence

from domain._events import (
    INVENTORY_EVENTS,
    SAGA_EVENTS,
    DomainEvent,
    ReservationCancelled,
    ReservationCompensating,
    ReservationCompleted,
    ReservationPaid,
    ReservationPaymentSettled,
    ReservationRejected,
    ReservationSeatsHeld,
    ReservationStarted,
    SeatsConfirmed,
    SeatsReleased,
    SeatsReserved,
    SectionInitialized,
)
from domain._outcome import Availability, ReservationOutcome, ReservationStatus
from domain._saga import Saga
from persistence import EventStore, ProjectionStore, ProjectionUpdate, RecordedEvent

S = ReservationStatus

__all__ = [
    "Projector",
    "availability_from",
    "availability_key",
    "outcome_from",
    "reservation_fields",
    "reservation_key",
    "reservation_update",
]


def availability_key(event_id: str, section: str) -> str:
    return f"availability:{event_id}:{section}"


def reservation_key(reservation_id: str) -> str:
    return f"reservation:{reservation_id}"


def availability_update(event: DomainEvent) -> tuple[dict[str, str | int], dict[str, int]]:
    """(fields to set, fields to increment) for one inventory event."""
    if isinstance(event, SectionInitialized):
        return (
            {
                "event_id": event.event_id,
                "section": event.section,
                "capacity": event.capacity,
                "available": event.capacity,
                "reserved": 0,
                "sold": 0,
                "price_cents": event.price_cents,
            },
            {},
        )
    if isinstance(event, SeatsReserved):
        n = len(event.seats)
        return {}, {"available": -n, "reserved": n}
    if isinstance(event, SeatsConfirmed):
        n = len(event.seats)
        return {}, {"reserved": -n, "sold": n}
    if isinstance(event, SeatsReleased):
        n = len(event.seats)
        return {}, {"available": n, "reserved": -n}
    return {}, {}  # SeatsRejected: no seat changes hands


def reservation_fields(saga: Saga) -> dict[str, str]:
    """The reservation hash's fields for a saga (what ``verify`` compares too)."""
    return {
        "status": saga.status.value,
        "customer_id": saga.customer_id,
        "event_id": saga.event_id,
        "section": saga.section,
        "quantity": str(saga.quantity),
        "seats": ",".join(str(seat) for seat in saga.seats),
        "amount_cents": str(saga.amount_cents),
        "reason": saga.reason,
        "detail": saga.detail,
        "refunded_cents": str(saga.refunded_cents),
    }


def availability_from(fields: Mapping[str, str]) -> Availability:
    return Availability(
        event_id=fields["event_id"],
        section=fields["section"],
        capacity=int(fields["capacity"]),
        available=int(fields["available"]),
        reserved=int(fields["reserved"]),
        sold=int(fields["sold"]),
        price_cents=int(fields["price_cents"]),
    )


def outcome_from(reservation_id: str, fields: Mapping[str, str]) -> ReservationOutcome:
    status = ReservationStatus(fields["status"])
    completed = status is ReservationStatus.COMPLETED
    seats = fields.get("seats", "")
    return ReservationOutcome(
        reservation_id=reservation_id,
        status=status,
        customer_id=fields["customer_id"],
        event_id=fields["event_id"],
        section=fields["section"],
        quantity=int(fields["quantity"]),
        seats=tuple(int(s) for s in seats.split(",")) if seats and completed else (),
        amount_cents=int(fields["amount_cents"]) if completed else 0,
        reason=fields.get("reason", ""),
        detail=fields.get("detail", ""),
    )


def reservation_update(event: DomainEvent) -> dict[str, str | int]:
    """The reservation hash's fields one saga event sets (as ``evolve_saga`` does)."""
    if isinstance(event, ReservationStarted):
        return {
            "status": ReservationStatus.RESERVING_SEATS.value,
            "customer_id": event.customer_id,
            "event_id": event.event_id,
            "section": event.section,
            "quantity": event.quantity,
            "seats": "",
            "amount_cents": 0,
            "reason": "",
            "detail": "",
            "refunded_cents": 0,
        }
    if isinstance(event, ReservationSeatsHeld):
        return {
            "status": ReservationStatus.PROCESSING_PAYMENT.value,
            "seats": ",".join(str(seat) for seat in event.seats),
            "amount_cents": event.amount_cents,
        }
    if isinstance(event, ReservationPaid):
        return {"status": ReservationStatus.CONFIRMING.value}
    if isinstance(event, ReservationCompleted):
        return {"status": ReservationStatus.COMPLETED.value}
    if isinstance(event, ReservationRejected | ReservationCompensating):
        status = S.REJECTED if isinstance(event, ReservationRejected) else S.COMPENSATING
        return {"status": status.value, "reason": event.reason, "detail": event.detail}
    if isinstance(event, ReservationPaymentSettled):
        return {"refunded_cents": event.refunded_cents}
    if isinstance(event, ReservationCancelled):
        return {"status": event.reason}
    return {}  # ReservationSeatsReturned: nothing shown changes


_FINAL = (ReservationCompleted, ReservationRejected, ReservationCancelled)


class Projector:
    """The projections' subscription handler (thread-safe; several consumers share it).

    Args:
        events: where a stream's missing events are read from when catching up.
        projections: the store of the hashes.
    """

    TYPES: frozenset[str] = frozenset(
        model.__name__ for model in (*INVENTORY_EVENTS, *SAGA_EVENTS)
    )
    """The type names of the events it projects (``make_codec`` registers class names):
    every event of the inventory and reservation streams, and nothing else, so its
    subscription need not decode the rest of the feed (``subscribe(types=...)``)."""

    def __init__(self, events: EventStore, projections: ProjectionStore) -> None:
        self.events = events
        self.projections = projections
        # Positions this process knows applied (never ahead of the store): saves a
        # read per event in the common, in-order case.
        self._applied: dict[str, int] = {}
        self._lock = threading.Lock()
        self._batch = threading.local()

    def __call__(self, recorded: RecordedEvent) -> None:
        """Handle one event from the feed (events of other streams are ignored).

        The generation is resolved once: a position read in one generation and an
        update applied in another could skip versions in the new one during a rebuild.
        """
        self._project(recorded, self._current_view())

    def begin(self, recorded: RecordedEvent) -> Callable[[], None]:
        """Handle ``recorded`` as part of a consumer's batch (``persistence._subscription``
        begins every event of a read, then finishes each in order).

        The first ``finish`` of a batch applies the updates of every event begun in it
        at once (``apply_many``: one round trip on Redis, to the generation current
        then, looked up once); the later ones find theirs applied. Each event is still
        applied before its own ``finish`` returns, so before it is acknowledged. As
        safe for a rebuild as a lookup per update: every event of the batch was
        appended before it. When the batch's updates fail, each ``finish`` applies
        its own event alone, raising its own error (applying again is idempotent).
        """
        batch = self._batch
        if getattr(batch, "finishing", True):  # the first of a new batch on this thread
            batch.finishing = False
            batch.begun = []
            batch.view = None
            batch.failed = False
        batch.begun.append(recorded)

        def finish() -> None:
            if not batch.finishing:
                batch.finishing = True
                batch.view = self._current_view()
                try:
                    self._project_many(batch.begun, batch.view)
                except Exception:
                    batch.failed = True
            if batch.failed:
                self._project(recorded, batch.view)

        return finish

    def _current_view(self) -> ProjectionStore:
        projections = self.projections
        at_generation = getattr(projections, "at_generation", None)
        generation = getattr(projections, "generation", None)
        if at_generation is None or generation is None:
            return projections
        view: ProjectionStore = at_generation(generation())
        return view

    def _project(self, recorded: RecordedEvent, projections: ProjectionStore) -> None:
        self._project_many([recorded], projections)

    def _project_many(
        self, records: Sequence[RecordedEvent], projections: ProjectionStore
    ) -> None:
        """Apply each of ``records`` after every earlier event of its stream, each once
        (events of other streams are ignored), in one ``apply_many``."""
        updates: list[ProjectionUpdate] = []
        planned: dict[str, int] = {}  # key -> the version its updates reach
        finished: list[str] = []
        for recorded in records:
            stream_id = recorded.stream_id
            event = recorded.event
            update: Callable[[DomainEvent], tuple[dict[str, str | int], dict[str, int]]]
            if stream_id.startswith("inventory-"):
                key = availability_key(event.event_id, event.section)  # type: ignore[attr-defined]
                update = _availability_fields
            elif stream_id.startswith("reservation-"):
                key = reservation_key(event.reservation_id)  # type: ignore[attr-defined]
                update = _reservation_fields
                if isinstance(event, _FINAL):
                    finished.append(key)  # nothing more is coming for it
            else:
                continue
            known = planned.get(key)
            if known is None:
                with self._lock:
                    known = self._applied.get(key)
            if known is None:
                # Nothing comes before a stream's first event, and apply() skips a
                # position the hash has already: no read for it (one per reservation,
                # a round trip on Redis).
                known = 0 if recorded.version == 1 else projections.position(key)
            if recorded.version <= known:
                continue
            if recorded.version == known + 1:
                todo = [recorded]
            else:  # events ahead of this one were not applied yet: catch up from the store
                todo = self.events.read(stream_id, from_version=known, to_version=recorded.version)
            for item in todo:
                set_fields, increments = update(item.event)  # type: ignore[arg-type]
                updates.append(ProjectionUpdate(key, item.version, set_fields, increments))
            planned[key] = recorded.version
        if updates:
            projections.apply_many(updates)
        with self._lock:
            if len(self._applied) > 100_000:
                self._applied.clear()
            for key, version in planned.items():
                self._applied[key] = max(version, self._applied.get(key, 0))
            for key in finished:
                self._applied.pop(key, None)


def _availability_fields(event: DomainEvent) -> tuple[dict[str, str | int], dict[str, int]]:
    return availability_update(event)


def _reservation_fields(event: DomainEvent) -> tuple[dict[str, str | int], dict[str, int]]:
    return reservation_update(event), {}
