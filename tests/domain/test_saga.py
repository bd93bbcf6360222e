"""The reservation saga's reducer (TestStore, fake repository, recording children)."""

from __future__ import annotations

from typing import Any

from actors import ManualClock
from actors.testing import TestStore
from domain._events import (
    DomainEvent,
    PaymentDeclined,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    ReservationCancelled,
    ReservationCompensating,
    ReservationCompleted,
    ReservationPaid,
    ReservationPaymentSettled,
    ReservationSeatsHeld,
    ReservationSeatsReturned,
    ReservationStarted,
    SeatsConfirmed,
    SeatsRejected,
    SeatsReleased,
    SeatsReserved,
)
from domain._inventory import ConfirmReservation, ReleaseReservation, ReserveSeats
from domain._outcome import ReservationOutcome, ReservationStatus
from domain._payment import ProcessPayment, RefundPayment
from domain._saga import (
    Deliver,
    DeliverySettled,
    ResumeSaga,
    Saga,
    SagaAppended,
    SagaAppendFailed,
    SagaConflicted,
    SagaEnvironment,
    SagaLoaded,
    SagaSettings,
    SagaState,
    StartRefused,
    StartReservation,
    StepDeadlinePassed,
    evolve_saga,
    reduce_saga,
)
from domain._slots import Slot
from tests.domain.fakes import StreamRepository

RID = "r1"
START = StartReservation(RID, "alice", "gig", "A", 2, (), "tok_ok_4242")
RESERVED = SeatsReserved(
    reservation_id=RID, event_id="gig", section="A", seats=(3, 4), amount_cents=1000
)
PAID = PaymentSucceeded(payment_id=RID, reservation_id=RID, amount_cents=1000, charge_id="ch_r1")
CONFIRMED = SeatsConfirmed(reservation_id=RID, event_id="gig", section="A", seats=(3, 4))
RELEASED = SeatsReleased(reservation_id=RID, event_id="gig", section="A", seats=(3, 4))
DECLINED = PaymentDeclined(
    payment_id=RID, reservation_id=RID, amount_cents=1000, reason="card declined"
)
SETTINGS = SagaSettings(seats_timeout=10, payment_timeout=15, retry_interval=5)


class Children:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def inventory(self, command: Any) -> None:
        self.sent.append(command)

    def payment(self, command: Any) -> None:
        self.sent.append(command)

    def take(self) -> list[Any]:
        sent, self.sent = self.sent, []
        return sent


class Listener:
    def __init__(self) -> None:
        self.outcomes: list[ReservationOutcome] = []
        self.refusals: list[StartRefused] = []
        self.deliveries: list[DeliverySettled] = []

    def settled(self, outcome: ReservationOutcome) -> None:
        self.outcomes.append(outcome)

    def refused(self, refusal: StartRefused) -> None:
        self.refusals.append(refusal)

    def delivered(self, settled: DeliverySettled) -> None:
        self.deliveries.append(settled)


class Harness:
    def __init__(
        self,
        repo: StreamRepository[str, Saga | None] | None = None,
        clock: ManualClock | None = None,
    ) -> None:
        self.repo = repo or saga_repository()
        self.children = Children()
        self.listener = Listener()
        self.env = SagaEnvironment(
            repository=self.repo,
            children=self.children,
            listener=self.listener,
            clock=clock or ManualClock(),
            settings=SETTINGS,
        )
        self.store: TestStore[SagaState, Any, SagaEnvironment] = TestStore(
            reduce_saga, SagaState(), self.env, exhaustive=False
        )
        self.deliveries = 0

    def deliver(self, event: Any) -> DeliverySettled:
        """Deliver a child event as the bus does, and settle it."""
        self.deliveries += 1
        delivery = f"d{self.deliveries}"
        self.store.send(Deliver(event, delivery))
        self.store.skip_received_actions()
        settled = [d for d in self.listener.deliveries if d.delivery_id == delivery]
        assert len(settled) == 1, f"{delivery} settled {len(settled)} times"
        return settled[0]

    def finish(self) -> None:
        """Exhaustive end: nothing left to receive and no timer or effect still running."""
        self.store.skip_received_actions()
        self.store.exhaustive = True
        self.store.finish()

    def saga(self) -> Saga:
        saga = self.store.state.sagas[RID].state
        assert saga is not None
        return saga

    def events(self) -> list[DomainEvent]:
        return self.repo.events(RID)

    def started(self) -> None:
        self.store.send(START)
        self.store.skip_received_actions()


