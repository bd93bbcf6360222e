"""Issue 6, bad input at the codec and the Redis adapter: typed errors, poison entries."""

from __future__ import annotations

import threading
import uuid
import zlib
from collections.abc import Callable, Iterator

import msgpack
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persistence import (
    NO_STREAM,
    BackendError,
    Codec,
    CodecError,
    MalformedEvent,
    RecordedEvent,
    RedisEventStore,
    RedisSubscriptions,
    UnknownEventType,
)
from persistence._redis_layout import FEED_FIELDS, STREAM_FIELDS
from tests.conftest import RUN_PREFIX
from tests.persistence.conftest import wait_for
from tests.persistence.events import Deposited, make_codec
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.redis]

PARTITIONS = 4


@pytest.fixture
def server(redis_server_factory: Callable[..., RedisServer]) -> RedisServer:
    return redis_server_factory()


@pytest.fixture
def store(server: RedisServer, codec: Codec) -> Iterator[RedisEventStore]:
    store = RedisEventStore.from_url(server.url, codec, prefix="b", partitions=PARTITIONS)
    yield store
    store.close()


@pytest.fixture
def plain(server: RedisServer) -> Iterator[redis.Redis]:
    """Another client writing into our keys."""
    client = redis.Redis.from_url(server.url)
    yield client
    client.close()


def stream_key(stream_id: str) -> str:
    return f"b:{{p{zlib.crc32(stream_id.encode()) % PARTITIONS}}}:stream:{stream_id}"


def good_fields(**override: bytes | str) -> dict[str, bytes | str]:
    fields: dict[str, bytes | str] = {
        "type": "Deposited", "schema": "1",
        "data": msgpack.packb({"account": "a", "amount": 1}),
        "event_id": "x", "correlation_id": "", "causation_id": "",
        "recorded_at": "1.5", "extra": b"", "feed": "1-1",
    }
    fields.update(override)
    return fields


POISON: dict[str, dict[str, bytes | str]] = {
    "malformed msgpack": good_fields(data=b"\xc1\xff not msgpack"),
    "msgpack that is not a map": good_fields(data=msgpack.packb([1, 2])),
    "payload failing validation": good_fields(data=msgpack.packb({"account": 1})),
    "unknown event type": good_fields(type="Exploded"),
    "schema version newer than the model": good_fields(schema="7"),
    "schema version that is no number": good_fields(schema="one"),
    "missing fields": {"hello": "world"},
    "unreadable metadata": good_fields(recorded_at="yesterday"),
    "extra that is not a map": good_fields(extra=msgpack.packb(3)),
}


@pytest.mark.parametrize("kind", list(POISON))
def test_a_foreign_entry_in_an_aggregate_stream_reads_as_a_codec_error_naming_stream_and_version(
    store: RedisEventStore, plain: redis.Redis, kind: str
) -> None:
    """Figure: 9 kinds of bad entries, each written by another client as version 2 of
    a stream: reading the stream raises a CodecError naming the stream and version 2."""
    store.append("acct", [Deposited(account="a", amount=1)], NO_STREAM)
    plain.xadd(stream_key("acct"), POISON[kind], id="2-0")  # type: ignore[arg-type]

    with pytest.raises(CodecError) as caught:
        store.read("acct")
    assert caught.value.stream_id == "acct"
    assert caught.value.version == 2
    assert "'acct'" in str(caught.value)
    assert "version 2" in str(caught.value)
    assert [e.version for e in store.read("acct", 0, 1)] == [1]  # the rest still reads


def test_a_foreign_entry_with_an_id_that_is_no_version_reads_as_malformed(
    store: RedisEventStore, plain: redis.Redis
) -> None:
    """Figure: 1 well-formed entry added by another client with an automatic id."""
    store.append("acct", [Deposited(account="a", amount=1)], NO_STREAM)
    entry_id = plain.xadd(stream_key("acct"), good_fields())  # type: ignore[arg-type]

    with pytest.raises(MalformedEvent, match="'acct'") as caught:
        store.read("acct")
    assert entry_id.decode() in str(caught.value)


