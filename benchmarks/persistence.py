"""Persistence speed on Redis, beside redis-py's raw XADD on the same server, in one run.

Figures (the baselines first; every repetition runs each figure once, interleaved, so
a machine that slows down mid-run slows baseline and subject alike):
- ``raw XADD``: redis-py ``xadd``, one command per round trip (baseline), measured in
  chunks alternating with the one-at-a-time appends;
- ``raw XADD pipelined``: redis-py pipelines of 1,000 ``xadd`` (baseline);
- ``Lua append pipelined``: the append script itself, pipelined from one thread
  (the server-side ceiling of group commit);
- ``append, one at a time``: ``RedisEventStore.append`` with an expected version,
  one thread (target: >= 80% of raw XADD);
- ``thread handoff, N threads``: N threads each handing one request at a time to a
  thread that answers whole batches (a lock per request, no I/O, no work): the
  ceiling CPython sets on any blocking call made from N threads, group commit included;
- ``append, N threads``: N threads (64) appending to distinct streams through group
  commit (target: >= 60,000 appends/s); extra: appends per round trip;
- ``raw XRANGE 10,000``: redis-py ``xrange`` of that stream's 10,000 entries, parsed
  but not decoded (baseline: what a load costs before any event exists);
- ``load 10,000 events``: ``read()`` of a 10,000-event stream (target: < 50 ms);
- ``load from snapshot``: snapshot + 100-event tail of that stream (target: < 5 ms);
- ``memory append`` / ``memory load 10,000``: the in-process adapter, for reference.

Keys live under a fresh ``ca-bench-<random>`` prefix, deleted at the end.
"""

from __future__ import annotations

import argparse
import gc
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis
from pydantic import BaseModel, ConfigDict
from rich.console import Console

from benchmarks._harness import Figure, Report, delete_prefix
from persistence import (
    Codec,
    MemoryEventStore,
    RedisEventStore,
    RedisSnapshotStore,
    redis_client,
)
from persistence._redis_scripts import APPEND

AREA = "persistence"
LOAD_EVENTS = 10_000
TAIL = 100


class SeatsReserved(BaseModel):
    """A typical small event: a few strings and ints."""

    model_config = ConfigDict(frozen=True)
    reservation_id: str
    section: str
    seats: int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis",
        metavar="URL",
        default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="Redis server (default: REDIS_URL, else 127.0.0.1:6379; one is started"
        " from the PATH if nothing answers)",
    )
    parser.add_argument("--threads", type=int, default=64, help="appending threads (64)")


@contextmanager
def _server(url: str, console: Console) -> Iterator[str]:
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        client.ping()
        yield url
        return
    except redis.RedisError:
        pass
    finally:
        client.close()
    from tests.redis_server import RedisServer, redis_server_binary

    binary = redis_server_binary()
    if binary is None:
        raise SystemExit(f"no Redis answers at {url} and no redis-server binary was found")
    console.print(f"[yellow]no Redis at {url}: starting {binary}[/yellow]")
    with RedisServer(binary) as server:
        yield server.url


def run(args: argparse.Namespace, report: Report, console: Console) -> None:
    with _server(args.redis, console) as url:
        prefix = f"ca-bench-{uuid.uuid4().hex[:8]}"
        raw = redis.Redis.from_url(url)
        client = redis_client(url)
        try:
            _run(args, report, console, url, prefix, raw, client)
        finally:
            delete_prefix(url, prefix)
            raw.close()
            client.close()


