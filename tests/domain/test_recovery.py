"""Recovery: after a restart, every unfinished saga is found through the index: the
event store's stream index ``sagas`` (written by each saga's first append), and the
``sagas-{n}`` streams of data that earlier versions recorded."""

from __future__ import annotations

import json
import time

from domain import ReservationStatus, TicketingSystem
from domain._events import (
    SAGA_INDEX,
    ReservationRejected,
    ReservationStarted,
    SagaOpened,
    make_codec,
    reservation_stream,
    saga_index_stream,
)
from domain._system import SAGA_INDEX_CHECKPOINT
from persistence import ANY, Persistence


def started(rid: str, deadline: float) -> ReservationStarted:
    return ReservationStarted(
        reservation_id=rid, customer_id="c", event_id="gig", section="A", quantity=1,
        seats=(), card_token="tok_ok_4242", started_at=deadline - 10, deadline=deadline,
    )  # fmt: skip


def test_a_restart_resumes_the_open_sagas_the_index_lists_and_reads_on_from_its_checkpoint(
) -> None:
    persistence = Persistence.in_memory(make_codec())
    with TicketingSystem.start(persistence=persistence) as first:
        first.create_event("gig", sections={"A": 5}, price_cents=100)
        made = first.reserve("c", "gig", "A", 1)
    events = persistence.events
    assert f"reservation-{made.reservation_id}" in events.read_index(SAGA_INDEX).stream_ids
    now = time.time()

    def saga(rid: str, *more: ReservationRejected) -> None:  # as the saga's first append
        events.append(reservation_stream(rid), [started(rid, now - 20), *more], 0, index=SAGA_INDEX)

    # Left by a process that died: one saga mid-way (its deadline passed), one finished.
    saga("open1")
    saga("done1", ReservationRejected(
        reservation_id="done1", reason="sold_out", detail="", rejected_at=now
    ))  # fmt: skip

    with TicketingSystem.start(persistence=persistence) as second:
        assert second.resumed_at_start == 1
        outcome = second.reserve("c", "gig", "A", 1, reservation_id="open1", timeout=10)
        assert outcome.status is ReservationStatus.TIMED_OUT  # its deadline fired at once
        checkpoint = persistence.snapshots.load(SAGA_INDEX_CHECKPOINT)
        assert checkpoint is not None
        assert json.loads(checkpoint.state)["open"] == ["open1"]  # open when it was read
        assert second.verify(timeout=10).ok
    saga("open2")  # after the checkpoint: read from its cursor on

    with TicketingSystem.start(persistence=persistence) as third:
        assert third.resumed_at_start == 1  # open2; open1 has ended meanwhile
        third.reserve("c", "gig", "A", 1, reservation_id="open2", timeout=10)
    with TicketingSystem.start(persistence=persistence) as fourth:
        assert fourth.resumed_at_start == 0
        checkpoint = persistence.snapshots.load(SAGA_INDEX_CHECKPOINT)
        assert checkpoint is not None
        assert json.loads(checkpoint.state)["open"] == []


def test_an_unreadable_checkpoint_of_the_index_is_passed_over_for_the_whole_index() -> None:
    persistence = Persistence.in_memory(make_codec())
    with TicketingSystem.start(persistence=persistence) as first:
        first.create_event("gig", sections={"A": 5}, price_cents=100)
    rid = "open1"
    persistence.events.append(
        reservation_stream(rid), [started(rid, time.time() - 20)], 0, index=SAGA_INDEX
    )
    persistence.snapshots.save(SAGA_INDEX_CHECKPOINT, 7, b"{not json")

    with TicketingSystem.start(persistence=persistence) as second:
        assert second.resumed_at_start == 1


def test_a_restart_resumes_open_sagas_drops_finished_ones_and_keeps_young_orphans() -> None:
    """Data recorded by earlier versions: the ``sagas-{n}`` index streams."""
    persistence = Persistence.in_memory(make_codec())
    with TicketingSystem.start(persistence=persistence) as first:
        first.create_event("gig", sections={"A": 5}, price_cents=100)
    events = persistence.events
    now = time.time()

    def index(rid: str, opened_at: float) -> None:
        events.append(
            saga_index_stream(rid), [SagaOpened(reservation_id=rid, opened_at=opened_at)], ANY
        )

    # Left by a process that died: one saga mid-way (its deadline passed meanwhile),
    # one finished, one whose start never landed (long ago), one whose start may be
    # in flight right now (a young index entry).
    index("open1", now - 30)
    events.append(reservation_stream("open1"), [started("open1", now - 20)], 0)
    index("done1", now - 30)
    events.append(
        reservation_stream("done1"),
        [
            started("done1", now - 20),
            ReservationRejected(
                reservation_id="done1", reason="sold_out", detail="", rejected_at=now
            ),
        ],
        0,
    )
    index("orphan_old", now - 600)
    index("orphan_new", now - 5)

    with TicketingSystem.start(persistence=persistence) as second:
        assert second.resumed_at_start == 1
        # Its passed deadline fired at once: seats released (none held), timed out.
        outcome = second.reserve("c", "gig", "A", 1, reservation_id="open1", timeout=10)
        assert outcome.status is ReservationStatus.TIMED_OUT
        checkpoint: dict[str, float] = {}
        for rid in ("open1", "done1", "orphan_old", "orphan_new"):
            snapshot = persistence.snapshots.load(saga_index_stream(rid))
            assert snapshot is not None
            checkpoint.update(json.loads(snapshot.state))
        assert set(checkpoint) == {"open1", "orphan_new"}  # open when the index was read
        assert second.verify(timeout=10).ok

    with TicketingSystem.start(persistence=persistence) as third:
        assert third.resumed_at_start == 0  # open1 ended; orphan_new has no saga yet
