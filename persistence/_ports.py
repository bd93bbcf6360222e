"""The ports the domain needs: event store, feeds and subscriptions, projections,
snapshots, and notices between the processes on one backend.

Each port is a ``typing.Protocol``; the memory adapter (``MemoryEventStore`` & co.,
the embedded default) and the Redis adapter (``RedisEventStore`` & co.) implement every
one of them with the same contracts, the same errors and the same ordering guarantees.
One contract test suite (``tests/persistence``) runs against both.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pydantic import BaseModel

__all__ = [
    "ANY",
    "NO_STREAM",
    "AppendResult",
    "DeadLetter",
    "EventMetadata",
    "EventStore",
    "ExpectedVersion",
    "FeedPosition",
    "IndexPage",
    "Listening",
    "NoticeHandler",
    "Notices",
    "ProjectionGenerations",
    "ProjectionStore",
    "Projector",
    "RecordedEvent",
    "Snapshot",
    "SnapshotStore",
    "StartFrom",
    "Subscription",
    "SubscriptionHandler",
    "Subscriptions",
    "entry_key",
    "partition_for",
]

ANY: Literal["any"] = "any"
"""``expected_version`` that accepts whatever version the stream has."""

NO_STREAM: Literal["no_stream"] = "no_stream"
"""``expected_version`` that requires the stream not to exist yet (version 0)."""

ExpectedVersion = int | Literal["any", "no_stream"]
"""The version a stream must have for an append to go through."""

StartFrom = Literal["beginning", "now"]
"""Where a new consumer group starts: the feeds' first entries, or entries appended later."""


def partition_for(stream_id: str, partitions: int) -> int:
    """The partition of ``stream_id`` among ``partitions``: CRC-32 of its UTF-8 bytes.

    Stable across processes and Python versions (unlike ``hash()``), and the same in
    both adapters, so a stream lands in the same feed wherever it is appended.
    """
    return zlib.crc32(stream_id.encode()) % partitions


def entry_key(entry_id: str) -> tuple[int, int]:
    """The sortable (milliseconds, sequence) pair of a stream entry id ``"<ms>-<seq>"``."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True, slots=True)
class FeedPosition:
    """Where an event sits in the feed of its partition.

    ``entry_id`` is the feed's entry id (``"<ms>-<seq>"``, on Redis and in memory);
    positions of one partition order like the appends that made them. Positions
    compare by (partition, ms, seq), not as strings (``"10-0"`` comes after ``"9-0"``).
    """

    partition: int
    entry_id: str

    @property
    def sort_key(self) -> tuple[int, int, int]:
        ms, seq = entry_key(self.entry_id)
        return self.partition, ms, seq

    def __lt__(self, other: FeedPosition) -> bool:
        return self.sort_key < other.sort_key

    def __le__(self, other: FeedPosition) -> bool:
        return self.sort_key <= other.sort_key

    def __gt__(self, other: FeedPosition) -> bool:
        return self.sort_key > other.sort_key

    def __ge__(self, other: FeedPosition) -> bool:
        return self.sort_key >= other.sort_key

    def __str__(self) -> str:
        return f"{self.partition}/{self.entry_id}"


@dataclass(frozen=True, slots=True)
class EventMetadata:
    """What is recorded beside each event.

    ``event_id`` makes appends idempotent: re-appending the events of an earlier
    append (same ids, same order) returns the earlier result and writes nothing.
    ``recorded_at`` (seconds since the epoch) 0.0 means "now, at append".
    """

    event_id: str
    correlation_id: str | None = None
    causation_id: str | None = None
    recorded_at: float = 0.0
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as read back from the store.

    ``schema_version`` is the version the event was written with; ``event`` is the
    registered (current) model, upcast when the stored version was older.
    """

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


@dataclass(frozen=True, slots=True)
class IndexPage:
    """Streams a stream index lists (see ``EventStore.read_index``), and where to go on.

    ``cursor`` is opaque (one entry per partition): pass it as ``after`` to read what
    was listed since; it can be kept as JSON (a list of strings).
    """

    stream_ids: tuple[str, ...]
    cursor: tuple[str, ...]


