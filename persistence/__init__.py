"""Persistence: ports (Protocols) and their adapters: memory (embedded default), Redis.

Knows nothing of tickets. Events are pydantic models registered with a ``Codec``;
``MemoryEventStore`` & co. keep them in process, ``RedisEventStore`` & co. in Redis
streams and hashes (key layout in ``docs/redis-layout.md``). Every error raised is a
``PersistenceError`` (tree in ``persistence._errors``).
"""

from __future__ import annotations

from persistence._bundle import Persistence
from persistence._codec import Codec
from persistence._common import new_event_id
from persistence._errors import (
    BackendError,
    CodecError,
    ConcurrencyError,
    ConfigurationError,
    DuplicateEvent,
    EventStoreUnavailable,
    IncompatibleLayout,
    InvalidProjectionUpdate,
    MalformedEvent,
    PersistenceError,
    StorageFull,
    UnknownEventType,
    UnregisteredEvent,
    UnsafeRedisConfiguration,
)
from persistence._memory import (
    MemoryEventStore,
    MemoryProjectionStore,
    MemorySnapshotStore,
    MemorySubscriptions,
)
from persistence._notices import MemoryNotices
from persistence._ports import (
    ANY,
    NO_STREAM,
    AppendResult,
    DeadLetter,
    EventMetadata,
    EventStore,
    ExpectedVersion,
    FeedPosition,
    IndexPage,
    Listening,
    NoticeHandler,
    Notices,
    ProjectionGenerations,
    ProjectionStore,
    ProjectionUpdate,
    Projector,
    RecordedEvent,
    Snapshot,
    SnapshotStore,
    StartFrom,
    Subscription,
    SubscriptionHandler,
    Subscriptions,
)
from persistence._rebuild import rebuild_projection
from persistence._redis import RedisEventStore, redis_client
from persistence._redis_notices import RedisNotices
from persistence._redis_projections import RedisProjectionStore, RedisSnapshotStore
from persistence._redis_subscriptions import RedisSubscriptions

__all__ = [
    "ANY",
    "NO_STREAM",
    "AppendResult",
    "BackendError",
    "Codec",
    "CodecError",
    "ConcurrencyError",
    "ConfigurationError",
    "DeadLetter",
    "DuplicateEvent",
    "EventMetadata",
    "EventStore",
    "EventStoreUnavailable",
    "ExpectedVersion",
    "FeedPosition",
    "IncompatibleLayout",
    "IndexPage",
    "InvalidProjectionUpdate",
    "Listening",
    "MalformedEvent",
    "MemoryEventStore",
    "MemoryNotices",
    "MemoryProjectionStore",
    "MemorySnapshotStore",
    "MemorySubscriptions",
    "NoticeHandler",
    "Notices",
    "Persistence",
    "PersistenceError",
    "ProjectionGenerations",
    "ProjectionStore",
    "ProjectionUpdate",
    "Projector",
    "RecordedEvent",
    "RedisEventStore",
    "RedisNotices",
    "RedisProjectionStore",
    "RedisSnapshotStore",
    "RedisSubscriptions",
    "Snapshot",
    "SnapshotStore",
    "StartFrom",
    "StorageFull",
    "Subscription",
    "SubscriptionHandler",
    "Subscriptions",
    "UnknownEventType",
    "UnregisteredEvent",
    "UnsafeRedisConfiguration",
    "new_event_id",
    "rebuild_projection",
    "redis_client",
]
