"""Rules both adapters share, so that they behave alike by construction."""

from __future__ import annotations

import os
import random
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TypeVar

from pydantic import BaseModel

from persistence._errors import InvalidProjectionUpdate, PersistenceError
from persistence._ports import ANY, NO_STREAM, EventMetadata, ExpectedVersion

T = TypeVar("T")

__all__ = [
    "EMPTY_EXTRA",
    "POSITION_FIELD",
    "check_name",
    "check_partitions",
    "error_text",
    "expected_as_int",
    "field_value",
    "metadata_for",
    "new_event_id",
]

EMPTY_EXTRA: Mapping[str, str] = MappingProxyType({})
"""Shared by every event without extra metadata (one object, not one dict per event)."""

POSITION_FIELD = "_position"
"""The projection hash field holding the position the hash has applied."""

ANY_VERSION = -1


def expected_as_int(expected: ExpectedVersion) -> int:
    """``expected_version`` as the int the append check uses: -1 for ANY, 0 for NO_STREAM.

    Raises:
        ValueError: not an int >= 0, ``ANY`` or ``NO_STREAM``.
    """
    if expected == ANY:
        return ANY_VERSION
    if expected == NO_STREAM:
        return 0
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise ValueError(
            f"expected_version must be an int >= 0, ANY or NO_STREAM, got {expected!r}"
        )
    return expected


# Not os.urandom per id: a system call, which lets go of the GIL, so on a busy store's
# thread every id handed the GIL to another thread and waited to get it back (55 us a
# call in the ticketing benchmark, against 0.7 us alone). A generator of our own,
# seeded from os.urandom, gives 128 random bits in one call that keeps the GIL. Our
# own, so that an application's random.seed() cannot make ids repeat across runs;
# reseeded in a forked child, which would otherwise repeat its parent's ids.
_ids = random.Random()
if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork to repeat ids
    os.register_at_fork(after_in_child=_ids.seed)
_random_bits = _ids.getrandbits


def new_event_id() -> str:
    """A fresh event id: 128 random bits as 32 hex digits (cheaper than uuid4)."""
    return f"{_random_bits(128):032x}"


def metadata_for(
    events: Sequence[BaseModel],
    metadata: Sequence[EventMetadata] | EventMetadata | None,
) -> list[EventMetadata]:
    """One ``EventMetadata`` per event, with event ids and the recording time filled in.

    A single ``EventMetadata`` for several events gives event ``i > 0`` the id
    ``"<event_id>/<i>"``, so re-sending the same call is recognised as a retry.

    Raises:
        ValueError: no events, or a metadata sequence of another length.
    """
    count = len(events)
    if count == 0:
        raise ValueError("append needs at least one event")
    now = time.time()
    if metadata is None:
        return [EventMetadata(new_event_id(), None, None, now, EMPTY_EXTRA) for _ in events]
    if isinstance(metadata, EventMetadata):
        at = metadata.recorded_at or now
        extra = metadata.extra or EMPTY_EXTRA
        return [
            EventMetadata(
                metadata.event_id if i == 0 else f"{metadata.event_id}/{i}",
                metadata.correlation_id,
                metadata.causation_id,
                at,
                extra,
            )
            for i in range(count)
        ]
    if len(metadata) != count:
        raise ValueError(f"{len(metadata)} metadata for {count} events")
    return [
        m
        if m.recorded_at
        else EventMetadata(m.event_id, m.correlation_id, m.causation_id, now, m.extra)
        for m in metadata
    ]


def field_value(key: str, field: str, value: object) -> str:
    """A projection field value as the string both adapters store.

    Raises:
        InvalidProjectionUpdate: a reserved field name, or a value that is not a str,
            an int, a float or UTF-8 bytes.
    """
    if field == POSITION_FIELD:
        raise InvalidProjectionUpdate(f"{key!r}: field {POSITION_FIELD!r} is reserved")
    if isinstance(value, str):
        return value
    if isinstance(value, bool):  # bool is an int; refuse it rather than store "True"
        raise InvalidProjectionUpdate(f"{key!r}.{field}: bool is not a field value")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise InvalidProjectionUpdate(f"{key!r}.{field}: bytes are not UTF-8") from None
    raise InvalidProjectionUpdate(
        f"{key!r}.{field}: {type(value).__name__} is not a field value"
    )


def apply_each(items: Iterable[T], apply_one: Callable[[T], bool]) -> list[bool]:
    """``apply_one`` on every item, whatever happens to the others; whether each
    applied. The first ``PersistenceError`` is raised once all were attempted (the
    contract of ``ProjectionStore.apply_many``)."""
    applied: list[bool] = []
    failure: PersistenceError | None = None
    for item in items:
        try:
            applied.append(apply_one(item))
        except PersistenceError as error:
            applied.append(False)
            failure = failure or error
    if failure is not None:
        raise failure
    return applied


def check_increment(key: str, field: str, amount: object) -> int:
    """An increment amount, checked.

    Raises:
        InvalidProjectionUpdate: reserved field or an amount that is not an int.
    """
    if field == POSITION_FIELD:
        raise InvalidProjectionUpdate(f"{key!r}: field {POSITION_FIELD!r} is reserved")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidProjectionUpdate(f"{key!r}.{field}: increment must be an int")
    return amount


def is_integer_text(value: str) -> bool:
    """Whether Redis' HINCRBY would accept ``value`` as the field's current value."""
    if not value or len(value) > 20:
        return False
    digits = value[1:] if value[0] == "-" else value
    if not digits.isdigit() or not digits.isascii():
        return False
    return not (len(digits) > 1 and digits[0] == "0") and value != "-0"


def error_text(error: BaseException) -> tuple[str, str]:
    """(``"Type: message"``, the formatted traceback) of a handler's error."""
    summary = f"{type(error).__qualname__}: {error}"
    tb = "".join(traceback.format_exception(error))
    return summary, tb[-8000:]


# Characters that would change what a key prefix means: hash tag braces and SCAN globs.
_FORBIDDEN = set("{}*?[]\\ \t\r\n")


def check_name(kind: str, name: str) -> str:
    """Raise ValueError unless ``name`` is non-empty and free of braces, globs, spaces."""
    if not name or _FORBIDDEN & set(name):
        raise ValueError(
            f"{kind} {name!r} must be non-empty, without braces, glob characters or spaces"
        )
    return name


def check_index_cursor(after: Sequence[str] | None, partitions: int, start: str) -> list[str]:
    """A stream index cursor as a list (``start`` per partition when None).

    Raises:
        ValueError: not one position per partition (a cursor of another layout).
    """
    if after is None:
        return [start] * partitions
    cursor = list(after)
    if len(cursor) != partitions or not all(isinstance(c, str) for c in cursor):
        raise ValueError(f"an index cursor needs one position (str) per partition ({partitions})")
    return cursor


def check_partitions(partitions: int) -> int:
    """Raises ValueError unless 1 <= partitions <= 1024."""
    if isinstance(partitions, bool) or not isinstance(partitions, int):
        raise ValueError(f"partitions must be an int, got {partitions!r}")
    if not 1 <= partitions <= 1024:
        raise ValueError(f"partitions must be between 1 and 1024, got {partitions}")
    return partitions
