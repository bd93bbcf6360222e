"""The public surface of ``persistence`` is what ``__all__`` says, and no more."""

from __future__ import annotations

import persistence

EXPECTED = {
    # ports and values
    "ANY", "NO_STREAM", "AppendResult", "DeadLetter", "EventMetadata", "EventStore",
    "ExpectedVersion", "FeedPosition", "IndexPage", "ProjectionGenerations", "ProjectionStore",
    "ProjectionUpdate", "Projector", "RecordedEvent", "Snapshot", "SnapshotStore", "StartFrom",
    "Subscription", "SubscriptionHandler", "Subscriptions", "Notices", "NoticeHandler",
    "Listening",
    # errors
    "PersistenceError", "ConcurrencyError", "DuplicateEvent", "CodecError",
    "UnregisteredEvent", "UnknownEventType", "MalformedEvent", "InvalidProjectionUpdate",
    "EventStoreUnavailable", "StorageFull", "BackendError", "ConfigurationError",
    "UnsafeRedisConfiguration", "IncompatibleLayout",
    # codec, adapters, wiring
    "Codec", "Persistence", "new_event_id", "rebuild_projection", "redis_client",
    "MemoryEventStore", "MemorySubscriptions", "MemoryProjectionStore", "MemorySnapshotStore",
    "RedisEventStore", "RedisSubscriptions", "RedisProjectionStore", "RedisSnapshotStore",
    "MemoryNotices", "RedisNotices",
}


def test_the_public_names_are_pinned() -> None:
    assert set(persistence.__all__) == EXPECTED
    assert len(persistence.__all__) == len(EXPECTED)


def test_every_public_name_is_importable_from_the_package() -> None:
    for name in persistence.__all__:
        assert getattr(persistence, name) is not None


def test_every_error_is_a_persistence_error() -> None:
    errors = [
        getattr(persistence, name)
        for name in persistence.__all__
        if isinstance(getattr(persistence, name), type)
        and issubclass(getattr(persistence, name), Exception)
    ]
    assert len(errors) == 14
    assert all(issubclass(error, persistence.PersistenceError) for error in errors)
