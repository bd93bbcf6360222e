"""The adapters' fast value constructors and GC pause keep the values' semantics."""

from __future__ import annotations

import dataclasses
import gc
import threading

import pytest

from persistence import EventMetadata, FeedPosition, RecordedEvent
from persistence._fast import fast_constructor, gc_paused


def test_a_fast_constructed_value_equals_hashes_and_stays_frozen_like_a_normal_one() -> None:
    build = fast_constructor(FeedPosition)
    fast, normal = build(3, "17-2"), FeedPosition(3, "17-2")

    assert fast == normal
    assert hash(fast) == hash(normal)
    assert type(fast) is FeedPosition
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.partition = 4  # type: ignore[misc]


def test_every_field_of_a_recorded_event_is_set_by_its_fast_constructor() -> None:
    meta = fast_constructor(EventMetadata)("id", "c", None, 1.5, {})
    built = fast_constructor(RecordedEvent)("s", 2, "T", 1, None, meta, FeedPosition(0, "1-0"))

    assert built == RecordedEvent(
        "s", 2, "T", 1, None, EventMetadata("id", "c", None, 1.5, {}), FeedPosition(0, "1-0")
    )


def test_feed_positions_order_by_partition_then_entry_id_numerically() -> None:
    assert FeedPosition(0, "9-0") < FeedPosition(0, "10-0")
    assert FeedPosition(0, "10-1") > FeedPosition(0, "10-0")
    assert FeedPosition(0, "99-0") < FeedPosition(1, "1-0")


def test_the_gc_pause_nests_across_threads_and_restores_the_collector() -> None:
    assert gc.isenabled()
    inside = threading.Event()
    release = threading.Event()

    def other() -> None:
        with gc_paused():
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=other)
    with gc_paused():
        thread.start()
        assert inside.wait(5)
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other thread still pauses it
    release.set()
    thread.join(5)
    assert gc.isenabled()
