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

``--systems N`` (with ``--redis``) adds a figure at concurrency 64 with N processes,
each its own ``TicketingSystem`` on the same Redis prefix and 64 / N of the callers:
the same reservations, shared out as several application servers would share them.

``--projections-apart`` (with ``--redis``) adds a figure at concurrency 64 with the
read side in a process of its own (``TicketingProjections``; the system runs with
``projection_consumers=0``), measured in turns with the same system keeping its
projections itself; reservations/s still counts until the projections caught up.

    python bin/bench ticketing [--redis URL [--systems N] [--projections-apart]]
                               [--reservations N] [--quick]
    python -m benchmarks.ticketing [--redis URL] [--reservations N]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import queue
import random
import resource
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks._harness import collector_pauses, delete_prefix
from domain import TicketingProjections, TicketingSystem

CONCURRENCY = (1, 8, 64)
WARM_UP = 20
"""Reservations made one at a time before a figure: loads, connections, threads."""


class Callers:
    """The workload on one system: the event, its reservations (1-4 seats in one of
    four sections too large to sell out), and the callers' latencies in seconds."""

    def __init__(self, system: TicketingSystem, reservations: int, seed: int, customer: str):
        system.create_event("bench", sections=dict.fromkeys("ABCD", 50000), price_cents=100)
        rnd = random.Random(seed)
        self.jobs = [
            (f"{customer}{n}", rnd.choice("ABCD"), rnd.randint(1, 4)) for n in range(reservations)
        ]
        self.latencies: list[float] = []
        self._system = system

    def reserve(self, job: tuple[str, str, int]) -> bool:
        began = time.perf_counter()
        outcome = self._system.reserve(job[0], "bench", job[1], job[2])
        self.latencies.append(time.perf_counter() - began)
        return outcome.completed

    def warm_up(self) -> None:
        for job in self.jobs[:WARM_UP]:
            self.reserve(job)
        self.latencies.clear()
        gc.collect()  # the garbage of the figure before this one is not this one's cost

    def run(self, concurrency: int) -> int:
        """The reservations after the warm-up from ``concurrency`` threads; how many completed."""
        with ThreadPoolExecutor(concurrency) as pool:
            return sum(pool.map(self.reserve, self.jobs[WARM_UP:]))


def _at(latencies: list[float], share: float) -> float:
    """The latency (ms) below which ``share`` of the sorted ``latencies`` lie."""
    return latencies[min(len(latencies) - 1, int(share * len(latencies)))] * 1000


def run(
    redis_url: str | None, concurrency: int, reservations: int, projections_apart: bool = False
) -> dict[str, Any]:
    """One figure: reservations/s (completed), latency p50/p95/p99 in ms."""
    prefix = f"bench-ticketing-{uuid.uuid4().hex[:8]}"
    read_side = None
    if projections_apart:
        if redis_url is None:
            raise ValueError("projections apart need Redis: another process shares nothing else")
        read_side = _ReadSideProcess(redis_url, prefix)
    try:
        figure = _run(redis_url, prefix, concurrency, reservations, 0 if read_side else 1)
    finally:
        if read_side is not None:
            read_side.stop()
    if redis_url is not None:
        delete_prefix(redis_url, f"{prefix}:")
    return figure


def _run(
    redis_url: str | None, prefix: str, concurrency: int, reservations: int, projectors: int
) -> dict[str, Any]:
    with TicketingSystem.start(
        redis_url, key_prefix=prefix, projection_consumers=projectors
    ) as system:
        callers = Callers(system, reservations, seed=1, customer="c")
        callers.warm_up()
        with collector_pauses() as pauses:
            began = time.perf_counter()
            completed = callers.run(concurrency)
            answered = time.perf_counter()
            # Until the read side has caught up too: projections that fall behind under
            # load would otherwise lend the sagas their share of the CPU, a rate no
            # system could keep up for long.
            if not system.settle(timeout=120):
                raise RuntimeError("the projections did not catch up within 120 s")
            caught_up = time.perf_counter()
    latencies = sorted(callers.latencies)
    return {
        "backend": "redis" if redis_url else "memory",
        "concurrency": concurrency,
        "reservations_per_s": round(completed / (caught_up - began), 1),
        "catch_up_ms": round((caught_up - answered) * 1000, 1),
        "p50_ms": round(_at(latencies, 0.50), 2),
        "p95_ms": round(_at(latencies, 0.95), 2),
        "p99_ms": round(_at(latencies, 0.99), 2),
        "completed": completed,
        # Every thread stands still during a collection: the longest pause is added
        # to the latency of every reservation in flight then.
        "gc_pauses": len(pauses),
        "gc_total_ms": round(sum(pauses) * 1000, 1),
        "gc_longest_ms": round(max(pauses, default=0.0) * 1000, 1),
    }


