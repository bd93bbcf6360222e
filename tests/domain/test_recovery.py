"""Recovery: after a restart, every unfinished saga is found through the index."""

from __future__ import annotations

import json
import time

from domain import ReservationStatus, TicketingSystem
from domain._events import (
    ReservationRejected,
    ReservationStarted,
    SagaOpened,
    make_codec,
    reservation_stream,
    saga_index_stream,
)
from persistence import ANY, Persistence


def started(rid: str, deadline: float) -> ReservationStarted:
    return ReservationStarted(
        reservation_id=rid, customer_id="c", event_id="gig", section="A", quantity=1,
        seats=(), card_token="tok_ok_4242", started_at=deadline - 10, deadline=deadline,
    )  # fmt: skip


def test_a_restart_resumes_open_sagas_drops_finished_ones_and_keeps_young_orphans() -> None:
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