def test_an_append_to_a_stream_another_client_wrote_is_refused_and_writes_nothing(
    store: RedisEventStore, plain: redis.Redis
) -> None:
    """Figure: 1 foreign entry with an automatic id after version 1, then 1 append of
    2 events: a BackendError naming the stream; neither stream nor feed changed."""
    store.append("acct", [Deposited(account="a", amount=1)], NO_STREAM)
    plain.xadd(stream_key("acct"), good_fields())  # type: ignore[arg-type]
    partition = store.partition_of("acct")
    feed_before = len(store.read_feed(partition))

    with pytest.raises(BackendError, match="'acct'"):
        store.append("acct", [Deposited(account="a", amount=2)] * 2, 2)
    assert plain.xlen(stream_key("acct")) == 2
    assert len(store.read_feed(partition)) == feed_before


def test_a_refused_append_that_would_create_its_stream_leaves_no_index_entry(
    store: RedisEventStore, plain: redis.Redis
) -> None:
    """Figure: a stream whose only entry (id 9-0) another client deleted (length 0, but
    ids up to 9-0 taken), 1 append asking for an index: BackendError; the index, the
    stream and the feed unchanged."""
    plain.xadd(stream_key("acct"), good_fields(), id="9-0")  # type: ignore[arg-type]
    plain.xdel(stream_key("acct"), "9-0")

    with pytest.raises(BackendError, match="'acct'"):
        store.append("acct", [Deposited(account="a", amount=1)], NO_STREAM, index="accounts")
    assert store.read_index("accounts").stream_ids == ()
    assert plain.xlen(stream_key("acct")) == 0
    assert store.read_feed(store.partition_of("acct")) == []


def test_a_stream_key_of_another_type_is_refused_without_writing_the_feed(
    store: RedisEventStore, plain: redis.Redis
) -> None:
    """Figure: 1 hash where the stream should be, 1 append: BackendError, feed untouched."""
    plain.hset(stream_key("acct"), "x", "y")
    with pytest.raises(BackendError):
        store.append("acct", [Deposited(account="a", amount=1)], NO_STREAM)
    assert store.read_feed(store.partition_of("acct")) == []


def test_poison_entries_in_a_feed_are_dead_lettered_after_n_deliveries_and_the_rest_flows(
    store: RedisEventStore, plain: redis.Redis
) -> None:
    """Figure: 9 poison entries written into partition feeds by another client, among
    20 good events; max_deliveries 3: each poison entry is dead-lettered with a
    CodecError naming its position after 3 deliveries, all 20 good events are
    handled, the subscription keeps running."""
    handled: list[str] = []
    lock = threading.Lock()

    def handler(event: RecordedEvent) -> None:
        with lock:
            handled.append(event.metadata.event_id)

    feed_key = store.layout.feed(0)
    for n, fields in enumerate(POISON.values()):
        store.append(f"good-{n}", [Deposited(account="a", amount=n)], NO_STREAM)
        feed_fields = {"stream": f"poison-{n}", "version": "1", **fields}
        feed_fields.pop("feed", None)
        plain.xadd(feed_key, feed_fields)  # type: ignore[arg-type]
    for n in range(9, 20):
        store.append(f"good-{n}", [Deposited(account="a", amount=n)], NO_STREAM)

    subscriptions = RedisSubscriptions(store)
    subscription = subscriptions.subscribe(
        "readers", handler, max_deliveries=3, retry_delay=0.0, claim_idle=1.0
    )
    try:
        assert wait_for(lambda: len(subscriptions.dead_letters("readers")) == 9, timeout=10)
        assert wait_for(lambda: len(handled) == 20, timeout=10)
        assert subscription.running
    finally:
        subscription.stop(timeout=5)
    letters = subscriptions.dead_letters("readers")
    assert all(letter.deliveries == 3 for letter in letters)
    for letter in letters:
        assert letter.position.partition == 0
        assert f"feed position 0/{letter.position.entry_id}" in letter.error, letter.error
        assert any(name in letter.error for name in ("MalformedEvent", "UnknownEventType"))


