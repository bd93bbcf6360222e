"""The domain's events: immutable pydantic models, past tense, one stream family each.

Streams (one per aggregate; stream ids are built by the functions below, nowhere else):

``catalog``                       ``EventListed``: every event id ever created (an index)
``event-{event_id}``              ``EventCreated``: the event's sections and price
``inventory-{event_id}-{section}``  ``SectionInitialized``, ``SeatsReserved``,
                                  ``SeatsRejected``, ``SeatsConfirmed``, ``SeatsReleased``
``payment-{payment_id}``          ``PaymentSucceeded``, ``PaymentDeclined``,
                                  ``PaymentFailed``, ``PaymentRefunded``
``reservation-{reservation_id}``  the saga: ``ReservationStarted`` ... ``ReservationCompleted``
                                  / ``ReservationRejected`` / ``ReservationCancelled``
``sagas-{n}``                     ``SagaOpened``: the index of reservations that
                                  versions before the stream index ``sagas`` wrote
                                  (still read by recovery and ``verify``; no longer written)

Every ``reservation-{id}`` stream is listed in the event store's stream index
``sagas`` (``SAGA_INDEX``) by the append that creates it, for recovery.

Event and section ids never contain ``-`` (see ``_validation``), so the inventory
stream id is unambiguous. Rejections of a reservation are events too
(``SeatsRejected``): the saga learns every outcome of its commands from the bus.
"""

from __future__ import annotations

import zlib
from typing import Literal

from pydantic import BaseModel, ConfigDict

from persistence import Codec

__all__ = [
    "INVENTORY_EVENTS",
    "PAYMENT_EVENTS",
    "SAGA_EVENTS",
    "SAGA_INDEX",
    "SAGA_INDEX_PARTITIONS",
    "CancelReason",
    "DomainEvent",
    "EventCreated",
    "EventListed",
    "PaymentDeclined",
    "PaymentFailed",
    "PaymentRefunded",
    "PaymentSucceeded",
    "ReservationCancelled",
    "ReservationCompensating",
    "ReservationCompleted",
    "ReservationPaid",
    "ReservationPaymentSettled",
    "ReservationRejected",
    "ReservationSeatsHeld",
    "ReservationSeatsReturned",
    "ReservationStarted",
    "SagaOpened",
    "SeatsConfirmed",
    "SeatsRejected",
    "SeatsReleased",
    "SeatsReserved",
    "SectionInitialized",
    "catalog_stream",
    "event_stream",
    "inventory_stream",
    "make_codec",
    "payment_stream",
    "reservation_id_of",
    "reservation_stream",
    "saga_index_stream",
]


