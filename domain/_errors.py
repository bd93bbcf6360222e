"""The domain's errors: one tree under one base class.

::

    TicketingError
     ├── InvalidRequest (ValueError)     outside input refused at the edge; nothing written
     ├── UnknownEvent (LookupError)      no such event (or section of it)
     │    └── UnknownSection
     ├── EventConflict                   create_event with another definition than the stored one
     ├── ReservationTimeout (TimeoutError)
     │                                   reserve() gave up waiting; the saga still runs to its end
     ├── SystemStopped                   the system is stopped (or stopping)
     ├── BackendUnavailable              storage could not be reached or refused the request
     └── PaymentGatewayError             raised by a PaymentGateway, turned into payment events
          ├── CardDeclined               the card was refused; nothing was charged
          ├── GatewayUnavailable         the gateway failed; nothing was charged
          └── GatewayTimeout             no answer in time; the charge may have gone through

Business outcomes (sold out, payment declined, timed out) are not errors: ``reserve``
returns them as a ``ReservationOutcome``. Errors of ``persistence`` are mapped to
``BackendUnavailable`` at the facade; none leaks out raw.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailable",
    "CardDeclined",
    "EventConflict",
    "GatewayTimeout",
    "GatewayUnavailable",
    "InvalidRequest",
    "PaymentGatewayError",
    "ReservationTimeout",
    "SystemStopped",
    "TicketingError",
    "UnknownEvent",
    "UnknownSection",
]


class TicketingError(Exception):
    """Base class of every error the ticketing domain raises."""


class InvalidRequest(TicketingError, ValueError):
    """Outside input that the facade refuses before anything is written.

    Attributes:
        field: the argument at fault (``"quantity"``, ``"event_id"``...).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class UnknownEvent(TicketingError, LookupError):
    """The event does not exist (``create_event`` was never called for it)."""

    def __init__(self, event_id: str, message: str | None = None) -> None:
        super().__init__(message or f"unknown event {event_id!r}")
        self.event_id = event_id


class UnknownSection(UnknownEvent):
    """The event exists but has no such section."""

    def __init__(self, event_id: str, section: str) -> None:
        super().__init__(event_id, f"event {event_id!r} has no section {section!r}")
        self.section = section


class EventConflict(TicketingError):
    """``create_event`` for an id that exists with another definition; nothing written."""


class ReservationTimeout(TicketingError, TimeoutError):
    """``reserve`` stopped waiting; the reservation's saga goes on to a terminal state.

    Attributes:
        reservation_id: ask for it later with ``TicketingSystem.reservation``.
    """

    def __init__(self, reservation_id: str, timeout: float) -> None:
        super().__init__(
            f"reservation {reservation_id!r} did not finish within {timeout} s; "
            "it continues and ends on its own"
        )
        self.reservation_id = reservation_id


class SystemStopped(TicketingError):
    """The system is stopped: start a new one (on the same backend) to continue."""


class BackendUnavailable(TicketingError):
    """The event store or the projections could not be reached; ``__cause__`` says why."""


class PaymentGatewayError(TicketingError):
    """What a ``PaymentGateway`` raises; the payment store records it as an event."""


class CardDeclined(PaymentGatewayError):
    """The card was refused. Nothing was charged."""


class GatewayUnavailable(PaymentGatewayError):
    """The gateway failed to process the request. Nothing was charged."""


class GatewayTimeout(PaymentGatewayError):
    """The gateway did not answer in time: the charge may or may not have happened."""
