"""Checks of outside input at the edge (the facade): typed errors, nothing written.

Event and section ids become parts of stream ids and projection keys, so they are
kept to letters, digits, ``_`` and ``.``: no ``-`` (the stream id separator), no
``:`` (the key separator), no braces (Redis hash tags), nothing a shell would mind.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from domain._errors import InvalidRequest

__all__ = [
    "MAX_CAPACITY",
    "check_capacity",
    "check_card",
    "check_consumers",
    "check_customer",
    "check_id",
    "check_price",
    "check_quantity",
    "check_seats",
    "check_sections",
    "check_timeout",
]

_ID = re.compile(r"[A-Za-z0-9_.]{1,64}")
_CUSTOMER = re.compile(r"[A-Za-z0-9_.@+\-]{1,128}")
MAX_CAPACITY = 100_000
MAX_PRICE_CENTS = 100_000_000


def check_id(field: str, value: object) -> str:
    """An event, section or reservation id: 1-64 of ``A-Z a-z 0-9 _ .``."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidRequest(field, f"{value!r} is not 1-64 letters, digits, '_' or '.'")
    return value


def check_customer(value: object) -> str:
    if not isinstance(value, str) or not _CUSTOMER.fullmatch(value):
        raise InvalidRequest("customer_id", f"{value!r} is not 1-128 of A-Z a-z 0-9 _ . @ + -")
    return value


def _int(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(field, f"{value!r} is not an integer")
    return value


def check_capacity(field: str, value: object) -> int:
    number = _int(field, value)
    if not 1 <= number <= MAX_CAPACITY:
        raise InvalidRequest(field, f"{number} is not within 1..{MAX_CAPACITY}")
    return number


def check_consumers(field: str, value: object, least: int) -> int:
    """A number of consumers of a group in one process: ``least`` or more."""
    number = _int(field, value)
    if number < least:
        raise InvalidRequest(field, f"{number} consumers; at least {least}")
    return number


def check_price(value: object) -> int:
    number = _int("price_cents", value)
    if not 0 <= number <= MAX_PRICE_CENTS:
        raise InvalidRequest("price_cents", f"{number} is not within 0..{MAX_PRICE_CENTS}")
    return number


def check_sections(value: object) -> dict[str, int]:
    """``{"A": 100, ...}``: at least one section, each with a capacity."""
    if not isinstance(value, Mapping) or not value:
        raise InvalidRequest("sections", "give at least one section: {'A': 100, ...}")
    return {
        check_id("sections", name): check_capacity(f"sections[{name!r}]", capacity)
        for name, capacity in value.items()
    }


def check_quantity(value: object, capacity: int) -> int:
    number = _int("quantity", value)
    if not 1 <= number <= capacity:
        raise InvalidRequest("quantity", f"{number} is not within 1..{capacity} (the section)")
    return number


def check_seats(value: Iterable[object] | None, quantity: int, capacity: int) -> tuple[int, ...]:
    """Specific seats: distinct numbers within the section, as many as the quantity."""
    if value is None:
        return ()
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidRequest("seats", f"{value!r} is not a list of seat numbers")
    seats = tuple(_int("seats", seat) for seat in value)
    if len(seats) != quantity:
        raise InvalidRequest("seats", f"{len(seats)} seats named for a quantity of {quantity}")
    if len(set(seats)) != len(seats):
        raise InvalidRequest("seats", f"{list(seats)} names a seat twice")
    outside = [seat for seat in seats if not 1 <= seat <= capacity]
    if outside:
        raise InvalidRequest("seats", f"seats {outside} are not within 1..{capacity}")
    return tuple(sorted(seats))


def check_timeout(value: object) -> float:
    """Seconds to wait: a number >= 0 (``inf`` waits for the end).

    Checked with the rest, before the saga starts: a bad timeout used to raise a
    ``TypeError`` after the reservation had been sent, which then went ahead.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise InvalidRequest("timeout", f"{value!r} is not a number of seconds >= 0")
    return float(value)


def check_card(value: object) -> str:
    """A card number: 12-19 digits (spaces and dashes allowed) passing the Luhn check."""
    if not isinstance(value, str):
        raise InvalidRequest("card_number", "a card number is a string of digits")
    digits = value.replace(" ", "").replace("-", "")
    if not (digits.isascii() and digits.isdigit() and 12 <= len(digits) <= 19):
        raise InvalidRequest("card_number", "a card number has 12 to 19 digits")
    if not _luhn(digits):
        raise InvalidRequest("card_number", "the card number fails its check digit")
    return digits


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        digit = int(char)
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0
