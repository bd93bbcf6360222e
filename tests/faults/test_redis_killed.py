"""Issue 6, fault 3: redis-server killed with -9 again and again under append load."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from persistence import Codec, RecordedEvent, RedisEventStore, RedisSubscriptions
from tests.faults.helpers import Ledger, append_until_known, check_stream
from tests.persistence.conftest import wait_for
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.redis]

FSYNC_ALWAYS = ["--appendonly", "yes", "--appendfsync", "always"]


def test_no_acknowledged_append_is_lost_when_redis_is_killed_every_three_seconds_for_a_minute(
    redis_server_factory: Callable[..., RedisServer], codec: Codec
) -> None:
    """Figure: 6 threads appending one event at a time to 96 streams (16 each) for a
    minute, redis-server (appendonly yes, appendfsync always) killed with SIGKILL
    every 3 s and restarted on the same data dir: 20 kills under load and one after
    it (the issue's minute of load; counts of the last run in docs/reliability.md). Every
    acknowledged append is read back after the last restart, each stream holds
    versions 1..n with no gap and no duplicate, the feeds hold each acknowledged
    event exactly once, and a subscription running throughout has been delivered
    every one of them.
    """
    threads_count, streams_each, kills, every = 6, 16, 20, 3.0
    server = redis_server_factory(extra_args=FSYNC_ALWAYS)
    store = RedisEventStore.from_url(server.url, codec, prefix="k", partitions=8)
    assert store.fsync_policy == "always"
    stop = threading.Event()
    ledgers = [Ledger() for _ in range(threads_count)]
    delivered: set[str] = set()

    def project(event: RecordedEvent) -> None:
        delivered.add(event.metadata.event_id)  # one subscription thread: no lock needed

    subscription = RedisSubscriptions(store).subscribe("readers", project, claim_idle=1.0)

    def appender(index: int) -> None:
        ledger = ledgers[index]
        versions = {f"s-{index}-{n}": 0 for n in range(streams_each)}
        try:
            while not stop.is_set():
                for stream_id, version in versions.items():
                    versions[stream_id] = append_until_known(store, stream_id, version, ledger)
        except BaseException as error:
            ledger.errors.append(error)

    threads = [threading.Thread(target=appender, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for _ in range(kills):
        stop.wait(every)  # load runs meanwhile
        server.kill()
        server.start()
    stop.wait(every)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)

    try:
        assert not any(thread.is_alive() for thread in threads), "an appender hangs"
        assert [ledger.errors for ledger in ledgers] == [[]] * threads_count
        acknowledged = {
            stream: ids for ledger in ledgers for stream, ids in ledger.acknowledged.items()
        }
        total = sum(len(ids) for ids in acknowledged.values())
        assert total > 1000  # the load went on between the kills
        assert sum(ledger.retries for ledger in ledgers) > 0  # the kills were felt

        server.kill()  # one more, after the last acknowledgement
        server.start()
        for stream_id, ids in acknowledged.items():
            check_stream(store.read(stream_id), ids)
        in_feeds = [
            event.metadata.event_id
            for partition in range(store.partitions)
            for event in store.read_feed(partition, count=1_000_000)
        ]
        assert sorted(in_feeds) == sorted(i for ids in acknowledged.values() for i in ids)
        # The subscription kept consuming through every restart: nothing skipped.
        everything = set(in_feeds)
        assert wait_for(lambda: delivered >= everything, timeout=30), len(everything - delivered)
        assert subscription.running
        print(f"\nredis killed: {kills + 1} kills, {total} acknowledged appends, "
              f"{sum(ledger.retries for ledger in ledgers)} retries")
    finally:
        subscription.stop(timeout=5)
        store.close()
