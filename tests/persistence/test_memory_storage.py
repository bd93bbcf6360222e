"""How the in-memory adapter keeps events: encoded tuples the cyclic collector does not
track, and the appended objects in the feeds only while some group may still read them."""

from __future__ import annotations

import gc

from persistence import Codec, EventMetadata, MemoryEventStore, MemorySubscriptions, RecordedEvent
from persistence._memory import COOL_EVERY
from tests.persistence.conftest import wait_for
from tests.persistence.events import Deposited


def _tracked() -> int:
    gc.collect()  # the pass that untracks tuples of plain values
    return len(gc.get_objects())


def test_stored_events_add_no_object_for_the_cyclic_collector_to_track(codec: Codec) -> None:
    store = MemoryEventStore(codec, partitions=4)
    store.append("warm", [Deposited(account="a", amount=0)], 0)
    before = _tracked()
    events = 5 * COOL_EVERY
    for n in range(events):
        store.append("long", [Deposited(account="a", amount=n)], n)
    # Kept as model objects, each event was five tracked objects for good (a
    # RecordedEvent, its metadata and position, the model and its field set).
    assert _tracked() - before < events // 10
    assert [e.event.amount for e in store.read("long")] == list(range(events))  # type: ignore[attr-defined]


def test_events_read_back_after_their_objects_were_dropped_equal_what_was_appended(
    codec: Codec,
) -> None:
    store = MemoryEventStore(codec, partitions=1)
    meta = EventMetadata("id-1", "corr", "cause", 12.5, {"tenant": "t1"})
    store.append("s", [Deposited(account="a", amount=1)], 0, meta)
    appended = store.read("s")
    for n in range(COOL_EVERY):  # a cooling pass: no group waits for anything
        store.append(f"other-{n}", [Deposited(account="b", amount=n)], 0)
    again = store.read("s")
    assert again == appended
    assert again[0].metadata == EventMetadata("id-1", "corr", "cause", 12.5, {"tenant": "t1"})
    assert store.read_feed(0, count=1) == appended


def test_a_group_behind_keeps_its_feed_objects_and_one_created_later_still_gets_every_event(
    codec: Codec,
) -> None:
    store = MemoryEventStore(codec, partitions=1)
    subscriptions = MemorySubscriptions(store)
    got: list[RecordedEvent] = []
    behind = subscriptions.subscribe("behind", got.append)
    behind.stop(5)  # subscribed, then stopped: the group waits at the start of the feed
    total = 2 * COOL_EVERY
    for n in range(total):
        store.append(f"s-{n}", [Deposited(account="a", amount=n)], 0)
    feed = store._feeds[0]
    assert all(record is not None for record in feed.hot)  # "behind" has read nothing
    late: list[RecordedEvent] = []
    subscription = subscriptions.subscribe("late", late.append)
    resumed = subscriptions.subscribe("behind", got.append)
    try:
        assert wait_for(lambda: len(late) == total and len(got) == total)
    finally:
        subscription.stop(5)
        resumed.stop(5)
    assert [e.event.amount for e in late] == list(range(total))  # type: ignore[attr-defined]
    for n in range(COOL_EVERY):  # every group is through: the next pass drops them all
        store.append(f"t-{n}", [Deposited(account="a", amount=n)], 0)
    assert feed.hot[:total] == [None] * total
    assert [e.event.amount for e in store.read_feed(0, count=3)] == [0, 1, 2]  # type: ignore[attr-defined]
