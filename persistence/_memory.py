"""The in-process adapter: every port in memory, the embedded default.

A real adapter, not a fake: thread-safe (one lock per store), the same errors, the
same ordering, idempotency and subscription semantics as the Redis adapter. Events
are kept as the (frozen) model objects the caller appended: they were validated
when they were constructed, so there is nothing to encode or decode; the codec is
still consulted on append so that an unregistered event fails here as on Redis.
"""

from __future__ import annotations

import bisect
import threading
import time
from array import array
from collections.abc import Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from zlib import crc32

from pydantic import BaseModel

from actors import LightFuture
from persistence._codec import Codec
from persistence._common import (
    ANY_VERSION,
    EMPTY_EXTRA,
    POSITION_FIELD,
    apply_each,
    check_increment,
    check_index_cursor,
    check_name,
    check_partitions,
    expected_as_int,
    field_value,
    is_integer_text,
    metadata_for,
    new_event_id,
)
from persistence._errors import (
    ConcurrencyError,
    DuplicateEvent,
    InvalidProjectionUpdate,
    PersistenceError,
    UnregisteredEvent,
)
from persistence._fast import fast_constructor
from persistence._ports import (
    AppendResult,
    DeadLetter,
    EventMetadata,
    ExpectedVersion,
    FeedPosition,
    IndexPage,
    ProjectionStore,
    ProjectionUpdate,
    RecordedEvent,
    Snapshot,
    StartFrom,
    Subscription,
    SubscriptionHandler,
    entry_key,
    partition_for,
)
from persistence._subscription import Delivery, RunningSubscription, default_consumer_name

# The append path builds its values without the frozen dataclasses' per-field
# object.__setattr__ (see persistence._fast): same objects, half the cost.
_RECORDED = fast_constructor(RecordedEvent)
_METADATA = fast_constructor(EventMetadata)
_POSITION = fast_constructor(FeedPosition)
_APPEND_RESULT = fast_constructor(AppendResult)

__all__ = [
    "MemoryEventStore",
    "MemoryProjectionStore",
    "MemorySnapshotStore",
    "MemorySubscriptions",
]


# A feed's entry ids are kept packed, (ms << _SEQ_BITS) | seq, in an array: eight
# bytes an entry instead of a tuple and its ints (some 70 bytes; the ids of 1,000,000
# events in memory would cost more than the process that holds them). 42 bits of
# milliseconds last until the year 2109.
_SEQ_BITS = 22
_SEQ_LIMIT = 1 << _SEQ_BITS


class _Feed:
    """One partition's feed: entries and their sortable ids, oldest first."""

    __slots__ = ("entries", "keys", "last")

    def __init__(self) -> None:
        self.entries: list[RecordedEvent] = []
        self.keys = array("Q")
        self.last: tuple[int, int] = (0, 0)

    def next_id(self) -> tuple[int, int]:
        # The Redis rule for "*" ids: milliseconds now, or the last id's + 1 sequence
        # (past the packed sequence's room, the next millisecond: still increasing).
        ms = time.time_ns() // 1_000_000
        last_ms, last_seq = self.last
        if ms > last_ms:
            key = (ms, 0)
        elif last_seq + 1 < _SEQ_LIMIT:
            key = (last_ms, last_seq + 1)
        else:
            key = (last_ms + 1, 0)
        self.last = key
        return key

    def push(self, record: RecordedEvent, key: tuple[int, int]) -> None:
        self.entries.append(record)
        self.keys.append((key[0] << _SEQ_BITS) | key[1])

    def key_at(self, index: int) -> tuple[int, int]:
        packed = self.keys[index]
        return packed >> _SEQ_BITS, packed & (_SEQ_LIMIT - 1)

    def after(self, key: tuple[int, int]) -> int:
        """How many entries have an id up to ``key`` (any id, not only the feed's)."""
        ms, seq = key
        return bisect.bisect_right(self.keys, (ms << _SEQ_BITS) | min(seq, _SEQ_LIMIT - 1))

    def before(self, key: tuple[int, int]) -> int:
        """How many entries have an id below ``key`` (any id, not only the feed's)."""
        ms, seq = key
        return bisect.bisect_left(self.keys, (ms << _SEQ_BITS) + min(seq, _SEQ_LIMIT))


@dataclass(slots=True)
class _Pending:
    consumer: str
    delivered_at: float
    deliveries: int
    record: RecordedEvent


