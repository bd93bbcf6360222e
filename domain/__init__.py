"""The ticketing example: inventory, payment, a reservation saga, their projections.

``TicketingSystem`` is the entry point: it starts the stores and subscriptions on a
backend (in memory, or Redis) and offers ``create_event``, ``reserve`` (blocking until
the reservation's saga has ended), ``availability``, ``reservation`` and ``verify``.
``TicketingProjections`` runs the read side alone, for a process of its own.
Everything else is internal (``domain._x`` modules).
"""

from __future__ import annotations

from domain._errors import (
    BackendUnavailable,
    CardDeclined,
    EventConflict,
    GatewayTimeout,
    GatewayUnavailable,
    InvalidRequest,
    PaymentGatewayError,
    ReservationTimeout,
    SystemStopped,
    TicketingError,
    UnknownEvent,
    UnknownSection,
)
from domain._gateway import Charge, DemoGateway, PaymentGateway, Refund
from domain._outcome import Availability, ReservationOutcome, ReservationStatus
from domain._read_side import TicketingProjections
from domain._system import TicketingSystem
from domain._verify import Check, InvariantReport, SectionReport

__all__ = [
    "Availability",
    "BackendUnavailable",
    "CardDeclined",
    "Charge",
    "Check",
    "DemoGateway",
    "EventConflict",
    "GatewayTimeout",
    "GatewayUnavailable",
    "InvalidRequest",
    "InvariantReport",
    "PaymentGateway",
    "PaymentGatewayError",
    "Refund",
    "ReservationOutcome",
    "ReservationStatus",
    "ReservationTimeout",
    "SectionReport",
    "SystemStopped",
    "TicketingError",
    "TicketingProjections",
    "TicketingSystem",
    "UnknownEvent",
    "UnknownSection",
]
