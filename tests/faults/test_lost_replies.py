"""Issue 6, fault 4: replies lost between Redis and the client (a dropping TCP proxy)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from persistence import Codec, RedisEventStore
from tests.faults.helpers import Ledger, append_until_known, check_stream
from tests.faults.proxy import ReplyDroppingProxy
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def test_lost_replies_are_resolved_by_idempotent_retries_without_a_duplicate_event(
    redis_server_factory: Callable[..., RedisServer], codec: Codec
) -> None:
    """Figure: 10,000 appends (4 threads x 2,500, one event each, 40 streams) through a
    proxy that drops 1% of the reply chunks by closing the connection after the
    server ran the command (last run: ~100 replies dropped, each an ambiguous
    outcome). Every append is acknowledged exactly once: each stream holds exactly
    the acknowledged event ids at versions 1..n, the feeds hold each once.
    """
    threads_count, per_thread, streams_each = 4, 2_500, 10
    server = redis_server_factory()
    proxy = ReplyDroppingProxy(server.port, seed=6)
    store = RedisEventStore.from_url(proxy.url, codec, prefix="l", partitions=4)
    direct = RedisEventStore.from_url(server.url, codec, prefix="l", partitions=4)
    ledgers = [Ledger() for _ in range(threads_count)]

    def appender(index: int) -> None:
        ledger = ledgers[index]
        versions = {f"s-{index}-{n}": 0 for n in range(streams_each)}
        streams = list(versions)
        try:
            for n in range(per_thread):
                stream_id = streams[n % streams_each]
                versions[stream_id] = append_until_known(
                    store, stream_id, versions[stream_id], ledger
                )
        except BaseException as error:
            ledger.errors.append(error)

    proxy.drop_rate = 0.01
    started = time.monotonic()
    threads = [threading.Thread(target=appender, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    elapsed = time.monotonic() - started
    proxy.drop_rate = 0.0

    try:
        assert not any(thread.is_alive() for thread in threads), "an appender hangs"
        assert [ledger.errors for ledger in ledgers] == [[]] * threads_count
        acknowledged = {
            stream: ids for ledger in ledgers for stream, ids in ledger.acknowledged.items()
        }
        assert sum(len(ids) for ids in acknowledged.values()) == threads_count * per_thread
        assert proxy.dropped >= 30  # ~1% of the replies were lost
        for stream_id, ids in acknowledged.items():
            check_stream(direct.read(stream_id), ids)
        in_feeds = [
            event.metadata.event_id
            for partition in range(direct.partitions)
            for event in direct.read_feed(partition, count=1_000_000)
        ]
        assert sorted(in_feeds) == sorted(i for ids in acknowledged.values() for i in ids)
        print(f"\nlost replies: {threads_count * per_thread} appends, {proxy.dropped} replies"
              f" dropped of {proxy.dropped + proxy.forwarded}, appender retries "
              f"{sum(ledger.retries for ledger in ledgers)}, {elapsed:.1f}s")
    finally:
        store.close()
        direct.close()
        proxy.close()
