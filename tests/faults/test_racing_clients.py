"""Issue 6, fault 1: client processes racing for overlapping sections of one event."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from domain import ReservationStatus, TicketingSystem
from domain._verify import (
    NO_SEAT_SOLD_TWICE,
    PAYMENTS_SETTLED,
    PROJECTIONS_MATCH,
    SAGAS_TERMINAL,
    SEATS_CONSERVED,
)
from tests.faults.ticketing_process import SECTIONS
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 4
THREADS = 16
SECONDS = 20.0


def test_processes_racing_for_overlapping_sections_never_sell_a_seat_twice(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """Figure: 4 processes x 16 threads, each process its own ``TicketingSystem`` on one
    Redis, reserving 1-4 seats in any of 3 sections of 1,000 seats of one event (1 card
    in 7 declined, so seats come back and are sold again) for 20 s: zero seats sold twice,
    available + reserved + sold = capacity for every section, every projection equal
    to the fold of its streams, every saga terminal, every charge settled."""
    server = redis_server_factory()
    began = time.monotonic()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.faults.ticketing_process", "race", server.url,
             "race", f"p{n}", str(THREADS), str(SECONDS)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for n in range(PROCESSES)
    ]
    outputs = []
    try:
        for process in processes:
            out, _ = process.communicate(timeout=SECONDS + 40)
            assert process.returncode == 0, out[-2000:]
            outputs.append(out.splitlines())
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    ran = time.monotonic() - began

    lines = [line for out in outputs for line in out]
    outcomes = [json.loads(line[8:]) for line in lines if line.startswith("outcome ")]
    errors = [line for line in lines if line.startswith("error ")]
    assert all(out[-1] == "done" for out in outputs), [out[-3:] for out in outputs]
    assert not errors, errors[:5]
    statuses = Counter(o["status"] for o in outcomes)
    assert statuses[ReservationStatus.COMPLETED] > 0
    assert statuses[ReservationStatus.PAYMENT_DECLINED] > 0
    assert set(statuses) <= {"completed", "payment_declined", "rejected"}, statuses

    sold: dict[tuple[str, int], str] = {}
    for outcome in outcomes:
        if outcome["status"] == ReservationStatus.COMPLETED:
            for seat in outcome["seats"]:
                spot = (outcome["section"], seat)
                assert spot not in sold, f"seat {spot} sold to {sold[spot]} and {outcome['rid']}"
                sold[spot] = outcome["rid"]

    with TicketingSystem.start(server.url, key_prefix="race", node="checker") as checker:
        report = checker.verify(timeout=30)
    for name in (
        NO_SEAT_SOLD_TWICE, SEATS_CONSERVED, PROJECTIONS_MATCH, SAGAS_TERMINAL, PAYMENTS_SETTLED
    ):
        assert report.check(name).ok, report.check(name)
    assert {s.section: s.capacity for s in report.sections} == SECTIONS
    for section in report.sections:
        assert section.available + section.reserved + section.sold == section.capacity
        assert section.reserved == 0
        assert section.sold == sum(1 for name, _ in sold if name == section.section)
    assert sum(report.reservations.values()) == len(outcomes)
    print(*[line for line in lines if line.startswith("timing")], sep="\n")
    took = sorted(o["took"] for o in outcomes)
    why = Counter(o["reason"] for o in outcomes if o["status"] != ReservationStatus.COMPLETED)
    print(
        f"\n{len(outcomes)} reservations in {ran:.1f} s: {dict(statuses)} ({dict(why)}); "
        f"{len(sold)} seats sold; reserve took median {took[len(took) // 2]:.2f} s, "
        f"p99 {took[len(took) * 99 // 100]:.2f} s, max {took[-1]:.2f} s"
    )