@dataclass(slots=True)
class _Group:
    """A consumer group: per partition, the last entry handed out and what is pending."""

    name: str
    cursors: list[tuple[int, int]]
    pending: list[dict[str, _Pending]]
    dead: list[DeadLetter] = field(default_factory=list)
    # The group's consumers wait on this (under the store's lock) for new entries.
    wakeup: threading.Condition | None = None


class MemoryEventStore:
    """``EventStore`` in process (thread-safe); also holds the feeds' consumer groups.

    Args:
        codec: the registry of event models (an unregistered event fails on append).
        partitions: how many partition feeds (a stream is hashed to one).
    """

    def __init__(self, codec: Codec, *, partitions: int = 16) -> None:
        self._codec = codec
        self._partitions = check_partitions(partitions)
        self._lock = threading.Lock()
        self._streams: dict[str, list[RecordedEvent]] = {}
        self._feeds = [_Feed() for _ in range(partitions)]
        self._groups: dict[str, _Group] = {}
        self._indexes: dict[str, list[list[str]]] = {}  # name -> per partition

    @property
    def codec(self) -> Codec:
        return self._codec

    @property
    def partitions(self) -> int:
        return self._partitions

    def partition_of(self, stream_id: str) -> int:
        return partition_for(stream_id, self._partitions)

    def append(
        self,
        stream_id: str,
        events: Sequence[BaseModel],
        expected_version: ExpectedVersion,
        metadata: Sequence[EventMetadata] | EventMetadata | None = None,
        *,
        index: str | None = None,
    ) -> AppendResult:
        """See ``EventStore.append``."""
        if index is not None:
            check_name("stream index", index)
        if type(expected_version) is int and expected_version >= 0:
            expected = expected_version
        else:
            expected = expected_as_int(expected_version)
        type_of = self._codec.type_of
        types = [type_of(event) for event in events]
        if metadata is None and events:
            now = time.time()
            metas = [_METADATA(new_event_id(), None, None, now, EMPTY_EXTRA) for _ in events]
        else:
            metas = metadata_for(events, metadata)
        partition = crc32(stream_id.encode()) % self._partitions
        with self._lock:
            stream = self._streams.get(stream_id)
            version = len(stream) if stream is not None else 0
            if expected != version and stream is not None:
                earlier = self._retried(stream_id, stream, expected, metas)
                if earlier is not None:
                    return earlier
            if expected != ANY_VERSION and expected != version:
                raise ConcurrencyError(stream_id, expected_version, version)
            if stream is None:
                stream = self._streams[stream_id] = []
            elif stream:
                # Every record of a stream holds its id: one string for them all, not
                # the caller's fresh copy per append (some 70 bytes an event).
                stream_id = stream[0].stream_id
            feed = self._feeds[partition]
            positions = []
            for offset, (event, (type_name, schema), meta) in enumerate(
                zip(events, types, metas, strict=True)
            ):
                key = feed.next_id()
                position = _POSITION(partition, f"{key[0]}-{key[1]}")
                record = _RECORDED(
                    stream_id, version + offset + 1, type_name, schema, event, meta, position
                )
                stream.append(record)
                feed.push(record, key)
                positions.append(position)
            if index is not None and version == 0:
                listed = self._indexes.get(index)
                if listed is None:
                    listed = self._indexes[index] = [[] for _ in self._feeds]
                listed[partition].append(stream_id)
            # One consumer per group: it takes every new entry, so waking them all
            # would only have the others find nothing (ten threads and GIL hand-offs
            # per append). Each append wakes another waiting consumer, so entries
            # appended while the first is busy are not left to wait for it.
            for group in self._groups.values():
                if group.wakeup is not None:
                    group.wakeup.notify()
            return _APPEND_RESULT(stream_id, version + len(events), tuple(positions))

    def _retried(
        self,
        stream_id: str,
        stream: list[RecordedEvent],
        expected: int,
        metas: list[EventMetadata],
    ) -> AppendResult | None:
        """The earlier result when this append is a retry (the Redis script's rule).

        Raises:
            DuplicateEvent: the first event id is there but not the whole batch.
        """
        count = len(metas)
        if expected == ANY_VERSION:
            start = len(stream) - count
            if start < 0:
                return None
        elif expected < len(stream):
            start = expected
        else:
            return None
        earlier = stream[start : start + count]
        if earlier[0].metadata.event_id != metas[0].event_id:
            return None
        if len(earlier) < count or any(
            record.metadata.event_id != meta.event_id
            for record, meta in zip(earlier, metas, strict=False)
        ):
            raise DuplicateEvent(stream_id, metas[0].event_id, start + 1)
        return AppendResult(
            stream_id, start + count, tuple(record.position for record in earlier)
        )

    def append_async(
        self,
        stream_id: str,
        events: Sequence[BaseModel],
        expected_version: ExpectedVersion,
        metadata: Sequence[EventMetadata] | EventMetadata | None = None,
        *,
        index: str | None = None,
    ) -> Future[AppendResult]:
        """See ``EventStore.append_async``: in memory the future is done at once."""
        future: Future[AppendResult] = LightFuture()
        try:
            future.set_result(
                self.append(stream_id, events, expected_version, metadata, index=index)
            )
        except (ValueError, UnregisteredEvent):  # a wrong call, not an outcome
            raise
        except PersistenceError as error:
            future.set_exception(error)
        return future

    def read_index(self, index: str, after: Sequence[str] | None = None) -> IndexPage:
        """See ``EventStore.read_index`` (a position is how many of the partition's
        entries were read)."""
        check_name("stream index", index)
        cursor = check_index_cursor(after, self._partitions, "0")
        try:
            starts = [int(position) for position in cursor]
        except ValueError:
            raise ValueError(f"not a cursor of this store's index: {cursor!r}") from None
        with self._lock:
            listed = self._indexes.get(index) or [[] for _ in self._feeds]
            pages = [listed[p][start:] for p, start in enumerate(starts)]
        ids = tuple(stream_id for page in pages for stream_id in page)
        return IndexPage(ids, tuple(str(s + len(p)) for s, p in zip(starts, pages, strict=True)))

    def read(
        self, stream_id: str, from_version: int = 0, to_version: int | None = None
    ) -> list[RecordedEvent]:
        """See ``EventStore.read``."""
        with self._lock:
            stream = self._streams.get(stream_id)
            if stream is None:
                return []
            return stream[max(0, from_version) : to_version]

    def read_async(
        self, stream_id: str, from_version: int = 0, to_version: int | None = None
    ) -> Future[list[RecordedEvent]]:
        """See ``EventStore.read_async``: in memory the future is done at once."""
        future: Future[list[RecordedEvent]] = LightFuture()
        future.set_result(self.read(stream_id, from_version, to_version))
        return future

    def stream_version(self, stream_id: str) -> int:
        with self._lock:
            stream = self._streams.get(stream_id)
            return len(stream) if stream is not None else 0

    def read_feed(
        self, partition: int, after: str | None = None, count: int = 1000
    ) -> list[RecordedEvent]:
        """See ``EventStore.read_feed``."""
        with self._lock:
            feed = self._feeds[partition]
            start = 0 if after is None else feed.after(entry_key(after))
            return feed.entries[start : start + count]

    def stream_ids(self) -> Iterator[str]:
        """Every stream's id (a snapshot taken when called)."""
        with self._lock:
            ids = list(self._streams)
        return iter(ids)

    def trim_feeds(self) -> int:
        """Drop feed entries every consumer group has acknowledged; returns how many.

        A feed without any group keeps everything (a subscriber starting from the
        beginning sees it all). Aggregate streams are never trimmed.
        """
        removed = 0
        with self._lock:
            if not self._groups:
                return 0
            for partition, feed in enumerate(self._feeds):
                floor = min(
                    _oldest_unacked(group.cursors[partition], group.pending[partition])
                    for group in self._groups.values()
                )
                cut = feed.before(floor)
                if cut:
                    del feed.entries[:cut]
                    del feed.keys[:cut]
                    removed += cut
        return removed

    # -- consumer groups (used by MemorySubscriptions, under the lock) ---------------

    def _group(self, name: str, start: StartFrom) -> _Group:
        with self._lock:
            group = self._groups.get(name)
            if group is None:
                cursors = [
                    feed.last if start == "now" else (0, 0) for feed in self._feeds
                ]
                group = _Group(
                    name, cursors, [{} for _ in self._feeds], wakeup=threading.Condition(self._lock)
                )
                self._groups[name] = group
            return group


