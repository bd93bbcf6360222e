"""Issue 6, fault 4: replies lost between Redis and the client (a dropping TCP proxy)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from persistence import Codec, RecordedEvent, RedisEventStore, RedisSubscriptions
from tests.faults.helpers import Ledger, append_until_known, check_stream
from tests.faults.proxy import ReplyDroppingProxy
from tests.persistence.conftest import wait_for
from tests.persistence.events import Deposited
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


def test_a_subscription_whose_replies_are_lost_gets_every_event_in_order_without_waiting(
    redis_server_factory: Callable[..., RedisServer], codec: Codec
) -> None:
    """Figure: 2,000 events (40 streams x 50) appended directly, consumed by one
    subscription (claim_idle 30 s) through a proxy dropping 10% of its reply chunks
    (reads and acknowledgements alike; last run: ~15 drops, out of ~150 replies). Every event is
    handled within 15 s, i.e. without waiting for claim_idle, and each stream's
    events are handled for the first time in version order (a lost read reply used
    to leave its entries pending until claimed 30 s later, after newer ones).
    """
    server = redis_server_factory()
    direct = RedisEventStore.from_url(server.url, codec, prefix="r", partitions=4)
    proxy = ReplyDroppingProxy(server.port, seed=4)
    store = RedisEventStore.from_url(proxy.url, codec, prefix="r", partitions=4)
    first_seen: dict[str, list[int]] = {}
    handled: set[tuple[str, int]] = set()

    def handler(event: RecordedEvent) -> None:  # the subscription's one thread
        if (event.stream_id, event.version) not in handled:
            handled.add((event.stream_id, event.version))
            first_seen.setdefault(event.stream_id, []).append(event.version)

    subscription = RedisSubscriptions(store).subscribe("readers", handler, claim_idle=30.0)
    proxy.drop_rate = 0.1
    try:
        # Appended while the subscription reads: many small reads, many replies.
        for n in range(50):
            for s in range(40):
                direct.append(f"s-{s}", [Deposited(account="a", amount=n)], n)
        assert wait_for(lambda: len(handled) == 2_000, timeout=15), len(handled)
        assert proxy.dropped >= 3
        assert first_seen == {f"s-{s}": list(range(1, 51)) for s in range(40)}
        print(f"\nsubscription through lost replies: {proxy.dropped} dropped of "
              f"{proxy.dropped + proxy.forwarded}")
    finally:
        subscription.stop(timeout=5)
        store.close()
        direct.close()
        proxy.close()


def test_entries_that_lost_replies_kept_from_the_handler_are_not_dead_lettered(
    redis_server_factory: Callable[..., RedisServer], codec: Codec
) -> None:
    """Figure: 1,000 events read through a proxy dropping 30% of the reply chunks, with
    max_deliveries=2. Each lost reply makes the consumer read its pending entries back;
    reading them back used to count as another delivery, so entries the handler never
    saw went to the dead letters after two lost replies (the CI failure of 8c834ca:
    1,744 of 2,000 handled). Now all are handled and none is dead-lettered (last run:
    7.7 s; 12.5 s while each failed pass doubled the backoff, even when the server had
    answered part of it, which left 256 handled in 30 s in one CI run; with 38% dropped,
    23 s against 512 handled in 30 s); reading them all back in one large reply never
    got through (0 handled in 30 s).
    """
    server = redis_server_factory()
    direct = RedisEventStore.from_url(server.url, codec, prefix="d", partitions=4)
    for n in range(25):
        for s in range(40):
            direct.append(f"s-{s}", [Deposited(account="a", amount=n)], n)
    proxy = ReplyDroppingProxy(server.port, seed=9)
    store = RedisEventStore.from_url(proxy.url, codec, prefix="d", partitions=4)
    handled: set[tuple[str, int]] = set()

    def handler(event: RecordedEvent) -> None:
        handled.add((event.stream_id, event.version))

    proxy.drop_rate = 0.3
    subscriptions = RedisSubscriptions(store)
    subscription = subscriptions.subscribe(
        "tight", handler, claim_idle=30.0, max_deliveries=2
    )
    try:
        assert wait_for(lambda: len(handled) == 1_000, timeout=30), len(handled)
        assert proxy.dropped >= 10
        proxy.drop_rate = 0.0
        assert RedisSubscriptions(direct).dead_letters("tight") == []
        print(f"\nsubscription through 30% lost replies: {proxy.dropped} dropped of "
              f"{proxy.dropped + proxy.forwarded}, none dead-lettered")
    finally:
        subscription.stop(timeout=5)
        store.close()
        direct.close()
        proxy.close()
