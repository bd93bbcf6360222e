"""The EventStore contract, run on the memory and the Redis adapter."""

from __future__ import annotations

import threading

import pytest

from persistence import (
    ANY,
    NO_STREAM,
    ConcurrencyError,
    DuplicateEvent,
    EventMetadata,
    Persistence,
    RecordedEvent,
    UnregisteredEvent,
)
from tests.persistence.events import Deposited, Unregistered, Withdrawn


def deposits(*amounts: int, account: str = "acc") -> list[Deposited]:
    return [Deposited(account=account, amount=amount) for amount in amounts]


def test_appended_events_read_back_equal_with_versions_types_and_metadata(
    adapter: Persistence,
) -> None:
    store = adapter.events
    meta = EventMetadata("ev-1", correlation_id="corr", causation_id="cause", extra={"k": "v"})
    result = store.append("acct-1", [Deposited(account="a", amount=5)], NO_STREAM, meta)

    [recorded] = store.read("acct-1")

    assert result.version == 1
    assert recorded.stream_id == "acct-1"
    assert recorded.version == 1
    assert recorded.type_name == "Deposited"
    assert recorded.schema_version == 1
    assert recorded.event == Deposited(account="a", amount=5)
    assert recorded.metadata.event_id == "ev-1"
    assert recorded.metadata.correlation_id == "corr"
    assert recorded.metadata.causation_id == "cause"
    assert dict(recorded.metadata.extra) == {"k": "v"}
    assert recorded.metadata.recorded_at > 0
    assert recorded.position == result.positions[0]
    assert recorded.position.partition == store.partition_of("acct-1")


def test_a_stream_that_was_never_appended_to_is_empty_at_version_zero(
    adapter: Persistence,
) -> None:
    assert adapter.events.read("nobody") == []
    assert adapter.events.stream_version("nobody") == 0


def test_read_returns_the_versions_between_from_and_to(adapter: Persistence) -> None:
    store = adapter.events
    store.append("s", deposits(1, 2, 3, 4, 5), NO_STREAM)

    assert [e.version for e in store.read("s", 2)] == [3, 4, 5]
    assert [e.version for e in store.read("s", 1, 3)] == [2, 3]
    assert [e.event.amount for e in store.read("s", 0, 2)] == [1, 2]  # type: ignore[attr-defined]
    assert store.read("s", 5) == []
    assert store.read("s", 3, 3) == []


def test_events_with_json_mode_fields_round_trip_on_both_adapters(adapter: Persistence) -> None:
    from datetime import UTC, datetime

    at = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    adapter.events.append("s", [Withdrawn(account="a", amount=3, at=at)], NO_STREAM)

    [recorded] = adapter.events.read("s")

    assert recorded.event == Withdrawn(account="a", amount=3, at=at)


def test_a_wrong_expected_version_raises_a_conflict_naming_stream_expected_and_actual(
    adapter: Persistence,
) -> None:
    store = adapter.events
    store.append("s", deposits(1, 2), NO_STREAM)

    with pytest.raises(ConcurrencyError) as caught:
        store.append("s", deposits(3), 1)

    assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == ("s", 1, 2)
    assert str(caught.value) == "stream 's' is at version 2, expected 1"
    assert store.stream_version("s") == 2


def test_a_conflicting_append_writes_nothing_to_the_stream_or_the_feed(
    adapter: Persistence,
) -> None:
    store = adapter.events
    store.append("s", deposits(1), NO_STREAM)
    partition = store.partition_of("s")
    feed_before = store.read_feed(partition)

    with pytest.raises(ConcurrencyError):
        store.append("s", deposits(2, 3), 0)

    assert len(store.read("s")) == 1
    assert store.read_feed(partition) == feed_before


def test_no_stream_accepts_only_a_stream_that_does_not_exist(adapter: Persistence) -> None:
    store = adapter.events
    store.append("s", deposits(1), NO_STREAM)

    with pytest.raises(ConcurrencyError) as caught:
        store.append("s", deposits(2), NO_STREAM)

    assert caught.value.expected == NO_STREAM
    assert caught.value.actual == 1


def test_any_appends_whatever_the_version(adapter: Persistence) -> None:
    store = adapter.events
    assert store.append("s", deposits(1), ANY).version == 1
    assert store.append("s", deposits(2, 3), ANY).version == 3
    assert [e.version for e in store.read("s")] == [1, 2, 3]


def test_a_multi_event_append_is_atomic_with_consecutive_versions(adapter: Persistence) -> None:
    store = adapter.events
    store.append("s", deposits(1), NO_STREAM)

    result = store.append("s", deposits(2, 3, 4), 1)

    assert result.version == 4
    assert len(result.positions) == 3
    assert [e.version for e in store.read("s")] == [1, 2, 3, 4]
    assert [e.position for e in store.read("s", 1)] == list(result.positions)


