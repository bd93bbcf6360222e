"""The payment store's reducer and the demo gateway (TestStore, fake repository)."""

from __future__ import annotations

from typing import Any

import pytest

from actors import ManualClock
from actors.testing import TestStore
from domain._errors import CardDeclined, GatewayUnavailable
from domain._events import PaymentDeclined, PaymentFailed, PaymentRefunded, PaymentSucceeded
from domain._gateway import DemoGateway
from domain._payment import (
    GatewayFailed,
    PaymentCommandDone,
    PaymentCommandFailed,
    PaymentConflicted,
    PaymentEnvironment,
    PaymentLoaded,
    PaymentRecorded,
    PaymentsState,
    PaymentState,
    ProcessPayment,
    RefundPayment,
    evolve_payment,
    reduce_payments,
)
from tests.domain.fakes import StreamRepository

OK = "tok_ok_4242"
DECLINED = "tok_declined_0002"


def charge_of(amount: int = 1000, token: str = OK, pid: str = "p1") -> ProcessPayment:
    return ProcessPayment(pid, "r1", amount, token)


def succeeded(amount: int = 1000, pid: str = "p1") -> PaymentSucceeded:
    return PaymentSucceeded(
        payment_id=pid, reservation_id="r1", amount_cents=amount, charge_id=f"ch_{pid}"
    )


def make_store(
    gateway: DemoGateway | None = None,
) -> tuple[
    TestStore[PaymentsState, object, PaymentEnvironment],
    StreamRepository[str, PaymentState],
    DemoGateway,
]:
    repo: StreamRepository[str, PaymentState] = StreamRepository(
        lambda pid: PaymentState(), evolve_payment
    )
    gw = gateway or DemoGateway(seed=1)
    env = PaymentEnvironment(repository=repo, gateway=gw, clock=ManualClock())
    return TestStore(reduce_payments, PaymentsState(), env, exhaustive=False), repo, gw


def test_a_new_payment_is_charged_and_the_success_recorded_without_a_read() -> None:
    store, repo, gateway = make_store()
    store.send(charge_of())
    store.receive(PaymentRecorded("p1", succeeded(), 1))
    store.receive(PaymentCommandDone(charge_of(), "succeeded", (succeeded(),)))
    assert repo.loads == []  # presumed new: the append's expected version checks it
    assert repo.events("p1") == [succeeded()]
    assert gateway.net_charged("p1") == 1000


def test_processing_the_same_payment_twice_charges_once() -> None:
    store, repo, gateway = make_store()
    store.send(charge_of())
    store.send(charge_of())  # waits behind the first (the charge is in flight)
    store.skip_received_actions()
    assert gateway.calls == 1
    store.send(charge_of())
    assert store.receive(PaymentCommandDone) == PaymentCommandDone(charge_of(), "succeeded")
    assert gateway.calls == 1
    assert repo.events("p1") == [succeeded()]


def test_a_payment_recorded_by_another_process_conflicts_reloads_and_is_not_charged_twice() -> None:
    store, repo, gateway = make_store()
    gateway.charge("p1", OK, 1000)  # charged by a process that recorded it and stopped
    repo.write("p1", succeeded())
    store.send(charge_of())
    store.receive(PaymentConflicted)
    store.receive(PaymentLoaded)
    assert store.receive(PaymentCommandDone) == PaymentCommandDone(charge_of(), "succeeded")
    assert repo.events("p1") == [succeeded()]
    assert gateway.charges() == {"p1": 1000}
    calls = gateway.calls
    store.send(charge_of())  # now loaded: answered without calling the gateway
    assert store.receive(PaymentCommandDone).status == "succeeded"
    assert gateway.calls == calls


def test_a_declined_card_becomes_a_declined_payment_not_an_exception() -> None:
    store, repo, gateway = make_store()
    store.send(charge_of(token=DECLINED))
    store.skip_received_actions()
    assert repo.events("p1") == [
        PaymentDeclined(
            payment_id="p1", reservation_id="r1", amount_cents=1000, reason="card declined"
        )
    ]
    assert gateway.net_charged("p1") == 0


@pytest.mark.parametrize(
    ("rates", "uncertain"), [({"error_rate": 1.0}, False), ({"timeout_rate": 1.0}, True)]
)
def test_gateway_errors_and_timeouts_become_failed_payments(
    rates: dict[str, float], uncertain: bool
) -> None:
    store, repo, gateway = make_store(DemoGateway(seed=1, **rates))
    store.send(charge_of())
    store.skip_received_actions()
    (event,) = repo.events("p1")
    assert isinstance(event, PaymentFailed)
    assert event.uncertain is uncertain
    # A timeout lost the answer, not the charge: the money is taken until refunded.
    assert gateway.net_charged("p1") == (1000 if uncertain else 0)