def _oldest_unacked(cursor: tuple[int, int], pending: dict[str, _Pending]) -> tuple[int, int]:
    if pending:
        return min(entry_key(entry_id) for entry_id in pending)
    return cursor[0], cursor[1] + 1


class _MemoryGroupBackend:
    """``GroupBackend`` over a ``MemoryEventStore``'s in-process groups."""

    def __init__(
        self, store: MemoryEventStore, group: str, consumer: str, start: StartFrom
    ) -> None:
        self._store = store
        self._name = group
        self._consumer = consumer
        self._start = start
        self._group: _Group | None = None

    def ensure_group(self) -> None:
        self._group = self._store._group(self._name, self._start)

    @property
    def _g(self) -> _Group:
        assert self._group is not None, "ensure_group() first"
        return self._group

    def own_pending(self, counted: bool = True) -> list[Delivery]:
        now = time.monotonic()
        out = []
        with self._store._lock:
            for partition, pending in enumerate(self._g.pending):
                for entry_id, entry in sorted(pending.items(), key=lambda i: entry_key(i[0])):
                    if entry.consumer == self._consumer:
                        if counted:
                            entry.deliveries += 1
                            entry.delivered_at = now
                        out.append(Delivery(partition, entry_id, entry.deliveries, entry.record))
        return out

    def read_new(self, block: float, ack: Sequence[Delivery] = ()) -> list[Delivery]:
        if ack:
            self.ack(ack)
        wakeup = self._g.wakeup
        assert wakeup is not None
        with wakeup:
            out = self._take_new()
            if not out and block > 0:
                wakeup.wait(block)
                out = self._take_new()
            if out and self._more_new():
                wakeup.notify()  # a full batch was taken: another consumer takes the rest
        return out

    def _more_new(self) -> bool:
        cursors = self._g.cursors
        return any(feed.last > cursors[p] for p, feed in enumerate(self._store._feeds))

    def _take_new(self, count: int = 64) -> list[Delivery]:
        group = self._g
        now = time.monotonic()
        out = []
        for partition, feed in enumerate(self._store._feeds):
            cursor = group.cursors[partition]
            if feed.last <= cursor:
                continue
            start = feed.after(cursor)
            records = feed.entries[start : start + count]
            if not records:
                continue
            pending = group.pending[partition]
            for record in records:
                entry_id = record.position.entry_id
                pending[entry_id] = _Pending(self._consumer, now, 1, record)
                out.append(Delivery(partition, entry_id, 1, record))
            group.cursors[partition] = feed.key_at(start + len(records) - 1)
        return out

    def claim(self, min_idle: float) -> list[Delivery]:
        now = time.monotonic()
        out = []
        with self._store._lock:
            for partition, pending in enumerate(self._g.pending):
                # Filtered before sorting: every consumer calls this each claim period,
                # and pending entries are many under load but rarely idle.
                idle = [i for i in pending.items() if now - i[1].delivered_at >= min_idle]
                for entry_id, entry in sorted(idle, key=lambda i: entry_key(i[0])):
                    entry.consumer = self._consumer
                    entry.deliveries += 1
                    entry.delivered_at = now
                    out.append(Delivery(partition, entry_id, entry.deliveries, entry.record))
        return out

    def redeliver(self, delivery: Delivery) -> Delivery | None:
        with self._store._lock:
            entry = self._g.pending[delivery.partition].get(delivery.entry_id)
            if entry is None:
                return None
            entry.consumer = self._consumer
            entry.deliveries = delivery.deliveries + 1
            entry.delivered_at = time.monotonic()
            return Delivery(delivery.partition, delivery.entry_id, entry.deliveries, entry.record)

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        with self._store._lock:
            pending = self._g.pending
            for delivery in deliveries:
                pending[delivery.partition].pop(delivery.entry_id, None)

    def dead_letter(self, delivery: Delivery, error: str, traceback: str) -> None:
        with self._store._lock:
            group = self._g
            if group.pending[delivery.partition].pop(delivery.entry_id, None) is None:
                return  # acknowledged or dead-lettered by another consumer meanwhile
            record = delivery.event
            assert record is not None  # memory entries are never undecodable
            group.dead.append(
                DeadLetter(
                    group=group.name,
                    position=record.position,
                    stream_id=record.stream_id,
                    version=record.version,
                    type_name=record.type_name,
                    error=error,
                    deliveries=delivery.deliveries,
                    consumer=self._consumer,
                    failed_at=time.time(),
                    event=record,
                    traceback=traceback,
                )
            )

    def close(self) -> None:
        pass