def test_an_append_with_an_unregistered_event_fails_and_writes_nothing(
    adapter: Persistence,
) -> None:
    with pytest.raises(UnregisteredEvent):
        adapter.events.append("s", [Deposited(account="a", amount=1), Unregistered()], NO_STREAM)
    assert adapter.events.stream_version("s") == 0


def test_an_append_without_events_is_refused(adapter: Persistence) -> None:
    with pytest.raises(ValueError, match="at least one event"):
        adapter.events.append("s", [], NO_STREAM)


def test_re_appending_the_same_event_ids_returns_the_earlier_result_and_writes_nothing(
    adapter: Persistence,
) -> None:
    # What a client retrying after a lost reply does: same events, same ids.
    store = adapter.events
    store.append("s", deposits(1), NO_STREAM)
    metas = [EventMetadata("id-a"), EventMetadata("id-b")]
    first = store.append("s", deposits(2, 3), 1, metas)

    again = store.append("s", deposits(2, 3), 1, metas)

    assert again == first
    assert store.stream_version("s") == 3
    assert len(store.read_feed(store.partition_of("s"))) == 3


def test_re_appending_with_one_shared_metadata_is_also_recognised_as_a_retry(
    adapter: Persistence,
) -> None:
    store = adapter.events
    meta = EventMetadata("cmd-42", correlation_id="c")
    first = store.append("s", deposits(1, 2), NO_STREAM, meta)

    again = store.append("s", deposits(1, 2), NO_STREAM, meta)

    assert again == first
    assert [e.metadata.event_id for e in store.read("s")] == ["cmd-42", "cmd-42/1"]


def test_re_appending_with_any_is_a_retry_while_the_events_are_the_last(
    adapter: Persistence,
) -> None:
    store = adapter.events
    metas = [EventMetadata("x1")]
    first = store.append("s", deposits(1), ANY, metas)

    assert store.append("s", deposits(1), ANY, metas) == first
    assert store.stream_version("s") == 1


def test_event_ids_of_an_earlier_append_mixed_with_new_ones_are_refused(
    adapter: Persistence,
) -> None:
    store = adapter.events
    store.append("s", deposits(1, 2), NO_STREAM, [EventMetadata("a"), EventMetadata("b")])

    with pytest.raises(DuplicateEvent) as caught:
        store.append("s", deposits(1, 9), NO_STREAM, [EventMetadata("a"), EventMetadata("new")])

    assert (caught.value.stream_id, caught.value.event_id, caught.value.version) == ("s", "a", 1)
    assert store.stream_version("s") == 2


def test_sixteen_threads_retrying_on_conflict_leave_versions_one_to_n_without_gaps(
    adapter: Persistence,
) -> None:
    store = adapter.events
    threads_count, per_thread = 16, 8
    conflicts = [0] * threads_count
    barrier = threading.Barrier(threads_count)
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            for n in range(per_thread):
                event = Deposited(account=f"t{index}", amount=n)
                while True:
                    version = store.stream_version("contended")
                    try:
                        store.append("contended", [event], version)
                        break
                    except ConcurrencyError:
                        conflicts[index] += 1
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors
    events = store.read("contended")
    total = threads_count * per_thread
    assert [e.version for e in events] == list(range(1, total + 1))
    appended = sorted((e.event.account, e.event.amount) for e in events)  # type: ignore[attr-defined]
    assert appended == sorted((f"t{i}", n) for i in range(threads_count) for n in range(per_thread))
    feed = store.read_feed(store.partition_of("contended"), count=10_000)
    assert [e.version for e in feed if e.stream_id == "contended"] == list(range(1, total + 1))


def test_the_feed_of_a_partition_holds_its_appends_in_append_order(adapter: Persistence) -> None:
    store = adapter.events
    streams = [f"stream-{i}" for i in range(40)]
    partition = store.partition_of(streams[0])
    same_partition = [s for s in streams if store.partition_of(s) == partition]
    assert len(same_partition) >= 3
    appended = []
    for round_ in range(3):
        for stream in same_partition:
            result = store.append(stream, deposits(round_, account=stream), ANY)
            appended.append((stream, result.version, result.positions[0]))

    feed = store.read_feed(partition)

    assert [(e.stream_id, e.version, e.position) for e in feed] == appended
    assert [e.position for e in feed] == sorted(e.position for e in feed)


def test_concurrent_appends_land_in_the_feed_in_stream_version_order(
    adapter: Persistence,
) -> None:
    store = adapter.events
    streams = [f"c-{i}" for i in range(8)]

    def writer(stream: str) -> None:
        for n in range(10):
            store.append(stream, deposits(n, account=stream), n)

    threads = [threading.Thread(target=writer, args=(s,)) for s in streams]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    seen: dict[str, list[int]] = {}
    for partition in range(store.partitions):
        for event in store.read_feed(partition, count=10_000):
            seen.setdefault(event.stream_id, []).append(event.version)
    assert seen == {s: list(range(1, 11)) for s in streams}


