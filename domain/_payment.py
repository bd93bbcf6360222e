"""The payment store (pattern 1): one payment per reservation, loaded on demand.

A payment is event-sourced in ``payment-{payment_id}``. One command at a time runs
per payment (others wait in order, see ``_slots``): one effect calls the gateway and
appends the outcome, with the loaded version as the expected one. Processing a
payment whose outcome is known answers with it and calls nothing. A payment not in
memory is presumed new (a payment id is fresh in the common case, so no read is
spent on it); when it is not, the append conflicts, the payment is loaded and the
command runs again on what is stored. Either way a payment id is never charged
twice: the gateway answers a repeated charge from its idempotency key (the payment
id) — a repeat after a crash, a reload, or another process racing this one.

Declines, gateway errors and timeouts are events (``PaymentDeclined``,
``PaymentFailed``), never exceptions. ``RefundPayment`` returns whatever was charged
and closes the payment: refunding a payment whose charge has not been recorded yet
(in flight elsewhere, or lost in a crash) is safe, because the gateway refuses a
charge under a closed key.

Threads: the reducer on the store's thread; loads, gateway calls and appends on the
executor given to the store (keep it apart from the shared one: a slow gateway must
not starve the other stores' effects).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from actors import Clock, Effect
from domain._errors import CardDeclined, GatewayTimeout, GatewayUnavailable
from domain._events import (
    DomainEvent,
    PaymentDeclined,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
)
from domain._gateway import PaymentGateway
from domain._repository import Loaded, Repository, VersionConflict, describe
from domain._slots import Slot, evict, load_effect, touch

__all__ = [
    "GatewayFailed",
    "GatewayTimedOut",
    "PaymentAction",
    "PaymentAppendFailed",
    "PaymentCommand",
    "PaymentCommandDone",
    "PaymentCommandFailed",
    "PaymentConflicted",
    "PaymentEnvironment",
    "PaymentLoadFailed",
    "PaymentLoaded",
    "PaymentRecorded",
    "PaymentSettings",
    "PaymentState",
    "PaymentStatus",
    "PaymentsState",
    "ProcessPayment",
    "RefundPayment",
    "evolve_payment",
    "reduce_payments",
]

log = logging.getLogger("domain.payment")

PaymentStatus = Literal["new", "succeeded", "declined", "failed", "refunded"]


@dataclass
class PaymentState:
    """One payment, folded from its stream."""

    status: PaymentStatus = "new"
    reservation_id: str = ""
    amount_cents: int = 0
    charge_id: str = ""
    uncertain: bool = False
    refunded_cents: int = 0
    reason: str = ""


def evolve_payment(state: PaymentState, event: DomainEvent) -> PaymentState:
    """Apply one event to ``state`` (mutated) and return it."""
    if isinstance(event, PaymentSucceeded):
        if state.status == "new":
            state.status = "succeeded"
            state.reservation_id = event.reservation_id
            state.amount_cents = event.amount_cents
            state.charge_id = event.charge_id
    elif isinstance(event, PaymentDeclined | PaymentFailed):
        if state.status == "new":
            state.status = "declined" if isinstance(event, PaymentDeclined) else "failed"
            state.reservation_id = event.reservation_id
            state.amount_cents = event.amount_cents
            state.reason = event.reason
            state.uncertain = isinstance(event, PaymentFailed) and event.uncertain
    elif isinstance(event, PaymentRefunded):
        state.status = "refunded"
        state.reservation_id = event.reservation_id
        state.refunded_cents += event.refunded_cents
    return state


# -- actions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcessPayment:
    """Charge ``amount_cents`` to the card for a reservation, once per payment id."""

    payment_id: str
    reservation_id: str
    amount_cents: int
    card_token: str


@dataclass(frozen=True, slots=True)
class RefundPayment:
    """Return what the payment charged (if anything) and close it."""

    payment_id: str
    reservation_id: str


PaymentCommand = ProcessPayment | RefundPayment


@dataclass(frozen=True, slots=True)
class ReconcileCharge:
    """Internal: this store's charge went through, but recording it conflicted. Once
    reloaded, the stream must account for the charge; if it records another outcome
    (a failure recorded by an earlier attempt, or by another process racing this
    one), the charge is refunded. So a charge made here is always recorded or returned.
    """

    payment_id: str
    reservation_id: str


PaymentWork = PaymentCommand | ReconcileCharge


@dataclass(frozen=True, slots=True)
class PaymentLoaded:
    payment_id: str
    loaded: Loaded[PaymentState]


@dataclass(frozen=True, slots=True)
class PaymentLoadFailed:
    payment_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class PaymentRecorded:
    """The gateway answered the running command and ``event``, its outcome, is stored."""

    payment_id: str
    event: DomainEvent
    version: int


@dataclass(frozen=True, slots=True)
class GatewayFailed:
    """A refund call failed: nothing was recorded (the saga retries on its timer)."""

    payment_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class GatewayTimedOut:
    """Internal: the running gateway call gave no answer within ``gateway_timeout``."""

    payment_id: str


@dataclass(frozen=True, slots=True)
class PaymentConflicted:
    """The append lost a race. ``charged``: the gateway may hold a charge of ours."""

    payment_id: str
    detail: str
    charged: bool = False


@dataclass(frozen=True, slots=True)
class PaymentAppendFailed:
    payment_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class PaymentCommandDone:
    """The command is done: the payment is now ``status``; ``events`` were recorded
    for it (none when it had been done before)."""

    command: PaymentWork
    status: PaymentStatus
    events: tuple[DomainEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class PaymentCommandFailed:
    """The command could not be carried out now (backend or gateway down)."""

    command: PaymentWork
    reason: str


PaymentAction = (
    PaymentCommand
    | ReconcileCharge
    | PaymentLoaded
    | PaymentLoadFailed
    | PaymentRecorded
    | GatewayFailed
    | GatewayTimedOut
    | PaymentConflicted
    | PaymentAppendFailed
    | PaymentCommandDone
    | PaymentCommandFailed
)


@dataclass
class PaymentsState:
    """The payments this store has loaded."""

    payments: dict[str, Slot[PaymentState, PaymentWork]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PaymentSettings:
    """Args:
    max_payments: loaded payments kept at most (least recently used go first).
    payment_ttl: seconds after which an unused payment is dropped.
    max_attempts: conflicting appends before a command fails.
    reconcile_retry: seconds before refunding an unrecorded charge is tried again,
        when the gateway failed to refund it.
    gateway_timeout: seconds a gateway call may run before it counts as timed out
        (a charge as ``GatewayTimeout``: failed, maybe charged, so refunded; a refund
        as failed, tried again); its late answer is dropped. Without it a gateway
        that never answers would hold its payment, and every refund queued behind
        the charge, for ever: the saga could never finish compensating.
    """

    max_payments: int = 1024
    payment_ttl: float = 60.0
    max_attempts: int = 5
    reconcile_retry: float = 1.0
    gateway_timeout: float = 20.0


@dataclass(frozen=True, slots=True)
class PaymentEnvironment:
    repository: Repository[str, PaymentState]
    gateway: PaymentGateway
    clock: Clock
    settings: PaymentSettings = PaymentSettings()


Effects = list[Effect[PaymentAction]]


def reduce_payments(
    state: PaymentsState, action: PaymentAction, env: PaymentEnvironment
) -> Sequence[Effect[PaymentAction]]:
    """The payment store's reducer (see the module docstring)."""
    if isinstance(action, ProcessPayment | RefundPayment | ReconcileCharge):
        return _submit(state, action, env)
    if isinstance(action, PaymentLoaded):
        slot = state.payments.get(action.payment_id)
        if slot is None or slot.phase != "loading":
            return []
        slot.phase = "ready"
        slot.state = action.loaded.state
        slot.version = action.loaded.version
        return _next(action.payment_id, slot, env)
    if isinstance(action, PaymentLoadFailed):
        slot = state.payments.get(action.payment_id)
        if slot is None or slot.phase != "loading":
            return []
        del state.payments[action.payment_id]
        return [
            Effect.send(PaymentCommandFailed(command, action.reason))
            for command in (*slot.writing, *slot.waiting)
        ]
    if isinstance(action, PaymentRecorded):
        slot = state.payments.get(action.payment_id)
        if slot is None or not slot.writing or slot.state is None:
            return []
        (command,) = slot.writing
        evolve_payment(slot.state, action.event)
        slot.version = action.version
        slot.writing = ()
        slot.attempts = 0
        done: Effect[PaymentAction] = Effect.send(
            PaymentCommandDone(command, slot.state.status, (action.event,))
        )
        return [_answered(action.payment_id), done, *_next(action.payment_id, slot, env)]
    if isinstance(action, GatewayFailed):
        slot = state.payments.get(action.payment_id)
        if slot is None or not slot.writing:
            return []
        (command,) = slot.writing
        slot.writing = ()
        failed: Effect[PaymentAction] = Effect.send(PaymentCommandFailed(command, action.reason))
        effects: Effects = [_answered(action.payment_id), failed]
        if isinstance(command, ReconcileCharge):
            # Nobody else knows of this charge: keep trying to return it.
            effects.append(Effect.delay(env.settings.reconcile_retry, command))
        return [*effects, *_next(action.payment_id, slot, env)]
    if isinstance(action, GatewayTimedOut):
        return _timed_out(state, action, env)
    if isinstance(action, PaymentConflicted):
        return [_answered(action.payment_id), *_conflicted(state, action, env)]
    if isinstance(action, PaymentAppendFailed):
        slot = state.payments.get(action.payment_id)
        if slot is None or not slot.writing:
            return []
        failures: Effects = [_answered(action.payment_id)]
        failures += [
            Effect.send(PaymentCommandFailed(work, action.reason)) for work in slot.writing
        ]
        return failures + _reload(state, action.payment_id, slot, env)
    return []  # replies: reduced only so that waiters see them


