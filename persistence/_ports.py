"""The ports the domain needs: event store, feeds and subscriptions, projections, snapshots.

Each port is a ``typing.Protocol``; ``persistence.memory`` and ``persistence.redis``
implement every one of them with the same contracts, the same errors and the same
ordering guarantees. One contract test suite runs against both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pydantic import BaseModel

__all__ = [
    "ANY",
    "NO_STREAM",
    "AppendResult",
    "EventMetadata",
    "EventStore",
    "ExpectedVersion",
    "FeedPosition",
    "ProjectionStore",
    "RecordedEvent",
    "Snapshot",
    "SnapshotStore",
    "StartFrom",
    "Subscription",
    "SubscriptionHandler",
    "Subscriptions",
]

ANY: Literal["any"] = "any"
"""``expected_version`` that accepts whatever version the stream has."""

NO_STREAM: Literal["no_stream"] = "no_stream"
"""``expected_version`` that requires the stream not to exist yet (version 0)."""

ExpectedVersion = int | Literal["any", "no_stream"]
"""The version a stream must have for an append to go through."""

StartFrom = Literal["beginning", "now"]


@dataclass(frozen=True, slots=True, order=True)
class FeedPosition:
    """Where an event sits in the feed of its partition.

    ``entry_id`` is the feed's entry id (``"<ms>-<seq>"`` on Redis); positions of one
    partition order like the appends that made them.
    """

    partition: int
    entry_id: str

    def __str__(self) -> str:
        return f"{self.partition}/{self.entry_id}"


@dataclass(frozen=True, slots=True)
class EventMetadata:
    """What is recorded beside each event.

    ``event_id`` makes appends idempotent: re-appending events whose ids were already
    appended to the stream returns the earlier result and writes nothing.
    """

    event_id: str
    correlation_id: str | None = None
    causation_id: str | None = None
    recorded_at: float = 0.0
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as read back from the store."""

    stream_id: str
    version: int  # 1 for the stream's first event
    type_name: str
    schema_version: int
    event: BaseModel
    metadata: EventMetadata
    position: FeedPosition


@dataclass(frozen=True, slots=True)
class AppendResult:
    """The stream's version after the append, and each event's feed position."""

    stream_id: str
    version: int
    positions: tuple[FeedPosition, ...]


class EventStore(Protocol):
    """Streams of events, one per aggregate, with optimistic concurrency.

    Version = number of events in the stream (0 for a stream that does not exist).
    """

    @property
    def partitions(self) -> int:
        """How many partition feeds there are (fixed for the life of the store)."""
        ...

    def partition_of(self, stream_id: str) -> int:
        """The partition whose feed receives the stream's events."""
        ...

    def append(
        self,
        stream_id: str,
        events: Sequence[BaseModel],
        expected_version: ExpectedVersion,
        metadata: Sequence[EventMetadata] | EventMetadata | None = None,
    ) -> AppendResult:
        """Append ``events`` atomically (all or none) if the version is as expected.

        Args:
            stream_id: the aggregate's stream.
            events: registered pydantic event models (see ``Codec``).
            expected_version: the version the stream must have now: an int,
                ``ANY`` or ``NO_STREAM``.
            metadata: one per event, or one whose correlation and causation ids apply
                to all (each event then gets a fresh event id), or None.

        Raises:
            ConcurrencyError: the stream's version is not the expected one (names
                the stream, the expected and the actual version); nothing written.
            EventStoreUnavailable: the backend could not be reached; the append was
                applied entirely or not at all (read back to know which).
        """
        ...

    def read(
        self, stream_id: str, from_version: int = 0, to_version: int | None = None
    ) -> list[RecordedEvent]:
        """The events with ``from_version < version <= to_version``, in order."""
        ...

    def stream_version(self, stream_id: str) -> int:
        """The stream's current version (0 when it does not exist)."""
        ...

    def read_feed(
        self, partition: int, after: str | None = None, count: int = 1000
    ) -> list[RecordedEvent]:
        """Up to ``count`` events of a partition's feed after entry id ``after``."""
        ...


SubscriptionHandler = Callable[[RecordedEvent], None]


class Subscription(Protocol):
    """A running subscription; ``stop()`` ends it after the event being handled."""

    def stop(self, timeout: float | None = None) -> None: ...

    @property
    def running(self) -> bool: ...


class Subscriptions(Protocol):
    """Reading every partition feed through a consumer group.

    At-least-once: an event is acknowledged after ``handler`` returns; one left
    pending on a dead consumer is claimed by another after ``claim_idle`` seconds; one
    whose handler keeps raising is moved to the group's dead-letter stream after
    ``max_deliveries`` attempts, with the error recorded, and the group moves on.
    """

    def subscribe(
        self,
        group: str,
        handler: SubscriptionHandler,
        *,
        consumer: str | None = None,
        start: StartFrom = "beginning",
        claim_idle: float = 30.0,
        max_deliveries: int = 5,
    ) -> Subscription: ...


class ProjectionStore(Protocol):
    """Read models kept in hashes, updated idempotently.

    Each hash records the position it has applied (a stream version, or any
    increasing int); ``apply`` with a position at or below it changes nothing, and
    the update and the new position are written together atomically.
    """

    def apply(
        self,
        key: str,
        position: int,
        set_fields: Mapping[str, str | int | bytes] | None = None,
        increments: Mapping[str, int] | None = None,
    ) -> bool:
        """Apply an update at ``position``; False when it was already applied."""
        ...

    def get(self, key: str) -> dict[str, str] | None:
        """The hash's fields (the applied position under ``"_position"``), or None."""
        ...

    def position(self, key: str) -> int:
        """The position the hash has applied (0 when it does not exist)."""
        ...

    def delete(self, key: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An aggregate's state as of ``version`` of its stream."""

    stream_id: str
    version: int
    state: bytes


class SnapshotStore(Protocol):
    """The latest snapshot per stream; loading reads it and the stream's tail."""

    def save(self, stream_id: str, version: int, state: bytes) -> None:
        """Keep this snapshot unless a newer one (higher version) is kept already."""
        ...

    def load(self, stream_id: str) -> Snapshot | None: ...
