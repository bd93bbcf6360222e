"""The read side apart: a system with ``projection_consumers=0`` and a
``TicketingProjections`` elsewhere keep the same projections as one system alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from domain import InvalidRequest, TicketingProjections, TicketingSystem
from tests.domain.conftest import OpenBackend, StartSystem

ROOT = Path(__file__).resolve().parents[2]


def _reserve_some(system: TicketingSystem, n: int) -> int:
    system.create_event("gig", sections={"A": 40, "B": 40}, price_cents=500)
    completed = 0
    for i in range(n):
        outcome = system.reserve(f"c{i}", "gig", "AB"[i % 2], 1 + i % 3)
        completed += outcome.completed
    return completed


def test_a_system_without_projection_consumers_leaves_its_read_side_to_projections_elsewhere(
    start: StartSystem, backend: OpenBackend
) -> None:
    system = start(projection_consumers=0, wait_timeout=0.2)
    completed = _reserve_some(system, 12)
    assert completed == 12
    # Nobody projects yet: the read side lags behind what is recorded.
    assert not system.settle(timeout=0.3)
    with TicketingProjections.start(persistence=backend()) as read_side:
        assert read_side.settle(timeout=20)
        assert system.settle(timeout=1)
        section = system.availability("gig", "A")
        assert section.sold == sum(1 + i % 3 for i in range(0, 12, 2))
        assert section.available + section.reserved + section.sold == section.capacity
        report = system.verify(timeout=1)
        assert report.ok, report
    assert not read_side.running


@pytest.mark.redis
def test_the_read_side_in_a_process_of_its_own_projects_what_a_system_records(
    redis_url: str, key_prefix: str
) -> None:
    launcher = subprocess.Popen(
        [sys.executable, str(ROOT / "bin" / "run-projections"), "--redis", redis_url,
         "--key-prefix", key_prefix],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert launcher.stdout is not None
        assert "projecting" in launcher.stdout.readline()  # subscribed: it is running
        with TicketingSystem.start(
            redis_url, key_prefix=key_prefix, projection_consumers=0
        ) as system:
            assert _reserve_some(system, 20) == 20
            assert system.settle(timeout=20)
            seats = sum(1 + i % 3 for i in range(20))
            taken = [system.availability("gig", s) for s in "AB"]
            assert sum(a.sold for a in taken) == seats
            report = system.verify(timeout=5)
            assert report.ok, report
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=20) == 0  # a graceful stop on SIGTERM
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()


def test_a_read_side_needs_at_least_one_consumer(backend: OpenBackend) -> None:
    with pytest.raises(InvalidRequest, match="consumers"):
        TicketingProjections.start(persistence=backend(), consumers=0)


def test_a_negative_number_of_consumers_is_refused_before_anything_starts() -> None:
    with pytest.raises(InvalidRequest, match="projection_consumers"):
        TicketingSystem.start(projection_consumers=-1)
    with pytest.raises(InvalidRequest, match="saga_consumers"):
        TicketingSystem.start(saga_consumers=-1)


def test_stopping_a_read_side_twice_is_harmless_and_ends_its_wait(backend: OpenBackend) -> None:
    read_side = TicketingProjections.start(persistence=backend())
    assert read_side.running
    assert not read_side.wait(timeout=0.01)
    read_side.stop()
    read_side.stop()
    assert read_side.wait(timeout=0)
    assert not read_side.running