def test_a_refund_returns_the_charge_and_closes_the_payment() -> None:
    store, repo, gateway = make_store()
    store.send(charge_of())
    store.send(RefundPayment("p1", "r1"))
    store.skip_received_actions()
    assert repo.events("p1")[-1] == PaymentRefunded(
        payment_id="p1", reservation_id="r1", refunded_cents=1000, refund_id="re_p1"
    )
    assert gateway.net_charged("p1") == 0
    store.send(charge_of())
    assert store.receive(PaymentCommandDone).status == "refunded"


def test_refunding_a_payment_never_charged_closes_it_so_a_late_charge_is_refused() -> None:
    store, repo, gateway = make_store()
    store.send(RefundPayment("p1", "r1"))
    store.skip_received_actions()
    assert repo.events("p1") == [
        PaymentRefunded(payment_id="p1", reservation_id="r1", refunded_cents=0, refund_id="re_p1")
    ]
    # A charge still in flight somewhere (another process) is refused by the gateway.
    with pytest.raises(CardDeclined):
        gateway.charge("p1", OK, 1000)


def test_a_refund_of_a_declined_payment_has_nothing_to_return() -> None:
    store, repo, gateway = make_store()
    store.send(charge_of(token=DECLINED))
    store.send(RefundPayment("p1", "r1"))
    store.skip_received_actions()
    assert len(repo.events("p1")) == 1
    calls = gateway.calls
    store.send(RefundPayment("p1", "r1"))
    assert store.receive(PaymentCommandDone).status == "declined"
    assert gateway.calls == calls


def test_a_refund_the_gateway_cannot_make_is_reported_and_nothing_recorded() -> None:
    class Down(DemoGateway):
        def refund(self, idempotency_key: str) -> object:  # type: ignore[override]
            raise GatewayUnavailable("down")

    store, repo, _ = make_store(Down(seed=1))
    store.send(RefundPayment("p1", "r1"))
    store.receive(GatewayFailed)
    assert store.receive(PaymentCommandFailed).command == RefundPayment("p1", "r1")
    assert repo.events("p1") == []
    assert store.state.payments["p1"].writing == ()


def test_the_demo_gateway_follows_the_public_test_cards() -> None:
    gateway = DemoGateway(seed=3)
    assert gateway.charge("a", gateway.tokenize("4242424242424242"), 500).amount_cents == 500
    with pytest.raises(CardDeclined, match="card declined"):
        gateway.charge("b", gateway.tokenize("4000000000000002"), 500)
    with pytest.raises(CardDeclined, match="insufficient funds"):
        gateway.charge("c", gateway.tokenize("4000000000009995"), 500)
    with pytest.raises(GatewayUnavailable):
        gateway.charge("d", gateway.tokenize("4000000000000119"), 500)
    assert gateway.charge("a", gateway.tokenize("4242424242424242"), 500).charge_id == "ch_a"
    assert gateway.charges() == {"a": 500}


def test_a_refund_repeated_after_a_conflict_records_the_amount_refunded_the_first_time() -> None:
    store, repo, gateway = make_store()
    gateway.charge("p1", OK, 1000)
    repo.write("p1", succeeded())  # this store has not loaded it: presumed new
    store.send(RefundPayment("p1", "r1"))
    store.skip_received_actions()
    assert repo.events("p1")[-1] == PaymentRefunded(
        payment_id="p1", reservation_id="r1", refunded_cents=1000, refund_id="re_p1"
    )
    assert gateway.net_charged("p1") == 0


def test_a_charge_that_loses_to_a_recorded_failure_is_refunded_not_kept() -> None:
    store, repo, gateway = make_store()
    # An earlier attempt (another process, before a restart) failed for sure and
    # recorded it; the gateway holds nothing for the key, so a new charge goes through.
    repo.write(
        "p1",
        PaymentFailed(
            payment_id="p1", reservation_id="r1", amount_cents=1000, reason="down", uncertain=False
        ),
    )
    store.send(charge_of())  # not loaded here: presumed new
    store.skip_received_actions()
    assert repo.events("p1")[-1] == PaymentRefunded(
        payment_id="p1", reservation_id="r1", refunded_cents=1000, refund_id="re_p1"
    )
    assert gateway.net_charged("p1") == 0
    store.send(charge_of())
    assert store.receive(PaymentCommandDone).status == "refunded"


def test_an_unrecorded_charge_whose_refund_fails_is_refunded_later() -> None:
    class FlakyRefunds(DemoGateway):
        failures = 1

        def refund(self, idempotency_key: str) -> Any:
            if self.failures:
                self.failures -= 1
                raise GatewayUnavailable("down")
            return super().refund(idempotency_key)

    store, repo, gateway = make_store(FlakyRefunds(seed=1))
    repo.write(
        "p1",
        PaymentDeclined(payment_id="p1", reservation_id="r1", amount_cents=1000, reason="x"),
    )
    gateway.charge("p1", OK, 1000)  # charged by a racing process that then lost
    store.send(charge_of())
    store.skip_received_actions()
    assert gateway.net_charged("p1") == 1000  # the refund failed...
    store.advance(1.0)
    store.skip_received_actions()
    assert gateway.net_charged("p1") == 0  # ...and was tried again
    assert isinstance(repo.events("p1")[-1], PaymentRefunded)
