"""Issue 6, fault 2: the application killed (``SIGKILL``) with many sagas in flight."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from domain import ReservationStatus, TicketingSystem
from domain._events import PaymentRefunded, PaymentSucceeded, payment_stream
from domain._verify import (
    NO_SEAT_SOLD_TWICE,
    PAYMENTS_SETTLED,
    SAGAS_TERMINAL,
    SEATS_CONSERVED,
)
from tests.faults.ticketing_process import SLOW_SAGA
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]
THREADS = 80
CHARGES_BEFORE_KILL = 60
MARGIN = 8.0


def start_process(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.faults.ticketing_process", *args],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def read_lines(process: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """The process's stdout, line by line, on a queue (None at its end)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.strip())
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        pause.wait(0.05)
    return True


@pytest.mark.parametrize("restart_after", [0.0, 4.0], ids=["at-once", "after-the-deadlines"])
def test_sagas_in_flight_when_the_application_is_killed_all_end_settled_after_a_restart(
    redis_server_factory: Callable[..., RedisServer], restart_after: float
) -> None:
    """Figure: 1 process, 80 threads reserving 1-4 seats (1 card in 7 declined) through a
    gateway taking 0.3-1.2 s per call, ``SIGKILL``ed once it has made 60 charges (80
    sagas in flight); a new system (another node) on the same Redis, at once or 4 s
    later (past the 3 s payment deadline of every saga in flight, so they time out and
    refund): every saga terminal within seats + payment timeout + 8 s of the restart,
    seats conserved, every charge the dead process made either kept by a completed
    reservation or refunded."""
    server = redis_server_factory(extra_args=["--appendonly", "yes", "--appendfsync", "always"])
    victim = start_process("slow", server.url, "app", "victim", str(THREADS), "60")
    lines = read_lines(victim)
    started: set[str] = set()
    charged: set[str] = set()
    watchdog = threading.Timer(30, victim.kill)  # a victim that never charges fails the test
    watchdog.start()
    try:
        while len(charged) < CHARGES_BEFORE_KILL:
            line = lines.get(timeout=30)
            assert line is not None, "the victim ended before it was killed"
            if line.startswith("started "):
                started.add(line.split()[1])
            elif line.startswith("charged "):
                charged.add(line.split()[1])
    finally:
        watchdog.cancel()
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    assert victim.returncode == -signal.SIGKILL
    while (line := lines.get(timeout=10)) is not None:
        if line.startswith("charged "):
            charged.add(line.split()[1])  # printed before the kill, read after it

    threading.Event().wait(restart_after)
    restarted_at = time.monotonic()
    system = TicketingSystem.start(
        server.url, key_prefix="app", node="heir", saga=SLOW_SAGA, claim_idle=1.0
    )
    try:
        events = system.persistence.events
        open_at_kill = system.resumed_at_start
        assert open_at_kill >= 20, f"only {open_at_kill} sagas were in flight"
        limit = SLOW_SAGA.seats_timeout + SLOW_SAGA.payment_timeout + MARGIN

        def all_terminal() -> bool:
            report = TicketingSystem.verify_backend(persistence=system.persistence)
            return report.check(SAGAS_TERMINAL).ok

        assert wait_until(all_terminal, limit), f"sagas still open {limit} s after the kill"
        took = time.monotonic() - restarted_at
        report = system.verify(timeout=20)
        for name in (NO_SEAT_SOLD_TWICE, SEATS_CONSERVED, SAGAS_TERMINAL, PAYMENTS_SETTLED):
            assert report.check(name).ok, report.check(name)
        assert report.ok, report
        for section in report.sections:
            assert section.reserved == 0, section
            assert section.available + section.sold == section.capacity, section

        # The dead process's gateway ledger died with it: its charges are judged by the
        # payment streams. Each must be kept by a completed reservation or refunded
        # (a refund closes the key: a real gateway returns the money).
        refunds = 0
        unsettled = []
        for payment_id in charged:
            recorded = [r.event for r in events.read(payment_stream(payment_id))]
            refunded = any(isinstance(e, PaymentRefunded) for e in recorded)
            kept = [e for e in recorded if isinstance(e, PaymentSucceeded)]
            completed = bool(kept) and (
                (outcome := system.reservation(kept[0].reservation_id)) is not None
                and outcome.status is ReservationStatus.COMPLETED
            )
            refunds += refunded
            if not (refunded or completed):
                unsettled.append((payment_id, recorded))
        assert not unsettled, unsettled
        print(
            f"\n{len(started)} sagas started, {len(charged)} charges by the dead process "
            f"({refunds} refunded), "
            f"{open_at_kill} open at the kill, all terminal {took:.1f} s after the restart "
            f"({restart_after} s after the kill); "
            f"{report.reservations}"
        )
    finally:
        system.stop()
