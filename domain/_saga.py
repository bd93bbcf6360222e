"""The reservation saga (pattern 2): one store coordinating inventory and payment.

One store holds many reservations, each with its own saga state, event-sourced in
its own stream ``reservation-{id}`` (see ``_slots`` for the per-key workflow; a
terminal saga is dropped from memory like any idle slot, an unfinished one is kept).

Steps: reserving seats -> processing payment -> confirming -> completed. Seats not
available -> rejected. A declined card, a gateway failure or a step's deadline ->
compensating, in reverse order of what was done: refund the payment (also a charge
that lands after the saga gave up), release the seats -> cancelled, with the reason
as the terminal status (payment_declined, payment_failed, timed_out). The two
compensations are independent, so both are sent at once and awaited together.

The saga sends high-level commands to the child stores (``SagaChildren``) and learns
what they did from their events, delivered by a subscription as ``Deliver`` actions;
it never drives their loads. Its decisions are recorded before anything is sent: a
command goes out only once the event that decided it is in the saga's stream, so a
decision that loses a race (another process wrote first) is re-decided, never acted on.
Every step is idempotent: an event delivered twice changes nothing, and the commands
it sends are idempotent for the children.

Deadlines are part of the recorded state: each step's event carries its deadline,
and whenever a saga is loaded or advanced its timer is (re)armed for that deadline,
so after a restart ``ResumeSaga`` re-arms it (a deadline already past fires at once)
and re-sends the current step's command. The steps that cannot fail for business
reasons (confirming, compensating) retry on their timer instead of giving up.

Threads: the reducer on the store's thread; loads on the executor; appends piped
(``Repository.append_async``), and the sends to the children and calls to the listener
that an append's batch decided made on the thread that completed the append (the event
store's I/O thread on Redis, the store's own in memory): none of them blocks.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from actors import Clock, Effect
from domain._events import (
    CancelReason,
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
    ReservationRejected,
    ReservationSeatsHeld,
    ReservationSeatsReturned,
    ReservationStarted,
    SeatsConfirmed,
    SeatsRejected,
    SeatsReleased,
    SeatsReserved,
)
from domain._inventory import (
    ConfirmReservation,
    InventoryCommand,
    ReleaseReservation,
    ReserveSeats,
)
from domain._outcome import ReservationOutcome, ReservationStatus
from domain._payment import PaymentCommand, ProcessPayment, RefundPayment
from domain._repository import Loaded, Repository, VersionConflict, describe
from domain._slots import Slot, append_effect, evict, load_effect, touch

__all__ = [
    "CHILD_EVENTS",
    "ChildEvent",
    "Deliver",
    "DeliverySettled",
    "ResumeSaga",
    "Saga",
    "SagaAction",
    "SagaAppendFailed",
    "SagaAppended",
    "SagaChildren",
    "SagaConflicted",
    "SagaEnvironment",
    "SagaListener",
    "SagaLoadFailed",
    "SagaLoaded",
    "SagaSettings",
    "SagaState",
    "StartRefused",
    "StartReservation",
    "StepDeadlinePassed",
    "evolve_saga",
    "outcome_of",
    "reduce_saga",
]

log = logging.getLogger("domain.saga")

S = ReservationStatus


# -- the saga's state ----------------------------------------------------------------


@dataclass
class Saga:
    """One reservation's saga, folded from its stream.

    ``deadline`` is when the current step times out (None once terminal); the
    ``awaiting_*`` flags say what compensation still waits for.
    """

    reservation_id: str
    customer_id: str
    event_id: str
    section: str
    quantity: int
    requested_seats: tuple[int, ...]
    card_token: str
    started_at: float
    status: ReservationStatus = S.RESERVING_SEATS
    deadline: float | None = None
    seats: tuple[int, ...] = ()
    amount_cents: int = 0
    payment_id: str = ""
    charge_id: str = ""
    reason: str = ""
    detail: str = ""
    awaiting_release: bool = False
    awaiting_refund: bool = False
    refunded_cents: int = 0
    finished_at: float | None = None


def evolve_saga(saga: Saga | None, event: DomainEvent) -> Saga | None:
    """Apply one saga event; returns the saga (created by ``ReservationStarted``)."""
    if isinstance(event, ReservationStarted):
        if saga is not None:
            return saga
        return Saga(
            reservation_id=event.reservation_id,
            customer_id=event.customer_id,
            event_id=event.event_id,
            section=event.section,
            quantity=event.quantity,
            requested_seats=event.seats,
            card_token=event.card_token,
            started_at=event.started_at,
            deadline=event.deadline,
        )
    if saga is None:
        return None
    if isinstance(event, ReservationSeatsHeld):
        saga.status = S.PROCESSING_PAYMENT
        saga.seats = event.seats
        saga.amount_cents = event.amount_cents
        saga.payment_id = event.payment_id
        saga.deadline = event.deadline
    elif isinstance(event, ReservationPaid):
        saga.status = S.CONFIRMING
        saga.charge_id = event.charge_id
        saga.deadline = event.deadline
    elif isinstance(event, ReservationCompleted):
        saga.status = S.COMPLETED
        saga.deadline = None
        saga.finished_at = event.completed_at
    elif isinstance(event, ReservationRejected):
        saga.status = S.REJECTED
        saga.reason = event.reason
        saga.detail = event.detail
        saga.deadline = None
        saga.finished_at = event.rejected_at
    elif isinstance(event, ReservationCompensating):
        saga.status = S.COMPENSATING
        saga.reason = event.reason
        saga.detail = event.detail
        saga.awaiting_release = event.release_seats
        saga.awaiting_refund = event.refund_payment
        saga.deadline = event.deadline
    elif isinstance(event, ReservationSeatsReturned):
        saga.awaiting_release = False
    elif isinstance(event, ReservationPaymentSettled):
        saga.awaiting_refund = False
        saga.refunded_cents = event.refunded_cents
    elif isinstance(event, ReservationCancelled):
        saga.status = S(event.reason)
        saga.deadline = None
        saga.finished_at = event.cancelled_at
    return saga


def outcome_of(saga: Saga) -> ReservationOutcome:
    """The facade's view of a saga."""
    completed = saga.status is S.COMPLETED
    return ReservationOutcome(
        reservation_id=saga.reservation_id,
        status=saga.status,
        customer_id=saga.customer_id,
        event_id=saga.event_id,
        section=saga.section,
        quantity=saga.quantity,
        seats=saga.seats if completed else (),
        amount_cents=saga.amount_cents if completed else 0,
        reason=saga.reason,
        detail=saga.detail,
    )