Settings = tuple[tuple[int, ...], float]
"""The parent's collector thresholds and switch interval (its --gc and
--switch-interval), for a spawned child to take."""


def _settings() -> Settings:
    return gc.get_threshold(), sys.getswitchinterval()


def _take_settings(settings: Settings) -> None:
    thresholds, interval = settings
    gc.set_threshold(*thresholds)
    sys.setswitchinterval(interval)


def _read_side_process(
    redis_url: str, prefix: str, settings: Settings, ready: Any, stop: Any
) -> None:
    """``--projections-apart``'s process: the read side of ``prefix``, until ``stop``."""
    _take_settings(settings)
    with TicketingProjections.start(redis_url, key_prefix=prefix):
        ready.set()
        stop.wait()


class _ReadSideProcess:
    """A spawned process running ``_read_side_process``, started and ready."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        context = multiprocessing.get_context("spawn")  # see run_systems
        self._ready, self._stop = context.Event(), context.Event()
        self._process = context.Process(
            target=_read_side_process,
            args=(redis_url, prefix, _settings(), self._ready, self._stop),
            daemon=True,
        )
        self._process.start()
        if not self._ready.wait(60):
            self.stop()
            raise RuntimeError("the read side's process did not start within 60 s")

    def stop(self) -> None:
        self._stop.set()
        self._process.join(30)
        if self._process.is_alive():
            self._process.kill()


def _system_process(
    redis_url: str,
    prefix: str,
    index: int,
    concurrency: int,
    reservations: int,
    settings: Settings,
    barrier: Any,
    results: Any,
) -> None:
    """One of ``run_systems``'s processes: a system, its share of the callers."""
    _take_settings(settings)
    with TicketingSystem.start(redis_url, key_prefix=prefix, node=f"bench-{index}") as system:
        callers = Callers(system, reservations, seed=index, customer=f"c{index}-")
        callers.warm_up()
        barrier.wait()  # every system is warm: they start together
        used = resource.getrusage(resource.RUSAGE_SELF)
        began = time.time()
        completed = callers.run(concurrency)
        answered = time.time()
        barrier.wait()  # the settle below must not wait for another system's callers
        if not system.settle(timeout=120):
            raise RuntimeError("the projections did not catch up within 120 s")
        now = resource.getrusage(resource.RUSAGE_SELF)
        cpu = now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime
        results.put((began, answered, time.time(), completed, callers.latencies, cpu))


