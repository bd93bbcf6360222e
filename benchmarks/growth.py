"""Growth: the cost per command as aggregates and streams grow, and peak memory.

The workload is the peers' accounts store (``benchmarks.peers``: load on demand,
validate, append with optimistic concurrency, at most ``Accounts.limit`` = 10,000
accounts kept loaded), driven by callers that each send a command and wait for it.

- aggregates: M accounts, N deposits each, M = 1,000 → 10,000 → 100,000 (16 callers);
  past 10,000 the store evicts, so an account comes back by loading its stream again;
- streams: 10 accounts whose streams already hold L events, L = 10 → 100 → 1,000 →
  10,000; one caller and a store that keeps nothing loaded, so every command is a
  load (the whole stream, or the latest snapshot and the events after it) and an
  append; with snapshots, a load that read more than ``SNAPSHOT_EVERY`` events after
  the snapshot saves a new one;
- memory: peak RSS (VmHWM) of a fresh process after 100,000 and after 1,000,000
  commands over 100,000 accounts. On the memory adapter the events themselves live in
  the process and grow with every command, so a third process holds the same events
  without any store: the difference, "memory store's own", is what the store costs.
  On Redis (``--redis``) the events live in Redis and the process's RSS is the store's
  own.

Every figure's baseline is the smallest size of its series, so the ratio shows how
flat the series is. ``--quick`` scales every size down (the CI smoke run).

    python bin/bench growth [--redis URL] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from actors import Effect, Store
from benchmarks._harness import Figure, Report, delete_prefix, measure_figure, rate
from benchmarks.peers import (
    CODEC,
    Account,
    Accounts,
    Conflicted,
    Deposit,
    Deposited,
    Env,
    Loaded,
    accounts,
    drive_callers,
    stream,
)
from persistence import Persistence, SnapshotStore

AREA = "growth"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CALLERS = 16
SNAPSHOT_EVERY = 100
STREAMS = 10  # accounts of the streams series


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="also measure on this Redis (the same sizes; keys under a fresh prefix)",
    )
    parser.add_argument("--deposits", type=int, default=2, help="N per account (default 2)")
    parser.add_argument(
        "--stream-commands",
        type=int,
        default=None,
        help="commands per repetition of the streams series (default 500)",
    )
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-memory figures")


# Loads that start from a snapshot: the peers' reducer, with its loads replaced.


@dataclass(frozen=True)
class SnapshotEnv(Env):
    snapshots: SnapshotStore | None = None  # None: every load reads the whole stream
    every: int = SNAPSHOT_EVERY


def snapshotting(state: Accounts, action: Any, env: SnapshotEnv) -> list[Effect[Any]]:
    """``peers.accounts``, except that a load reads the latest snapshot and its tail."""
    if isinstance(action, Deposit) and action.account not in state.loaded:
        account = state.loaded[action.account] = Account()
        account.waiting.append(action)
        return [_load(env, action.account)]
    if isinstance(action, Conflicted):
        return [_load(env, action.account)]
    return accounts(state, action, env)


def _load(env: SnapshotEnv, name: str) -> Effect[Any]:
    def load() -> Loaded:
        version = balance = 0
        if env.snapshots is not None:
            snapshot = env.snapshots.load(stream(name))
            if snapshot is not None:
                version, balance = snapshot.version, int(snapshot.state)
        tail = env.events.read(stream(name), version)
        balance += sum(e.event.amount for e in tail if isinstance(e.event, Deposited))
        version += len(tail)
        if env.snapshots is not None and len(tail) >= env.every:
            env.snapshots.save(stream(name), version, str(balance).encode())
        return Loaded(name, version, balance)

    return Effect.future(load)


# Backends: a fresh memory adapter, or a fresh prefix on Redis deleted afterwards.


@contextmanager
def backend(redis_url: str | None) -> Iterator[Persistence]:
    if redis_url is None:
        persistence = Persistence.in_memory(CODEC)
        try:
            yield persistence
        finally:
            persistence.close()
        return
    prefix = f"ca-bench-growth-{uuid.uuid4().hex[:8]}"
    persistence = Persistence.on_redis(redis_url, CODEC, prefix=prefix)
    try:
        yield persistence
    finally:
        persistence.close()
        delete_prefix(redis_url, prefix)


# Aggregates.


def run_aggregates(redis_url: str | None, m: int, n: int) -> float:
    with backend(redis_url) as persistence:
        store = Store.start(accounts, Accounts, Env(persistence.events), name="accounts")
        names = [uuid.uuid4().hex[:12] for _ in range(m)]
        try:
            figure = rate(m * n, lambda: drive_callers(store, names, n, CALLERS))
            final = store.state(30)
        finally:
            store.stop()
        assert final.rejected == 0
        assert len(final.loaded) <= max(final.limit, CALLERS)
        for name in names[:: max(1, m // 50)]:  # a sample: every deposit is in its stream
            assert persistence.events.stream_version(stream(name)) == n
        return figure


# Streams.


def run_streams(redis_url: str | None, length: int, commands: int, snapshots: bool) -> float:
    with backend(redis_url) as persistence:
        names = [uuid.uuid4().hex[:12] for _ in range(STREAMS)]
        for name in names:  # the history, written outside the timed part
            for start in range(0, length, 1000):
                batch = [Deposited(amount=1)] * min(1000, length - start)
                persistence.events.append(stream(name), batch, start)
            if snapshots:
                persistence.snapshots.save(stream(name), length, str(length).encode())
        env = SnapshotEnv(persistence.events, persistence.snapshots if snapshots else None)
        # limit 0: nothing stays loaded, so every command loads its account again
        store = Store.start(
            snapshotting, functools.partial(Accounts, limit=0), env, name="accounts"
        )
        rounds = max(1, commands // STREAMS)
        try:
            figure = rate(rounds * STREAMS, lambda: drive_callers(store, names, rounds, 1))
        finally:
            store.stop()
        for name in names:
            assert persistence.events.stream_version(stream(name)) == length + rounds
        return figure


# Peak memory, each figure in a fresh process.


def rss_child(backend_url: str | None, aggregates: int, commands: int, store: bool) -> None:
    """In a fresh process: run the commands, then print its peak RSS as JSON."""
    began = time.perf_counter()
    rounds = max(1, commands // aggregates)
    loaded = 0
    with backend(backend_url) as persistence:
        names = [uuid.uuid4().hex[:12] for _ in range(aggregates)]
        if store:
            ref = Store.start(accounts, Accounts, Env(persistence.events), name="accounts")
            try:
                drive_callers(ref, names, rounds, CALLERS)
                loaded = len(ref.state(30).loaded)
            finally:
                ref.stop()
        else:  # the same events, appended without a store: what the adapter holds
            for _ in range(rounds):
                for name in names:
                    persistence.events.append(stream(name), [Deposited(amount=1)], "any")
        # VmHWM, not getrusage's ru_maxrss: that one keeps the forking parent's peak
        # across exec, so a small child would report bin/bench's own RSS
        peak_kib, current_kib = _status_kib("VmHWM"), _status_kib("VmRSS")
    json.dump(
        {
            "peak_mib": peak_kib / 1024,
            "rss_mib": current_kib / 1024,
            "commands": rounds * aggregates,
            "loaded": loaded,
            "seconds": time.perf_counter() - began,
        },
        sys.stdout,
    )


def _status_kib(field: str) -> int:
    """A field of /proc/self/status (Linux), in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def measure_rss(
    redis_url: str | None, aggregates: int, commands: int, store: bool
) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.growth", "--rss-child"]
    command += [str(aggregates), str(commands), "store" if store else "events"]
    if redis_url:
        command.append(redis_url)
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# The area.