# -- actions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartReservation:
    """Start a reservation's saga (idempotent: the same request again changes nothing)."""

    reservation_id: str
    customer_id: str
    event_id: str
    section: str
    quantity: int
    seats: tuple[int, ...]
    card_token: str


@dataclass(frozen=True, slots=True)
class ResumeSaga:
    """Pick an unfinished saga up after a restart: re-arm its timer, re-send its step."""

    reservation_id: str


ChildEvent = (
    SeatsReserved
    | SeatsRejected
    | SeatsConfirmed
    | SeatsReleased
    | PaymentSucceeded
    | PaymentDeclined
    | PaymentFailed
    | PaymentRefunded
)
CHILD_EVENTS: tuple[type[DomainEvent], ...] = (
    SeatsReserved,
    SeatsRejected,
    SeatsConfirmed,
    SeatsReleased,
    PaymentSucceeded,
    PaymentDeclined,
    PaymentFailed,
    PaymentRefunded,
)


@dataclass(frozen=True, slots=True)
class Deliver:
    """A child's event, from the bus; answered by ``DeliverySettled(delivery_id)``
    (told to the listener) once the saga's reaction to it is recorded: then, and only
    then, may the bus acknowledge the event."""

    event: ChildEvent
    delivery_id: str


@dataclass(frozen=True, slots=True)
class StepDeadlinePassed:
    """A step's timer fired; stale when the saga has moved on since it was armed."""

    reservation_id: str
    status: ReservationStatus
    deadline: float


SagaInput = StartReservation | ResumeSaga | Deliver | StepDeadlinePassed


@dataclass(frozen=True, slots=True)
class SagaLoaded:
    reservation_id: str
    loaded: Loaded[Saga | None]


@dataclass(frozen=True, slots=True)
class SagaLoadFailed:
    reservation_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class SagaAppended:
    reservation_id: str
    version: int


@dataclass(frozen=True, slots=True)
class SagaConflicted:
    reservation_id: str
    detail: str


