"""Where a reservation's time goes: the gaps between the steps its events record.

Runs the ticketing workload of ``benchmarks.ticketing`` once (in memory, or on Redis
under a fresh key prefix, deleted afterwards), then reads back every completed
reservation's events and prints, for each step to the next, the median and p99 gap
and the mean gap of the slowest 1% of reservations. The steps are the caller's call,
the events in the order the saga makes them (each stamped with ``recorded_at`` when
it was appended) and the caller's wake-up. Each gap is one or two hand-overs between
threads (caller, saga store, inventory, payments, a subscription), so under load it
is mostly time spent waiting for the interpreter lock.

Then where its CPU goes (each thread's CPU clock), over the same span as
``bin/bench ticketing``'s rate (from the first call until the projections caught up):
the process's CPU per reservation, how many cores it kept busy, and each thread's
share, threads grouped by role (the store's, a subscription's, the callers...). Only
the thread holding the interpreter lock runs Python, so a process near one core in
use, with every thread's CPU adding up to it, has met the lock's wall: a reservation
then costs what its threads' CPU adds up to, and the rate is one core divided by it.

    python -m benchmarks.stages [--redis URL] [--concurrency 64] [--reservations 3000]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import re
import resource
import statistics
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

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


@dataclass
class Run:
    """One run: each completed reservation's steps (seconds since the epoch), and
    where the process's CPU went meanwhile."""

    steps: list[dict[str, float]]
    cpu_ms: float = 0.0
    """Process CPU (user + system) per completed reservation, in ms."""
    system_ms: float = 0.0
    """Of which in the kernel (system calls, page faults)."""
    cores: float = 0.0
    """Process CPU seconds per second of the run: how many cores it kept busy."""
    threads: dict[str, float] = field(default_factory=dict)
    """CPU per completed reservation (ms) of each thread role, most first (empty where
    threads have no CPU clock of their own, see ``thread_cpu``)."""


def thread_cpu() -> dict[int, tuple[str, float]]:
    """Each live thread's CPU seconds (user + system), by thread ident, with its name.

    From each thread's own CPU clock (``pthread_getcpuclockid``), to the nanosecond:
    ``/proc``'s per-thread counts are in clock ticks, and 64 callers each under a tick
    would all read as nothing. Empty where the platform has no such clock.
    """
    getcpuclockid = getattr(time, "pthread_getcpuclockid", None)
    out: dict[int, tuple[str, float]] = {}
    if getcpuclockid is None:
        return out
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            out[thread.ident] = (thread.name, time.clock_gettime(getcpuclockid(thread.ident)))
        except OSError:  # it ended meanwhile
            continue
    return out


def role(name: str, node: str) -> str:
    """A thread's role: its name without the system's node and a trailing number
    (``subscription-<group>-<node>-<consumer>`` is its group's subscription)."""
    name = name.split(f"-{node}-")[0] if name.startswith("subscription-") else name
    name = name.replace(f"@{node}", "").replace(f"-{node}", "")
    return re.sub(r"[-_]\d+$", "", name)


def measure(redis_url: str | None, concurrency: int, reservations: int) -> Run:
    """Run the workload once; each completed reservation's steps and the CPU it cost."""
    prefix = f"bench-stages-{uuid.uuid4().hex[:8]}"
    calls: dict[str, tuple[float, float]] = {}
    steps: list[dict[str, float]] = []
    run = Run(steps)
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
        before, used, began = thread_cpu(), resource.getrusage(resource.RUSAGE_SELF), time.time()
        with ThreadPoolExecutor(concurrency, thread_name_prefix="caller") as pool:
            list(pool.map(reserve, jobs[WARM_UP:]))
            callers = thread_cpu()  # the callers' threads end with the pool
        system.settle(timeout=120)
        after = {**callers, **thread_cpu()}
        spent = resource.getrusage(resource.RUSAGE_SELF)
        elapsed = time.time() - began
        done = max(1, len(calls))
        cpu = spent.ru_utime + spent.ru_stime - used.ru_utime - used.ru_stime
        run.cpu_ms = cpu / done * 1000
        run.system_ms = (spent.ru_stime - used.ru_stime) / done * 1000
        run.cores = cpu / elapsed
        roles: Counter[str] = Counter()
        for tid, (name, seconds) in after.items():
            roles[role(name, system.node)] += seconds - before.get(tid, (name, 0.0))[1]
        run.threads = {name: ms / done * 1000 for name, ms in roles.most_common()}
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
    return run


def report(run: Run) -> str:
    steps = run.steps
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
    lines.append(
        f"CPU per reservation {run.cpu_ms:.3f} ms (system {run.system_ms:.3f} ms);"
        f" the process kept {run.cores:.2f} cores busy"
    )
    if run.threads:
        lines.append(f"{'thread':45} {'ms/res':>8} {'share':>8}")
        total = sum(run.threads.values())
        for name, ms in run.threads.items():
            lines.append(f"{name:45} {ms:8.3f} {ms / total:8.0%}")
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
