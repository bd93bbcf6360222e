"""``append_async`` and ``read_async``: the EventStore contract without waiting.

Run on the memory and the Redis adapter; the outcomes are those of ``append`` and
``read``, delivered through a ``concurrent.futures.Future``.
"""

from __future__ import annotations

import pytest

from persistence import (
    NO_STREAM,
    ConcurrencyError,
    EventMetadata,
    EventStoreUnavailable,
    Persistence,
    UnregisteredEvent,
)
from persistence._redis import READ_PAGE, RedisEventStore
from tests.persistence.events import Deposited, Unregistered, make_codec

WAIT = 10.0


def deposit(amount: int) -> list[Deposited]:
    return [Deposited(account="a", amount=amount)]


def test_async_appends_to_many_streams_get_their_results_and_read_back(
    adapter: Persistence,
) -> None:
    store = adapter.events
    futures = {
        f"acct-{n}": store.append_async(f"acct-{n}", deposit(n), NO_STREAM) for n in range(200)
    }

    results = {stream: future.result(WAIT) for stream, future in futures.items()}

    for n in range(200):
        result = results[f"acct-{n}"]
        assert (result.stream_id, result.version) == (f"acct-{n}", 1)
        [recorded] = store.read(f"acct-{n}")
        assert recorded.event == Deposited(account="a", amount=n)
        assert recorded.position == result.positions[0]


def test_async_appends_to_one_stream_queued_without_waiting_apply_in_order(
    adapter: Persistence,
) -> None:
    store = adapter.events
    futures = [store.append_async("s", deposit(n), n) for n in range(50)]

    assert [future.result(WAIT).version for future in futures] == list(range(1, 51))
    assert [e.event.amount for e in store.read("s")] == list(range(50))


def test_an_async_append_with_the_wrong_version_fails_its_future_with_a_conflict(
    adapter: Persistence,
) -> None:
    store = adapter.events
    store.append("s", deposit(1), NO_STREAM)
    partition = store.partition_of("s")
    feed_before = store.read_feed(partition)

    future = store.append_async("s", deposit(2), 0)

    with pytest.raises(ConcurrencyError) as caught:
        future.result(WAIT)
    assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == ("s", 0, 1)
    assert store.stream_version("s") == 1
    assert store.read_feed(partition) == feed_before


def test_an_async_retry_of_the_same_event_ids_returns_the_earlier_result(
    adapter: Persistence,
) -> None:
    store = adapter.events
    meta = EventMetadata("same-id")
    first = store.append_async("s", deposit(1), NO_STREAM, meta).result(WAIT)

    again = store.append_async("s", deposit(1), NO_STREAM, meta).result(WAIT)

    assert again == first
    assert store.stream_version("s") == 1


def test_a_wrong_async_call_raises_at_once_and_queues_nothing(adapter: Persistence) -> None:
    store = adapter.events

    with pytest.raises(ValueError, match="at least one event"):
        store.append_async("s", [], NO_STREAM)
    with pytest.raises(UnregisteredEvent):
        store.append_async("s", [Unregistered()], NO_STREAM)
    assert store.stream_version("s") == 0


def test_an_async_read_of_a_long_stream_equals_the_blocking_read(adapter: Persistence) -> None:
    store = adapter.events
    total = READ_PAGE * 2 + 37  # three pages on Redis
    for start in range(0, total, 500):
        count = min(500, total - start)
        store.append("long", [Deposited(account="a", amount=n) for n in range(count)], start)

    whole = store.read_async("long").result(WAIT)
    tail = store.read_async("long", from_version=1990, to_version=2010).result(WAIT)

    assert whole == store.read("long")
    assert [e.version for e in whole] == list(range(1, total + 1))
    assert [e.version for e in tail] == list(range(1991, 2011))
    assert store.read_async("never-written").result(WAIT) == []
    assert store.read_async("long", from_version=5, to_version=5).result(WAIT) == []


@pytest.mark.redis
def test_async_appends_in_flight_together_share_round_trips(
    redis_url: str, key_prefix: str
) -> None:
    persistence = Persistence.on_redis(redis_url, make_codec(), prefix=key_prefix)
    try:
        store = persistence.events
        assert isinstance(store, RedisEventStore)
        before = store.round_trips
        futures = [store.append_async(f"acct-{n}", deposit(n), NO_STREAM) for n in range(2000)]
        for future in futures:
            future.result(WAIT)

        assert store.round_trips - before < 2000 / 10
    finally:
        persistence.close()


@pytest.mark.redis
def test_an_async_append_after_close_fails_its_future_as_unavailable(
    redis_url: str, key_prefix: str
) -> None:
    persistence = Persistence.on_redis(redis_url, make_codec(), prefix=key_prefix)
    store = persistence.events
    store.append_async("s", deposit(1), NO_STREAM).result(WAIT)  # the I/O thread runs
    persistence.close()

    with pytest.raises(EventStoreUnavailable, match="closed"):
        store.append_async("s", deposit(2), 1).result(WAIT)


@pytest.mark.redis
def test_a_conflict_among_appends_sent_together_leaves_the_others_applied_in_order(
    redis_url: str, key_prefix: str
) -> None:
    # One partition: appends queued together go out joined in one call of the script
    # (how many share a call depends on timing; the outcomes must not).
    persistence = Persistence.on_redis(redis_url, make_codec(), prefix=key_prefix, partitions=1)
    try:
        store = persistence.events
        store.append("taken", deposit(0), NO_STREAM)
        futures = [
            store.append_async(stream, deposit(n), expected)
            for n, (stream, expected) in enumerate(
                [("a", 0), ("taken", 0), ("b", 0), ("a", 1), ("taken", 1), ("b", 5)]
            )
        ]
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result(WAIT).version)
            except ConcurrencyError as conflict:
                outcomes.append(f"conflict at {conflict.actual}")

        assert outcomes == [1, "conflict at 1", 1, 2, 2, "conflict at 1"]
        assert [e.event.amount for e in store.read("a")] == [0, 3]
        assert [e.event.amount for e in store.read("taken")] == [0, 4]
        feed = [(e.stream_id, e.version) for e in store.read_feed(0)]
        assert feed == [("taken", 1), ("a", 1), ("b", 1), ("a", 2), ("taken", 2)]
    finally:
        persistence.close()