def saga_repository() -> StreamRepository[str, Saga | None]:
    return StreamRepository(lambda rid: None, evolve_saga)


def started_event(deadline: float = 10.0) -> ReservationStarted:
    return ReservationStarted(
        reservation_id=RID,
        customer_id="alice",
        event_id="gig",
        section="A",
        quantity=2,
        seats=(),
        card_token="tok_ok_4242",
        started_at=0.0,
        deadline=deadline,
    )


def test_a_reservation_holds_seats_then_pays_then_confirms_and_completes() -> None:
    h = Harness()
    store = h.store
    store.exhaustive = True
    saga = Saga(RID, "alice", "gig", "A", 2, (), "tok_ok_4242", 0.0, deadline=10.0)
    store.send(
        START,
        lambda s: s.sagas.__setitem__(
            RID,
            Slot(
                phase="ready",
                state=saga,
                writing=(START,),
                replies=(ReserveSeats(RID, "gig", "A", 2),),
            ),
        ),
    )

    def appended(s: SagaState) -> None:
        s.sagas[RID] = Slot(phase="ready", state=saga, version=1)
        s.timers[RID] = (ReservationStatus.RESERVING_SEATS, 10.0)

    store.receive(SagaAppended(RID, 1), appended)
    assert h.children.take() == [ReserveSeats(RID, "gig", "A", 2)]
    assert h.events() == [started_event()]

    store.exhaustive = False  # from here, checked through what was recorded and sent
    assert h.deliver(RESERVED) == DeliverySettled("d1")
    assert h.children.take() == [ProcessPayment(RID, RID, 1000, "tok_ok_4242")]
    assert h.events()[-1] == ReservationSeatsHeld(
        reservation_id=RID, seats=(3, 4), amount_cents=1000, payment_id=RID, deadline=15.0
    )
    assert store.state.timers[RID] == (ReservationStatus.PROCESSING_PAYMENT, 15.0)

    h.deliver(PAID)
    assert h.children.take() == [ConfirmReservation(RID, "gig", "A")]
    assert h.events()[-1] == ReservationPaid(reservation_id=RID, charge_id="ch_r1", deadline=5.0)

    h.deliver(CONFIRMED)
    assert h.events()[-1] == ReservationCompleted(reservation_id=RID, completed_at=0.0)
    assert h.saga().status is ReservationStatus.COMPLETED
    assert h.listener.outcomes == [
        ReservationOutcome(RID, ReservationStatus.COMPLETED, "alice", "gig", "A", 2, (3, 4), 1000)
    ]
    assert store.state.timers == {}  # the timer is cancelled, not left to fire
    store.exhaustive = True
    store.finish()


def test_seats_are_released_when_the_payment_is_declined() -> None:
    h = Harness()
    h.started()
    h.deliver(RESERVED)
    h.children.take()
    h.deliver(DECLINED)
    assert h.children.take() == [ReleaseReservation(RID, "gig", "A")]
    assert h.events()[-1] == ReservationCompensating(
        reservation_id=RID,
        reason="payment_declined",
        release_seats=True,
        refund_payment=False,
        deadline=5.0,
        detail="card declined",
    )
    h.deliver(RELEASED)
    assert h.events()[-2:] == [
        ReservationSeatsReturned(reservation_id=RID),
        ReservationCancelled(reservation_id=RID, reason="payment_declined", cancelled_at=0.0),
    ]
    assert [(o.status, o.detail) for o in h.listener.outcomes] == [
        (ReservationStatus.PAYMENT_DECLINED, "card declined")
    ]
    h.finish()