@dataclass(frozen=True, slots=True)
class SagaAppendFailed:
    reservation_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class DeliverySettled:
    """The saga is done with a delivery (told to the listener): ``ok`` when its
    reaction is recorded (the event may be acknowledged), False when it must be
    delivered again."""

    delivery_id: str
    ok: bool = True
    detail: str = ""


@dataclass(frozen=True, slots=True)
class StartRefused:
    """A ``StartReservation`` that could not start (id taken by another request, or
    the backend failed); told to the listener."""

    reservation_id: str
    reason: str


SagaAction = (
    SagaInput | SagaLoaded | SagaLoadFailed | SagaAppended | SagaConflicted | SagaAppendFailed
)

# What a decision leaves to do once its events are recorded.
Outgoing = InventoryCommand | PaymentCommand | ReservationOutcome | StartRefused | DeliverySettled


# -- environment ----------------------------------------------------------------------


class SagaChildren(Protocol):
    """Where the saga's commands go (the inventory and payment stores)."""

    def inventory(self, command: InventoryCommand) -> None: ...

    def payment(self, command: PaymentCommand) -> None: ...


class SagaListener(Protocol):
    """Who hears what the saga did: reservations that ended or could not start (the
    facade's waiters), and deliveries it is done with (the bus's handler)."""

    def settled(self, outcome: ReservationOutcome) -> None: ...

    def refused(self, refusal: StartRefused) -> None: ...

    def delivered(self, settled: DeliverySettled) -> None: ...


@dataclass(frozen=True, slots=True)
class SagaSettings:
    """Args:
    seats_timeout: seconds the inventory has to hold seats (or refuse them).
    payment_timeout: seconds the payment has to succeed or fail.
    retry_interval: seconds between re-sends of a step that cannot fail
        (confirming, compensating).
    max_sagas: finished sagas kept in memory at most (unfinished ones always are).
    saga_ttl: seconds an unused finished saga stays in memory.
    max_attempts: conflicting appends before giving up a batch (it is then retried
        by its sender: the bus redelivers, the timer fires again).
    """

    seats_timeout: float = 10.0
    payment_timeout: float = 15.0
    retry_interval: float = 5.0
    max_sagas: int = 4096
    saga_ttl: float = 60.0
    max_attempts: int = 10


@dataclass(frozen=True, slots=True)
class SagaEnvironment:
    repository: Repository[str, Saga | None]
    children: SagaChildren
    listener: SagaListener
    clock: Clock
    settings: SagaSettings = SagaSettings()


@dataclass
class SagaState:
    """The sagas this store has loaded, and the deadline each one's timer is armed for."""

    sagas: dict[str, Slot[Saga | None, SagaInput]] = field(default_factory=dict)
    timers: dict[str, tuple[ReservationStatus, float]] = field(default_factory=dict)


Effects = list[Effect[SagaAction]]


def _key(reservation_id: str) -> tuple[str, str]:
    return ("saga-deadline", reservation_id)


def _rid(action: SagaInput) -> str:
    if isinstance(action, Deliver):
        return action.event.reservation_id
    return action.reservation_id


# -- the reducer ----------------------------------------------------------------------


def reduce_saga(
    state: SagaState, action: SagaAction, env: SagaEnvironment
) -> Sequence[Effect[SagaAction]]:
    """The saga store's reducer (see the module docstring)."""
    if isinstance(action, StartReservation | ResumeSaga | Deliver | StepDeadlinePassed):
        return _submit(state, action, env)
    if isinstance(action, SagaLoaded):
        slot = state.sagas.get(action.reservation_id)
        if slot is None or slot.phase != "loading":
            return []
        slot.phase = "ready"
        slot.state = action.loaded.state
        slot.version = action.loaded.version
        return _drain(state, action.reservation_id, slot, env)
    if isinstance(action, SagaAppended):
        slot = state.sagas.get(action.reservation_id)
        if slot is None or not slot.writing:
            return []
        # What the batch decided was carried out by the append effect, once recorded.
        slot.version = action.version
        slot.writing = ()
        slot.replies = ()
        slot.attempts = 0
        effects = _timer(state, action.reservation_id, slot.state, env)
        return effects + _drain(state, action.reservation_id, slot, env)
    if isinstance(action, SagaConflicted):
        slot = state.sagas.get(action.reservation_id)
        if slot is None or not slot.writing:
            return []
        slot.attempts += 1
        if slot.attempts < env.settings.max_attempts:
            slot.waiting.extendleft(reversed(slot.writing))
            return _reload(state, action.reservation_id, slot, env)
        return _give_up(state, action.reservation_id, slot, action.detail, env)
    if isinstance(action, SagaAppendFailed):
        slot = state.sagas.get(action.reservation_id)
        if slot is None or not slot.writing:
            return []
        return _give_up(state, action.reservation_id, slot, action.reason, env)
    if isinstance(action, SagaLoadFailed):
        slot = state.sagas.get(action.reservation_id)
        if slot is None or slot.phase != "loading":
            return []
        del state.sagas[action.reservation_id]
        effects = _act(env, action.reservation_id, _failures(slot.waiting, action.reason))
        if any(isinstance(a, ResumeSaga | StepDeadlinePassed) for a in slot.waiting):
            # Nothing else would wake this saga (its timer is spent): try again later.
            retry: Effect[SagaAction] = Effect.delay(
                env.settings.retry_interval, ResumeSaga(action.reservation_id)
            )
            effects.append(retry.cancellable(_key(action.reservation_id), cancel_in_flight=True))
        return effects
    return []


