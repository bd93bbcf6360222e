"""The SnapshotStore contract, run on the memory and the Redis adapter."""

from __future__ import annotations

import json

from persistence import ANY, Persistence, RecordedEvent
from tests.persistence.events import Deposited, Withdrawn


def fold(state: dict[str, int], events: list[RecordedEvent]) -> dict[str, int]:
    """An aggregate's state: balance and event count."""
    state = dict(state)
    for recorded in events:
        change = recorded.event
        assert isinstance(change, Deposited | Withdrawn)
        sign = 1 if isinstance(change, Deposited) else -1
        state["balance"] = state.get("balance", 0) + sign * change.amount
        state["count"] = state.get("count", 0) + 1
    return state


def test_a_snapshot_plus_the_tail_loads_the_same_state_as_the_full_stream(
    adapter: Persistence,
) -> None:
    for n in range(30):
        event = Deposited(account="a", amount=n) if n % 4 else Withdrawn(account="a", amount=n)
        adapter.events.append("acct", [event], ANY)
    at_20 = fold({}, adapter.events.read("acct", 0, 20))
    assert adapter.snapshots.save("acct", 20, json.dumps(at_20).encode())

    snapshot = adapter.snapshots.load("acct")
    assert snapshot is not None
    tail = adapter.events.read("acct", snapshot.version)
    from_snapshot = fold(json.loads(snapshot.state), tail)

    assert [e.version for e in tail] == list(range(21, 31))
    assert from_snapshot == fold({}, adapter.events.read("acct"))


def test_saving_keeps_the_newer_snapshot(adapter: Persistence) -> None:
    snapshots = adapter.snapshots
    assert snapshots.save("s", 5, b"five")
    assert not snapshots.save("s", 3, b"three")
    assert not snapshots.save("s", 5, b"five again")
    assert snapshots.save("s", 8, b"\x00\xffeight")

    snapshot = snapshots.load("s")
    assert snapshot is not None
    assert (snapshot.stream_id, snapshot.version, snapshot.state) == ("s", 8, b"\x00\xffeight")


def test_a_stream_without_snapshot_loads_none_and_delete_removes_one(
    adapter: Persistence,
) -> None:
    assert adapter.snapshots.load("none") is None
    adapter.snapshots.save("s", 1, b"x")
    adapter.snapshots.delete("s")
    assert adapter.snapshots.load("s") is None
