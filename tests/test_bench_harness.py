"""The benchmark harness's own measuring aids (the figures themselves are never asserted)."""

from __future__ import annotations

import gc
import time

import pytest

from benchmarks._harness import collector_pauses
from benchmarks.stages import STEPS, measure, report, role
from benchmarks.ticketing import run, run_systems


def test_collector_pauses_records_each_collection_and_removes_its_callback() -> None:
    before = list(gc.callbacks)
    with collector_pauses() as pauses:
        gc.collect()
        gc.collect()
    gc.collect()  # after the block: not recorded
    assert len(pauses) == 2
    assert all(0 <= pause < 5 for pause in pauses)
    assert gc.callbacks == before


@pytest.mark.redis
def test_the_systems_figure_runs_every_reservation_through_processes_sharing_one_redis(
    redis_url: str,
) -> None:
    figure = run_systems(redis_url, systems=2, concurrency=4, reservations=40)
    assert (figure["systems"], figure["completed"]) == (2, 40)
    assert figure["reservations_per_s"] > 0
    assert 0 < figure["p50_ms"] <= figure["p99_ms"]
    assert figure["cpu_ms_per_reservation"] > 0


@pytest.mark.redis
def test_the_read_side_apart_figure_counts_until_another_process_has_projected_everything(
    redis_url: str,
) -> None:
    figure = run(redis_url, concurrency=4, reservations=60, projections_apart=True)
    assert figure["completed"] == 40  # all of them after the 20 of the warm-up
    assert figure["reservations_per_s"] > 0
    assert 0 < figure["p50_ms"] <= figure["p99_ms"]


def test_the_read_side_apart_needs_redis() -> None:
    with pytest.raises(ValueError, match="need Redis"):
        run(None, concurrency=1, reservations=25, projections_apart=True)


def test_the_stages_of_each_reservation_come_in_the_order_the_saga_takes_them() -> None:
    run = measure(None, concurrency=4, reservations=60)
    assert len(run.steps) == 40  # all completed after the 20 of the warm-up
    for at in run.steps:
        times = [at[step] for step in STEPS]
        assert times == sorted(times), at
    lines = report(run).splitlines()
    assert len(lines) == 2 + len(STEPS) - 1 + 2 + len(run.threads)


@pytest.mark.skipif(
    not hasattr(time, "pthread_getcpuclockid"), reason="no per-thread CPU clocks here"
)
def test_the_stages_run_counts_the_cpu_of_each_thread_role_within_the_process_cpu() -> None:
    run = measure(None, concurrency=4, reservations=60)
    assert {"store-saga", "store-inventory", "store-payments", "caller"} <= set(run.threads)
    assert "subscription-ticketing-saga" in run.threads
    assert 0 <= run.system_ms <= run.cpu_ms
    # Every thread that ran meanwhile is counted, and nothing else: together they
    # used what the process did (which also counts the threads that ended meanwhile).
    assert 0 < sum(run.threads.values()) <= run.cpu_ms * 1.01
    assert sum(run.threads.values()) >= run.cpu_ms * 0.5
    assert run.threads["caller"] > 0
    assert run.cores > 0


def test_a_threads_role_leaves_out_the_node_and_its_number() -> None:
    node = "host-12-ab"
    assert role(f"store-saga@{node}", node) == "store-saga"
    assert role(f"payment-{node}_3", node) == "payment"
    assert role(f"subscription-ticketing-saga-{node}-saga-1", node) == "subscription-ticketing-saga"
    assert role("caller_17", node) == "caller"
    assert role("persistence-redis-pipe", node) == "persistence-redis-pipe"