def _submit(state: PaymentsState, command: PaymentWork, env: PaymentEnvironment) -> Effects:
    settings = env.settings
    now = env.clock.now()
    payments = state.payments
    slot = payments.get(command.payment_id)
    if slot is not None and slot.idle and now - slot.used_at >= settings.payment_ttl:
        del payments[command.payment_id]
        slot = None
    if slot is None:
        # Presumed new: no read spent on it (see the module docstring).
        slot = Slot(phase="ready", state=PaymentState(), waiting=deque((command,)), used_at=now)
        payments[command.payment_id] = slot
        effects = _next(command.payment_id, slot, env)
    else:
        touch(payments, command.payment_id, slot, now)
        slot.waiting.append(command)
        effects = _next(command.payment_id, slot, env)
    evict(payments, now, limit=settings.max_payments, ttl=settings.payment_ttl)
    return effects


def _load(payment_id: str, env: PaymentEnvironment) -> Effect[PaymentAction]:
    return load_effect(env.repository, payment_id, PaymentLoaded, PaymentLoadFailed)


def _next(
    payment_id: str, slot: Slot[PaymentState, PaymentWork], env: PaymentEnvironment
) -> Effects:
    """Start the next waiting command, or answer those that need no gateway call."""
    effects: Effects = []
    while slot.phase == "ready" and not slot.writing and slot.waiting:
        assert slot.state is not None
        command = slot.waiting.popleft()
        payment = slot.state
        if isinstance(command, ProcessPayment):
            if payment.status == "new":
                slot.writing = (command,)
                effects.append(_charge(env, command, slot.version))
            else:
                effects.append(Effect.send(PaymentCommandDone(command, payment.status)))
        elif isinstance(command, ReconcileCharge):
            if payment.status in ("succeeded", "refunded"):
                continue  # the stream accounts for the charge (or its refund closed it)
            # Recorded as declined or failed (or nothing): return what we took.
            slot.writing = (command,)
            refund = RefundPayment(command.payment_id, command.reservation_id)
            effects.append(_refund(env, refund, slot.version))
        elif payment.status in ("new", "succeeded") or (
            payment.status == "failed" and payment.uncertain
        ):
            slot.writing = (command,)
            effects.append(_refund(env, command, slot.version))
        else:
            # Declined, failed for sure, or refunded already: nothing to return.
            effects.append(Effect.send(PaymentCommandDone(command, payment.status)))
    return effects


