"""Issue 6, fault 5 (persistence level): Redis down at start-up, and down mid-run."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

import pytest

from persistence import (
    NO_STREAM,
    Codec,
    EventStoreUnavailable,
    Persistence,
    RecordedEvent,
    RedisEventStore,
    RedisSubscriptions,
    redis_client,
)
from tests.faults.helpers import Ledger, append_until_known, check_stream
from tests.persistence.conftest import wait_for
from tests.persistence.events import Deposited
from tests.redis_server import RedisServer, free_port

pytestmark = [pytest.mark.slow, pytest.mark.redis]

FSYNC_ALWAYS = ["--appendonly", "yes", "--appendfsync", "always"]


def test_a_store_started_while_redis_is_down_fails_at_once_with_a_typed_error(
    codec: Codec,
) -> None:
    """Figure: 2 start-ups against a port nobody listens on (the store, the bundle):
    each raises EventStoreUnavailable naming the address in < 1 s (last run 0.13 s).
    """
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    for start in (
        lambda: RedisEventStore.from_url(url, codec),
        lambda: Persistence.on_redis(url, codec),
    ):
        started = time.monotonic()
        with pytest.raises(EventStoreUnavailable, match="Connection refused") as caught:
            start()
        assert time.monotonic() - started < 1.0
        assert f"127.0.0.1:{port}" in str(caught.value)


def test_a_store_started_on_a_redis_that_does_not_answer_fails_after_one_socket_timeout(
    redis_server_factory: Callable[..., RedisServer], codec: Codec
) -> None:
    """Figure: 1 start-up against a redis-server stopped with SIGSTOP (it accepts
    connections and never answers): EventStoreUnavailable after one socket timeout
    (5 s; last run 5.0 s), not three (the client retried timeouts before).
    """
    server = redis_server_factory()
    assert server.process is not None
    server.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(EventStoreUnavailable, match="Timeout"):
            RedisEventStore.from_url(server.url, codec)
        assert time.monotonic() - started < 7.0
    finally:
        server.process.send_signal(signal.SIGCONT)


def test_appends_to_a_redis_that_stops_answering_fail_after_the_socket_timeout_then_resume(
    redis_server_factory: Callable[..., RedisServer], codec: Codec
) -> None:
    """Figure: a redis-server stopped with SIGSTOP mid-run (it still accepts
    connections), socket_timeout 0.5 s, 2 retries: a blocking append and a piped one
    (their connections' timeouts kept by the kernel) each raise EventStoreUnavailable
    after three timeouts, well under 3 s (last run: ~1.6 s each); after SIGCONT the
    same store appends again, each append there at most once.
    """
    server = redis_server_factory()
    assert server.process is not None
    store = RedisEventStore(redis_client(server.url, socket_timeout=0.5), codec, prefix="t")
    try:
        store.append("s", [Deposited(account="a", amount=1)], NO_STREAM)
        store.append_async("s", [Deposited(account="a", amount=2)], 1).result(5)
        server.process.send_signal(signal.SIGSTOP)
        try:
            for append in (
                lambda: store.append("s", [Deposited(account="a", amount=3)], 2),
                lambda: store.append_async(
                    "s", [Deposited(account="a", amount=3)], 2
                ).result(10),
            ):
                started = time.monotonic()
                with pytest.raises(EventStoreUnavailable):
                    append()
                assert time.monotonic() - started < 3.0
        finally:
            server.process.send_signal(signal.SIGCONT)
        # The appends sent meanwhile were in the server's socket buffers: it may have
        # run one of them on waking (an ambiguous outcome, as a timeout always is).
        amounts = [e.event.amount for e in store.read("s")]  # type: ignore[attr-defined]
        assert amounts in ([1, 2], [1, 2, 3])
        version = len(amounts)
        assert store.append("s", [Deposited(account="a", amount=4)], version).version == version + 1
    finally:
        store.close()


def test_redis_down_for_three_seconds_gives_typed_errors_then_the_same_store_resumes(
    redis_server_factory: Callable[..., RedisServer], codec: Codec
) -> None:
    """Figure: 4 threads appending 3 events at a time to 32 streams for ~2 s, Redis
    (appendfsync always) killed and kept down for 3 s, then restarted on its data
    dir, then ~2 s more; a subscription runs throughout. While it is down: every
    append and read raises EventStoreUnavailable within 2 s, nothing else (last
    run: 12 probes, slowest 0.43 s; 104 appends retried by the appenders). After:
    the same store and subscription carry on, every acknowledged append is there
    whole (versions a multiple of 3, no gap or duplicate), and the subscription has
    seen every acknowledged event.
    """
    threads_count, streams_each = 4, 8
    server = redis_server_factory(extra_args=FSYNC_ALWAYS)
    store = RedisEventStore.from_url(server.url, codec, prefix="u", partitions=4)
    seen: set[str] = set()
    seen_lock = threading.Lock()

    def project(event: RecordedEvent) -> None:
        with seen_lock:
            seen.add(event.metadata.event_id)

    subscription = RedisSubscriptions(store).subscribe(
        "projection", project, claim_idle=1.0, start="beginning"
    )
    stop = threading.Event()
    ledgers = [Ledger() for _ in range(threads_count)]

    def appender(index: int) -> None:
        ledger = ledgers[index]
        versions = {f"s-{index}-{n}": 0 for n in range(streams_each)}
        try:
            while not stop.is_set():
                for stream_id, version in versions.items():
                    versions[stream_id] = append_until_known(
                        store, stream_id, version, ledger, events=3
                    )
        except BaseException as error:
            ledger.errors.append(error)

    threads = [threading.Thread(target=appender, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    try:
        stop.wait(2.0)
        server.kill()
        down_since = time.monotonic()
        slowest = 0.0
        probes = 0
        while time.monotonic() - down_since < 3.0:  # meanwhile: typed errors, quickly
            for probe in (
                lambda: store.append("probe", [Deposited(account="p", amount=1)], 0),
                lambda: store.read("s-0-0"),
            ):
                started = time.monotonic()
                with pytest.raises(EventStoreUnavailable):
                    probe()
                slowest = max(slowest, time.monotonic() - started)
                probes += 1
        before_restart = sum(
            len(ids) for ledger in ledgers for ids in ledger.acknowledged.values()
        )
        server.start()
        stop.wait(2.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    try:
        assert not any(thread.is_alive() for thread in threads), "an appender hangs"
        assert [ledger.errors for ledger in ledgers] == [[]] * threads_count
        assert slowest < 2.0  # last run 0.43 s; room for a loaded CI machine
        assert sum(ledger.retries for ledger in ledgers) > 0
        acknowledged = {
            stream: ids for ledger in ledgers for stream, ids in ledger.acknowledged.items()
        }
        total = sum(len(ids) for ids in acknowledged.values())
        assert total > before_restart  # the same store appended again after the restart
        for stream_id, ids in acknowledged.items():
            events = store.read(stream_id)
            assert len(events) % 3 == 0  # whole appends only
            check_stream(events, ids)
        assert store.read("probe") == []
        everything = {i for ids in acknowledged.values() for i in ids}
        assert wait_for(lambda: seen >= everything, timeout=15), len(everything - seen)
        assert subscription.running
        assert subscription.error is None
        print(f"\nredis unavailable: {total} events acknowledged, {probes} probes failed "
              f"typed (slowest {slowest:.3f}s), "
              f"{sum(ledger.retries for ledger in ledgers)} appender retries")
    finally:
        subscription.stop(timeout=5)
        store.close()