# -- property tests: whatever bytes an entry holds, the error is a CodecError -------------

_known = st.sampled_from(sorted({*STREAM_FIELDS, *FEED_FIELDS}))
_value = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"Deposited", b"Renamed", b"1", b"2", b"", b"0", b"-1", b"1e400"]),
    st.builds(
        msgpack.packb,
        st.dictionaries(
            st.sampled_from(["account", "amount", "name", "title"]),
            st.one_of(
                st.integers(-(2**63), 2**64 - 1), st.text(max_size=5), st.none(),
                st.binary(max_size=4),
            ),
            max_size=3,
        ),
    ),
)
_fields = st.lists(st.tuples(st.one_of(_known, st.binary(max_size=8)), _value), max_size=12)
# Redis hands out entry ids "<ms>-<seq>" only, whoever wrote the entry.
_entry_id = st.builds(
    lambda ms, seq: b"%d-%d" % (ms, seq),
    st.one_of(st.integers(0, 3), st.integers(0, 2**64 - 1)),
    st.one_of(st.just(0), st.integers(0, 2**64 - 1)),
)


def _well_formed_but_for(
    overrides: list[tuple[bytes, bytes]], names: list[bytes]
) -> list[bytes]:
    values = {
        b"type": b"Deposited", b"schema": b"1", b"stream": b"s", b"version": b"1",
        b"data": msgpack.packb({"account": "a", "amount": 1}), b"event_id": b"e",
        b"correlation_id": b"", b"causation_id": b"", b"recorded_at": b"1.0",
        b"extra": b"", b"feed": b"1-1",
    }
    values.update(dict(overrides))
    return [item for name in names for item in (name, values[name])]


@pytest.fixture(scope="module")
def lone_store(redis_url: str) -> Iterator[RedisEventStore]:
    """A store only used to decode entries (it writes only its layout record, which
    the session's clean-up of RUN_PREFIX removes)."""
    store = RedisEventStore.from_url(
        redis_url, make_codec(), prefix=f"{RUN_PREFIX}-prop-{uuid.uuid4().hex[:8]}", partitions=1
    )
    yield store
    store.close()


def codec_error_of(decode: Callable[..., object], *args: object) -> CodecError | None:
    """The CodecError ``decode(*args)`` raises, None if it decodes; others propagate."""
    try:
        decode(*args)
    except CodecError as error:
        return error
    return None


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    entry_id=_entry_id, fields=_fields, overrides=st.lists(st.tuples(_known, _value), max_size=3)
)
def test_arbitrary_entry_fields_decode_or_raise_a_codec_error_never_another_exception(
    lone_store: RedisEventStore,
    entry_id: bytes,
    fields: list[tuple[bytes, bytes]],
    overrides: list[tuple[bytes, bytes]],
) -> None:
    """Figure: 400 generated entries x 4 shapes (arbitrary fields, and well-formed
    entries with arbitrary values in some fields), decoded as aggregate-stream and as
    feed entries: each decodes or raises a CodecError naming where it sits."""
    shapes = [
        [item for pair in fields for item in pair],
        _well_formed_but_for(overrides, list(STREAM_FIELDS)),
        _well_formed_but_for(overrides, list(FEED_FIELDS)),
    ]
    for raw in shapes:
        error = codec_error_of(lone_store._stream_entries, "s", 0, [[entry_id, raw]], 0)
        assert error is None or error.stream_id == "s"
        error = codec_error_of(lone_store.feed_entry, 0, [entry_id, raw])
        assert error is None or error.position == f"0/{entry_id.decode()}"


