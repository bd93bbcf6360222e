"""The ProjectionStore contract (and rebuilds), run on the memory and the Redis adapter."""

from __future__ import annotations

import threading

import pytest

from persistence import (
    ANY,
    InvalidProjectionUpdate,
    Persistence,
    ProjectionStore,
    ProjectionUpdate,
    RecordedEvent,
    rebuild_projection,
)
from tests.persistence.events import Deposited, Withdrawn


def balances(event: RecordedEvent, store: ProjectionStore) -> None:
    """The projector under test: one hash per account, position = stream version."""
    change = event.event
    assert isinstance(change, Deposited | Withdrawn)
    sign = 1 if isinstance(change, Deposited) else -1
    store.apply(
        f"balance:{event.stream_id}",
        event.version,
        set_fields={"account": change.account, "last": event.type_name},
        increments={"balance": sign * change.amount, "events": 1},
    )


def snapshot_of(store: ProjectionStore) -> dict[str, dict[str, str] | None]:
    return {key: store.get(key) for key in sorted(store.keys())}


def fill(adapter: Persistence, accounts: int = 5, per_account: int = 6) -> None:
    for n in range(per_account):
        for a in range(accounts):
            event = (
                Deposited(account=f"a{a}", amount=10 + n)
                if n % 3
                else Withdrawn(account=f"a{a}", amount=n)
            )
            adapter.events.append(f"acct-{a}", [event], ANY)


def test_an_update_applies_once_and_records_its_position(adapter: Persistence) -> None:
    store = adapter.projections

    assert store.apply("k", 1, {"name": "x", "n": 5}, {"count": 2})
    assert store.get("k") == {"name": "x", "n": "5", "count": "2", "_position": "1"}
    assert store.position("k") == 1

    assert store.apply("k", 2, None, {"count": 3, "n": 1})
    assert store.get("k") == {"name": "x", "n": "6", "count": "5", "_position": "2"}


def test_an_update_at_or_below_the_applied_position_changes_nothing(
    adapter: Persistence,
) -> None:
    store = adapter.projections
    store.apply("k", 5, {"v": "five"}, {"count": 1})

    assert not store.apply("k", 5, {"v": "again"}, {"count": 1})
    assert not store.apply("k", 3, {"v": "older"}, {"count": 1})
    assert store.get("k") == {"v": "five", "count": "1", "_position": "5"}


def test_a_missing_hash_reads_as_none_at_position_zero(adapter: Persistence) -> None:
    assert adapter.projections.get("nothing") is None
    assert adapter.projections.position("nothing") == 0


def test_incrementing_a_non_integer_field_fails_and_changes_nothing(
    adapter: Persistence,
) -> None:
    store = adapter.projections
    store.apply("k", 1, {"name": "x"})

    with pytest.raises(InvalidProjectionUpdate, match="name"):
        store.apply("k", 2, {"other": "y"}, {"name": 1})

    assert store.get("k") == {"name": "x", "_position": "1"}


def test_the_position_field_is_reserved(adapter: Persistence) -> None:
    with pytest.raises(InvalidProjectionUpdate):
        adapter.projections.apply("k", 1, {"_position": "9"})
    with pytest.raises(InvalidProjectionUpdate):
        adapter.projections.apply("k", 1, None, {"_position": 9})


def test_apply_many_applies_each_update_in_order_as_apply_would(adapter: Persistence) -> None:
    store = adapter.projections
    store.apply("b", 3, {"v": "three"})

    applied = store.apply_many(
        [
            ProjectionUpdate("a", 1, {"name": "x"}, {"count": 1}),
            ProjectionUpdate("a", 2, None, {"count": 2}),
            ProjectionUpdate("b", 2, {"v": "older"}),  # at or below b's position
            ProjectionUpdate("a", 2, None, {"count": 100}),  # a replay
        ]
    )

    assert applied == [True, True, False, False]
    assert store.get("a") == {"name": "x", "count": "3", "_position": "2"}
    assert store.get("b") == {"v": "three", "_position": "3"}
    assert store.apply_many([]) == []


