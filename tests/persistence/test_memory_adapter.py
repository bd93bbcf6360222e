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