def test_reading_a_feed_after_an_entry_id_pages_through_it(adapter: Persistence) -> None:
    store = adapter.events
    for n in range(7):
        store.append("paged", deposits(n), ANY)
    partition = store.partition_of("paged")

    pages: list[list[RecordedEvent]] = []
    after = None
    while True:
        page = store.read_feed(partition, after, count=3)
        if not page:
            break
        pages.append(page)
        after = page[-1].position.entry_id

    assert [len(p) for p in pages] == [3, 3, 1]
    assert [e.version for p in pages for e in p] == list(range(1, 8))


def test_trimming_feeds_keeps_what_a_group_has_not_acknowledged(adapter: Persistence) -> None:
    store = adapter.events
    for n in range(5):
        store.append("t", deposits(n), ANY)
    partition = store.partition_of("t")
    assert store.trim_feeds() == 0  # no group: keep everything
    handled = threading.Event()
    seen: list[int] = []

    def handler(event: RecordedEvent) -> None:
        seen.append(event.version)
        if len(seen) == 5:
            handled.set()

    subscription = adapter.subscriptions.subscribe("trimmer", handler)
    assert handled.wait(5)
    subscription.stop(5)
    store.append("t", deposits(99), ANY)  # appended after: not yet delivered to the group

    removed = store.trim_feeds()

    assert removed == 5
    assert [e.version for e in store.read_feed(partition)] == [6]
    assert [e.version for e in store.read("t")] == [1, 2, 3, 4, 5, 6]  # streams never trimmed


def test_a_stream_index_lists_each_stream_its_first_append_creates_once(
    adapter: Persistence,
) -> None:
    store = adapter.events
    store.append("order-1", deposits(1), NO_STREAM, index="orders")
    store.append("order-1", deposits(2), 1, index="orders")  # exists: not listed again
    store.append("order-2", deposits(3, 4), ANY, index="orders")
    store.append("order-3", deposits(5), NO_STREAM)  # no index asked for
    store.append_async("order-4", deposits(6), NO_STREAM, index="orders").result(timeout=5)
    store.append("other-1", deposits(7), NO_STREAM, index="others")

    page = store.read_index("orders")

    assert sorted(page.stream_ids) == ["order-1", "order-2", "order-4"]
    assert store.read_index("others").stream_ids == ("other-1",)
    assert store.read_index("nothing-listed").stream_ids == ()
    assert len(page.cursor) == store.partitions


def test_a_stream_index_lists_nothing_for_a_conflict_or_a_retried_append(
    adapter: Persistence,
) -> None:
    store = adapter.events
    meta = [EventMetadata("ev-a"), EventMetadata("ev-b")]
    store.append("order-1", deposits(1, 2), NO_STREAM, meta, index="orders")
    with pytest.raises(ConcurrencyError):
        store.append("order-1", deposits(3), NO_STREAM, index="orders")
    store.append("order-1", deposits(1, 2), NO_STREAM, meta, index="orders")  # a retry

    assert store.read_index("orders").stream_ids == ("order-1",)


def test_a_stream_index_read_from_a_cursor_lists_only_the_streams_created_since(
    adapter: Persistence,
) -> None:
    store = adapter.events
    first = [f"order-{n}" for n in range(40)]
    for stream_id in first:
        store.append(stream_id, deposits(1), NO_STREAM, index="orders")
    page = store.read_index("orders")
    for stream_id in first:  # more events to the same streams: nothing new listed
        store.append(stream_id, deposits(2), 1, index="orders")
    later = [f"order-{n}" for n in range(40, 50)]
    for stream_id in later:
        store.append(stream_id, deposits(1), NO_STREAM, index="orders")

    since = store.read_index("orders", after=page.cursor)

    assert sorted(page.stream_ids) == sorted(first)
    assert sorted(since.stream_ids) == sorted(later)
    assert store.read_index("orders", after=since.cursor).stream_ids == ()
    # Within a partition, in the order the streams were created.
    for partition in range(store.partitions):
        mine = [s for s in page.stream_ids + since.stream_ids if store.partition_of(s) == partition]
        assert mine == [s for s in first + later if store.partition_of(s) == partition]


def test_a_stream_index_refuses_a_bad_name_or_a_cursor_of_another_layout(
    adapter: Persistence,
) -> None:
    store = adapter.events
    with pytest.raises(ValueError, match="stream index"):
        store.append("order-1", deposits(1), NO_STREAM, index="bad name")
    with pytest.raises(ValueError, match="stream index"):
        store.read_index("{bad}")
    with pytest.raises(ValueError, match="cursor"):
        store.read_index("orders", after=("0",))
    assert store.stream_version("order-1") == 0
