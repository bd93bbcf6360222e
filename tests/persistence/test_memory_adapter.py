"""What only the in-process adapter promises: how it holds what it keeps."""

from __future__ import annotations

from persistence import Codec, MemoryEventStore
from tests.persistence.events import Deposited


def test_every_event_of_a_stream_holds_one_id_string_not_a_copy_per_append(
    codec: Codec,
) -> None:
    store = MemoryEventStore(codec)
    for version in range(3):
        # a fresh, equal string per call, as a caller building its ids per command passes
        stream_id = "".join(["account-", "7"])
        store.append(stream_id, [Deposited(account="7", amount=version)], version)

    records = store.read("account-7")

    assert [r.version for r in records] == [1, 2, 3]
    assert len({id(r.stream_id) for r in records}) == 1


def test_a_feed_holds_its_entry_ids_in_eight_bytes_an_entry(codec: Codec) -> None:
    store = MemoryEventStore(codec, partitions=1)
    events = [Deposited(account="7", amount=n) for n in range(1000)]
    store.append("account-7", events, 0)
    feed = store._feeds[0]

    held = feed.keys.itemsize * len(feed.keys)

    assert len(feed.keys) == 1000
    assert held == 8000
    assert [r.position.entry_id for r in store.read_feed(0)] == [
        "{}-{}".format(*feed.key_at(i)) for i in range(1000)
    ]


def test_a_position_whose_sequence_is_past_the_packed_room_still_reads_in_order(
    codec: Codec,
) -> None:
    store = MemoryEventStore(codec, partitions=1)
    store.append("account-7", [Deposited(account="7", amount=n) for n in range(3)], 0)
    first = store.read_feed(0)[0].position.entry_id
    ms = int(first.split("-")[0])

    # another store's (or Redis's) id: same millisecond, a sequence no packed id holds
    after_huge = store.read_feed(0, after=f"{ms}-{2**40}")
    before_all = store.read_feed(0, after=f"{ms - 1}-{2**40}")

    assert all(int(r.position.entry_id.split("-")[0]) > ms for r in after_huge)
    assert [r.version for r in before_all] == [1, 2, 3]


def test_a_millisecond_whose_sequences_run_out_moves_ids_to_the_next_one(
    codec: Codec,
) -> None:
    store = MemoryEventStore(codec, partitions=1)
    feed = store._feeds[0]
    far = 2**41  # a millisecond the clock will not reach during the test
    feed.last = (far, (1 << 22) - 1)

    store.append("account-7", [Deposited(account="7", amount=1)], 0)

    assert store.read_feed(0)[0].position.entry_id == f"{far + 1}-0"
    assert feed.key_at(0) == (far + 1, 0)