def test_apply_many_attempts_every_update_then_raises_the_first_invalid_one(
    adapter: Persistence,
) -> None:
    store = adapter.projections
    store.apply("k", 1, {"name": "x"})

    with pytest.raises(InvalidProjectionUpdate, match="name"):
        store.apply_many(
            [
                ProjectionUpdate("k", 2, None, {"name": 1}),  # not an integer
                ProjectionUpdate("j", 1, {"_position": "9"}),  # a reserved field
                ProjectionUpdate("m", 1, {"ok": "yes"}),
            ]
        )

    assert store.get("k") == {"name": "x", "_position": "1"}
    assert store.get("j") is None
    assert store.get("m") == {"ok": "yes", "_position": "1"}


def test_deleting_a_hash_removes_it(adapter: Persistence) -> None:
    adapter.projections.apply("k", 1, {"a": "b"})
    adapter.projections.delete("k")
    assert adapter.projections.get("k") is None
    assert list(adapter.projections.keys()) == []


def test_applying_the_whole_feed_twice_leaves_the_same_hashes(adapter: Persistence) -> None:
    fill(adapter)
    store = adapter.projections

    def replay() -> None:
        for partition in range(adapter.events.partitions):
            for event in adapter.events.read_feed(partition, count=10_000):
                balances(event, store)

    replay()
    once = snapshot_of(store)
    replay()

    assert snapshot_of(store) == once
    assert once["balance:acct-0"] == {
        "account": "a0",
        "last": "Deposited",
        "balance": str(-0 + 11 + 12 - 3 + 14 + 15),
        "events": "6",
        "_position": "6",
    }


def test_a_rebuilt_projection_equals_the_live_one(adapter: Persistence) -> None:
    fill(adapter, per_account=3)
    total = 5 * 3
    seen = threading.Semaphore(0)

    def live(event: RecordedEvent) -> None:
        # A live projector as rebuild_projection needs one (the domain's Projector is
        # one): the generation resolved once per event, and a stream's events applied
        # in version order, a gap caught up from the event store first. Applying
        # version v to the new generation while it holds fewer would skip the ones
        # between for good (an update at or below the position changes nothing).
        view = adapter.projections.at_generation(adapter.projections.generation())
        known = view.position(f"balance:{event.stream_id}")
        for missing in adapter.events.read(event.stream_id, known, event.version - 1):
            balances(missing, view)
        balances(event, view)
        seen.release()

    subscription = adapter.subscriptions.subscribe("live", live)
    try:
        # Appends go on while the rebuild runs: the switch and catch-up must not lose any.
        writer = threading.Thread(target=fill, args=(adapter,), kwargs={"per_account": 3})
        writer.start()
        generation = rebuild_projection(adapter.events, adapter.projections, balances)
        writer.join(30)
        for _ in range(total * 2):
            assert seen.acquire(timeout=5)
    finally:
        subscription.stop(5)

    rebuilt = snapshot_of(adapter.projections)
    assert adapter.projections.generation() == generation
    expected = adapter.projections.at_generation(adapter.projections.new_generation())
    for partition in range(adapter.events.partitions):
        for event in adapter.events.read_feed(partition, count=10_000):
            balances(event, expected)
    assert rebuilt == snapshot_of(expected)
    assert len(rebuilt) == 5
    assert all(hash_ is not None and hash_["events"] == "6" for hash_ in rebuilt.values())


def test_a_rebuild_from_given_streams_replaces_the_old_generation(adapter: Persistence) -> None:
    fill(adapter, accounts=2, per_account=2)
    adapter.projections.apply("stale", 1, {"x": "y"})
    old = adapter.projections.generation()

    generation = rebuild_projection(
        adapter.events, adapter.projections, balances, streams=["acct-0", "acct-1"]
    )

    assert generation != old
    assert sorted(adapter.projections.keys()) == ["balance:acct-0", "balance:acct-1"]
    assert list(adapter.projections.at_generation(old).keys()) == []
    assert adapter.projections.position("balance:acct-1") == 2


def test_dropping_the_current_generation_is_refused(adapter: Persistence) -> None:
    with pytest.raises(ValueError, match="current"):
        adapter.projections.drop_generation(adapter.projections.generation())
