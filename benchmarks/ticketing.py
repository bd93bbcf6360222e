"""Ticketing speed: completed reservations per second and their latency, end to end.

Each figure runs a fresh ``TicketingSystem`` (in memory, or on Redis under a fresh key
prefix, deleted afterwards), warms it up, then has ``concurrency`` callers reserve 1-4
seats each with a card that succeeds, on sections large enough never to sell out:
every reservation goes through the whole saga (seats held, payment, confirmation,
projections). Reservations/s counts the time until the last one completed *and* the
projections caught up (``catch-up``: how long that took after the last answer);
latencies are the callers' own. ``longest gc pause``: the cyclic collector's longest
stop of every thread meanwhile (its count and total in the JSON), which is what a
p99 often shows.

    python bin/bench ticketing [--redis URL] [--reservations N] [--quick]
    python -m benchmarks.ticketing [--redis URL] [--reservations N]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks._harness import collector_pauses, delete_prefix
from domain import TicketingSystem

CONCURRENCY = (1, 8, 64)


def run(redis_url: str | None, concurrency: int, reservations: int) -> dict[str, Any]:
    """One figure: reservations/s (completed), latency p50/p95/p99 in ms."""
    prefix = f"bench-ticketing-{uuid.uuid4().hex[:8]}"
    with TicketingSystem.start(redis_url, key_prefix=prefix) as system:
        sections = dict.fromkeys("ABCD", 50000)
        system.create_event("bench", sections=sections, price_cents=100)
        rnd = random.Random(1)
        jobs = [(f"c{n}", rnd.choice("ABCD"), rnd.randint(1, 4)) for n in range(reservations)]
        latencies: list[float] = []

        def reserve(job: tuple[str, str, int]) -> bool:
            began = time.perf_counter()
            outcome = system.reserve(job[0], "bench", job[1], job[2])
            latencies.append(time.perf_counter() - began)
            return outcome.completed

        for job in jobs[:20]:  # warm-up: loads, connections, threads
            reserve(job)
        latencies.clear()
        gc.collect()  # the garbage of the figure before this one is not this one's cost
        with collector_pauses() as pauses:
            began = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as pool:
                completed = sum(pool.map(reserve, jobs[20:]))
            answered = time.perf_counter()
            # Until the read side has caught up too: projections that fall behind under
            # load would otherwise lend the sagas their share of the CPU, a rate no
            # system could keep up for long.
            if not system.settle(timeout=120):
                raise RuntimeError("the projections did not catch up within 120 s")
            caught_up = time.perf_counter()
    latencies.sort()

    def at(share: float) -> float:
        return latencies[min(len(latencies) - 1, int(share * len(latencies)))] * 1000

    if redis_url is not None:
        delete_prefix(redis_url, f"{prefix}:")
    return {
        "backend": "redis" if redis_url else "memory",
        "concurrency": concurrency,
        "reservations_per_s": round(completed / (caught_up - began), 1),
        "catch_up_ms": round((caught_up - answered) * 1000, 1),
        "p50_ms": round(at(0.50), 2),
        "p95_ms": round(at(0.95), 2),
        "p99_ms": round(at(0.99), 2),
        "completed": completed,
        # Every thread stands still during a collection: the longest pause is added
        # to the latency of every reservation in flight then.
        "gc_pauses": len(pauses),
        "gc_total_ms": round(sum(pauses) * 1000, 1),
        "gc_longest_ms": round(max(pauses, default=0.0) * 1000, 1),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis", metavar="URL", help="also measure on this Redis")
    parser.add_argument("--reservations", type=int, default=None, help="per repetition")


def run_bench(args: argparse.Namespace, report: Any, console: Any) -> None:
    """``bin/bench ticketing``: each figure repeated, in-memory figures as the baseline."""
    from benchmarks._harness import Figure

    reservations = args.reservations or (200 if args.quick else 2000)
    backends: list[str | None] = [None] + ([args.redis] if args.redis else [])
    for concurrency in CONCURRENCY:
        n = reservations if concurrency > 1 else max(100, reservations // 5)
        # In turns, a repetition on Redis beside one in memory (see measure_together).
        samples: dict[str | None, list[dict[str, Any]]] = {b: [] for b in backends}
        with console.status(f"ticketing: c={concurrency}"):
            for _ in range(args.repeat):
                for backend in backends:
                    samples[backend].append(run(backend, concurrency, n))
        for backend in backends:
            label = f"{'redis' if backend else 'memory'} c={concurrency}"
            base = f"memory c={concurrency}" if backend else None
            report.add(
                Figure(
                    "ticketing",
                    label,
                    "reservations/s",
                    [s["reservations_per_s"] for s in samples[backend]],
                    baseline=base,
                )
            )
            report.add(
                Figure(
                    "ticketing",
                    f"{label} catch-up",
                    "ms",
                    [s["catch_up_ms"] for s in samples[backend]],
                    higher_is_better=False,
                )
            )
            runs = samples[backend]
            report.add(
                Figure(
                    "ticketing",
                    f"{label} longest gc pause",
                    "ms",
                    [s["gc_longest_ms"] for s in runs],
                    higher_is_better=False,
                    extra={
                        "collections (median)": statistics.median(s["gc_pauses"] for s in runs),
                        "gc total ms (median)": statistics.median(s["gc_total_ms"] for s in runs),
                    },
                )
            )
            for share in ("p50", "p95", "p99"):
                report.add(
                    Figure(
                        "ticketing",
                        f"{label} {share}",
                        "ms",
                        [s[f"{share}_ms"] for s in samples[backend]],
                        higher_is_better=False,
                    )
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--redis", metavar="URL", help="also measure on this Redis")
    parser.add_argument("--reservations", type=int, default=2000, help="per figure")
    args = parser.parse_args()
    backends: list[str | None] = [None] + ([args.redis] if args.redis else [])
    for backend in backends:
        for concurrency in CONCURRENCY:
            n = args.reservations if concurrency > 1 else max(200, args.reservations // 5)
            figure = run(backend, concurrency, n)
            print(
                f"{figure['backend']:6} c={concurrency:<3} "
                f"{figure['reservations_per_s']:8.1f} reservations/s  "
                f"p50 {figure['p50_ms']:7.2f} ms  p95 {figure['p95_ms']:7.2f} ms"
                f"  p99 {figure['p99_ms']:7.2f} ms",
                flush=True,
            )


if __name__ == "__main__":
    main()