def test_a_reservation_refused_by_the_inventory_is_rejected_with_the_reason() -> None:
    h = Harness()
    h.started()
    h.deliver(
        SeatsRejected(
            reservation_id=RID, event_id="gig", section="A", quantity=2, reason="sold_out"
        )
    )
    assert h.saga().status is ReservationStatus.REJECTED
    assert h.listener.outcomes[-1].reason == "sold_out"
    assert h.children.take() == [ReserveSeats(RID, "gig", "A", 2)]  # nothing to undo
    h.finish()


def test_the_seat_step_timing_out_releases_whatever_the_inventory_may_have_held() -> None:
    h = Harness()
    h.started()
    h.children.take()
    h.store.advance(10)
    h.store.receive(StepDeadlinePassed(RID, ReservationStatus.RESERVING_SEATS, 10.0))
    h.store.skip_received_actions()
    assert h.children.take() == [ReleaseReservation(RID, "gig", "A")]
    # The inventory never saw the reserve: it closes the id with an empty release.
    h.deliver(SeatsReleased(reservation_id=RID, event_id="gig", section="A", seats=()))
    assert h.saga().status is ReservationStatus.TIMED_OUT
    assert h.listener.outcomes[-1].status is ReservationStatus.TIMED_OUT
    h.finish()


def test_a_payment_that_succeeds_after_the_saga_timed_out_is_refunded() -> None:
    h = Harness()
    h.started()
    h.deliver(RESERVED)
    h.children.take()
    h.store.advance(15)
    h.store.skip_received_actions()
    # Compensation in reverse order of what was done: the payment, then the seats.
    assert h.children.take() == [RefundPayment(RID, RID), ReleaseReservation(RID, "gig", "A")]
    h.deliver(RELEASED)
    assert h.saga().status is ReservationStatus.COMPENSATING  # the refund is still owed
    h.deliver(PAID)  # the slow charge lands now
    assert h.children.take() == [RefundPayment(RID, RID)]
    assert h.saga().status is ReservationStatus.COMPENSATING
    h.deliver(
        PaymentRefunded(payment_id=RID, reservation_id=RID, refunded_cents=1000, refund_id="re_r1")
    )
    assert h.events()[-2:] == [
        ReservationPaymentSettled(reservation_id=RID, refunded_cents=1000),
        ReservationCancelled(reservation_id=RID, reason="timed_out", cancelled_at=15.0),
    ]
    assert h.saga().refunded_cents == 1000
    assert h.listener.outcomes[-1].status is ReservationStatus.TIMED_OUT
    h.finish()


def test_the_same_child_event_delivered_twice_changes_nothing() -> None:
    h = Harness()
    h.started()
    h.deliver(RESERVED)
    h.children.take()
    before_state = h.store.state
    events = h.events()
    import copy

    before = copy.deepcopy(before_state)
    assert h.deliver(RESERVED) == DeliverySettled("d2")  # settled: the bus may acknowledge it
    assert h.events() == events
    assert h.children.take() == []
    assert h.store.state.sagas[RID].state == before.sagas[RID].state
    assert h.store.state.timers == before.timers


def test_a_gateway_timeout_during_payment_compensates_with_a_refund() -> None:
    h = Harness()
    h.started()
    h.deliver(RESERVED)
    h.children.take()
    h.deliver(
        PaymentFailed(
            payment_id=RID, reservation_id=RID, amount_cents=1000, reason="lost", uncertain=True
        )
    )
    assert h.children.take() == [RefundPayment(RID, RID), ReleaseReservation(RID, "gig", "A")]
    h.deliver(RELEASED)
    h.deliver(
        PaymentRefunded(payment_id=RID, reservation_id=RID, refunded_cents=1000, refund_id="re_r1")
    )
    assert h.saga().status is ReservationStatus.PAYMENT_FAILED