def _run(
    args: argparse.Namespace,
    report: Report,
    console: Console,
    url: str,
    prefix: str,
    raw: redis.Redis,
    client: redis.Redis,
) -> None:
    quick = args.quick
    one_n = 2_000 if quick else 10_000
    pipelined_n = 20_000 if quick else 100_000
    threads = args.threads
    per_thread = 100 if quick else 500
    codec = Codec()
    codec.register(SeatsReserved)
    event = SeatsReserved(reservation_id="r-0001", section="A", seats=2)
    store = RedisEventStore(client, codec, prefix=f"{prefix}:es")
    snapshots = RedisSnapshotStore(client, prefix=f"{prefix}:es")
    memory = MemoryEventStore(codec)
    fields = {"type": "SeatsReserved", "schema": "1", "data": codec.encode(event).data}
    payload = codec.encode(event).data
    run_no = [0]

    one_at_a_time: dict[str, float] = {}

    def raw_xadd() -> float:
        # Raw XADD and one-at-a-time appends alternate in chunks of 250, so that the
        # ratio holds even when this (shared, virtual) machine changes speed mid-run.
        key, stream = f"{prefix}:raw:{run_no[0]}", f"one-{run_no[0]}"
        raw_time = append_time = 0.0
        for chunk in range(0, one_n, 250):
            start = time.perf_counter()
            for _ in range(250):
                raw.xadd(key, fields)
            middle = time.perf_counter()
            for version in range(chunk, chunk + 250):
                store.append(stream, [event], version)
            raw_time += middle - start
            append_time += time.perf_counter() - middle
        one_at_a_time["append"] = one_n / append_time
        return one_n / raw_time

    def raw_xadd_pipelined() -> float:
        key = f"{prefix}:rawp:{run_no[0]}"
        start = time.perf_counter()
        pipe = raw.pipeline(transaction=False)
        for i in range(pipelined_n):
            pipe.xadd(key, fields)
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()
        return pipelined_n / (time.perf_counter() - start)

    sha = raw.script_load(APPEND)

    def lua_pipelined() -> float:
        streams = 64
        tag = f"{prefix}:lua:{run_no[0]}:{{p0}}"
        start = time.perf_counter()
        pipe = raw.pipeline(transaction=False)
        for i in range(pipelined_n):
            stream = f"s{i % streams}"
            pipe.evalsha(
                sha,
                2,
                f"{tag}:stream:{stream}",
                f"{tag}:feed",
                i // streams,
                1,
                stream,
                "SeatsReserved",
                1,
                payload,
                uuid.uuid4().hex,
                "",
                "",
                repr(time.time()),
                b"",
            )
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()
        return pipelined_n / (time.perf_counter() - start)

    def append_one() -> float:
        return one_at_a_time["append"]  # measured alongside raw XADD

    batching: list[float] = []

    def append_threads() -> float:
        barrier = threading.Barrier(threads + 1)
        errors: list[BaseException] = []

        def writer(index: int) -> None:
            stream = f"t-{run_no[0]}-{index}"
            try:
                barrier.wait()
                for version in range(per_thread):
                    store.append(stream, [event], version)
            except BaseException as error:
                errors.append(error)

        workers = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        before = store.round_trips
        barrier.wait()
        start = time.perf_counter()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - start
        if errors:
            raise errors[0]
        total = threads * per_thread
        batching.append(total / max(1, store.round_trips - before))
        return total / elapsed

    def handoff() -> float:
        return handoff_ceiling(threads, per_thread)

    def append_async_in_flight() -> float:
        # One thread, every append in flight at once (as a store piping its appends):
        # the I/O thread pipelines them, no thread waits per append.
        total = threads * per_thread
        streams = 1000
        start = time.perf_counter()
        futures = [
            store.append_async(f"as-{run_no[0]}-{i % streams}", [event], i // streams)
            for i in range(total)
        ]
        for future in futures:
            future.result(60)
        return total / (time.perf_counter() - start)

    for version in range(0, LOAD_EVENTS, 100):
        store.append("load", [event] * 100, version)
        memory.append("load", [event] * 100, version)
    snapshots.save("load", LOAD_EVENTS - TAIL, b"x" * 200)

    load_key = store.layout.stream("load")

    def raw_xrange() -> float:
        start = time.perf_counter()
        entries = raw.xrange(load_key)
        elapsed = time.perf_counter() - start
        assert len(entries) == LOAD_EVENTS
        return elapsed * 1000

    def load() -> float:
        start = time.perf_counter()
        events = store.read("load")
        elapsed = time.perf_counter() - start
        assert len(events) == LOAD_EVENTS
        return elapsed * 1000

    def load_snapshot() -> float:
        start = time.perf_counter()
        snapshot = snapshots.load("load")
        assert snapshot is not None
        tail = store.read("load", snapshot.version)
        elapsed = time.perf_counter() - start
        assert len(tail) == TAIL
        return elapsed * 1000

    def memory_append() -> float:
        fresh = MemoryEventStore(codec)  # nothing kept from one repetition to the next
        n = one_n * 10
        start = time.perf_counter()
        for version in range(n):
            fresh.append("one", [event], version)
        return n / (time.perf_counter() - start)

    def memory_load() -> float:
        start = time.perf_counter()
        events = memory.read("load")
        elapsed = time.perf_counter() - start
        assert len(events) == LOAD_EVENTS
        return elapsed * 1000

    figures: list[tuple[str, str, Callable[[], float], str | None, bool]] = [
        ("raw XADD", "ops/s", raw_xadd, None, True),
        ("append, one at a time", "appends/s", append_one, "raw XADD", True),
        ("raw XADD pipelined", "ops/s", raw_xadd_pipelined, None, True),
        ("Lua append pipelined", "appends/s", lua_pipelined, "raw XADD pipelined", True),
        (f"thread handoff, {threads} threads", "handoffs/s", handoff, None, True),
        (f"append, {threads} threads", "appends/s", append_threads, "raw XADD pipelined", True),
        ("append_async, all in flight", "appends/s", append_async_in_flight,
         "raw XADD pipelined", True),
        ("raw XRANGE 10,000", "ms", raw_xrange, None, False),
        ("load 10,000 events", "ms", load, "raw XRANGE 10,000", False),
        ("load from snapshot", "ms", load_snapshot, "load 10,000 events", False),
        ("memory append, one at a time", "appends/s", memory_append, "append, one at a time", True),
        ("memory load 10,000", "ms", memory_load, "load 10,000 events", False),
    ]
    samples: dict[str, list[float]] = {name: [] for name, *_ in figures}
    for repetition in range(args.repeat + 1):  # the first is a warm-up
        run_no[0] = repetition
        for name, _unit, body, _baseline, _higher in figures:
            gc.collect()  # garbage of the previous figure is not this one's cost
            with console.status(f"persistence: {name} ({repetition}/{args.repeat})"):
                value = body()
            if repetition:
                samples[name].append(value)
    batching = batching[1:]
    for name, unit, _body, baseline, higher in figures:
        extra = {}
        if name.startswith("append, ") and name.endswith("threads"):
            extra = {"appends per round trip": round(sum(batching) / len(batching), 1)}
        report.add(Figure(AREA, name, unit, samples[name], baseline, higher, extra))
    store.close()
    _print_targets(report, console, threads)


def handoff_ceiling(threads: int, per_thread: int) -> float:
    """Requests/s that ``threads`` threads, each blocking on a lock per request, get
    answered by one thread releasing whole batches: the fewest thread switches any
    blocking call can take (one wake-up per request), and nothing else."""
    have = threading.Condition()
    queue: list[threading.Lock] = []
    stop = [False]

    def answer() -> None:
        while True:
            with have:
                while not queue and not stop[0]:
                    have.wait()
                if not queue:
                    return
                batch = queue[:]
                queue.clear()
            for lock in batch:
                lock.release()

    def ask() -> None:
        for _ in range(per_thread):
            lock = threading.Lock()
            lock.acquire()
            with have:
                queue.append(lock)
                have.notify()
            lock.acquire()

    answerer = threading.Thread(target=answer)
    answerer.start()
    askers = [threading.Thread(target=ask) for _ in range(threads)]
    start = time.perf_counter()
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join()
    elapsed = time.perf_counter() - start
    with have:
        stop[0] = True
        have.notify()
    answerer.join()
    return threads * per_thread / elapsed


def _print_targets(report: Report, console: Console, threads: int) -> None:
    def median(name: str) -> float:
        figure = report.find(AREA, name)
        return figure.median if figure is not None else float("nan")

    one, raw_one = median("append, one at a time"), median("raw XADD")
    rows = [
        ("one-at-a-time appends >= 80% of raw XADD", one / raw_one >= 0.8, f"{one / raw_one:.0%}"),
        (
            f"{threads} threads >= 60,000 appends/s",
            median(f"append, {threads} threads") >= 60_000,
            f"{median(f'append, {threads} threads'):,.0f}/s (CPython's thread handoff"
            f" ceiling here: {median(f'thread handoff, {threads} threads'):,.0f}/s)",
        ),
        (
            "load 10,000 events < 50 ms",
            median("load 10,000 events") < 50,
            f"{median('load 10,000 events'):.1f} ms (redis-py's raw XRANGE of the same"
            f" entries here: {median('raw XRANGE 10,000'):.1f} ms)",
        ),
        (
            "load from snapshot < 5 ms",
            median("load from snapshot") < 5,
            f"{median('load from snapshot'):.2f} ms",
        ),
    ]
    figure = report.find(AREA, f"append, {threads} threads")
    if figure is not None and figure.extra:
        console.print(
            f"group commit: {figure.extra['appends per round trip']} appends per round trip"
        )
    for label, met, value in rows:
        mark = "[green]met[/green]" if met else "[red]missed[/red]"
        console.print(f"target {label}: {value} {mark}")