def _submit(state: SagaState, action: SagaInput, env: SagaEnvironment) -> Effects:
    now = env.clock.now()
    rid = _rid(action)
    sagas = state.sagas
    slot = sagas.get(rid)
    if isinstance(action, StepDeadlinePassed) and state.timers.get(rid) == (
        action.status,
        action.deadline,
    ):
        del state.timers[rid]  # that timer is spent
    if slot is None:
        if isinstance(action, StartReservation):
            # A new reservation id (the common case): decide on an empty stream at
            # once; if the stream exists after all, the append conflicts and reloads.
            slot = Slot(phase="ready", waiting=deque((action,)), used_at=now)
            sagas[rid] = slot
            effects = _drain(state, rid, slot, env)
        else:
            sagas[rid] = Slot(waiting=deque((action,)), used_at=now)
            effects = [load_effect(env.repository, rid, SagaLoaded, SagaLoadFailed)]
    else:
        touch(sagas, rid, slot, now)
        slot.waiting.append(action)
        effects = (
            _drain(state, rid, slot, env) if slot.phase == "ready" and not slot.writing else []
        )
    settings = env.settings
    evict(sagas, now, limit=settings.max_sagas, ttl=settings.saga_ttl, evictable=_finished)
    return effects


def _finished(slot: Slot[Saga | None, SagaInput]) -> bool:
    return slot.idle and (slot.state is None or slot.state.status.terminal)


def _drain(
    state: SagaState, rid: str, slot: Slot[Saga | None, SagaInput], env: SagaEnvironment
) -> Effects:
    """Decide the waiting inputs together; append their events, or act at once."""
    if slot.phase != "ready" or slot.writing or not slot.waiting:
        return []
    step = _Step(slot.state, env)
    batch = tuple(slot.waiting)
    slot.waiting.clear()
    for action in batch:
        step.decide(action)
    slot.state = step.saga
    outgoing = tuple(step.outgoing)
    saga = slot.state
    if not step.events and not (
        saga is not None
        and not saga.status.terminal
        and any(isinstance(action, Deliver) for action in batch)
    ):
        return _act(env, rid, outgoing) + _timer(state, rid, saga, env)
    # Deliveries that changed nothing are only acknowledged once the saga is known to
    # be current: another process may have moved it on, and an event ignored by a
    # stale saga would be lost to it. The check costs a read, on a rare path.
    slot.writing = batch
    slot.replies = outgoing
    return [_record(env, rid, tuple(step.events), slot.version, outgoing)]


def _reload(
    state: SagaState, rid: str, slot: Slot[Saga | None, SagaInput], env: SagaEnvironment
) -> Effects:
    slot.writing = ()
    slot.replies = ()
    slot.phase = "loading"
    slot.state = None
    if not slot.waiting:
        del state.sagas[rid]
        return []
    return [load_effect(env.repository, rid, SagaLoaded, SagaLoadFailed)]