class EventStore(Protocol):
    """Streams of events, one per aggregate, with optimistic concurrency.

    Version = number of events in the stream (0 for a stream that does not exist).
    Every append also lands, in the same atomic step, in the feed of the stream's
    partition; feeds are what subscriptions read.
    """

    @property
    def partitions(self) -> int:
        """How many partition feeds there are (fixed for the life of the data)."""
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
        *,
        index: str | None = None,
    ) -> AppendResult:
        """Append ``events`` atomically (all or none) if the version is as expected.

        Idempotent by event id: when the stream already holds exactly these events
        (same ids, in order) right after ``expected_version`` (for ``ANY``: as its
        last events), the append is a retry and returns the earlier result, writing
        nothing.

        Args:
            stream_id: the aggregate's stream.
            events: registered pydantic event models (see ``Codec``); at least one.
            expected_version: the version the stream must have now: an int,
                ``ANY`` or ``NO_STREAM`` (= 0).
            metadata: one per event; or one whose correlation/causation ids and extra
                apply to all (each event then gets a fresh event id unless there is a
                single event); or None (fresh event ids).
            index: a stream index (a name, as a key prefix's parts are: no braces,
                glob characters or spaces) that lists the stream when this append
                creates it (the stream had no events), in the same atomic step: an
                append that conflicts, or is a retry, lists nothing, and a stream is
                listed once (see ``read_index``). Appends to an existing stream list
                nothing, so passing it on every append of a kind of stream is fine.

        Returns:
            The stream's new version and each event's feed position.

        Raises:
            ConcurrencyError: the stream's version is not the expected one (names
                the stream, the expected and the actual version); nothing written.
            DuplicateEvent: some of the event ids were appended before in another
                batch; nothing written.
            UnregisteredEvent: an event's class is not registered with the codec.
            EventStoreUnavailable: the backend could not be reached; the append was
                applied entirely or not at all (retrying it is safe).
        """
        ...

    def append_async(
        self,
        stream_id: str,
        events: Sequence[BaseModel],
        expected_version: ExpectedVersion,
        metadata: Sequence[EventMetadata] | EventMetadata | None = None,
        *,
        index: str | None = None,
    ) -> Future[AppendResult]:
        """``append`` without waiting: the future gets its result or its error.

        The caller is never blocked: on Redis the append is queued for an I/O thread
        that pipelines every append queued meanwhile into one round trip, and no
        thread waits per append (``Effect.pipe`` feeds the outcome to a store). The
        outcomes are those of ``append`` (``ConcurrencyError``, ``DuplicateEvent``,
        ``EventStoreUnavailable``...), set on the future; the future may complete on
        another thread. Appends to one stream are sent in the order queued.

        Raises:
            ValueError: no events.
            UnregisteredEvent: an event's class is not registered with the codec.
        """
        ...

    def read_index(self, index: str, after: Sequence[str] | None = None) -> IndexPage:
        """The streams ``index`` lists (see ``append``), each once: those listed since
        ``after`` (a previous page's ``cursor``), or all of them.

        In the order they were created within each partition (partitions one after
        another); a stream whose creating append is still in flight is not listed
        yet. A secondary index written with the appends themselves: a process that
        must find every stream of a kind after a crash (unfinished sagas, say) reads
        it from a checkpoint, and no stream can exist without being listed.

        Raises:
            ValueError: a cursor of another index layout (another partition count).
            EventStoreUnavailable: the backend could not be reached.
        """
        ...

    def read(
        self, stream_id: str, from_version: int = 0, to_version: int | None = None
    ) -> list[RecordedEvent]:
        """The events with ``from_version < version <= to_version``, in order.

        Raises:
            CodecError: an event cannot be decoded (names stream and version).
            EventStoreUnavailable: the backend could not be reached.
        """
        ...

    def read_async(
        self, stream_id: str, from_version: int = 0, to_version: int | None = None
    ) -> Future[list[RecordedEvent]]:
        """``read`` without waiting: the future gets the events or the error."""
        ...

    def stream_version(self, stream_id: str) -> int:
        """The stream's current version (0 when it does not exist)."""
        ...

    def read_feed(
        self, partition: int, after: str | None = None, count: int = 1000
    ) -> list[RecordedEvent]:
        """Up to ``count`` events of a partition's feed after entry id ``after``.

        ``after=None`` starts at the feed's first (untrimmed) entry. The entry id of
        the last event returned (``event.position.entry_id``) is the next ``after``.
        """
        ...


    def trim_feeds(self) -> int:
        """Drop feed entries every consumer group has acknowledged; returns how many.

        A feed without any consumer group keeps everything; aggregate streams are
        never trimmed. A group created later with ``start="beginning"`` starts at the
        oldest entry left.
        """
        ...