class DomainEvent(BaseModel):
    """Base of every event: frozen (events are values) and strict about fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# -- catalog ------------------------------------------------------------------------


class EventListed(DomainEvent):
    """An event id was created (the catalog index; duplicates are harmless)."""

    event_id: str


class EventCreated(DomainEvent):
    """An event and its sections (capacity per section), priced per seat."""

    event_id: str
    sections: dict[str, int]
    price_cents: int


# -- inventory ----------------------------------------------------------------------


class SectionInitialized(DomainEvent):
    event_id: str
    section: str
    capacity: int
    price_cents: int


class SeatsReserved(DomainEvent):
    """Seats held for a reservation until it is confirmed or released."""

    reservation_id: str
    event_id: str
    section: str
    seats: tuple[int, ...]
    amount_cents: int


class SeatsRejected(DomainEvent):
    """A reservation could not be given seats; ``reason`` is a ``Rejection`` value."""

    reservation_id: str
    event_id: str
    section: str
    quantity: int
    reason: str
    detail: str = ""


class SeatsConfirmed(DomainEvent):
    """The held seats of a reservation are sold."""

    reservation_id: str
    event_id: str
    section: str
    seats: tuple[int, ...]


class SeatsReleased(DomainEvent):
    """A reservation's held seats are free again.

    ``seats`` is empty when the reservation held none: the event then closes the
    reservation id, so that a reserve command arriving late cannot hold seats for it.
    """

    reservation_id: str
    event_id: str
    section: str
    seats: tuple[int, ...]


# -- payment ------------------------------------------------------------------------


class PaymentSucceeded(DomainEvent):
    payment_id: str
    reservation_id: str
    amount_cents: int
    charge_id: str


class PaymentDeclined(DomainEvent):
    """The card was refused; nothing was charged."""

    payment_id: str
    reservation_id: str
    amount_cents: int
    reason: str


class PaymentFailed(DomainEvent):
    """The gateway failed. ``uncertain``: it timed out, so the charge may have happened."""

    payment_id: str
    reservation_id: str
    amount_cents: int
    reason: str
    uncertain: bool


class PaymentRefunded(DomainEvent):
    """Whatever was charged for the payment is returned (0 when nothing was), and the
    payment is closed: a later charge under its id is refused by the gateway."""

    payment_id: str
    reservation_id: str
    refunded_cents: int
    refund_id: str


# -- the reservation saga ------------------------------------------------------------

CancelReason = Literal["payment_declined", "payment_failed", "timed_out"]


class ReservationStarted(DomainEvent):
    reservation_id: str
    customer_id: str
    event_id: str
    section: str
    quantity: int
    seats: tuple[int, ...]
    card_token: str
    started_at: float
    deadline: float


class ReservationSeatsHeld(DomainEvent):
    reservation_id: str
    seats: tuple[int, ...]
    amount_cents: int
    payment_id: str
    deadline: float


class ReservationPaid(DomainEvent):
    reservation_id: str
    charge_id: str
    deadline: float


class ReservationCompleted(DomainEvent):
    reservation_id: str
    completed_at: float


class ReservationRejected(DomainEvent):
    reservation_id: str
    reason: str
    detail: str
    rejected_at: float


class ReservationCompensating(DomainEvent):
    """The saga undoes what it did: release the seats, refund the payment."""

    reservation_id: str
    reason: CancelReason
    release_seats: bool
    refund_payment: bool
    deadline: float
    detail: str = ""


class ReservationSeatsReturned(DomainEvent):
    reservation_id: str


class ReservationPaymentSettled(DomainEvent):
    """Compensation of the payment is done: refunded, or known never charged."""

    reservation_id: str
    refunded_cents: int


class ReservationCancelled(DomainEvent):
    reservation_id: str
    reason: CancelReason
    cancelled_at: float


class SagaOpened(DomainEvent):
    """An entry of the saga index streams that earlier versions wrote before a saga's
    first event (see ``saga_index_stream``); read, never written now: sagas are listed
    in the stream index ``SAGA_INDEX`` by their first append."""

    reservation_id: str
    opened_at: float


INVENTORY_EVENTS: tuple[type[DomainEvent], ...] = (
    SectionInitialized,
    SeatsReserved,
    SeatsRejected,
    SeatsConfirmed,
    SeatsReleased,
)
PAYMENT_EVENTS: tuple[type[DomainEvent], ...] = (
    PaymentSucceeded,
    PaymentDeclined,
    PaymentFailed,
    PaymentRefunded,
)
SAGA_EVENTS: tuple[type[DomainEvent], ...] = (
    ReservationStarted,
    ReservationSeatsHeld,
    ReservationPaid,
    ReservationCompleted,
    ReservationRejected,
    ReservationCompensating,
    ReservationSeatsReturned,
    ReservationPaymentSettled,
    ReservationCancelled,
)
_ALL: tuple[type[DomainEvent], ...] = (
    EventListed,
    EventCreated,
    *INVENTORY_EVENTS,
    *PAYMENT_EVENTS,
    *SAGA_EVENTS,
    SagaOpened,
)


def make_codec() -> Codec:
    """A codec with every domain event registered (type name = class name, version 1)."""
    codec = Codec()
    for model in _ALL:
        codec.register(model, version=1)
    return codec


# -- stream ids ----------------------------------------------------------------------

SAGA_INDEX = "sagas"
"""The event store's stream index that lists every reservation stream (see
``EventStore.append``'s ``index``): how recovery finds the unfinished sagas."""

SAGA_INDEX_PARTITIONS = 16
"""How many ``sagas-{n}`` index streams the earlier saga index had (read, not written)."""


def catalog_stream() -> str:
    return "catalog"


def event_stream(event_id: str) -> str:
    return f"event-{event_id}"


def inventory_stream(event_id: str, section: str) -> str:
    return f"inventory-{event_id}-{section}"


def payment_stream(payment_id: str) -> str:
    return f"payment-{payment_id}"


def reservation_stream(reservation_id: str) -> str:
    return f"reservation-{reservation_id}"


def reservation_id_of(stream_id: str) -> str | None:
    """The reservation id of a ``reservation-{id}`` stream id (None for another)."""
    head, _, rid = stream_id.partition("-")
    return rid if head == "reservation" and rid else None


def saga_index_stream(reservation_id: str) -> str:
    """The earlier index stream that lists ``reservation_id`` (CRC-32, stable across
    processes): where data recorded by earlier versions has its ``SagaOpened``."""
    return f"sagas-{zlib.crc32(reservation_id.encode()) % SAGA_INDEX_PARTITIONS}"