def _give_up(
    state: SagaState,
    rid: str,
    slot: Slot[Saga | None, SagaInput],
    reason: str,
    env: SagaEnvironment,
) -> Effects:
    """The batch's events may or may not be stored: tell its senders, reload the saga.

    Deliveries are redelivered by the bus, a start is reported to the listener; the
    reload re-arms the timer of whatever state the stream holds.
    """
    log.warning("saga %s: a batch of %d failed: %s", rid, len(slot.writing), reason)
    failures = _failures(slot.writing, reason)
    slot.attempts = 0
    slot.waiting.appendleft(ResumeSaga(rid))
    return _act(env, rid, failures) + _reload(state, rid, slot, env)


def _failures(inputs: Sequence[SagaInput], reason: str) -> tuple[Outgoing, ...]:
    out: list[Outgoing] = []
    for action in inputs:
        if isinstance(action, Deliver):
            out.append(DeliverySettled(action.delivery_id, ok=False, detail=reason))
        elif isinstance(action, StartReservation):
            out.append(StartRefused(action.reservation_id, f"unavailable: {reason}"))
    return tuple(out)


def _timer(state: SagaState, rid: str, saga: Saga | None, env: SagaEnvironment) -> Effects:
    """Arm the saga's timer for its deadline (once per deadline), or cancel it."""
    if saga is None:
        return []
    armed = state.timers.get(rid)
    if saga.status.terminal or saga.deadline is None:
        if armed is None:
            return []
        del state.timers[rid]
        return [Effect.cancel(_key(rid))]
    if armed == (saga.status, saga.deadline):
        return []
    state.timers[rid] = (saga.status, saga.deadline)
    wait = max(0.0, saga.deadline - env.clock.now())
    timer: Effect[SagaAction] = Effect.delay(
        wait, StepDeadlinePassed(rid, saga.status, saga.deadline)
    )
    return [timer.cancellable(_key(rid), cancel_in_flight=True)]


def _act(env: SagaEnvironment, rid: str, outgoing: Sequence[Outgoing]) -> Effects:
    """An effect carrying out what decisions that needed no event left to do."""
    if not outgoing:
        return []
    children, listener = env.children, env.listener
    return [Effect.future(lambda: _carry_out(outgoing, children, listener), name=f"saga {rid}")]


def _record(
    env: SagaEnvironment,
    rid: str,
    events: tuple[DomainEvent, ...],
    expected_version: int,
    outgoing: Sequence[Outgoing],
) -> Effect[SagaAction]:
    """Append the batch's events; once they are recorded (and only then) carry out
    what the batch decided: one effect, so that a reservation costs few hops.

    With no events, check that the stream is still at ``expected_version`` instead:
    what was decided holds only for the state it was decided on.
    """
    repository, children, listener = env.repository, env.children, env.listener
    name = f"record saga {rid}@{expected_version}"

    def appended(rid: str, version: int) -> SagaAction:
        # Carried out once the events are recorded (and only then), on the thread
        # that recorded them: a send to a store never blocks.
        _carry_out(outgoing, children, listener)
        return SagaAppended(rid, version)

    if not events:
        def check() -> SagaAction:
            try:
                version = repository.version(rid)
            except Exception as error:
                log.warning("saga %s: reading its version failed: %s", rid, describe(error))
                return SagaAppendFailed(rid, describe(error))
            if version != expected_version:
                return SagaConflicted(rid, str(VersionConflict(rid, expected_version, version)))
            return appended(rid, version)

        return Effect.future(check, name=name)

    # Piped: the saga's appends are most of a reservation's writes.
    return append_effect(
        repository, rid, events, expected_version, appended, SagaConflicted, SagaAppendFailed,
        name=name,
    )


def _carry_out(
    outgoing: Sequence[Outgoing], children: SagaChildren, listener: SagaListener
) -> None:
    for item in outgoing:
        try:
            if isinstance(item, ProcessPayment | RefundPayment):
                children.payment(item)
            elif isinstance(item, ReservationOutcome):
                listener.settled(item)
            elif isinstance(item, StartRefused):
                listener.refused(item)
            elif isinstance(item, DeliverySettled):
                listener.delivered(item)
            else:
                children.inventory(item)
        except Exception:  # one failed notice must not keep the others from going out
            log.exception("saga: carrying out %r failed", item)


# -- deciding -------------------------------------------------------------------------