@settings(max_examples=400, deadline=None)
@given(
    type_name=st.one_of(st.sampled_from([b"Deposited", b"Renamed", b"Withdrawn"]), st.binary()),
    schema=st.one_of(st.sampled_from([b"1", b"2", b"3", b"0", b"-1"]), st.binary(max_size=4)),
    data=st.one_of(st.binary(), _value),
)
def test_arbitrary_stored_values_decode_or_raise_a_codec_error(
    type_name: bytes, schema: bytes, data: bytes
) -> None:
    """Figure: 400 generated (type, schema, payload) triples through the codec."""
    codec = make_codec()
    for _ in range(2):  # the second time through the cached raw decoder
        error = codec_error_of(codec.decode_raw, type_name, schema, data, "s", 3)
        assert error is None or isinstance(error, MalformedEvent | UnknownEventType)
        assert error is None or (error.stream_id, error.version) == ("s", 3)


@pytest.fixture(scope="module")
def written(redis_url: str) -> Iterator[tuple[RedisEventStore, redis.Redis]]:
    """A store and a plain client on the shared server, under a prefix of their own."""
    prefix = f"{RUN_PREFIX}-prop-{uuid.uuid4().hex[:8]}"
    store = RedisEventStore.from_url(redis_url, make_codec(), prefix=prefix, partitions=1)
    plain = redis.Redis.from_url(redis_url)
    yield store, plain
    for key in plain.scan_iter(match=f"{prefix}*", count=1000):
        plain.unlink(key)
    plain.close()
    store.close()


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fields=st.dictionaries(st.one_of(_known, st.binary(min_size=1, max_size=8)), _value,
                           min_size=1, max_size=12),
    overrides=st.lists(st.tuples(_known, _value), max_size=3),
)
def test_arbitrary_entries_written_into_our_keys_read_back_as_events_or_codec_errors(
    written: tuple[RedisEventStore, redis.Redis],
    fields: dict[bytes, bytes],
    overrides: list[tuple[bytes, bytes]],
) -> None:
    """Figure: 200 generated entries, each written by a plain client both as an
    arbitrary entry and as a well-formed one with arbitrary values in some fields,
    into an aggregate stream and into the feed, then read through the store
    (``read``, ``read_feed``): 800 reads, each an event or a CodecError."""
    store, plain = written
    stream_id = uuid.uuid4().hex
    key = f"{store.layout.prefix}:{{p0}}:stream:{stream_id}"
    feed = store.layout.feed(0)
    shapes = [fields, _as_dict(_well_formed_but_for(overrides, list(STREAM_FIELDS)))]
    for n, shape in enumerate(shapes, 1):
        plain.xadd(key, shape, id=f"{n}-0")  # type: ignore[arg-type]
        error = codec_error_of(store.read, stream_id, n - 1, n)
        assert error is None or (error.stream_id, error.version) == (stream_id, n)
    feed_shapes = [shapes[0], _as_dict(_well_formed_but_for(overrides, list(FEED_FIELDS)))]
    for shape in feed_shapes:
        entry_id = plain.xadd(feed, shape)  # type: ignore[arg-type]
        # The exclusive start finds exactly this entry:
        assert [i for i, _ in plain.xrange(feed, f"({_just_before(entry_id)}", "+")] == [entry_id]
        error = codec_error_of(store.read_feed, 0, _just_before(entry_id), 1)
        assert error is None or error.position == f"0/{entry_id.decode()}"


def _as_dict(flat: list[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[0::2], flat[1::2], strict=True))


def _just_before(entry_id: bytes) -> str:
    """An id below ``entry_id`` and above every id before it (for an exclusive start)."""
    ms, seq = (int(part) for part in entry_id.split(b"-"))
    return f"{ms}-{seq - 1}" if seq else f"{ms - 1}-{2**64 - 1}"