class MemorySubscriptions:
    """``Subscriptions`` over a ``MemoryEventStore``'s feeds."""

    def __init__(self, store: MemoryEventStore) -> None:
        self._store = store

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
        """See ``Subscriptions.subscribe``."""
        name = consumer or default_consumer_name()
        wanted = None if types is None else frozenset(types)
        return RunningSubscription(
            _MemoryGroupBackend(self._store, group, name, start),
            group=group,
            consumer=name,
            handler=handler,
            claim_idle=claim_idle,
            max_deliveries=max_deliveries,
            retry_delay=retry_delay,
            types=wanted,
        )

    def backlog(self, group: str) -> int:
        """See ``Subscriptions.backlog``."""
        store = self._store
        with store._lock:
            found = store._groups.get(group)
            if found is None:
                return sum(len(feed.keys) for feed in store._feeds)
            undelivered = sum(
                len(feed.keys) - feed.after(found.cursors[partition])
                for partition, feed in enumerate(store._feeds)
            )
            return undelivered + sum(len(pending) for pending in found.pending)

    def dead_letters(self, group: str) -> list[DeadLetter]:
        """See ``Subscriptions.dead_letters``."""
        with self._store._lock:
            found = self._store._groups.get(group)
            if found is None:
                return []
            return sorted(found.dead, key=lambda letter: letter.position.partition)