class _Step:
    """Decides the inputs of one batch in order, recording events as it goes."""

    def __init__(self, saga: Saga | None, env: SagaEnvironment) -> None:
        self.saga = saga
        self.env = env
        self.now = env.clock.now()
        self.settings = env.settings
        self.events: list[DomainEvent] = []
        self.outgoing: list[Outgoing] = []

    def record(self, event: DomainEvent) -> None:
        self.saga = evolve_saga(self.saga, event)
        self.events.append(event)

    def send(self, item: Outgoing) -> None:
        self.outgoing.append(item)

    def decide(self, action: SagaInput) -> None:
        was_terminal = self.saga is not None and self.saga.status.terminal
        if isinstance(action, StartReservation):
            self.start(action)
        elif isinstance(action, ResumeSaga):
            saga = self.saga
            if saga is not None and not saga.status.terminal:
                if saga.deadline is not None and saga.deadline <= self.now:
                    # The step's time ran out while nobody ran it: act on the deadline
                    # now, rather than re-send the step and race the timer.
                    self.deadline(
                        StepDeadlinePassed(saga.reservation_id, saga.status, saga.deadline)
                    )
                else:
                    self.resend_step(saga)
        elif isinstance(action, Deliver):
            if self.saga is not None:
                self.react(self.saga, action.event)
            self.send(DeliverySettled(action.delivery_id))
        else:
            self.deadline(action)
        saga = self.saga
        if saga is not None and saga.status.terminal and not was_terminal:
            self.send(outcome_of(saga))

    def start(self, action: StartReservation) -> None:
        saga = self.saga
        if saga is None:
            self.record(
                ReservationStarted(
                    reservation_id=action.reservation_id,
                    customer_id=action.customer_id,
                    event_id=action.event_id,
                    section=action.section,
                    quantity=action.quantity,
                    seats=action.seats,
                    card_token=action.card_token,
                    started_at=self.now,
                    deadline=self.now + self.settings.seats_timeout,
                )
            )
            self.send(
                ReserveSeats(
                    action.reservation_id,
                    action.event_id,
                    action.section,
                    action.quantity,
                    action.seats,
                )
            )
            return
        same = (
            saga.customer_id,
            saga.event_id,
            saga.section,
            saga.quantity,
            saga.requested_seats,
        ) == (action.customer_id, action.event_id, action.section, action.quantity, action.seats)
        if not same:
            self.send(StartRefused(action.reservation_id, "the id belongs to another reservation"))
        elif saga.status.terminal:
            self.send(outcome_of(saga))
        # Same request still running: its outcome is announced when it ends.

    def resend_step(self, saga: Saga) -> None:
        """Re-send what the current step waits on (idempotent for the children)."""
        status = saga.status
        if status is S.RESERVING_SEATS:
            self.send(
                ReserveSeats(
                    saga.reservation_id,
                    saga.event_id,
                    saga.section,
                    saga.quantity,
                    saga.requested_seats,
                )
            )
        elif status is S.PROCESSING_PAYMENT:
            self.send(self.charge(saga))
        elif status is S.CONFIRMING:
            self.send(ConfirmReservation(saga.reservation_id, saga.event_id, saga.section))
        elif status is S.COMPENSATING:
            # In reverse order of the steps: the payment, then the seats. Both go out
            # at once: they are independent, and the seats should not wait for a
            # refund queued behind a slow charge.
            if saga.awaiting_refund:
                self.send(RefundPayment(saga.payment_id, saga.reservation_id))
            if saga.awaiting_release:
                self.send(self.release(saga))

    def react(self, saga: Saga, event: ChildEvent) -> None:
        status = saga.status
        if isinstance(event, SeatsReserved):
            if status is S.RESERVING_SEATS:
                self.record(
                    ReservationSeatsHeld(
                        reservation_id=saga.reservation_id,
                        seats=event.seats,
                        amount_cents=event.amount_cents,
                        payment_id=saga.reservation_id,
                        deadline=self.now + self.settings.payment_timeout,
                    )
                )
                self.send(self.charge(saga))
            elif self.gave_up(saga) and not saga.awaiting_release:
                # Seats held for a saga that ended without them: give them back.
                self.send(self.release(saga))
        elif isinstance(event, SeatsRejected):
            if status is S.RESERVING_SEATS:
                self.record(
                    ReservationRejected(
                        reservation_id=saga.reservation_id,
                        reason=event.reason,
                        detail=event.detail,
                        rejected_at=self.now,
                    )
                )
            elif status is S.COMPENSATING and saga.awaiting_release:
                self.compensated(seats=True)
        elif isinstance(event, SeatsReleased):
            if status is S.COMPENSATING and saga.awaiting_release:
                self.compensated(seats=True)
        elif isinstance(event, SeatsConfirmed):
            if status is S.CONFIRMING:
                self.record(
                    ReservationCompleted(reservation_id=saga.reservation_id, completed_at=self.now)
                )
        elif isinstance(event, PaymentSucceeded):
            if status is S.PROCESSING_PAYMENT:
                self.record(
                    ReservationPaid(
                        reservation_id=saga.reservation_id,
                        charge_id=event.charge_id,
                        deadline=self.now + self.settings.retry_interval,
                    )
                )
                self.send(ConfirmReservation(saga.reservation_id, saga.event_id, saga.section))
            elif self.gave_up(saga):
                # The charge landed after the saga gave up on it: it must go back.
                self.send(
                    RefundPayment(saga.payment_id or saga.reservation_id, saga.reservation_id)
                )
        elif isinstance(event, PaymentDeclined | PaymentFailed):
            uncertain = isinstance(event, PaymentFailed) and event.uncertain
            if status is S.PROCESSING_PAYMENT:
                reason: CancelReason = (
                    "payment_declined" if isinstance(event, PaymentDeclined) else "payment_failed"
                )
                self.record(
                    ReservationCompensating(
                        reservation_id=saga.reservation_id,
                        reason=reason,
                        release_seats=True,
                        refund_payment=uncertain,
                        deadline=self.now + self.settings.retry_interval,
                        detail=event.reason,
                    )
                )
                self.resend_step(saga)
            elif status is S.COMPENSATING and saga.awaiting_refund:
                if uncertain:
                    self.send(RefundPayment(saga.payment_id, saga.reservation_id))
                else:
                    self.compensated(refunded_cents=0)
        elif (
            isinstance(event, PaymentRefunded) and status is S.COMPENSATING and saga.awaiting_refund
        ):
            self.compensated(refunded_cents=event.refunded_cents)

    def compensated(self, *, seats: bool = False, refunded_cents: int | None = None) -> None:
        saga = self.saga
        assert saga is not None
        if seats:
            self.record(ReservationSeatsReturned(reservation_id=saga.reservation_id))
        if refunded_cents is not None:
            self.record(
                ReservationPaymentSettled(
                    reservation_id=saga.reservation_id, refunded_cents=refunded_cents
                )
            )
        if not saga.awaiting_release and not saga.awaiting_refund:
            reason = saga.reason
            assert reason in ("payment_declined", "payment_failed", "timed_out")
            self.record(
                ReservationCancelled(
                    reservation_id=saga.reservation_id,
                    reason=reason,  # type: ignore[arg-type]
                    cancelled_at=self.now,
                )
            )

    def deadline(self, action: StepDeadlinePassed) -> None:
        saga = self.saga
        if saga is None or saga.status is not action.status or saga.deadline != action.deadline:
            return  # the saga moved on since the timer was armed
        if saga.status in (S.RESERVING_SEATS, S.PROCESSING_PAYMENT):
            paying = saga.status is S.PROCESSING_PAYMENT
            self.record(
                ReservationCompensating(
                    reservation_id=saga.reservation_id,
                    reason="timed_out",
                    release_seats=True,
                    # A payment that did not answer in time may still charge: refund it
                    # (the refund also closes it against a charge still in flight).
                    refund_payment=paying,
                    deadline=self.now + self.settings.retry_interval,
                    detail=f"no answer to {saga.status.value} within its deadline",
                )
            )
            self.resend_step(saga)
        else:
            # Confirming and compensating cannot fail for business reasons: retry.
            # The new deadline is not recorded: after a restart it retries at once.
            self.saga = replace(saga, deadline=self.now + self.settings.retry_interval)
            self.resend_step(self.saga)

    @staticmethod
    def gave_up(saga: Saga) -> bool:
        """Compensating, or ended without completing."""
        status = saga.status
        return status is S.COMPENSATING or (status.terminal and status is not S.COMPLETED)

    @staticmethod
    def charge(saga: Saga) -> ProcessPayment:
        return ProcessPayment(
            saga.payment_id or saga.reservation_id,
            saga.reservation_id,
            saga.amount_cents,
            saga.card_token,
        )

    @staticmethod
    def release(saga: Saga) -> ReleaseReservation:
        return ReleaseReservation(saga.reservation_id, saga.event_id, saga.section)
