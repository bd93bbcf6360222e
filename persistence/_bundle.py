"""``Persistence``: the ports wired together, in memory or on Redis."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from persistence._codec import Codec
from persistence._memory import (
    MemoryEventStore,
    MemoryProjectionStore,
    MemorySnapshotStore,
    MemorySubscriptions,
)
from persistence._notices import MemoryNotices
from persistence._ports import (
    EventStore,
    Notices,
    ProjectionGenerations,
    SnapshotStore,
    Subscriptions,
)
from persistence._redis import RedisEventStore, redis_client
from persistence._redis_notices import RedisNotices
from persistence._redis_projections import RedisProjectionStore, RedisSnapshotStore
from persistence._redis_subscriptions import RedisSubscriptions

__all__ = ["Persistence"]


@dataclass(frozen=True)
class Persistence:
    """An event store with its subscriptions, projections, snapshots and notices.

    Build one with ``Persistence.in_memory(codec)`` (the embedded default) or
    ``Persistence.on_redis(url, codec, prefix=...)``; ``close()`` when done.
    """

    events: EventStore
    subscriptions: Subscriptions
    projections: ProjectionGenerations
    snapshots: SnapshotStore
    notices: Notices = field(default_factory=MemoryNotices)
    """Best-effort wake-ups between the processes on this backend (see ``Notices``)."""
    _close: Callable[[], None] = field(default=lambda: None, repr=False)

    @classmethod
    def in_memory(cls, codec: Codec, *, partitions: int = 16) -> Persistence:
        """Every port in process."""
        store = MemoryEventStore(codec, partitions=partitions)
        return cls(
            store,
            MemorySubscriptions(store),
            MemoryProjectionStore(),
            MemorySnapshotStore(),
            MemoryNotices(),
        )

    @classmethod
    def on_redis(
        cls,
        url_or_client: str | redis.Redis,
        codec: Codec,
        *,
        prefix: str = "ca",
        partitions: int = 16,
        projection_namespace: str = "default",
        allow_eviction: bool = False,
        require_fsync_always: bool = False,
    ) -> Persistence:
        """Every port on one Redis server (a client made from ``url`` is closed by ``close()``).

        ``require_fsync_always`` refuses a server that does not fsync every write
        (see ``RedisEventStore`` and ``docs/reliability.md``).

        Raises:
            UnsafeRedisConfiguration: the server may evict keys.
            ConfigurationError: ``require_fsync_always`` and the server does not.
            IncompatibleLayout: the prefix holds data with another partition count.
            EventStoreUnavailable: the server cannot be reached.
        """
        owned = isinstance(url_or_client, str)
        client = redis_client(url_or_client) if isinstance(url_or_client, str) else url_or_client
        try:
            store = RedisEventStore(
                client,
                codec,
                prefix=prefix,
                partitions=partitions,
                allow_eviction=allow_eviction,
                require_fsync_always=require_fsync_always,
            )
        except BaseException:
            if owned:
                client.close()
            raise

        def close() -> None:
            store.close()
            if owned:
                client.close()

        return cls(
            store,
            RedisSubscriptions(store),
            RedisProjectionStore(client, prefix=prefix, namespace=projection_namespace),
            RedisSnapshotStore(client, prefix=prefix, partitions=partitions),
            RedisNotices(store),
            close,
        )

    def close(self) -> None:
        """Release connections (subscriptions are stopped by their owners)."""
        self._close()
