"""``Notices``: best-effort wake-ups between the processes on one backend, on both
adapters. A second ``Persistence`` on the same Redis prefix stands for another process;
in memory the backend is the one object, so the same ``Persistence`` serves both sides.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
import redis

from persistence import Codec, Persistence
from tests.persistence.conftest import wait_for
from tests.redis_server import RedisServer


class Heard:
    """What a listener's handler was given, with an event to wait on."""

    def __init__(self, fail_on: bytes | None = None) -> None:
        self.payloads: list[bytes] = []
        self.threads: set[str] = set()
        self._fail_on = fail_on
        self._lock = threading.Lock()

    def __call__(self, payload: bytes) -> None:
        with self._lock:
            self.payloads.append(payload)
            self.threads.add(threading.current_thread().name)
        if payload == self._fail_on:
            raise RuntimeError("a handler that fails")

    def got(self, *payloads: bytes) -> Callable[[], bool]:
        return lambda: sorted(self.payloads) == sorted(payloads)


@pytest.fixture
def other(
    request: pytest.FixtureRequest, adapter: Persistence, codec: Codec
) -> Iterator[Persistence]:
    """The same backend as ``adapter``, as another process would open it."""
    if request.node.callspec.params["adapter"] != "redis":
        yield adapter
        return
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("key_prefix")
    persistence = Persistence.on_redis(url, codec, prefix=prefix, partitions=4)
    yield persistence
    persistence.close()


def test_a_notice_reaches_every_listener_of_its_topic_on_the_backend(
    adapter: Persistence, other: Persistence
) -> None:
    here, there, elsewhere = Heard(), Heard(), Heard()
    listening = [
        adapter.notices.listen("outcomes", here),
        other.notices.listen("outcomes", there),
        other.notices.listen("other-topic", elsewhere),
    ]
    try:
        adapter.notices.publish("outcomes", b"one")
        other.notices.publish("outcomes", b"two")
        assert wait_for(here.got(b"one", b"two"))
        assert wait_for(there.got(b"one", b"two"))
        assert elsewhere.payloads == []
        # Handlers run on the adapter's thread, never on the publisher's.
        assert threading.current_thread().name not in here.threads | there.threads
    finally:
        for each in listening:
            assert each.stop(5)


def test_a_handler_that_raises_still_gets_the_next_notice(adapter: Persistence) -> None:
    heard = Heard(fail_on=b"bad")
    listening = adapter.notices.listen("outcomes", heard)
    try:
        adapter.notices.publish("outcomes", b"bad")
        adapter.notices.publish("outcomes", b"good")
        assert wait_for(heard.got(b"bad", b"good"))
    finally:
        listening.stop(5)


def test_a_stopped_listener_hears_nothing_more(adapter: Persistence) -> None:
    heard, still = Heard(), Heard()
    stopped = adapter.notices.listen("outcomes", heard)
    listening = adapter.notices.listen("outcomes", still)
    try:
        assert stopped.stop(5)
        assert stopped.topic == "outcomes"
        adapter.notices.publish("outcomes", b"after")
        # The listener still running hears it; by then the stopped one would have too.
        assert wait_for(still.got(b"after"))
        assert heard.payloads == []
    finally:
        listening.stop(5)


def test_a_topic_that_is_not_a_name_is_refused(adapter: Persistence) -> None:
    for topic in ("", "a b", "{p1}", "out*"):
        with pytest.raises(ValueError, match="notice topic"):
            adapter.notices.publish(topic, b"x")
        with pytest.raises(ValueError, match="notice topic"):
            adapter.notices.listen(topic, Heard())


@pytest.mark.redis
def test_notices_do_not_cross_key_prefixes(
    adapter: Persistence, codec: Codec, redis_url: str, key_prefix: str
) -> None:
    stranger = Persistence.on_redis(redis_url, codec, prefix=f"{key_prefix}-x", partitions=4)
    heard, unheard = Heard(), Heard()
    listening = [
        adapter.notices.listen("outcomes", heard),
        stranger.notices.listen("outcomes", unheard),
    ]
    try:
        adapter.notices.publish("outcomes", b"ours")
        assert wait_for(heard.got(b"ours"))
        stranger.notices.publish("outcomes", b"theirs")
        assert wait_for(unheard.got(b"theirs"))
        assert heard.payloads == [b"ours"]
    finally:
        for each in listening:
            each.stop(5)
        stranger.close()


@pytest.mark.redis
def test_publishing_on_a_closed_redis_store_loses_the_notice_without_raising(
    codec: Codec, redis_url: str, key_prefix: str
) -> None:
    closed = Persistence.on_redis(redis_url, codec, prefix=key_prefix, partitions=4)
    closed.close()
    closed.notices.publish("outcomes", b"lost")  # allowed to be lost, never to raise


def test_a_listener_whose_connection_is_killed_listens_again(
    redis_server_factory: Callable[..., RedisServer], codec: Codec
) -> None:
    server = redis_server_factory()  # our own: CLIENT KILL would hit others' listeners
    persistence = Persistence.on_redis(server.url, codec, prefix="t", partitions=4)
    admin = redis.Redis.from_url(server.url)
    heard = Heard()
    listening = persistence.notices.listen("outcomes", heard)
    try:
        persistence.notices.publish("outcomes", b"before")
        assert wait_for(heard.got(b"before"))
        assert admin.client_kill_filter(_type="pubsub") == 1
        # What is published while it reconnects is lost (allowed): publish until heard.

        def heard_again() -> bool:
            persistence.notices.publish("outcomes", b"after")
            return b"after" in heard.payloads

        assert wait_for(heard_again)
    finally:
        listening.stop(5)
        admin.close()
        persistence.close()