def _conflicted(
    state: PaymentsState, action: PaymentConflicted, env: PaymentEnvironment
) -> Effects:
    slot = state.payments.get(action.payment_id)
    if slot is None or not slot.writing:
        return []
    (command,) = slot.writing
    slot.attempts += 1
    effects: Effects = []
    if slot.attempts >= env.settings.max_attempts:
        detail = f"{slot.attempts} conflicting appends in a row ({action.detail})"
        effects.append(Effect.send(PaymentCommandFailed(command, detail)))
        slot.attempts = 0
    else:
        # Run the command again on the fresh state: the gateway answers a repeated
        # charge from its idempotency key, so nothing is charged twice.
        slot.waiting.appendleft(command)
    if action.charged and not isinstance(command, ReconcileCharge):
        slot.waiting.appendleft(ReconcileCharge(action.payment_id, _reservation_of(command)))
    return effects + _reload(state, action.payment_id, slot, env)


def _call_key(payment_id: str) -> tuple[str, str]:
    return ("gateway-call", payment_id)


def _answered(payment_id: str) -> Effect[PaymentAction]:
    """The running gateway call answered: its timer must not fire on a later call."""
    return Effect.cancel(_call_key(payment_id))


def _bounded(
    env: PaymentEnvironment, payment_id: str, call: Effect[PaymentAction]
) -> Effect[PaymentAction]:
    """``call`` raced against ``gateway_timeout``; the first to answer cancels the other."""
    timer: Effect[PaymentAction] = Effect.delay(
        env.settings.gateway_timeout, GatewayTimedOut(payment_id)
    )
    return Effect.merge(call, timer).cancellable(_call_key(payment_id), cancel_in_flight=True)


