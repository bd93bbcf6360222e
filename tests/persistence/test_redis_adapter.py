"""What only the Redis adapter has: its layout, its server checks, faults, group commit."""

from __future__ import annotations

import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest
import redis
from pydantic import BaseModel, ConfigDict
from redis.crc import key_slot

from persistence import (
    ANY,
    NO_STREAM,
    BackendError,
    Codec,
    CodecError,
    ConfigurationError,
    EventMetadata,
    EventStoreUnavailable,
    IncompatibleLayout,
    MalformedEvent,
    Persistence,
    PersistenceError,
    ProjectionUpdate,
    RecordedEvent,
    RedisEventStore,
    RedisProjectionStore,
    RedisSubscriptions,
    StorageFull,
    UnknownEventType,
    UnsafeRedisConfiguration,
    redis_client,
)
from persistence._redis_subscriptions import _RedisGroupBackend
from tests.persistence.conftest import wait_for
from tests.persistence.events import Deposited, Renamed
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def plain(redis_url: str) -> Iterator[redis.Redis]:
    """A plain redis-py client: what a reader without this library has."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def store(redis_url: str, key_prefix: str, codec: Codec) -> Iterator[RedisEventStore]:
    store = RedisEventStore.from_url(redis_url, codec, prefix=key_prefix, partitions=16)
    yield store
    store.close()


def test_an_appended_event_reads_with_a_plain_client_and_msgpack_following_the_doc(
    store: RedisEventStore, plain: redis.Redis, key_prefix: str
) -> None:
    store.append(
        "order-42",
        [Deposited(account="a", amount=5), Deposited(account="a", amount=6)],
        NO_STREAM,
        [EventMetadata("e-1", correlation_id="c-1"), EventMetadata("e-2")],
    )

    # Only what docs/redis-layout.md says: partition = crc32 mod partitions, key, fields.
    partition = zlib.crc32(b"order-42") % 16
    entries = plain.xrange(f"{key_prefix}:{{p{partition}}}:stream:order-42", "-", "+")

    assert [entry_id for entry_id, _ in entries] == [b"1-0", b"2-0"]
    fields = entries[0][1]
    assert fields[b"type"] == b"Deposited"
    assert int(fields[b"schema"]) == 1
    assert msgpack.unpackb(fields[b"data"]) == {"account": "a", "amount": 5}
    assert fields[b"event_id"] == b"e-1"
    assert fields[b"correlation_id"] == b"c-1"
    assert fields[b"causation_id"] == b""
    assert float(fields[b"recorded_at"]) > 0
    assert fields[b"extra"] == b""
    feed = plain.xrange(f"{key_prefix}:{{p{partition}}}:feed", "-", "+")
    assert [entry_id for entry_id, _ in feed] == [fields[b"feed"], entries[1][1][b"feed"]]
    assert feed[0][1][b"stream"] == b"order-42"
    assert feed[0][1][b"version"] == b"1"
    assert msgpack.unpackb(feed[1][1][b"data"]) == {"account": "a", "amount": 6}
    assert plain.hgetall(f"{key_prefix}:meta") == {b"partitions": b"16", b"layout": b"1"}


def test_every_key_one_append_or_dead_lettering_touches_is_in_one_hash_slot(
    store: RedisEventStore,
) -> None:
    layout = store.layout
    for stream_id in ("a", "order-42", "x{y}z", "ünïcode"):
        partition = layout.partition_of(stream_id)
        slots = {
            key_slot(key.encode())
            for key in (
                layout.stream(stream_id),
                layout.feed(partition),
                layout.dead(partition, "group"),
                layout.snapshot(stream_id),
                layout.index(partition, "index"),
            )
        }
        assert len(slots) == 1, stream_id
    assert len({key_slot(layout.feed(p).encode()) for p in range(16)}) == 16


def test_a_stored_entry_of_an_unknown_type_raises_a_codec_error_naming_stream_and_version(
    store: RedisEventStore, plain: redis.Redis
) -> None:
    store.append("s", [Deposited(account="a", amount=1)], NO_STREAM)
    _write_raw(plain, store, "s", 2, type_name=b"Vanished", data=msgpack.packb({}))

    with pytest.raises(UnknownEventType) as caught:
        store.read("s")

    assert (caught.value.stream_id, caught.value.version) == ("s", 2)
    assert [e.version for e in store.read("s", 0, 1)] == [1]


def test_a_stored_entry_with_a_malformed_payload_raises_malformed_event(
    store: RedisEventStore, plain: redis.Redis
) -> None:
    _write_raw(plain, store, "s", 1, type_name=b"Deposited", data=b"\xc1not msgpack")

    with pytest.raises(MalformedEvent, match="stream 's' version 1"):
        store.read("s")


def test_a_subscription_never_decodes_entries_of_types_it_does_not_want(
    redis_url: str, key_prefix: str, codec: Codec, plain: redis.Redis
) -> None:
    persistence = Persistence.on_redis(redis_url, codec, prefix=key_prefix, partitions=4)
    try:
        events = persistence.events
        assert isinstance(events, RedisEventStore)
        # An entry no codec here can decode: any subscriber that decoded it would fail.
        _write_raw_feed(plain, events, "s", 1, type_name=b"Vanished", data=b"\xc1")
        persistence.events.append("t", [Deposited(account="t", amount=7)], NO_STREAM)
        got: list[RecordedEvent] = []
        seen = threading.Event()

        def handle(event: RecordedEvent) -> None:
            got.append(event)
            seen.set()

        subscription = persistence.subscriptions.subscribe(
            "deposits", handle, types={"Deposited"}, max_deliveries=1
        )
        try:
            assert seen.wait(5)
            time.sleep(0.2)  # room for a dead-lettering, were there one
        finally:
            subscription.stop(5)
        assert [e.event for e in got] == [Deposited(account="t", amount=7)]
        assert persistence.subscriptions.dead_letters("deposits") == []

        # The same entry, decoded by a subscriber wanting every type, is dead-lettered.
        everything = persistence.subscriptions.subscribe(
            "everything", lambda event: None, max_deliveries=1
        )
        try:
            assert wait_for(lambda: bool(persistence.subscriptions.dead_letters("everything")))
        finally:
            everything.stop(5)
    finally:
        persistence.close()


def test_feed_entries_decode_alike_on_the_fast_and_the_checked_path(
    store: RedisEventStore, plain: redis.Redis
) -> None:
    meta = EventMetadata("e-1", "corr", "cause", 1714566600.25, {"user": "ann"})
    store.append("s", [Deposited(account="a", amount=5)], NO_STREAM, meta)
    store.append("s", [Deposited(account="a", amount=6), Deposited(account="a", amount=7)], 1)
    partition = store.partition_of("s")
    # A version-one event of another stream in the same feed, upcast when decoded.
    _write_raw_feed(
        plain, store, "s", 4, type_name=b"Renamed", data=msgpack.packb({"name": "Hamlet"})
    )
    entries = plain.xrange(store.layout.feed(partition))
    raw = [[entry_id, [x for pair in fields.items() for x in pair]] for entry_id, fields in entries]

    checked = [store._feed_entry_checked(partition, entry) for entry in raw]  # warms caches

    def not_taken(partition: int, entry: list[object]) -> RecordedEvent:
        raise AssertionError(f"{entry[0]!r} took the checked path")

    store._feed_entry_checked = not_taken  # type: ignore[method-assign]
    fast = [store.feed_entry(partition, entry) for entry in raw]

    assert fast == checked
    assert [e.version for e in fast] == [1, 2, 3, 4]
    assert fast[0].metadata == meta
    assert fast[3].event == Renamed(title="Hamlet")
    assert fast[3].schema_version == 1


def test_a_stored_version_one_event_is_upcast_when_read(
    store: RedisEventStore, plain: redis.Redis
) -> None:
    _write_raw(
        plain, store, "s", 1, type_name=b"Renamed", schema=b"1", data=msgpack.packb({"name": "x"})
    )

    [recorded] = store.read("s")

    assert recorded.event == Renamed(title="x")
    assert recorded.schema_version == 1


def test_a_stream_key_of_another_type_raises_a_backend_error_not_a_redis_error(
    store: RedisEventStore, plain: redis.Redis
) -> None:
    plain.set(store.layout.stream("wrong"), "a string")

    with pytest.raises(BackendError, match="WRONGTYPE"):
        store.append("wrong", [Deposited(account="a", amount=1)], ANY)
    with pytest.raises(BackendError):
        store.read("wrong")


def test_a_prefix_used_with_another_partition_count_is_refused(
    store: RedisEventStore, redis_url: str, key_prefix: str, codec: Codec
) -> None:
    with pytest.raises(IncompatibleLayout, match="16 partitions"):
        RedisEventStore.from_url(redis_url, codec, prefix=key_prefix, partitions=8)


def test_an_append_whose_reply_was_lost_is_sent_again_and_applied_once(
    store: RedisEventStore,
) -> None:
    store.append("s", [Deposited(account="a", amount=0)], NO_STREAM)
    parser: Any = store._writer._conn._parser
    original = parser.read_from_socket
    lost = {"replies": 0}

    def lose_first_reply(*args: Any, **kwargs: Any) -> Any:
        read = original(*args, **kwargs)  # the server has applied the append
        if lost["replies"] == 0:
            lost["replies"] += 1
            raise redis.ConnectionError("connection lost before the reply arrived")
        return read

    parser.read_from_socket = lose_first_reply
    try:
        result = store.append("s", [Deposited(account="a", amount=1)], 1)
    finally:
        parser.read_from_socket = original

    assert lost["replies"] == 1
    assert result.version == 2
    assert [e.event.amount for e in store.read("s")] == [0, 1]  # type: ignore[attr-defined]
    assert len(store.read_feed(store.partition_of("s"))) == 2


def test_a_lone_append_goes_out_at_once_in_one_round_trip(store: RedisEventStore) -> None:
    before = store.round_trips
    for n in range(5):
        store.append("lone", [Deposited(account="a", amount=n)], n)
    assert store.round_trips - before == 5


def test_concurrent_appends_share_round_trips_each_with_its_own_result(
    store: RedisEventStore,
) -> None:
    threads_count, per_thread = 32, 20
    barrier = threading.Barrier(threads_count)
    results: dict[int, list[int]] = {}
    conflicts: list[int] = []
    before = store.round_trips

    def writer(index: int) -> None:
        barrier.wait(timeout=10)
        versions = []
        for n in range(per_thread):
            versions.append(
                store.append(f"gc-{index}", [Deposited(account="a", amount=n)], n).version
            )
        # A stale expected version in the same batches still gets its own conflict.
        try:
            store.append(f"gc-{index}", [Deposited(account="a", amount=0)], 0)
        except PersistenceError:
            conflicts.append(index)
        results[index] = versions

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert results == {i: list(range(1, per_thread + 1)) for i in range(threads_count)}
    assert sorted(conflicts) == list(range(threads_count))
    appends = threads_count * (per_thread + 1)
    assert store.round_trips - before < appends / 2


def test_a_server_that_may_evict_keys_is_refused_unless_allowed(
    redis_server_factory: Callable[..., RedisServer], codec: Codec
) -> None:
    server = redis_server_factory(
        extra_args=["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]
    )

    with pytest.raises(UnsafeRedisConfiguration, match="allkeys-lru"):
        RedisEventStore.from_url(server.url, codec, prefix="t")

    allowed = RedisEventStore.from_url(server.url, codec, prefix="t", allow_eviction=True)
    assert allowed.append("s", [Deposited(account="a", amount=1)], NO_STREAM).version == 1
    allowed.close()


def test_projection_updates_sent_together_survive_a_lost_script_cache(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = redis_server_factory()
    client = redis.Redis.from_url(server.url)
    projections = RedisProjectionStore(client, prefix="t")
    try:
        assert projections.apply("a", 1, {"n": "1"})
        client.script_flush()  # our own server: as after a restart
        applied = projections.apply_many(
            [ProjectionUpdate("a", 2, {"n": "2"}), ProjectionUpdate("b", 1, {"n": "1"})]
        )
        assert applied == [True, True]
        assert projections.get("a") == {"n": "2", "_position": "2"}
        assert projections.get("b") == {"n": "1", "_position": "1"}
    finally:
        client.close()


def test_async_appends_in_flight_when_their_connection_drops_are_each_applied_once(
    redis_server_factory: Callable[..., RedisServer], codec: Codec
) -> None:
    server = redis_server_factory()
    store = RedisEventStore.from_url(server.url, codec, prefix="t")
    killer = redis.Redis.from_url(server.url)
    streams, per_stream = 50, 40
    try:
        futures = []
        for version in range(per_stream):
            if version == per_stream // 2:  # batches are in flight: drop their connection
                connected = killer.info("stats")["total_connections_received"]
                assert killer.client_kill_filter(_type="normal", skipme=True) >= 1
            futures += [
                store.append_async(f"s{n}", [Deposited(account=f"s{n}", amount=version)], version)
                for n in range(streams)
            ]
        for future in futures:
            future.result(30)
        assert killer.info("stats")["total_connections_received"] > connected  # reconnected
        for n in range(streams):
            events = store.read(f"s{n}")
            assert [e.version for e in events] == list(range(1, per_stream + 1))
            assert [e.event.amount for e in events] == list(range(per_stream))  # type: ignore[attr-defined]
    finally:
        killer.close()
        store.close()


def test_losing_the_server_raises_event_store_unavailable_and_a_restart_recovers(
    redis_server_factory: Callable[..., RedisServer], codec: Codec
) -> None:
    server = redis_server_factory()
    store = RedisEventStore.from_url(server.url, codec, prefix="t")
    store.append("s", [Deposited(account="a", amount=1)], NO_STREAM)
    server.kill()

    started = time.monotonic()
    with pytest.raises(EventStoreUnavailable) as caught:
        store.append("s", [Deposited(account="a", amount=2)], 1)
    assert not isinstance(caught.value, redis.RedisError)
    assert isinstance(caught.value.__cause__, redis.ConnectionError)
    with pytest.raises(EventStoreUnavailable):
        store.read("s")
    assert time.monotonic() - started < 5

    server.start()  # same port, empty data (no persistence), empty script cache
    try:
        assert store.append("s", [Deposited(account="a", amount=3)], NO_STREAM).version == 1
        assert [e.version for e in store.read("s")] == [1]
    finally:
        store.close()


def test_appends_in_flight_when_the_server_dies_each_return_or_raise_unavailable(
    redis_server_factory: Callable[..., RedisServer], codec: Codec
) -> None:
    server = redis_server_factory()
    store = RedisEventStore.from_url(server.url, codec, prefix="t")
    outcomes: list[str] = []
    started = threading.Barrier(17)

    def writer(index: int) -> None:
        started.wait(timeout=10)
        try:
            for n in range(10_000):
                store.append(f"w-{index}", [Deposited(account="a", amount=n)], n)
        except EventStoreUnavailable:
            outcomes.append("unavailable")
        except BaseException as error:
            outcomes.append(repr(error))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    started.wait(timeout=10)
    server.kill()
    for thread in threads:
        thread.join(timeout=20)

    assert not any(thread.is_alive() for thread in threads), "a caller hangs"
    assert outcomes == ["unavailable"] * 16
    store.close()


def test_a_full_server_refuses_whole_appends_with_storage_full(
    redis_server_factory: Callable[..., RedisServer], codec: Codec
) -> None:
    server = redis_server_factory(
        extra_args=["--maxmemory", "3mb", "--maxmemory-policy", "noeviction"]
    )
    store = RedisEventStore.from_url(server.url, codec, prefix="t", partitions=1)
    big = "x" * 20_000

    def fill_up() -> None:
        for n in range(1000):
            store.append("s", [Deposited(account=big, amount=n)] * 3, ANY)

    with pytest.raises(StorageFull):
        fill_up()
    version = store.stream_version("s")
    assert version % 3 == 0  # whole appends only
    assert len(store.read_feed(0, count=10_000)) == version
    store.close()


def test_the_client_helper_sets_short_retries(redis_url: str) -> None:
    client = redis_client(redis_url)
    try:
        assert client.get_retry() is not None
        assert client.get_retry().get_retries() == 2  # type: ignore[union-attr]
    finally:
        client.close()


def test_stream_ids_lists_every_stream_under_the_prefix(store: RedisEventStore) -> None:
    for name in ("a", "b", "c:d"):
        store.append(name, [Deposited(account="a", amount=1)], ANY)
    assert sorted(store.stream_ids()) == ["a", "b", "c:d"]


def _raw_fields(version: int, type_name: bytes, data: bytes, schema: bytes) -> dict[str, Any]:
    """The fields of an entry as docs/redis-layout.md gives them, written by hand."""
    return {
        "type": type_name,
        "schema": schema,
        "data": data,
        "event_id": f"raw-{version}",
        "correlation_id": "",
        "causation_id": "",
        "recorded_at": "1.0",
        "extra": "",
    }


def _write_raw(
    plain: redis.Redis,
    store: RedisEventStore,
    stream_id: str,
    version: int,
    *,
    type_name: bytes,
    data: bytes,
    schema: bytes = b"1",
) -> None:
    """An aggregate stream entry at ``version``, as another client could write it."""
    fields = {**_raw_fields(version, type_name, data, schema), "feed": "0-1"}
    plain.xadd(store.layout.stream(stream_id), fields, id=f"{version}-0")


def _write_raw_feed(
    plain: redis.Redis,
    store: RedisEventStore,
    stream_id: str,
    version: int,
    *,
    type_name: bytes,
    data: bytes,
    schema: bytes = b"1",
) -> None:
    """A partition feed entry for ``stream_id`` at ``version``, written by hand."""
    fields: dict[str, Any] = {"stream": stream_id, "version": str(version)}
    fields.update(_raw_fields(version, type_name, data, schema))
    plain.xadd(store.layout.feed(store.partition_of(stream_id)), fields)


def test_the_store_reports_the_servers_fsync_policy_and_can_require_always(
    redis_server_factory: Callable[..., RedisServer], codec: Codec
) -> None:
    no_aof = redis_server_factory()
    everysec = redis_server_factory(extra_args=["--appendonly", "yes"])
    always = redis_server_factory(
        extra_args=["--appendonly", "yes", "--appendfsync", "always"]
    )

    for server, policy in ((no_aof, "off"), (everysec, "everysec"), (always, "always")):
        store = RedisEventStore.from_url(server.url, codec, prefix="t")
        assert store.fsync_policy == policy
        store.close()
    with pytest.raises(ConfigurationError, match=r"'everysec'.*about a second"):
        RedisEventStore.from_url(everysec.url, codec, prefix="t", require_fsync_always=True)
    strict = RedisEventStore.from_url(always.url, codec, prefix="t", require_fsync_always=True)
    strict.close()
    with pytest.raises(ConfigurationError, match="'off'"):
        Persistence.on_redis(no_aof.url, codec, prefix="t", require_fsync_always=True)


def test_a_stopped_consumer_leaves_the_group_unless_entries_are_pending_on_it(
    store: RedisEventStore, plain: redis.Redis
) -> None:
    subscriptions = RedisSubscriptions(store)
    feeds = [store.layout.feed(p) for p in range(store.partitions)]

    def consumers(group: str) -> set[bytes]:
        return {
            consumer["name"]
            for feed in feeds
            if plain.exists(feed)
            for consumer in plain.xinfo_consumers(feed, group)
        }

    for n in range(20):
        store.append(f"s-{n}", [Deposited(account="a", amount=n)], NO_STREAM)
    handled: list[RecordedEvent] = []
    done = subscriptions.subscribe("tidy", handled.append, consumer="done-1")
    assert wait_for(lambda: len(handled) == 20)
    assert consumers("tidy") == {b"done-1"}
    assert done.stop(5)
    assert consumers("tidy") == set()  # nothing pending: no trace left

    def fail_and_stop(event: RecordedEvent) -> None:
        halted.stop()  # ends the loop once this returns: the entry stays pending
        raise RuntimeError("stopped while handling")

    store.append("late", [Deposited(account="a", amount=1)], NO_STREAM)
    halted = subscriptions.subscribe("tidy", fail_and_stop, consumer="halted-1")
    assert wait_for(lambda: not halted.running)
    assert halted.stop(5)  # the loop has ended
    assert consumers("tidy") == {b"halted-1"}  # kept: its entry can be resumed or claimed
    resumed: list[RecordedEvent] = []
    again = subscriptions.subscribe("tidy", resumed.append, consumer="halted-1")
    try:
        assert wait_for(lambda: [e.stream_id for e in resumed] == ["late"])
    finally:
        assert again.stop(5)
    assert consumers("tidy") == set()


@pytest.fixture
def one_feed(redis_url: str, key_prefix: str, codec: Codec) -> Iterator[RedisEventStore]:
    """A store with a single partition: every event in one feed, in append order."""
    store = RedisEventStore.from_url(redis_url, codec, prefix=key_prefix, partitions=1)
    yield store
    store.close()


def _deposits(store: RedisEventStore, count: int) -> bytes:
    """``count`` one-event streams appended; the key of the feed they went to."""
    for n in range(count):
        store.append(f"s-{n}", [Deposited(account="a", amount=n)], NO_STREAM)
    return store.layout.feed(0).encode()


def test_the_backlog_counts_entries_itself_where_redis_cannot_tell_the_lag(
    one_feed: RedisEventStore, plain: redis.Redis
) -> None:
    # Redis reports no lag for a group when an entry after its last delivered one was
    # deleted (XDEL); Redis < 7 reports none at all: the entries are counted instead.
    feed = _deposits(one_feed, 5)
    subscriptions = RedisSubscriptions(one_feed)
    assert subscriptions.backlog("never-subscribed") == 5  # no group: everything
    plain.xgroup_create(feed, "g", id="0")
    plain.xreadgroup("g", "c", {feed: ">"}, count=1)
    assert plain.xinfo_groups(feed)[0]["lag"] == 4
    assert subscriptions.backlog("g") == 5  # 1 pending + lag 4
    third = plain.xrange(feed)[2][0]
    plain.xdel(feed, third)
    assert plain.xinfo_groups(feed)[0]["lag"] is None
    assert subscriptions.backlog("g") == 4  # 1 pending + the 3 entries left after it


def test_pending_entries_read_back_after_a_lost_reply_come_a_page_at_a_time_uncounted(
    one_feed: RedisEventStore, plain: redis.Redis
) -> None:
    # The read-back after a lost reply (own_pending(counted=False)): pages in feed
    # order, delivery counts left alone, entries of other consumers in between skipped,
    # a deleted entry acknowledged as gone.
    feed = _deposits(one_feed, 300)
    backend = _RedisGroupBackend(one_feed, "g", "mine", "beginning")
    backend.ensure_group()
    plain.xreadgroup("g", "mine", {feed: ">"}, count=2)  # entries 1, 2
    plain.xreadgroup("g", "other", {feed: ">"}, count=200)  # 3 .. 202
    plain.xreadgroup("g", "mine", {feed: ">"}, count=1)  # 203
    ids = [entry_id for entry_id, _ in plain.xrange(feed)]
    plain.xdel(feed, ids[1])  # entry 2, pending on "mine", deleted
    first = backend.own_pending(counted=False)
    # Entry 203 lies beyond the page's window (the other consumer's 200 between).
    assert [(d.entry_id, d.deliveries) for d in first] == [(ids[0].decode(), 1)]
    assert first[0].event is not None
    assert first[0].event.stream_id == "s-0"
    again = backend.own_pending(counted=False)
    assert [(d.entry_id, d.deliveries) for d in again] == [(ids[0].decode(), 1)]  # uncounted
    backend.ack(first)
    second = backend.own_pending(counted=False)
    assert [(d.entry_id, d.deliveries) for d in second] == [(ids[202].decode(), 1)]
    backend.ack(second)
    assert backend.own_pending(counted=False) == []
    mine = plain.xpending_range(feed, "g", min="-", max="+", count=10, consumername="mine")
    assert mine == []  # the deleted one was acknowledged as gone


class _Blob(BaseModel):
    model_config = ConfigDict(frozen=True)
    data: bytes


def test_an_event_its_model_cannot_encode_is_refused_typed_and_writes_nothing(
    store: RedisEventStore,
) -> None:
    # JSON mode serializes bytes as UTF-8 text: these are not. (The memory adapter keeps
    # the model objects and never encodes them, so it accepts such an event.)
    store.codec.register(_Blob, name="Blob")
    for metadata in (None, EventMetadata("blob-1")):  # both paths of an append
        with pytest.raises(CodecError, match="Blob could not be encoded"):
            store.append(
                "s", [Deposited(account="a", amount=1), _Blob(data=b"\xff")], NO_STREAM, metadata
            )
    assert store.stream_version("s") == 0


def test_a_read_acknowledges_the_batch_handled_before_it_in_the_same_round_trip(
    one_feed: RedisEventStore, plain: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed = _deposits(one_feed, 3)
    backend = _RedisGroupBackend(one_feed, "g", "c", "beginning")
    backend.ensure_group()
    first = backend.read_new(0)
    for n in (3, 4):
        one_feed.append(f"s-{n}", [Deposited(account="a", amount=n)], NO_STREAM)
    round_trips: list[str] = []

    def counted(name: str) -> Callable[..., Any]:
        original = getattr(one_feed, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            round_trips.append(name)
            return original(*args, **kwargs)

        return call

    for name in ("command", "pipeline"):
        monkeypatch.setattr(one_feed, name, counted(name))

    second = backend.read_new(0, first)

    assert [d.event.version for d in first] == [1, 1, 1]  # type: ignore[union-attr]
    assert len(second) == 2
    assert round_trips == ["pipeline"]
    pending = plain.xpending_range(feed, "g", min="-", max="+", count=10)
    assert [p["message_id"].decode() for p in pending] == [d.entry_id for d in second]


def test_the_append_connections_keep_their_timeout_in_the_kernel_not_in_python(
    redis_url: str, key_prefix: str, codec: Codec
) -> None:
    # A Python socket timeout polls before every send and receive (a second system
    # call and lock release); the kernel's SO_RCVTIMEO/SO_SNDTIMEO do not.
    store = RedisEventStore(redis_client(redis_url, socket_timeout=1.5), codec, prefix=key_prefix)
    try:
        store.append("s", [Deposited(account="a", amount=1)], NO_STREAM)
        store.append_async("s", [Deposited(account="a", amount=2)], 1).result(5)
        for commit in (store._writer, store._pipe._commit):
            sock = commit._conn._sock
            assert sock.gettimeout() is None
            for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
                assert struct.unpack("ll", sock.getsockopt(socket.SOL_SOCKET, option, 16)) == (
                    1,
                    500_000,
                )
        pooled = store._client.connection_pool.get_connection()
        try:
            assert pooled._sock.gettimeout() == 1.5  # the pool's own are left alone
        finally:
            store._client.connection_pool.release(pooled)
    finally:
        store.close()