def test_confirming_retries_on_its_timer_and_never_gives_up() -> None:
    h = Harness()
    h.started()
    h.deliver(RESERVED)
    h.deliver(PAID)
    h.children.take()
    for _ in range(3):
        h.store.advance(5)
        h.store.skip_received_actions()
        assert h.children.take() == [ConfirmReservation(RID, "gig", "A")]
        assert h.saga().status is ReservationStatus.CONFIRMING
    h.deliver(CONFIRMED)
    assert h.saga().status is ReservationStatus.COMPLETED
    h.finish()


def test_after_a_restart_a_saga_whose_deadline_passed_compensates_without_resending_the_step() -> (
    None
):
    repo = saga_repository()
    repo.write(
        RID,
        started_event(),
        ReservationSeatsHeld(
            reservation_id=RID, seats=(3, 4), amount_cents=1000, payment_id=RID, deadline=15.0
        ),
    )
    clock = ManualClock(start=100.0)  # the process was down past the deadline
    h = Harness(repo, clock)
    h.store.send(ResumeSaga(RID))
    h.store.receive(SagaLoaded)
    h.store.skip_received_actions()
    # The step is not re-sent (no charge after its time ran out): it compensates at once.
    assert h.saga().status is ReservationStatus.COMPENSATING
    assert h.children.take() == [RefundPayment(RID, RID), ReleaseReservation(RID, "gig", "A")]
    assert h.store.state.timers[RID][0] is ReservationStatus.COMPENSATING


def test_a_saga_whose_deadline_is_ahead_is_resumed_with_the_time_left() -> None:
    repo = saga_repository()
    repo.write(RID, started_event(deadline=110.0))
    h = Harness(repo, ManualClock(start=104.0))
    h.store.send(ResumeSaga(RID))
    h.store.skip_received_actions()
    assert h.children.take() == [ReserveSeats(RID, "gig", "A", 2)]
    h.store.advance(5.9)
    assert h.saga().status is ReservationStatus.RESERVING_SEATS
    h.store.advance(0.1)
    h.store.skip_received_actions()
    assert h.saga().status is ReservationStatus.COMPENSATING


def test_starting_the_same_reservation_again_announces_its_outcome_and_records_nothing() -> None:
    h = Harness()
    h.started()
    h.deliver(
        SeatsRejected(
            reservation_id=RID, event_id="gig", section="A", quantity=2, reason="sold_out"
        )
    )
    events = h.events()
    h.store.send(START)
    h.store.skip_received_actions()
    assert h.events() == events
    assert [o.status for o in h.listener.outcomes] == [ReservationStatus.REJECTED] * 2


def test_an_id_taken_by_another_request_is_refused() -> None:
    repo = saga_repository()
    repo.write(RID, started_event())
    h = Harness(repo)
    h.store.send(StartReservation(RID, "bob", "gig", "A", 1, (), "tok_ok_4242"))
    h.store.skip_received_actions()  # optimistic start conflicts, reloads, decides again
    assert h.listener.refusals == [StartRefused(RID, "the id belongs to another reservation")]
    assert h.events() == [started_event()]


def test_a_decision_that_loses_a_race_is_decided_again_on_the_stream_and_not_acted_on() -> None:
    h = Harness()
    h.started()
    h.children.take()
    # Another process handled SeatsReserved first.
    h.repo.write(
        RID,
        ReservationSeatsHeld(
            reservation_id=RID, seats=(3, 4), amount_cents=1000, payment_id=RID, deadline=15.0
        ),
    )
    h.store.send(Deliver(RESERVED, "x1"))
    h.store.receive(SagaConflicted)
    h.store.receive(SagaLoaded)
    h.store.receive(SagaAppended(RID, 2))  # nothing to record: the version was checked
    assert h.listener.deliveries == [DeliverySettled("x1")]
    assert h.children.take() == []  # the other process sent the payment
    assert h.saga().status is ReservationStatus.PROCESSING_PAYMENT
    assert h.store.state.timers[RID] == (ReservationStatus.PROCESSING_PAYMENT, 15.0)