SubscriptionHandler = Callable[[RecordedEvent], None]


class Subscription(Protocol):
    """A running subscription (one thread reading every partition feed)."""

    @property
    def group(self) -> str: ...

    @property
    def consumer(self) -> str: ...

    @property
    def running(self) -> bool:
        """False once stopped, or ended by an error."""
        ...

    @property
    def error(self) -> BaseException | None:
        """What ended the subscription abnormally, if anything did."""
        ...

    def stop(self, timeout: float | None = None) -> bool:
        """Stop after the event being handled; True when the thread ended in time.

        Events read but not yet handled stay pending on this consumer: the same
        consumer name resumes them when it subscribes again, another consumer of
        the group claims them after ``claim_idle``.
        """
        ...


NoticeHandler = Callable[[bytes], None]


class Listening(Protocol):
    """A running ``Notices.listen``: its handler is called until ``stop``."""

    @property
    def topic(self) -> str: ...

    def stop(self, timeout: float | None = None) -> bool:
        """Stop calling the handler; True when its thread (if any) ended in time."""
        ...


class Notices(Protocol):
    """Best-effort messages to every process on the backend: wake-ups, not records.

    A notice reaches each process that listens on its topic *at that moment*, at most
    once, in no guaranteed order, and is lost when a listener is disconnected or slow.
    So it may only ever shorten a wait that has a fallback (a poll of the event store,
    a timeout); anything that must arrive is an event, delivered by a subscription.
    """

    def publish(self, topic: str, payload: bytes) -> None:
        """Send ``payload`` to the topic's listeners. Never blocks; a notice that
        cannot be sent is a notice lost (allowed), not an error. Only a topic that is
        not a valid name (empty, braces, glob characters, spaces) raises ValueError."""
        ...

    def listen(self, topic: str, handler: NoticeHandler) -> Listening:
        """Call ``handler(payload)`` for each notice on ``topic`` from now on, one at a
        time, on a thread of the adapter's (an exception in it is logged, then the
        next notice is handled)."""
        ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A feed entry a group gave up on, with the error of its last delivery.

    ``event`` is None when the entry itself could not be decoded (the error says why);
    ``error`` is ``"Type: message"`` of the last delivery's exception, ``traceback``
    its formatted traceback (empty when no handler ran, e.g. consumers kept dying).
    """

    group: str
    position: FeedPosition
    stream_id: str
    version: int
    type_name: str
    error: str
    deliveries: int
    consumer: str
    failed_at: float
    event: RecordedEvent | None
    traceback: str = ""


class Subscriptions(Protocol):
    """Reading every partition feed through a consumer group.

    At-least-once: an event is acknowledged after ``handler`` returns. A handler
    that raises an ``Exception`` gets the event again (after ``retry_delay``) until
    ``max_deliveries`` deliveries; when the last one raises too, the event moves to the
    group's dead-letter list with the error recorded, and the group moves on. Events
    of one partition are handled in feed order (a retried event holds back the ones
    after it). An event left pending by a consumer that died (or a handler raising a
    ``BaseException`` that is not an ``Exception``, which ends the subscription at
    once, as if the process had died) is claimed by another consumer of the group
    after ``claim_idle`` seconds; an event claimed more than ``max_deliveries`` times
    is dead-lettered without running the handler again.
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
        retry_delay: float = 0.05,
        types: Collection[str] | None = None,
    ) -> Subscription:
        """Start a consumer of ``group`` handling events on its own thread.

        Args:
            group: the consumer group; created on first use at ``start``.
                An existing group resumes where it was, whatever ``start`` says.
            handler: called with each event, on the subscription's thread.
            consumer: this consumer's name within the group (unique per process);
                a fresh one by default. Re-using a name resumes its pending events.
            start: ``"beginning"`` (the feeds' first entries) or ``"now"``.
            claim_idle: seconds after which an event pending on another consumer is
                presumed abandoned and claimed.
            max_deliveries: deliveries before an event is dead-lettered.
            retry_delay: seconds between a failed delivery and the next.
            types: the type names (``RecordedEvent.type_name``) of the events the
                handler wants; an event of any other type is acknowledged without
                being decoded or handed to the handler. None: every event.
        """
        ...

    def dead_letters(self, group: str) -> list[DeadLetter]:
        """The group's dead letters, oldest first (per partition)."""
        ...

    def backlog(self, group: str) -> int:
        """Feed entries ``group`` has not acknowledged: not yet delivered to any of its
        consumers, or delivered and still pending. 0 once the group has handled every
        event appended so far (a read model fed by it is then up to date). A group
        that does not exist has handled nothing: every entry of the feeds counts.
        """
        ...


