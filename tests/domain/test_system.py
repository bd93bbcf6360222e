"""The ticketing system end to end, on each backend (memory and a real Redis)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from domain import (
    DemoGateway,
    EventConflict,
    InvalidRequest,
    ReservationOutcome,
    ReservationStatus,
    SystemStopped,
    TicketingSystem,
    UnknownEvent,
    UnknownSection,
)
from domain._saga import SagaSettings
from persistence import MemoryEventStore
from tests.domain.conftest import StartSystem

COMPLETED = ReservationStatus.COMPLETED
DECLINED_CARD = "4000000000000002"


def reserve_all(
    reserve: Callable[[tuple[str, str, int]], ReservationOutcome],
    requests: list[tuple[str, str, int]],
    threads: int = 32,
) -> list[ReservationOutcome]:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(reserve, requests))


def check_sections(
    system: TicketingSystem, outcomes: list[ReservationOutcome], capacity: int
) -> None:
    """Exactly the seats that exist are sold; every other request did not fit."""
    for name in {o.section for o in outcomes}:
        done = [o for o in outcomes if o.section == name]
        completed = [o for o in done if o.status is COMPLETED]
        rejected = [o for o in done if o.status is not COMPLETED]
        seats = [seat for o in completed for seat in o.seats]
        assert len(seats) == len(set(seats)), "a seat was sold twice"
        assert len(seats) == sum(o.quantity for o in completed) <= capacity
        availability = system.availability("gig", name)
        assert (availability.sold, availability.reserved) == (len(seats), 0)
        assert availability.available == capacity - len(seats)
        assert {o.status for o in rejected} <= {ReservationStatus.REJECTED}
        assert {o.reason for o in rejected} <= {"sold_out"}
        if rejected:
            # Seats only ever went, never came back: each rejection did not fit then.
            assert availability.available < min(o.quantity for o in rejected)


def test_200_concurrent_reservations_sell_exactly_the_seats_that_exist(start: StartSystem) -> None:
    system = start()
    system.create_event("gig", sections={"A": 50, "B": 50}, price_cents=1000)
    rnd = random.Random(7)
    requests = [(f"c{n}", rnd.choice("AB"), rnd.randint(1, 4)) for n in range(200)]
    outcomes = reserve_all(lambda r: system.reserve(r[0], "gig", r[1], r[2]), requests)
    report = system.verify(timeout=30)
    assert report.ok, report
    check_sections(system, outcomes, capacity=50)
    assert sum(o.status is COMPLETED for o in outcomes) > 20
    assert sum(s.sold for s in report.sections) == sum(o.quantity for o in outcomes if o.completed)


def test_stopping_everything_halfway_and_starting_anew_with_empty_state_finishes_correctly(
    start: StartSystem,
) -> None:
    first = start(node="box")
    first.create_event("gig", sections={"A": 50, "B": 50}, price_cents=1000)
    rnd = random.Random(11)
    requests = [
        (f"r{n}", f"c{n}", rnd.choice("AB"), rnd.randint(1, 4), rnd.random() < 0.2)
        for n in range(200)
    ]
    finished: dict[str, ReservationOutcome] = {}
    interrupted: list[Any] = []
    lock = threading.Lock()
    halfway = threading.Event()

    def reserve(request: Any) -> None:
        rid, customer, section, quantity, declined = request
        card = DECLINED_CARD if declined else "4242424242424242"
        try:
            outcome = first.reserve(customer, "gig", section, quantity, card, reservation_id=rid)
        except SystemStopped:
            with lock:
                interrupted.append(request)
            return
        with lock:
            finished[rid] = outcome
            if len(finished) == 100:
                halfway.set()

    with ThreadPoolExecutor(32) as pool:
        futures = [pool.submit(reserve, request) for request in requests]
        assert halfway.wait(60)
        first.stop()  # every store, mid-flight: sagas, payments and seats in all states
        for future in futures:
            future.result()
    assert interrupted, "the stop should catch reservations in flight"

    second = start(node="box")  # fresh stores, empty state, the same backend
    for rid, customer, section, quantity, declined in interrupted:
        card = DECLINED_CARD if declined else "4242424242424242"
        outcome = second.reserve(customer, "gig", section, quantity, card, reservation_id=rid)
        finished[rid] = outcome
    assert len(finished) == 200
    assert all(o.status.terminal for o in finished.values())
    report = second.verify(timeout=30)
    assert report.ok, report
    assert sum(report.reservations.values()) == 200
    # Answers agree with what was recorded, whichever system gave them.
    for rid, outcome in finished.items():
        again = second.reservation(rid)
        assert again is not None
        assert (again.status, again.seats) == (outcome.status, outcome.seats)
    declined = {r[0] for r in requests if r[4]}
    assert all(finished[rid].status is not COMPLETED for rid in declined)


def test_a_reservation_interrupted_while_paying_completes_after_a_restart(
    start: StartSystem,
) -> None:
    gate = threading.Event()
    stuck = DemoGateway(sleep=lambda seconds: gate.wait(10), latency=1.0)
    first = start(node="box", gateway=stuck)
    first.create_event("gig", sections={"A": 10}, price_cents=500)
    result: list[BaseException | ReservationOutcome] = []

    def reserve() -> None:
        try:
            result.append(first.reserve("alice", "gig", "A", 2, reservation_id="r1"))
        except BaseException as error:
            result.append(error)

    waiting = threading.Thread(target=reserve)
    waiting.start()
    first.settle(timeout=10)
    assert _wait_for(lambda: _status(first, "r1") == ReservationStatus.PROCESSING_PAYMENT)
    first.stop(timeout=0.2)  # the charge never answered
    waiting.join(10)
    assert isinstance(result[0], SystemStopped)

    second = start(node="box")  # a gateway that works
    assert second.resumed_at_start == 1
    outcome = second.reserve("alice", "gig", "A", 2, reservation_id="r1")
    assert outcome.status is COMPLETED
    assert outcome.seats == (1, 2)
    gate.set()  # the old charge finally answers; nobody listens any more
    report = second.verify(timeout=30)
    assert report.ok, report


def test_a_payment_slower_than_its_deadline_times_out_and_the_late_charge_is_refunded(
    start: StartSystem,
) -> None:
    gateway = DemoGateway(latency=0.4)
    system = start(gateway=gateway, saga=SagaSettings(payment_timeout=0.1, retry_interval=0.2))
    system.create_event("gig", sections={"A": 10}, price_cents=500)
    outcome = system.reserve("alice", "gig", "A", 3, timeout=10)
    assert outcome.status is ReservationStatus.TIMED_OUT
    assert gateway.net_charged(outcome.reservation_id) == 0
    assert gateway.charges() == {outcome.reservation_id: 0}  # charged, then refunded
    report = system.verify(timeout=10)
    assert report.ok, report
    assert system.availability("gig", "A").available == 10


def test_a_declined_card_releases_the_seats(start: StartSystem) -> None:
    system = start()
    system.create_event("gig", sections={"A": 4}, price_cents=500)
    declined = system.reserve("bob", "gig", "A", 4, DECLINED_CARD)
    assert declined.status is ReservationStatus.PAYMENT_DECLINED
    assert declined.detail == "card declined"
    assert declined.seats == ()
    taken = system.reserve("carol", "gig", "A", 4)
    assert taken.status is COMPLETED
    assert taken.seats == (1, 2, 3, 4)
    assert system.verify(timeout=10).ok


def test_reserving_again_with_the_same_reservation_id_returns_the_same_outcome(
    start: StartSystem,
) -> None:
    system = start()
    system.create_event("gig", sections={"A": 4}, price_cents=500)
    first = system.reserve("bob", "gig", "A", 2, reservation_id="once")
    again = system.reserve("bob", "gig", "A", 2, reservation_id="once")
    assert again == first
    assert system.settle(timeout=10)  # availability is a projection: eventually consistent
    assert system.availability("gig", "A").sold == 2
    with pytest.raises(InvalidRequest, match="another reservation"):
        system.reserve("mallory", "gig", "A", 1, reservation_id="once")


def test_create_event_is_idempotent_and_refuses_another_definition(start: StartSystem) -> None:
    system = start()
    system.create_event("gig", sections={"A": 4, "B": 2}, price_cents=500)
    system.create_event("gig", sections={"A": 4, "B": 2}, price_cents=500)
    with pytest.raises(EventConflict):
        system.create_event("gig", sections={"A": 5}, price_cents=500)
    availability = system.availability("gig", "B")
    assert (availability.capacity, availability.available, availability.price_cents) == (2, 2, 500)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: s.reserve("alice", "nope", "A", 1), UnknownEvent),
        (lambda s: s.reserve("alice", "gig", "Z", 1), UnknownSection),
        (lambda s: s.reserve("alice", "gig", "A", 0), InvalidRequest),
        (lambda s: s.reserve("alice", "gig", "A", 5), InvalidRequest),
        (lambda s: s.reserve("alice", "gig", "A", True), InvalidRequest),
        (lambda s: s.reserve("alice", "gig", "A", "2"), InvalidRequest),
        (lambda s: s.reserve("al ice", "gig", "A", 1), InvalidRequest),
        (lambda s: s.reserve("alice", "gig", "A", 1, "4242424242424241"), InvalidRequest),
        (lambda s: s.reserve("alice", "gig", "A", 1, "4242"), InvalidRequest),
        (lambda s: s.reserve("alice", "gig", "A", 2, seats=[1, 1]), InvalidRequest),
        (lambda s: s.reserve("alice", "gig", "A", 1, seats=[9]), InvalidRequest),
        (lambda s: s.reserve("alice", "gig", "A", 1, reservation_id="a-b"), InvalidRequest),
        (lambda s: s.reserve("alice", "g-ig", "A", 1), InvalidRequest),
        (lambda s: s.create_event("x-y", {"A": 1}), InvalidRequest),
        (lambda s: s.create_event("x", {}), InvalidRequest),
        (lambda s: s.create_event("x", {"A": 0}), InvalidRequest),
        (lambda s: s.create_event("x", {"A": 1}, price_cents=-1), InvalidRequest),
        (lambda s: s.create_event("x", {"{A}": 1}), InvalidRequest),
        (lambda s: s.availability("gig", "Z"), UnknownSection),
        (lambda s: s.reservation("bad id"), InvalidRequest),
    ],
)
def test_bad_input_gets_a_typed_error_and_nothing_is_written(
    start: StartSystem, call: Callable[[TicketingSystem], object], error: type[Exception]
) -> None:
    system = start()
    system.create_event("gig", sections={"A": 4}, price_cents=500)
    events = system.persistence.events
    before = sorted(events.stream_ids()) if isinstance(events, MemoryEventStore) else None
    with pytest.raises(error):
        call(system)
    if before is not None:
        assert sorted(events.stream_ids()) == before


def test_a_stopped_system_refuses_work_with_a_typed_error(start: StartSystem) -> None:
    system = start()
    system.create_event("gig", sections={"A": 4}, price_cents=500)
    system.stop()
    system.stop()  # idempotent
    with pytest.raises(SystemStopped):
        system.reserve("alice", "gig", "A", 1)


def test_specific_seats_can_be_reserved_and_are_then_taken(start: StartSystem) -> None:
    system = start()
    system.create_event("gig", sections={"A": 10}, price_cents=500)
    first = system.reserve("alice", "gig", "A", 2, seats=[7, 3])
    assert first.seats == (3, 7)
    second = system.reserve("bob", "gig", "A", 1, seats=[7])
    assert (second.status, second.reason) == (ReservationStatus.REJECTED, "seat_taken")


@pytest.mark.redis
def test_two_systems_on_one_redis_competing_for_one_section_never_sell_a_seat_twice(
    redis_url: str, key_prefix: str
) -> None:
    a = TicketingSystem.start(redis_url, key_prefix=key_prefix, node="a")
    b = TicketingSystem.start(redis_url, key_prefix=key_prefix, node="b")
    try:
        a.create_event("gig", sections={"A": 50}, price_cents=100)
        b.create_event("gig", sections={"A": 50}, price_cents=100)
        rnd = random.Random(3)
        requests = [(f"c{n}", n % 2, rnd.randint(1, 4)) for n in range(120)]

        def reserve(request: tuple[str, int, int]) -> ReservationOutcome:
            customer, which, quantity = request
            return (a, b)[which].reserve(customer, "gig", "A", quantity, timeout=60)

        with ThreadPoolExecutor(32) as pool:
            outcomes = list(pool.map(reserve, requests))
        completed = [o for o in outcomes if o.completed]
        seats = [seat for o in completed for seat in o.seats]
        assert len(seats) == len(set(seats)) <= 50
        assert {o.reason for o in outcomes if not o.completed} <= {"sold_out", "contention"}
        report = a.verify(timeout=30)
        assert report.ok, report
        assert report.sections[0].sold == len(seats)
    finally:
        a.stop()
        b.stop()
    again = TicketingSystem.verify_backend(redis_url, key_prefix=key_prefix)
    assert again.ok, again


def test_a_reservation_that_another_system_finishes_is_answered_by_a_notice_not_a_poll(
    start: StartSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ``a`` runs no consumer of the saga bus, so every child event goes to ``b``'s:
    # b's saga store finishes each reservation a started, where nobody waits for it.
    a = start(node="a", saga_consumers=0)
    start(node="b")
    a.create_event("gig", sections={"A": 100}, price_cents=100)
    looked: list[str] = []
    read_saga = a._read_saga

    def look(rid: str) -> Any:
        looked.append(rid)
        return read_saga(rid)

    monkeypatch.setattr(a, "_read_saga", look)
    # A notice that is not an outcome is logged and dropped; the listener goes on.
    a.persistence.notices.publish("ticketing-outcomes", b"not an outcome")
    outcomes = [a.reserve(f"c{n}", "gig", "A", 2, timeout=30) for n in range(10)]
    assert all(o.completed for o in outcomes), outcomes
    assert len({seat for o in outcomes for seat in o.seats}) == 20
    # Each answer came from b's notice: a never had to look at a saga's stream (its
    # fallback, once a second).
    assert looked == []


def _status(system: TicketingSystem, rid: str) -> ReservationStatus | None:
    outcome = system.reservation(rid)
    return None if outcome is None else outcome.status


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    done = threading.Event()
    deadline = threading.Timer(timeout, done.set)
    deadline.start()
    try:
        while not done.is_set():
            if condition():
                return True
            done.wait(0.01)
        return condition()
    finally:
        deadline.cancel()


@pytest.mark.slow
def test_gateway_faults_declines_timeouts_and_a_restart_together_keep_every_invariant(
    start: StartSystem,
) -> None:
    gateway = DemoGateway(latency=(0.0, 0.03), error_rate=0.05, timeout_rate=0.05, seed=5)
    # Gateway timeouts come from timeout_rate (the charge goes through, its answer is
    # lost); the payment deadline leaves room for a loaded machine, where a deadline
    # of a few gateway latencies timed every reservation out and none was declined.
    settings = SagaSettings(seats_timeout=5.0, payment_timeout=1.0, retry_interval=0.2)
    first = start(node="box", gateway=gateway, saga=settings)
    first.create_event("gig", sections={"A": 40, "B": 40, "C": 40}, price_cents=700)
    rnd = random.Random(23)
    requests = [
        (f"r{n}", rnd.choice("ABC"), rnd.randint(1, 4), rnd.random() < 0.15) for n in range(400)
    ]
    current = [first]
    restarted = threading.Event()
    answered = threading.Semaphore(0)

    def reserve(request: tuple[str, str, int, bool]) -> ReservationOutcome:
        rid, section, quantity, declined = request
        card = DECLINED_CARD if declined else "4242424242424242"
        while True:
            system = current[0]
            try:
                outcome = system.reserve(
                    "c", "gig", section, quantity, card, reservation_id=rid, timeout=60
                )
            except SystemStopped:
                assert restarted.wait(60)
                continue
            answered.release()
            return outcome

    with ThreadPoolExecutor(32) as pool:
        futures = [pool.submit(reserve, request) for request in requests]
        for _ in range(200):
            answered.acquire()
        first.stop()
        current[0] = start(node="box", gateway=gateway, saga=settings)
        restarted.set()
        outcomes = [future.result() for future in futures]
    statuses = {o.status for o in outcomes}
    assert {ReservationStatus.COMPLETED, ReservationStatus.PAYMENT_DECLINED} <= statuses
    assert ReservationStatus.PAYMENT_FAILED in statuses or ReservationStatus.TIMED_OUT in statuses
    report = current[0].verify(timeout=60)
    assert report.ok, report
    # The money, as the gateway sees it: kept for completed reservations only.
    for outcome in outcomes:
        assert gateway.net_charged(outcome.reservation_id) == outcome.amount_cents, outcome