def _result(results: Any, processes: list[Any]) -> Any:
    """The next process's result; a process that died raises instead of being waited for."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            return results.get(timeout=1.0)
        except queue.Empty:
            failed = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
            if failed:
                raise RuntimeError(f"a system's process failed (exit codes {failed})") from None
    raise RuntimeError("the systems did not finish within 600 s")


def run_systems(
    redis_url: str, systems: int, concurrency: int, reservations: int
) -> dict[str, Any]:
    """One figure with ``systems`` processes on one Redis prefix (see the module doc):
    reservations/s from the first start to the last catch-up, latencies of all callers,
    CPU seconds per reservation of the processes together (the Redis server's aside)."""
    prefix = f"bench-ticketing-{uuid.uuid4().hex[:8]}"
    # spawn, not fork: this process has threads (the console's, a system's), and a
    # forked child inherits their locks in whatever state they were.
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(systems), context.Queue()
    settings = _settings()
    share = reservations // systems + WARM_UP
    processes = [
        context.Process(
            target=_system_process,
            args=(redis_url, prefix, n, concurrency // systems, share, settings, barrier, results),
        )
        for n in range(systems)
    ]
    for process in processes:
        process.start()
    try:
        done = [_result(results, processes) for _ in processes]
    finally:
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()
        delete_prefix(redis_url, f"{prefix}:")
    completed = sum(d[3] for d in done)
    latencies = sorted(x for d in done for x in d[4])
    elapsed = max(d[2] for d in done) - min(d[0] for d in done)
    return {
        "systems": systems,
        "concurrency": concurrency,
        "reservations_per_s": round(completed / elapsed, 1),
        "p50_ms": round(_at(latencies, 0.50), 2),
        "p99_ms": round(_at(latencies, 0.99), 2),
        "cpu_ms_per_reservation": round(sum(d[5] for d in done) / completed * 1000, 3),
        "completed": completed,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis", metavar="URL", help="also measure on this Redis")
    parser.add_argument("--reservations", type=int, default=None, help="per repetition")
    parser.add_argument(
        "--projections-apart",
        action="store_true",
        help="with --redis: also measure the read side in a process of its own at c=64",
    )
    parser.add_argument(
        "--systems",
        type=int,
        default=1,
        metavar="N",
        help="with --redis: also measure N processes sharing the callers at concurrency 64",
    )


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
    if args.redis and args.projections_apart:
        _measure_projections_apart(args, report, console, reservations)
    if args.redis and args.systems > 1:
        _measure_systems(args, report, console, reservations)


def _measure_projections_apart(args: argparse.Namespace, report: Any, console: Any, n: int) -> None:
    """The ``--projections-apart`` figure, beside the system keeping its projections
    itself, measured in turns with it."""
    label = "redis c=64 read side apart"
    together: list[dict[str, Any]] = []
    apart: list[dict[str, Any]] = []
    with console.status(f"ticketing: {label}"):
        for _ in range(args.repeat):
            together.append(run(args.redis, 64, n))
            apart.append(run(args.redis, 64, n, projections_apart=True))
    _report_pair(report, "redis c=64 read side in process", together, label, apart)


def _measure_systems(args: argparse.Namespace, report: Any, console: Any, n: int) -> None:
    """The ``--systems`` figure, beside one system on Redis measured in turns with it."""
    label = f"redis c=64, {args.systems} systems"
    alone: list[dict[str, Any]] = []
    shared: list[dict[str, Any]] = []
    with console.status(f"ticketing: {label}"):
        for _ in range(args.repeat):
            alone.append(run_systems(args.redis, 1, 64, n))
            shared.append(run_systems(args.redis, args.systems, 64, n))
    _report_pair(
        report, "redis c=64, 1 system", alone, label, shared, cpu=True, shares=("p50", "p99")
    )


def _report_pair(
    report: Any,
    base: str,
    base_runs: list[dict[str, Any]],
    name: str,
    runs: list[dict[str, Any]],
    *,
    cpu: bool = False,
    shares: tuple[str, ...] = ("p50", "p95", "p99"),
) -> None:
    """Reservations/s (``name``'s against ``base``'s), CPU per reservation if measured,
    and latencies of two configurations measured in turns."""
    from benchmarks._harness import Figure

    for label, samples, baseline in ((base, base_runs, None), (name, runs, base)):
        report.add(
            Figure(
                "ticketing",
                label,
                "reservations/s",
                [s["reservations_per_s"] for s in samples],
                baseline=baseline,
            )
        )
        if cpu:
            report.add(
                Figure(
                    "ticketing",
                    f"{label} cpu per reservation",
                    "ms",
                    [s["cpu_ms_per_reservation"] for s in samples],
                    baseline=None if baseline is None else f"{baseline} cpu per reservation",
                    higher_is_better=False,
                )
            )
        for share in shares:
            report.add(
                Figure(
                    "ticketing",
                    f"{label} {share}",
                    "ms",
                    [s[f"{share}_ms"] for s in samples],
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
