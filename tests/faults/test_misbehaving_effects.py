"""Issue 6, fault 7: effects that misbehave, in the real ticketing system on Redis.

The payment store's effects call the gateway; here the gateway raises what its
contract does not allow, hangs for as long as the test runs, or times out after it
charged. Every reservation must still end with a typed outcome, its seats back and
its money returned, while the other reservations go through undisturbed.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from domain import (
    Charge,
    DemoGateway,
    GatewayTimeout,
    Refund,
    ReservationOutcome,
    ReservationStatus,
    SystemStopped,
    TicketingSystem,
)
from domain._payment import PaymentSettings
from domain._saga import SagaSettings
from domain._verify import NO_SEAT_SOLD_TWICE, PAYMENTS_SETTLED, SAGAS_TERMINAL, SEATS_CONSERVED

pytestmark = [pytest.mark.slow, pytest.mark.redis]

# Luhn-valid numbers the demo gateway does not know; the gateway below misbehaves on them.
CARDS = {
    "ok": "4242424242424242",
    "declined": "4000000000000002",
    "raises": "4000000000001109",
    "hangs": "4000000000002206",
    "times_out": "4000000000003303",
}
EXPECTED = {
    "ok": ReservationStatus.COMPLETED,
    "declined": ReservationStatus.PAYMENT_DECLINED,
    # Charged, then an exception outside the contract: the money is refunded.
    "raises": ReservationStatus.PAYMENT_FAILED,
    # No answer before the saga's payment deadline: compensated as timed out.
    "hangs": ReservationStatus.TIMED_OUT,
    "times_out": ReservationStatus.PAYMENT_FAILED,
}
SAGA = SagaSettings(seats_timeout=5.0, payment_timeout=4.0, retry_interval=0.5)
PAYMENT = PaymentSettings(gateway_timeout=6.0)
CAPACITY = 60


class MisbehavingGateway(DemoGateway):
    """The demo gateway, except on the cards above: ``raises`` charges, then raises a
    ``RuntimeError`` (and its first refund raises too); ``hangs`` never answers a
    charge until the test releases it; ``times_out`` charges, then raises
    ``GatewayTimeout``."""

    def __init__(self) -> None:
        super().__init__(latency=(0.0, 0.02), seed=7)
        self.released = threading.Event()
        self.hanging = 0
        self._kinds: dict[str, str] = {}
        self._refunds_failed: set[str] = set()
        self._guard = threading.Lock()

    def tokenize(self, card_number: str) -> str:
        for kind in ("raises", "hangs", "times_out"):
            if card_number == CARDS[kind]:
                return f"tok_{kind}_{card_number[-4:]}"
        return super().tokenize(card_number)

    def charge(self, idempotency_key: str, card_token: str, amount_cents: int) -> Charge:
        kind = card_token[4:].rsplit("_", 1)[0]
        if kind not in ("raises", "hangs", "times_out"):
            return super().charge(idempotency_key, card_token, amount_cents)
        with self._guard:
            self._kinds[idempotency_key] = kind
        if kind == "hangs":
            with self._guard:
                self.hanging += 1
            self.released.wait()  # as long as the test runs
            with self._guard:
                self.hanging -= 1
        done = super().charge(idempotency_key, "tok_ok_4242", amount_cents)
        if kind == "raises":
            raise RuntimeError(f"the gateway client broke after charging {done.charge_id}")
        if kind == "times_out":
            raise GatewayTimeout("the charge was sent; its answer was lost")
        return done

    def refund(self, idempotency_key: str) -> Refund:
        with self._guard:
            first = (
                self._kinds.get(idempotency_key) == "raises"
                and idempotency_key not in self._refunds_failed
            )
            if first:
                self._refunds_failed.add(idempotency_key)
        if first:
            raise KeyError(f"refund {idempotency_key}: a bug in the gateway client")
        return super().refund(idempotency_key)


def test_a_gateway_that_raises_hangs_or_times_out_gives_typed_outcomes_and_blocks_nothing(
    redis_url: str, key_prefix: str
) -> None:
    """Figure: 60 reservations of 1-2 seats from 16 threads on one 60-seat section,
    12 paying normally, 12 each with a card the gateway declines, raises on (after
    charging; its first refund raises too), hangs on (until the test ends) or times out
    on (after charging); then 12 more normal ones. Each ends with the typed outcome of
    its kind (completed, payment_declined, payment_failed, timed_out, payment_failed),
    none waits past the saga's deadlines plus the gateway timeout, the normal ones are
    not slowed by the hung ones, the gateway keeps no money for any reservation that
    did not complete, and every invariant holds. Then a stop with a charge hanging
    returns within its timeout."""
    gateway = MisbehavingGateway()
    system = TicketingSystem.start(
        redis_url,
        key_prefix=key_prefix,
        gateway=gateway,
        saga=SAGA,
        payment=PAYMENT,
        claim_idle=1.0,
    )
    try:
        system.create_event("gig", sections={"A": CAPACITY}, price_cents=900)
        rnd = random.Random(6)
        requests = [(kind, rnd.randint(1, 2)) for kind in EXPECTED for _ in range(12)]
        rnd.shuffle(requests)

        def reserve(request: tuple[str, int]) -> tuple[str, ReservationOutcome, float]:
            kind, seats = request
            began = time.monotonic()
            outcome = system.reserve("c", "gig", "A", seats, CARDS[kind], timeout=30)
            return kind, outcome, time.monotonic() - began

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(reserve, requests))
            later = list(pool.map(reserve, [("ok", 1)] * 12))

        by_kind: dict[str, list[tuple[ReservationOutcome, float]]] = {}
        for kind, outcome, took in results + later:
            by_kind.setdefault(kind, []).append((outcome, took))
        for kind, done in by_kind.items():
            assert {o.status for o, _ in done} == {EXPECTED[kind]}, (kind, done)
        assert all(o.completed for o, _ in by_kind["ok"])
        # The hung charges do not slow the others: each normal reservation ends well
        # within the payment deadline the hung ones run into.
        ok_took = sorted(took for _, took in by_kind["ok"])
        assert ok_took[-1] < SAGA.payment_timeout, ok_took
        slowest = max(took for _, _, took in results)
        assert slowest < SAGA.seats_timeout + SAGA.payment_timeout + PAYMENT.gateway_timeout
        for outcome, _ in by_kind["raises"]:
            assert "RuntimeError" in outcome.detail, outcome
        for _, outcome, _ in results + later:
            assert gateway.net_charged(outcome.reservation_id) == outcome.amount_cents, outcome
        assert gateway.hanging == 12  # still hanging: the sagas did not wait for them

        report = system.verify(timeout=20)
        for name in (NO_SEAT_SOLD_TWICE, SEATS_CONSERVED, SAGAS_TERMINAL, PAYMENTS_SETTLED):
            assert report.check(name).ok, report.check(name)
        assert report.ok, report
        [section] = report.sections
        sold = sum(o.quantity for o, _ in by_kind["ok"])
        assert (section.sold, section.reserved, section.available) == (
            sold, 0, CAPACITY - sold
        )
        availability = system.availability("gig", "A")
        assert (availability.sold, availability.reserved) == (sold, 0)

        # A stop while one more charge hangs: the hung effect is dropped at the timeout.
        stopped: list[BaseException] = []

        def reserve_hanging() -> None:
            try:
                system.reserve("c", "gig", "A", 1, CARDS["hangs"], timeout=30)
            except SystemStopped as error:
                stopped.append(error)

        hanging_caller = threading.Thread(target=reserve_hanging)
        hanging_caller.start()
        deadline = time.monotonic() + 10
        while gateway.hanging < 13 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gateway.hanging == 13
        began = time.monotonic()
        system.stop(timeout=1.0)
        stop_took = time.monotonic() - began
        hanging_caller.join(5)
        assert not hanging_caller.is_alive()
        assert len(stopped) == 1
        # One timeout for the payment store's hung effect, the rest is quick; room for
        # a loaded machine.
        assert stop_took < 4.0, stop_took
        counts = Counter(o.status.value for _, o, _ in results + later)
        print(
            f"\nmisbehaving gateway: {len(results) + len(later)} reservations {dict(counts)}; "
            f"normal ones took median {ok_took[len(ok_took) // 2]:.2f} s, max "
            f"{ok_took[-1]:.2f} s; slowest {slowest:.2f} s; stop with a charge hanging took "
            f"{stop_took:.2f} s; {report.sections}"
        )
    finally:
        system.stop(timeout=1.0)
        gateway.released.set()