def test_an_event_a_stale_saga_would_ignore_is_decided_again_once_the_saga_is_current() -> None:
    h = Harness()
    h.started()
    h.children.take()
    # Another process handled SeatsReserved and recorded it; this store did not see it.
    h.repo.write(
        RID,
        ReservationSeatsHeld(
            reservation_id=RID, seats=(3, 4), amount_cents=1000, payment_id=RID, deadline=15.0
        ),
    )
    # The payment's success arrives here. On the stale state (reserving seats) it means
    # nothing; acknowledging it as such would lose it for the saga.
    settled = h.deliver(PAID)
    assert settled.ok
    assert h.saga().status is ReservationStatus.CONFIRMING
    assert h.children.take() == [ConfirmReservation(RID, "gig", "A")]
    assert isinstance(h.events()[-1], ReservationPaid)


def test_a_delivery_whose_reaction_cannot_be_recorded_is_settled_as_failed_for_redelivery() -> None:
    h = Harness()
    h.started()
    h.repo.fail_appends = 1
    h.store.send(Deliver(RESERVED, "x1"))
    h.store.receive(SagaAppendFailed)
    (settled,) = h.listener.deliveries
    assert not settled.ok
    h.store.skip_received_actions()
    # Reloaded, nothing changed: the redelivery will find the saga as it was.
    assert h.saga().status is ReservationStatus.RESERVING_SEATS
    h.deliver(RESERVED)
    assert h.saga().status is ReservationStatus.PROCESSING_PAYMENT


def test_a_stale_timer_changes_nothing() -> None:
    h = Harness()
    h.started()
    h.deliver(RESERVED)
    events = h.events()
    h.store.send(StepDeadlinePassed(RID, ReservationStatus.RESERVING_SEATS, 10.0))
    h.store.skip_received_actions()
    assert h.events() == events


def test_finished_sagas_are_evicted_but_unfinished_ones_are_kept() -> None:
    h = Harness()
    env = h.env
    h.store.environment = SagaEnvironment(
        env.repository,
        env.children,
        env.listener,
        env.clock,
        SagaSettings(seats_timeout=10, payment_timeout=15, retry_interval=5, max_sagas=1),
    )
    for n in range(3):
        h.store.send(StartReservation(f"x{n}", "c", "gig", "A", 1, (), "tok"))
        h.store.skip_received_actions()
    h.deliver(
        SeatsRejected(
            reservation_id="x0", event_id="gig", section="A", quantity=1, reason="sold_out"
        )
    )
    h.store.send(StartReservation("x3", "c", "gig", "A", 1, (), "tok"))
    h.store.skip_received_actions()
    assert "x0" not in h.store.state.sagas
    assert {"x1", "x2", "x3"} <= set(h.store.state.sagas)


def test_a_saga_whose_timeout_cannot_be_recorded_while_the_backend_is_down_tries_again() -> None:
    h = Harness()
    h.started()
    h.children.take()
    h.repo.fail_appends = 1  # the timeout's compensation cannot be recorded...
    h.repo.fail_loads = 1  # ...nor the saga reloaded
    h.store.advance(10)
    h.store.skip_received_actions()
    assert RID not in h.store.state.sagas
    assert h.children.take() == []  # nothing acted on: nothing was recorded
    h.store.advance(5)  # the backend is back; the saga is picked up again...
    h.store.skip_received_actions()
    # ...and, its deadline long past, compensates at once instead of re-sending its step.
    assert h.saga().status is ReservationStatus.COMPENSATING
    assert h.children.take() == [ReleaseReservation(RID, "gig", "A")]
