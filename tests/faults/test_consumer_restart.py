"""A consumer restarting under its name with many entries pending on it (issue 6, fault 6)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from persistence import NO_STREAM, Codec, RecordedEvent, RedisEventStore, RedisSubscriptions
from tests.persistence.conftest import wait_for
from tests.persistence.events import Deposited
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def test_a_consumer_restarting_with_hundreds_pending_gets_them_all_at_once_in_order(
    redis_server_factory: Callable[..., RedisServer], codec: Codec
) -> None:
    """Figure: 250 events of one partition read (not acknowledged) by consumer "c1"
    of a process that then died; "c1" subscribes again with claim_idle 30 s: all 250
    are handled within 5 s, in feed order (only the first 100 were, before; the
    rest waited for claim_idle)."""
    server = redis_server_factory()
    store = RedisEventStore.from_url(server.url, codec, prefix="p", partitions=1)
    subscriptions = RedisSubscriptions(store)
    subscriptions.subscribe("readers", lambda event: None, start="now").stop(timeout=5)
    for n in range(250):
        store.append(f"s-{n}", [Deposited(account="a", amount=n)], NO_STREAM)
    died = redis.Redis.from_url(server.url)  # the dead process's last read
    died.xreadgroup("readers", "c1", {store.layout.feed(0): ">"}, count=1000)
    died.close()
    handled: list[int] = []

    def handler(event: RecordedEvent) -> None:
        handled.append(event.event.amount)  # type: ignore[attr-defined]

    subscription = subscriptions.subscribe("readers", handler, consumer="c1", claim_idle=30.0)
    try:
        assert wait_for(lambda: len(handled) >= 250, timeout=5), len(handled)
        assert handled == list(range(250))
    finally:
        subscription.stop(timeout=5)
        store.close()


def test_a_dead_consumers_backlog_of_a_thousand_is_claimed_in_one_claim_period(
    redis_server_factory: Callable[..., RedisServer], codec: Codec
) -> None:
    """Figure: 1000 events of one partition read (not acknowledged) by a consumer that
    died; another consumer with claim_idle 1 s (claiming every 0.5 s) handles all 1000
    within 4 s, in feed order (before: 100 per claim period, so 6 s)."""
    server = redis_server_factory()
    store = RedisEventStore.from_url(server.url, codec, prefix="p", partitions=1)
    subscriptions = RedisSubscriptions(store)
    subscriptions.subscribe("readers", lambda event: None, start="now").stop(timeout=5)
    for n in range(1000):
        store.append(f"s-{n}", [Deposited(account="a", amount=n)], NO_STREAM)
    died = redis.Redis.from_url(server.url)
    died.xreadgroup("readers", "dead", {store.layout.feed(0): ">"}, count=5000)
    died.close()
    handled: list[int] = []

    def handler(event: RecordedEvent) -> None:
        handled.append(event.event.amount)  # type: ignore[attr-defined]

    subscription = subscriptions.subscribe("readers", handler, consumer="heir", claim_idle=1.0)
    try:
        # Idle for claim_idle (1 s) first; then one claim period (0.5 s) to get them all.
        assert wait_for(lambda: len(handled) >= 1000, timeout=4), len(handled)
        assert handled == list(range(1000))
    finally:
        subscription.stop(timeout=5)
        store.close()