def _timed_out(state: PaymentsState, action: GatewayTimedOut, env: PaymentEnvironment) -> Effects:
    slot = state.payments.get(action.payment_id)
    if slot is None or not slot.writing:
        return []
    (command,) = slot.writing
    pid = action.payment_id
    reason = f"no answer from the gateway within {env.settings.gateway_timeout} s"
    log.warning("payment %s: %s", pid, reason)
    # The hung call is dropped: what it feeds back, if it ever answers, is ignored, and
    # its own append (at the version it was given) conflicts with the one below.
    cancel: Effect[PaymentAction] = Effect.cancel(_call_key(pid))
    if isinstance(command, ProcessPayment):
        # As a GatewayTimeout: the charge may have happened, so the saga refunds it.
        event = PaymentFailed(
            payment_id=pid,
            reservation_id=command.reservation_id,
            amount_cents=command.amount_cents,
            reason=reason,
            uncertain=True,
        )
        repository, version = env.repository, slot.version
        record: Effect[PaymentAction] = Effect.future(
            lambda: _record(repository, pid, event, version), name=f"record timeout {pid}"
        )
        return [cancel, record]
    return [cancel, Effect.send(GatewayFailed(pid, reason))]


def _reservation_of(command: PaymentWork) -> str:
    return command.reservation_id


def _reload(
    state: PaymentsState,
    payment_id: str,
    slot: Slot[PaymentState, PaymentWork],
    env: PaymentEnvironment,
) -> Effects:
    slot.writing = ()
    slot.replies = ()
    slot.phase = "loading"
    slot.state = None
    if slot.waiting:
        return [_load(payment_id, env)]
    del state.payments[payment_id]
    return []


def _record(
    repository: Repository[str, PaymentState], pid: str, event: DomainEvent, expected: int
) -> PaymentAction:
    try:
        version = repository.append(pid, (event,), expected)
    except VersionConflict as conflict:
        charged = isinstance(event, PaymentSucceeded) or (
            isinstance(event, PaymentFailed) and event.uncertain
        )
        return PaymentConflicted(pid, str(conflict), charged)
    except Exception as error:
        log.warning(
            "payment %s: recording %s failed: %s", pid, type(event).__name__, describe(error)
        )
        return PaymentAppendFailed(pid, describe(error))
    return PaymentRecorded(pid, event, version)


def _charge(
    env: PaymentEnvironment, command: ProcessPayment, expected_version: int
) -> Effect[PaymentAction]:
    gateway, repository = env.gateway, env.repository

    def charge() -> PaymentAction:
        pid, rid, amount = command.payment_id, command.reservation_id, command.amount_cents
        event: DomainEvent
        try:
            done = gateway.charge(pid, command.card_token, amount)
        except CardDeclined as error:
            event = PaymentDeclined(
                payment_id=pid, reservation_id=rid, amount_cents=amount, reason=str(error)
            )
        except (GatewayUnavailable, GatewayTimeout) as error:
            event = PaymentFailed(
                payment_id=pid,
                reservation_id=rid,
                amount_cents=amount,
                reason=str(error),
                uncertain=isinstance(error, GatewayTimeout),
            )
        except Exception as error:
            # Not in the gateway's contract: we cannot know whether it charged.
            log.exception("gateway charge for %s raised", pid)
            event = PaymentFailed(
                payment_id=pid,
                reservation_id=rid,
                amount_cents=amount,
                reason=describe(error),
                uncertain=True,
            )
        else:
            event = PaymentSucceeded(
                payment_id=pid, reservation_id=rid, amount_cents=amount, charge_id=done.charge_id
            )
        return _record(repository, pid, event, expected_version)

    return _bounded(
        env, command.payment_id, Effect.future(charge, name=f"charge {command.payment_id}")
    )


def _refund(
    env: PaymentEnvironment, command: RefundPayment, expected_version: int
) -> Effect[PaymentAction]:
    gateway, repository = env.gateway, env.repository

    def refund() -> PaymentAction:
        try:
            done = gateway.refund(command.payment_id)
        except Exception as error:  # the saga retries its compensation on its timer
            log.warning("refund of %s failed: %s", command.payment_id, describe(error))
            return GatewayFailed(command.payment_id, describe(error))
        event = PaymentRefunded(
            payment_id=command.payment_id,
            reservation_id=command.reservation_id,
            refunded_cents=done.refunded_cents,
            refund_id=done.refund_id,
        )
        return _record(repository, command.payment_id, event, expected_version)

    return _bounded(
        env, command.payment_id, Effect.future(refund, name=f"refund {command.payment_id}")
    )
