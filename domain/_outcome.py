"""What the facade answers: reservation outcomes and seat availability (values)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Availability", "ReservationOutcome", "ReservationStatus"]


class ReservationStatus(StrEnum):
    """Where a reservation's saga is. The last five are terminal."""

    RESERVING_SEATS = "reserving_seats"
    PROCESSING_PAYMENT = "processing_payment"
    CONFIRMING = "confirming"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    REJECTED = "rejected"
    PAYMENT_DECLINED = "payment_declined"
    PAYMENT_FAILED = "payment_failed"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        """True once the saga has ended (nothing more will change)."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {
        ReservationStatus.COMPLETED,
        ReservationStatus.REJECTED,
        ReservationStatus.PAYMENT_DECLINED,
        ReservationStatus.PAYMENT_FAILED,
        ReservationStatus.TIMED_OUT,
    }
)


@dataclass(frozen=True, slots=True)
class ReservationOutcome:
    """A reservation as the facade reports it.

    Attributes:
        reservation_id: the saga's id (ask again with ``TicketingSystem.reservation``).
        status: ``COMPLETED`` when the seats are sold to the customer; otherwise why not.
        seats: the seat numbers sold (empty unless completed).
        amount_cents: what the customer paid (0 unless completed).
        reason: for a reservation that did not complete, why, as a code
            (``sold_out``, ``payment_declined``, ``timed_out``...).
        detail: the same, for people (``"card declined"``).
    """

    reservation_id: str
    status: ReservationStatus
    customer_id: str
    event_id: str
    section: str
    quantity: int
    seats: tuple[int, ...] = ()
    amount_cents: int = 0
    reason: str = ""
    detail: str = ""

    @property
    def completed(self) -> bool:
        return self.status is ReservationStatus.COMPLETED


def encode_outcome(outcome: ReservationOutcome) -> bytes:
    """The outcome as a notice to other systems (``decode_outcome`` reads it)."""
    fields = {name: getattr(outcome, name) for name in ReservationOutcome.__slots__}
    return json.dumps(fields, separators=(",", ":")).encode()


def decode_outcome(data: bytes) -> ReservationOutcome:
    """Raises ValueError (or KeyError, TypeError) for what ``encode_outcome`` did not write."""
    fields = json.loads(data)
    fields["status"] = ReservationStatus(fields["status"])
    fields["seats"] = tuple(int(seat) for seat in fields["seats"])
    return ReservationOutcome(**fields)


@dataclass(frozen=True, slots=True)
class Availability:
    """Seats of one section, from the availability projection.

    ``available + reserved + sold == capacity`` always holds; ``reserved`` seats are
    held by reservations still paying.
    """

    event_id: str
    section: str
    capacity: int
    available: int
    reserved: int
    sold: int
    price_cents: int
