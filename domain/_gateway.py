"""The payment gateway port, and the demo gateway bundled for examples and tests.

``PaymentGateway`` is what the payment store's effects call. Its contract is that of
card processors with idempotency keys: a ``charge`` repeated under the same key
charges once and answers as the first time; ``refund(key)`` returns whatever was
charged under the key and *closes* it, so a charge arriving later under that key is
refused. That last rule is what makes "refund a payment whose charge is still in
flight" safe.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from domain._errors import CardDeclined, GatewayTimeout, GatewayUnavailable

__all__ = ["TEST_CARDS", "Charge", "DemoGateway", "PaymentGateway", "Refund"]


@dataclass(frozen=True, slots=True)
class Charge:
    """A charge the gateway made (or had made before, under the same key)."""

    charge_id: str
    amount_cents: int


@dataclass(frozen=True, slots=True)
class Refund:
    """What a refund returned: ``refunded_cents`` is 0 when nothing had been charged."""

    refund_id: str
    refunded_cents: int


class PaymentGateway(Protocol):
    """A card processor (called on executor threads, never on a store's thread)."""

    def tokenize(self, card_number: str) -> str:
        """A token standing for the card: events store the token, never the number."""
        ...

    def charge(self, idempotency_key: str, card_token: str, amount_cents: int) -> Charge:
        """Charge the card once per key; a repeat answers like the first call.

        Raises:
            CardDeclined: refused (also when the key was closed by a refund).
            GatewayUnavailable: failed; nothing was charged.
            GatewayTimeout: no answer in time; the charge may have happened.
        """
        ...

    def refund(self, idempotency_key: str) -> Refund:
        """Return what was charged under the key (0 when nothing was) and close the key.

        A repeat answers like the first refund (it returns nothing more).

        Raises:
            GatewayUnavailable, GatewayTimeout: try again later.
        """
        ...


CardKind = Literal["ok", "declined", "insufficient_funds", "processing_error", "unknown"]

TEST_CARDS: dict[str, CardKind] = {
    "4242424242424242": "ok",
    "4000000000000002": "declined",
    "4000000000009995": "insufficient_funds",
    "4000000000000119": "processing_error",
}
"""The well-known public test card numbers the demo gateway understands."""


@dataclass(slots=True)
class _Ledger:
    amount_cents: int
    charge_id: str
    refunded: bool = False


class DemoGateway:
    """An in-process gateway following the public test cards, with faults on demand.

    ``4242424242424242`` succeeds, ``4000000000000002`` is declined (so are other
    numbers: test mode), ``4000000000009995`` is declined for insufficient funds,
    ``4000000000000119`` fails with a processing error. Thread-safe.

    Args:
        latency: seconds each call takes: a number, or a (low, high) range drawn
            uniformly.
        error_rate: share of charges that fail (``GatewayUnavailable``; nothing charged).
        timeout_rate: share of charges that go through but whose answer is lost
            (``GatewayTimeout``): the payment must then be refunded to be safe.
        seed: seeds the draws, for repeatable runs.
        sleep: how latency is spent (``time.sleep``; tests pass a fake).
    """

    def __init__(
        self,
        *,
        latency: float | tuple[float, float] = 0.0,
        error_rate: float = 0.0,
        timeout_rate: float = 0.0,
        seed: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        for name, rate in (("error_rate", error_rate), ("timeout_rate", timeout_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {rate}")
        self.latency = latency
        self.error_rate = error_rate
        self.timeout_rate = timeout_rate
        self._sleep = sleep
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._charges: dict[str, _Ledger] = {}
        self._declined: dict[str, str] = {}
        self._refunds: dict[str, Refund] = {}
        self.calls = 0

    def tokenize(self, card_number: str) -> str:
        kind = TEST_CARDS.get(card_number, "unknown")
        # Stateless on purpose: any process (any gateway object) can charge the token.
        return f"tok_{kind}_{card_number[-4:]}"

    def charge(self, idempotency_key: str, card_token: str, amount_cents: int) -> Charge:
        self._wait()
        with self._lock:
            self.calls += 1
            done = self._charges.get(idempotency_key)
            if done is not None:
                return Charge(done.charge_id, done.amount_cents)
            if idempotency_key in self._declined:
                raise CardDeclined(self._declined[idempotency_key])
            if idempotency_key in self._refunds:
                raise CardDeclined("the payment was cancelled")
            if self._random.random() < self.error_rate:
                raise GatewayUnavailable("the gateway failed to process the charge")
            kind = card_token[4:].rsplit("_", 1)[0] if card_token.startswith("tok_") else ""
            if kind == "processing_error":
                raise GatewayUnavailable("processing error")
            if kind != "ok":
                reason = {
                    "declined": "card declined",
                    "insufficient_funds": "insufficient funds",
                }.get(kind, "card not supported in test mode")
                self._declined[idempotency_key] = reason
                raise CardDeclined(reason)
            charge = _Ledger(amount_cents, f"ch_{idempotency_key}")
            self._charges[idempotency_key] = charge
            lost = self._random.random() < self.timeout_rate
        if lost:
            raise GatewayTimeout("the charge was sent; its answer was lost")
        return Charge(charge.charge_id, amount_cents)

    def refund(self, idempotency_key: str) -> Refund:
        self._wait()
        with self._lock:
            self.calls += 1
            done = self._refunds.get(idempotency_key)
            if done is None:
                charge = self._charges.get(idempotency_key)
                amount = 0 if charge is None else charge.amount_cents
                if charge is not None:
                    charge.refunded = True
                done = self._refunds[idempotency_key] = Refund(f"re_{idempotency_key}", amount)
            return done

    def net_charged(self, idempotency_key: str) -> int:
        """Cents kept for the key: charged and not refunded."""
        with self._lock:
            charge = self._charges.get(idempotency_key)
            return 0 if charge is None or charge.refunded else charge.amount_cents

    def charges(self) -> dict[str, int]:
        """Net cents kept per idempotency key (refunded charges count 0)."""
        with self._lock:
            return {
                key: 0 if charge.refunded else charge.amount_cents
                for key, charge in self._charges.items()
            }

    def _wait(self) -> None:
        latency = self.latency
        if isinstance(latency, tuple):
            low, high = latency
            with self._lock:
                seconds = self._random.uniform(low, high)
        else:
            seconds = latency
        if seconds > 0:
            self._sleep(seconds)
