"""The domain's public surface is exactly what ``__all__`` says (and stays so)."""

from __future__ import annotations

import domain


def test_the_public_names_of_domain_are_pinned() -> None:
    assert sorted(domain.__all__) == [
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


def test_every_public_name_is_importable_and_documented() -> None:
    for name in domain.__all__:
        value = getattr(domain, name)
        assert getattr(value, "__doc__", None), f"{name} has no docstring"


def test_every_domain_error_derives_from_the_one_base() -> None:
    for name in domain.__all__:
        value = getattr(domain, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, domain.TicketingError), name
