"""Projections and the invariant checks, against a real (in-memory) event store."""

from __future__ import annotations

import random

import pytest

from domain._events import (
    SAGA_INDEX,
    EventCreated,
    EventListed,
    ReservationCompleted,
    ReservationPaid,
    ReservationSeatsHeld,
    ReservationStarted,
    SagaOpened,
    SeatsConfirmed,
    SeatsReserved,
    SectionInitialized,
    catalog_stream,
    event_stream,
    inventory_stream,
    make_codec,
    reservation_stream,
    saga_index_stream,
)
from domain._projections import Projector, availability_key, reservation_fields, reservation_key
from domain._saga import evolve_saga
from domain._verify import (
    NO_SEAT_SOLD_TWICE,
    PROJECTIONS_MATCH,
    SAGAS_TERMINAL,
    verify_store,
)
from persistence import ANY, Persistence, RecordedEvent

STREAM = inventory_stream("gig", "A")


def reserved(rid: str, *seats: int) -> SeatsReserved:
    return SeatsReserved(
        reservation_id=rid, event_id="gig", section="A", seats=seats, amount_cents=100 * len(seats)
    )


def confirmed(rid: str, *seats: int) -> SeatsConfirmed:
    return SeatsConfirmed(reservation_id=rid, event_id="gig", section="A", seats=seats)


def section_stream(persistence: Persistence) -> list[RecordedEvent]:
    events = persistence.events
    events.append(catalog_stream(), [EventListed(event_id="gig")], ANY)
    events.append(
        event_stream("gig"), [EventCreated(event_id="gig", sections={"A": 10}, price_cents=100)], 0
    )
    init = SectionInitialized(event_id="gig", section="A", capacity=10, price_cents=100)
    events.append(STREAM, [init], 0)
    for n in range(6):
        events.append(STREAM, [reserved(f"r{n}", n + 1)], ANY)
    for n in range(3):
        events.append(STREAM, [confirmed(f"r{n}", n + 1)], ANY)
    return events.read(STREAM)


def test_availability_is_right_whatever_order_and_however_often_events_arrive() -> None:
    persistence = Persistence.in_memory(make_codec())
    recorded = section_stream(persistence)
    deliveries = recorded * 2
    random.Random(5).shuffle(deliveries)
    projector = Projector(persistence.events, persistence.projections)
    for event in deliveries:
        projector(event)
    fields = persistence.projections.get(availability_key("gig", "A"))
    assert fields is not None
    assert (fields["available"], fields["reserved"], fields["sold"]) == ("4", "3", "3")
    assert fields["_position"] == str(len(recorded))


def test_a_reservation_hash_equals_the_fold_of_its_stream_whatever_the_order() -> None:
    persistence = Persistence.in_memory(make_codec())
    rid = "r1"
    events = [
        ReservationStarted(
            reservation_id=rid, customer_id="c", event_id="gig", section="A", quantity=2,
            seats=(), card_token="tok", started_at=0.0, deadline=1.0,
        ),
        ReservationSeatsHeld(
            reservation_id=rid, seats=(4, 5), amount_cents=200, payment_id=rid, deadline=2.0
        ),
        ReservationPaid(reservation_id=rid, charge_id="ch", deadline=3.0),
        ReservationCompleted(reservation_id=rid, completed_at=4.0),
    ]  # fmt: skip
    persistence.events.append(reservation_stream(rid), events, 0)
    recorded = persistence.events.read(reservation_stream(rid))
    projector = Projector(persistence.events, persistence.projections)
    for event in [recorded[2], recorded[0], recorded[3], recorded[1], recorded[2]]:
        projector(event)
    saga = None
    for event in events:
        saga = evolve_saga(saga, event)
    assert saga is not None
    stored = persistence.projections.get(reservation_key(rid))
    assert stored == {**reservation_fields(saga), "_position": "4"}


def test_verify_finds_a_seat_sold_twice_and_a_projection_that_lies() -> None:
    persistence = Persistence.in_memory(make_codec())
    section_stream(persistence)
    # Written behind every store's back: seat 1 given again, and sold.
    persistence.events.append(STREAM, [reserved("thief", 1), confirmed("thief", 1)], ANY)
    projector = Projector(persistence.events, persistence.projections)
    for event in persistence.events.read(STREAM):
        projector(event)
    key = availability_key("gig", "A")
    persistence.projections.apply(key, 100, {"sold": 0})
    report = verify_store(persistence.events, persistence.projections)
    assert not report.ok
    assert "seat 1 given to thief, held by r0" in report.check(NO_SEAT_SOLD_TWICE).detail
    assert not report.check(PROJECTIONS_MATCH).ok


@pytest.mark.parametrize("listed_by", ["its first append", "an earlier index stream"])
def test_verify_finds_a_saga_left_unfinished(listed_by: str) -> None:
    persistence = Persistence.in_memory(make_codec())
    section_stream(persistence)
    rid = "stuck"
    if listed_by == "an earlier index stream":  # data recorded by earlier versions
        persistence.events.append(
            saga_index_stream(rid), [SagaOpened(reservation_id=rid, opened_at=0.0)], ANY
        )
    started = ReservationStarted(
        reservation_id=rid, customer_id="c", event_id="gig", section="A", quantity=1,
        seats=(), card_token="tok", started_at=0.0, deadline=1.0,
    )  # fmt: skip
    index = SAGA_INDEX if listed_by == "its first append" else None
    persistence.events.append(reservation_stream(rid), [started], 0, index=index)
    report = verify_store(persistence.events, persistence.projections)
    assert report.check(SAGAS_TERMINAL).detail == "stuck is reserving_seats"