class _MemoryProjectionView:
    """A ``ProjectionStore`` acting on one generation (or on the current one)."""

    def __init__(self, owner: MemoryProjectionStore, generation: int | None) -> None:
        self._owner = owner
        self._generation = generation

    def _hashes(self) -> dict[str, dict[str, str]]:
        owner = self._owner
        generation = owner._current if self._generation is None else self._generation
        return owner._generations.setdefault(generation, {})

    def apply(
        self,
        key: str,
        position: int,
        set_fields: Mapping[str, str | int | bytes] | None = None,
        increments: Mapping[str, int] | None = None,
    ) -> bool:
        values = {f: field_value(key, f, v) for f, v in (set_fields or {}).items()}
        amounts = {f: check_increment(key, f, n) for f, n in (increments or {}).items()}
        with self._owner._lock:
            hashes = self._hashes()
            current = hashes.get(key)
            applied = int(current[POSITION_FIELD]) if current is not None else 0
            if position <= applied:
                return False
            # Check every increment before writing anything, as the Redis script does.
            for name in amounts:
                value = values.get(name) if name in values else (current or {}).get(name)
                if value is not None and not is_integer_text(value):
                    raise InvalidProjectionUpdate(
                        f"{key!r}.{name} is {value!r}, not an integer: cannot increment"
                    )
            updated = dict(current) if current is not None else {}
            updated.update(values)
            for name, amount in amounts.items():
                updated[name] = str(int(updated.get(name, "0")) + amount)
            updated[POSITION_FIELD] = str(position)
            hashes[key] = updated
            return True

    def apply_many(self, updates: Sequence[ProjectionUpdate]) -> list[bool]:
        return apply_each(
            updates, lambda u: self.apply(u.key, u.position, u.set_fields, u.increments)
        )

    def get(self, key: str) -> dict[str, str] | None:
        with self._owner._lock:
            current = self._hashes().get(key)
            return dict(current) if current is not None else None

    def position(self, key: str) -> int:
        with self._owner._lock:
            current = self._hashes().get(key)
            return int(current[POSITION_FIELD]) if current is not None else 0

    def delete(self, key: str) -> None:
        with self._owner._lock:
            self._hashes().pop(key, None)

    def keys(self) -> Iterator[str]:
        with self._owner._lock:
            return iter(list(self._hashes()))


class MemoryProjectionStore(_MemoryProjectionView):
    """``ProjectionGenerations`` in process: hashes as dicts of strings, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generations: dict[int, dict[str, dict[str, str]]] = {0: {}}
        self._current = 0
        self._last_generation = 0
        super().__init__(self, None)

    def generation(self) -> int:
        with self._lock:
            return self._current

    def new_generation(self) -> int:
        with self._lock:
            self._last_generation += 1
            self._generations[self._last_generation] = {}
            return self._last_generation

    def at_generation(self, generation: int) -> ProjectionStore:
        return _MemoryProjectionView(self, generation)

    def switch(self, generation: int) -> None:
        with self._lock:
            self._current = generation

    def drop_generation(self, generation: int) -> None:
        with self._lock:
            if generation == self._current:
                raise ValueError(f"generation {generation} is current; switch away first")
            self._generations.pop(generation, None)


class MemorySnapshotStore:
    """``SnapshotStore`` in process, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshots: dict[str, Snapshot] = {}

    def save(self, stream_id: str, version: int, state: bytes) -> bool:
        """See ``SnapshotStore.save``."""
        with self._lock:
            kept = self._snapshots.get(stream_id)
            if kept is not None and kept.version >= version:
                return False
            self._snapshots[stream_id] = Snapshot(stream_id, version, bytes(state))
            return True

    def load(self, stream_id: str) -> Snapshot | None:
        with self._lock:
            return self._snapshots.get(stream_id)

    def delete(self, stream_id: str) -> None:
        with self._lock:
            self._snapshots.pop(stream_id, None)
