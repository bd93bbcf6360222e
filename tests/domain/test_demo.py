"""``bin/run-demo`` as a user runs it: a subprocess, its exit status and its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from domain._events import make_codec
from domain._projections import availability_key
from persistence import Persistence

DEMO = Path(__file__).resolve().parents[2] / "bin" / "run-demo"


def run_demo(*args: str, timeout: float = 120) -> tuple[int, Any]:
    done = subprocess.run(
        [sys.executable, str(DEMO), *args], capture_output=True, text=True, timeout=timeout
    )
    try:
        summary = json.loads(done.stdout) if done.stdout.strip() else None
    except json.JSONDecodeError:
        pytest.fail(f"not JSON: {done.stdout!r}\n{done.stderr}")
    return done.returncode, summary


def test_the_demo_runs_in_memory_and_reports_every_invariant_holding() -> None:
    code, summary = run_demo("--customers", "80", "--capacity", "20", "--json")
    assert code == 0
    assert summary["ok"] is True
    assert sum(summary["reservations"].values()) == 80
    assert summary["reservations"].get("payment_declined", 0) > 0
    assert [i["ok"] for i in summary["invariants"]] == [True] * 6
    for section in summary["sections"]:
        assert section["sold"] + section["reserved"] + section["available"] == 20
    assert set(summary["latency_ms"]) == {"p50", "p95", "p99", "max"}


def test_the_demo_restarted_midway_still_finishes_every_reservation_correctly() -> None:
    code, summary = run_demo("--customers", "120", "--capacity", "30", "--restart-midway", "--json")
    assert code == 0, summary
    assert summary["restarted_midway"] is True
    assert sum(summary["reservations"].values()) == 120
    assert summary["errors"] == {}


@pytest.mark.redis
def test_the_demo_on_redis_leaves_data_that_verify_checks_on_its_own(
    redis_url: str, key_prefix: str
) -> None:
    code, summary = run_demo(
        "--redis", redis_url, "--key-prefix", key_prefix, "--customers", "60", "--json"
    )
    assert code == 0, summary
    assert summary["key_prefix"] == key_prefix
    code, report = run_demo("--verify", "--redis", redis_url, "--key-prefix", key_prefix, "--json")
    assert code == 0
    assert report["ok"] is True
    assert sum(report["reservations"].values()) == 60

    # Tamper with a projection: --verify notices and fails.
    persistence = Persistence.on_redis(redis_url, make_codec(), prefix=key_prefix)
    try:
        key = availability_key("e1", "A")
        position = persistence.projections.position(key)
        persistence.projections.apply(key, position + 1, {"available": 999})
    finally:
        persistence.close()
    code, report = run_demo("--verify", "--redis", redis_url, "--key-prefix", key_prefix, "--json")
    assert code == 1
    failed = {i["name"] for i in report["invariants"] if not i["ok"]}
    assert "every projection equals the fold of the event store" in failed


def test_verify_refuses_to_run_without_a_redis_url() -> None:
    done = subprocess.run(
        [sys.executable, str(DEMO), "--verify"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "--redis" in done.stderr
