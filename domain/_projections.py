"""Read models: seat availability per section, and the status of each reservation.

Both are hashes in a ``ProjectionStore``, updated by a subscription (the
``projections`` consumer group) and keyed so that any Redis client can read them:

``availability:{event_id}:{section}``  capacity, available, reserved, sold, price_cents
``reservation:{reservation_id}``      status, customer_id, event_id, section, quantity,
                                      seats ("3,4"), amount_cents, reason, refunded_cents

Each hash records the version of its stream it reflects (``_position``), so a
replayed event changes nothing. Events may arrive out of order (several consumers
share the group, a failed delivery is retried later); so availability, kept by
increments, applies a stream's events strictly in version order: an event that
arrives ahead of the hash's position catches up from the event store first. A
reservation's hash is written whole from the fold of its (short) stream, which is
right whatever order the events come in.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from domain._events import (
    DomainEvent,
    SeatsConfirmed,
    SeatsReleased,
    SeatsReserved,
    SectionInitialized,
    inventory_stream,
    reservation_stream,
)
from domain._outcome import Availability, ReservationOutcome, ReservationStatus
from domain._saga import Saga, evolve_saga
from persistence import EventStore, ProjectionStore, RecordedEvent

__all__ = [
    "Projector",
    "availability_from",
    "availability_key",
    "outcome_from",
    "reservation_fields",
    "reservation_key",
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


class Projector:
    """The projections' subscription handler (thread-safe; several consumers share it).

    Args:
        events: where a section's missing events are read from when catching up.
        projections: the store of the hashes.
    """

    def __init__(self, events: EventStore, projections: ProjectionStore) -> None:
        self.events = events
        self.projections = projections
        # Positions this process knows applied (never ahead of the store): saves a
        # read per event in the common, in-order case.
        self._applied: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, recorded: RecordedEvent) -> None:
        """Handle one event from the feed (events of other streams are ignored)."""
        stream_id = recorded.stream_id
        if stream_id.startswith("inventory-"):
            self._availability(recorded)
        elif stream_id.startswith("reservation-"):
            self._reservation(recorded)

    def _availability(self, recorded: RecordedEvent) -> None:
        event = recorded.event
        event_id, section = event.event_id, event.section  # type: ignore[attr-defined]
        key = availability_key(event_id, section)
        with self._lock:
            known = self._applied.get(key)
        if known is None:
            known = self.projections.position(key)
        if recorded.version <= known:
            return
        if recorded.version == known + 1:
            todo = [recorded]
        else:
            stream_id = inventory_stream(event_id, section)
            todo = self.events.read(stream_id, from_version=known, to_version=recorded.version)
        for item in todo:
            set_fields, increments = availability_update(item.event)  # type: ignore[arg-type]
            self.projections.apply(key, item.version, set_fields, increments)
        with self._lock:
            if len(self._applied) > 100_000:
                self._applied.clear()
            self._applied[key] = max(recorded.version, self._applied.get(key, 0))

    def _reservation(self, recorded: RecordedEvent) -> None:
        event = recorded.event
        rid: str = event.reservation_id  # type: ignore[attr-defined]
        key = reservation_key(rid)
        # No position check first: ``apply`` refuses a version already applied, and a
        # duplicate is rare enough that reading the short stream for it costs nothing.
        saga: Saga | None = None
        stream = self.events.read(reservation_stream(rid), to_version=recorded.version)
        for item in stream:
            saga = evolve_saga(saga, item.event)  # type: ignore[arg-type]
        if saga is not None:
            self.projections.apply(key, recorded.version, reservation_fields(saga))