def run(args: argparse.Namespace, report: Report, console: Console) -> None:
    quick = args.quick
    n = args.deposits
    commands = args.stream_commands or (20 if quick else 500)
    targets: list[tuple[str, str | None]] = [("memory", None)]
    if args.redis:
        targets.append(("redis", args.redis))

    def add(name: str, unit: str, run_once: Callable[[], float], base: str | None) -> Figure:
        return measure_figure(
            report, console, AREA, name, unit, run_once, repeat=args.repeat, baseline=base
        )

    for label, url in targets:
        sizes = (100, 500, 2_000) if quick else (1_000, 10_000, 100_000)
        base = f"{label} {sizes[0]:,} aggregates"
        for m in sizes:
            add(
                f"{label} {m:,} aggregates",
                "commands/s",
                functools.partial(run_aggregates, url, m, n),
                None if m == sizes[0] else base,
            )

    for label, url in targets:
        lengths = (10, 100, 1_000) if quick else (10, 100, 1_000, 10_000)
        for snapshots in (False, True):
            kind = "snapshots" if snapshots else "no snapshot"
            base = f"{label} stream {lengths[0]:,} events, {kind}"
            for length in lengths:
                add(
                    f"{label} stream {length:,} events, {kind}",
                    "commands/s",
                    functools.partial(run_streams, url, length, commands, snapshots),
                    None if length == lengths[0] else base,
                )

    if args.no_rss:
        return
    aggregates = 1_000 if quick else 100_000
    runs: list[tuple[str, str | None, bool]] = [("memory", None, True), ("memory", None, False)]
    if args.redis:
        runs.append(("redis", args.redis, True))
    sizes = (aggregates, 10 * aggregates)
    for label, url, store in runs:
        what = label if store else f"{label} events alone"
        for commands_total in sizes:
            name = _rss_name(what, commands_total)
            # one sample: a peak is not a rate, and 1,000,000 commands take minutes
            with console.status(f"{AREA}: {name} (a fresh process)"):
                result = measure_rss(url, aggregates, commands_total, store)
            report.add(_rss_figure(what, commands_total, sizes[0], result["peak_mib"], result))
    # In memory the process is also the database: what the store itself costs is its
    # peak less that of the same events held without it.
    for commands_total in sizes:
        with_store = report.find(AREA, _rss_name("memory", commands_total))
        alone = report.find(AREA, _rss_name("memory events alone", commands_total))
        assert with_store is not None
        assert alone is not None
        extra = {"store_mib": with_store.median, "events_alone_mib": alone.median}
        own = with_store.median - alone.median
        report.add(_rss_figure("memory store's own", commands_total, sizes[0], own, extra))


def _rss_name(what: str, commands: int) -> str:
    return f"{what} peak RSS {commands:,} commands"


def _rss_figure(
    what: str, commands: int, smallest: int, peak_mib: float, extra: dict[str, Any]
) -> Figure:
    """A peak-memory figure; its baseline is the same figure at the smallest size."""
    return Figure(
        AREA,
        _rss_name(what, commands),
        "MiB",
        [peak_mib],
        baseline=None if commands == smallest else _rss_name(what, smallest),
        higher_is_better=False,
        extra=extra,
    )


def _child_main(argv: list[str]) -> None:
    aggregates, commands, kind = int(argv[0]), int(argv[1]), argv[2]
    rss_child(argv[3] if len(argv) > 3 else None, aggregates, commands, kind == "store")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--rss-child"]:
        _child_main(sys.argv[2:])
    else:
        sys.exit("run it through bin/bench growth")
