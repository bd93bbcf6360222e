"""Where a reservation's time goes: the gaps between the steps its events record.

Runs the ticketing workload of ``benchmarks.ticketing`` once (in memory, or on Redis
under a fresh key prefix, deleted afterwards), then reads back every completed
reservation's events and prints, for each step to the next, the median and p99 gap
and the mean gap of the slowest 1% of reservations. The steps are the caller's call,
the events in the order the saga makes them (each stamped with ``recorded_at`` when
it was appended) and the caller's wake-up. Each gap is one or two hand-overs between
threads (caller, saga store, inventory, payments, a subscription), so under load it
is mostly time spent waiting for the interpreter lock.

    python -m benchmarks.stages [--redis URL] [--concurrency 64] [--reservations 3000]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from actors import tune_gc, tune_switch_interval
from benchmarks._harness import delete_prefix
from benchmarks.ticketing import WARM_UP, Callers
from domain import TicketingSystem
from domain._events import inventory_stream, payment_stream, reservation_stream

STEPS = (
    "call",
    "ReservationStarted",
    "SeatsReserved",
    "ReservationSeatsHeld",
    "PaymentSucceeded",
    "ReservationPaid",
    "SeatsConfirmed",
    "ReservationCompleted",
    "woken",
)
SECTIONS = "ABCD"  # the sections Callers creates


def measure(redis_url: str | None, concurrency: int, reservations: int) -> list[dict[str, float]]:
    """Each completed reservation's steps, as seconds since the epoch."""
    prefix = f"bench-stages-{uuid.uuid4().hex[:8]}"
    calls: dict[str, tuple[float, float]] = {}
    steps: list[dict[str, float]] = []
    with TicketingSystem.start(redis_url, key_prefix=prefix) as system:
        jobs = Callers(system, reservations, seed=1, customer="c").jobs

        def reserve(job: tuple[str, str, int]) -> None:
            began = time.time()
            outcome = system.reserve(job[0], "bench", job[1], job[2])
            if outcome.completed:
                calls[outcome.reservation_id] = (began, time.time())

        for job in jobs[:WARM_UP]:
            reserve(job)
        calls.clear()
        gc.collect()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(reserve, jobs[WARM_UP:]))
        system.settle(timeout=120)
        events = system.persistence.events
        held: dict[tuple[str, str], float] = {}
        for section in SECTIONS:
            for recorded in events.read(inventory_stream("bench", section)):
                rid = getattr(recorded.event, "reservation_id", None)
                if rid is not None:
                    held[(rid, type(recorded.event).__name__)] = recorded.metadata.recorded_at
        for rid, (began, woken) in calls.items():
            at = {"call": began, "woken": woken}
            for stream in (reservation_stream(rid), payment_stream(rid)):
                for recorded in events.read(stream):
                    at[type(recorded.event).__name__] = recorded.metadata.recorded_at
            for name in ("SeatsReserved", "SeatsConfirmed"):
                if (rid, name) in held:
                    at[name] = held[(rid, name)]
            if all(step in at for step in STEPS):
                steps.append(at)
    if redis_url is not None:
        delete_prefix(redis_url, f"{prefix}:")
    return steps


def report(steps: list[dict[str, float]]) -> str:
    totals = sorted(s["woken"] - s["call"] for s in steps)
    p99 = totals[int(0.99 * (len(totals) - 1))]
    slowest = [s for s in steps if s["woken"] - s["call"] >= p99]
    lines = [
        f"{len(steps)} reservations: p50 {totals[len(totals) // 2] * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms",
        f"{'step':45} {'median':>8} {'p99':>8} {'slowest 1%':>11}",
    ]
    for before, after in itertools.pairwise(STEPS):
        gaps = sorted((s[after] - s[before]) * 1000 for s in steps)
        slow = statistics.mean((s[after] - s[before]) * 1000 for s in slowest)
        lines.append(
            f"{before + ' -> ' + after:45} {gaps[len(gaps) // 2]:8.1f}"
            f" {gaps[int(0.99 * (len(gaps) - 1))]:8.1f} {slow:11.1f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--redis", metavar="URL", help="on this Redis (default: in memory)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--reservations", type=int, default=3000)
    args = parser.parse_args()
    tune_gc()
    tune_switch_interval()
    print(report(measure(args.redis, args.concurrency, args.reservations)))


if __name__ == "__main__":
    main()