@dataclass(frozen=True, slots=True)
class ProjectionUpdate:
    """One ``ProjectionStore.apply`` call, for ``apply_many``."""

    key: str
    position: int
    set_fields: Mapping[str, str | int | bytes] | None = None
    increments: Mapping[str, int] | None = None


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
        """Apply an update at ``position``; False when it was already applied.

        ``set_fields`` are written first, then ``increments`` added (a field may
        appear in both). Values are stored as strings (bytes must be UTF-8).

        Raises:
            InvalidProjectionUpdate: an increment targets a non-integer field, or a
                field name is reserved (``_position``); nothing changed.
        """
        ...

    def apply_many(self, updates: Sequence[ProjectionUpdate]) -> list[bool]:
        """``apply`` each update, in order (on Redis in one round trip); whether each
        changed anything.

        Every update is attempted, whatever happens to the others: each is atomic
        and idempotent on its own, not the list as a whole.

        Raises:
            InvalidProjectionUpdate: the first update that was invalid, once all were
                attempted.
            PersistenceError: the backend failed; which updates were applied is then
                unknown (applying them again is safe).
        """
        ...

    def get(self, key: str) -> dict[str, str] | None:
        """The hash's fields (the applied position under ``"_position"``), or None."""
        ...

    def position(self, key: str) -> int:
        """The position the hash has applied (0 when it does not exist)."""
        ...

    def delete(self, key: str) -> None: ...

    def keys(self) -> Iterator[str]:
        """Every key of the projection (any order)."""
        ...


Projector = Callable[[RecordedEvent, ProjectionStore], None]
"""Applies one event to a projection store (the function a rebuild replays)."""


class ProjectionGenerations(ProjectionStore, Protocol):
    """A projection store whose keys live in generations, one of them current.

    ``ProjectionStore`` methods act on the current generation. A rebuild fills a
    fresh generation from the event store and switches to it in one step
    (see ``rebuild_projection``).
    """

    def generation(self) -> int:
        """The current generation."""
        ...

    def new_generation(self) -> int:
        """Reserve a fresh, empty generation (not current)."""
        ...

    def at_generation(self, generation: int) -> ProjectionStore:
        """A store acting on ``generation`` whether it is current or not."""
        ...

    def switch(self, generation: int) -> None:
        """Make ``generation`` current, atomically for every reader."""
        ...

    def drop_generation(self, generation: int) -> None:
        """Delete every key of ``generation`` (not the current one)."""
        ...


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An aggregate's state as of ``version`` of its stream."""

    stream_id: str
    version: int
    state: bytes


class SnapshotStore(Protocol):
    """The latest snapshot per stream; loading reads it and the stream's tail."""

    def save(self, stream_id: str, version: int, state: bytes) -> bool:
        """Keep this snapshot unless one of a higher or equal version is kept already.

        Returns:
            True when this snapshot was kept.
        """
        ...

    def load(self, stream_id: str) -> Snapshot | None:
        """The latest snapshot of the stream, or None."""
        ...

    def delete(self, stream_id: str) -> None: ...
