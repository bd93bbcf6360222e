"""The persistence error tree: every error an adapter raises, rooted in one class.

::

    PersistenceError
    ├── ConcurrencyError            the stream's version is not the expected one
    ├── DuplicateEvent              event ids re-sent in a different batch
    ├── CodecError (ValueError)     an event cannot be encoded or decoded
    │   ├── UnregisteredEvent       encoding a model class the codec does not know
    │   ├── UnknownEventType        decoding a type name / schema version it does not know
    │   └── MalformedEvent          undecodable payload, or one failing validation
    ├── InvalidProjectionUpdate (ValueError)
    │                               an increment on a field that is not an integer
    ├── EventStoreUnavailable       connection lost, timeout, server loading / read-only
    │   └── StorageFull             the server refuses writes (maxmemory reached)
    ├── BackendError                the backend refused a command for another reason
    └── ConfigurationError          the backend is set up in a way we refuse to run on
        ├── UnsafeRedisConfiguration   an eviction policy other than noeviction
        └── IncompatibleLayout         keys written with another partition count

Adapters translate their backend's exceptions into this tree where they call it
(``persistence._redis_errors.map_redis_errors``); no ``redis`` exception reaches a
caller. Errors about an event name the stream and the version (or feed position)
they concern, so a log line is enough to find the entry with ``redis-cli``.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "CodecError",
    "ConcurrencyError",
    "ConfigurationError",
    "DuplicateEvent",
    "EventStoreUnavailable",
    "IncompatibleLayout",
    "InvalidProjectionUpdate",
    "MalformedEvent",
    "PersistenceError",
    "StorageFull",
    "UnknownEventType",
    "UnregisteredEvent",
    "UnsafeRedisConfiguration",
]


class PersistenceError(Exception):
    """Root of every error raised by ``persistence``."""


class ConcurrencyError(PersistenceError):
    """An append's expected version did not match the stream's; nothing was written.

    Attributes:
        stream_id: the stream appended to.
        expected: the expected version as given (an int, ``"any"`` or ``"no_stream"``).
        actual: the stream's version when the append was checked.
    """

    def __init__(self, stream_id: str, expected: int | str, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, expected {expected}"
        )

    def __reduce__(self) -> tuple[type[ConcurrencyError], tuple[str, int | str, int]]:
        return (type(self), (self.stream_id, self.expected, self.actual))


class DuplicateEvent(PersistenceError):
    """Event ids already in the stream were re-sent together with other events.

    Re-sending exactly the events of an earlier append (same ids, same order) is a
    retry and returns the earlier result; re-sending some of them mixed with new ones
    is a caller bug this error reports. Nothing was written.
    """

    def __init__(self, stream_id: str, event_id: str, version: int) -> None:
        self.stream_id = stream_id
        self.event_id = event_id
        self.version = version
        super().__init__(
            f"event id {event_id!r} is already stream {stream_id!r} version {version}, "
            "appended in a different batch"
        )

    def __reduce__(self) -> tuple[type[DuplicateEvent], tuple[str, str, int]]:
        return (type(self), (self.stream_id, self.event_id, self.version))


def _where(stream_id: str | None, version: int | None, position: str | None) -> str:
    parts = []
    if stream_id is not None:
        parts.append(f"stream {stream_id!r}")
    if version is not None:
        parts.append(f"version {version}")
    if position is not None:
        parts.append(f"feed position {position}")
    return (" at " + " ".join(parts)) if parts else ""


class CodecError(PersistenceError, ValueError):
    """An event could not be encoded or decoded.

    Attributes:
        stream_id, version, position: where the event sits (None when unknown, e.g.
            while encoding).
    """

    def __init__(
        self,
        message: str,
        *,
        stream_id: str | None = None,
        version: int | None = None,
        position: str | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.version = version
        self.position = position
        self.detail = message
        super().__init__(message + _where(stream_id, version, position))


class UnregisteredEvent(CodecError):
    """Appending an instance of a model class that is not registered with the codec."""


class UnknownEventType(CodecError):
    """Reading an event whose type name or schema version the codec does not know."""


class MalformedEvent(CodecError):
    """Reading a payload that is not msgpack, not a map, or fails the model's validation."""


class InvalidProjectionUpdate(PersistenceError, ValueError):
    """A projection update that cannot apply (e.g. incrementing a non-integer field).

    Checked before anything is written: the hash is left as it was.
    """


class EventStoreUnavailable(PersistenceError):
    """The backend could not be reached or did not answer in time.

    An append that raised this was applied entirely or not at all; appending the
    same events again (same event ids) is safe: a retry of an applied append
    returns its earlier result.
    """


class StorageFull(EventStoreUnavailable):
    """The backend refuses writes because it is out of memory (``maxmemory``)."""


class BackendError(PersistenceError):
    """The backend refused a command for a reason other than availability."""


class ConfigurationError(PersistenceError):
    """The backend's configuration would lose or misplace events; refusing to start."""


class UnsafeRedisConfiguration(ConfigurationError):
    """Redis may evict keys (``maxmemory-policy`` other than ``noeviction``).

    Under ``allkeys-lru`` Redis evicts whole event streams silently; pass
    ``allow_eviction=True`` only for throw-away data.
    """


class IncompatibleLayout(ConfigurationError):
    """The key prefix already holds data written with another layout (partition count)."""
