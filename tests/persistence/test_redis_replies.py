"""Reading pipelined replies straight from the hiredis reader (``read_raw_replies``):
the same replies as redis-py's ``read_response``, and the same care with the
connection."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis import exceptions as rx

from persistence import redis_client
from persistence._redis import _HiredisParser, _read_replies_slowly, read_raw_replies

pytestmark = pytest.mark.redis

Reader = Callable[[Any, int], list[Any]]
READERS = [
    pytest.param(read_raw_replies, id="hiredis reader"),
    pytest.param(_read_replies_slowly, id="read_response"),
]


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis_client(redis_url)
    yield client
    client.close()


@pytest.fixture
def conn(client: redis.Redis) -> Iterator[Any]:
    pool = client.connection_pool
    conn = pool.get_connection()
    yield conn
    pool.release(conn)


@pytest.fixture
def key(key_prefix: str, client: redis.Redis) -> Iterator[str]:
    key = f"{key_prefix}:replies:{uuid.uuid4().hex[:8]}"
    yield key
    client.delete(key)


def send(conn: Any, *commands: tuple[Any, ...]) -> None:
    conn.send_packed_command(conn.pack_commands(commands), check_health=False)


def test_the_installed_redis_py_gives_the_reader_to_read_from(conn: Any) -> None:
    # Otherwise every reply takes the slower read_response: still right, not as fast.
    assert isinstance(conn._parser, _HiredisParser)


@pytest.mark.parametrize("read", READERS)
def test_an_error_reply_is_returned_in_its_place_and_the_rest_are_read(
    read: Reader, conn: Any, key: str
) -> None:
    send(conn, ("SET", key, "v"), ("HGET", key, "field"), ("GET", key), ("EVALSHA", "0" * 40, 0))

    replies = read(conn, 4)

    assert replies[0] in (True, b"OK")
    assert isinstance(replies[1], rx.ResponseError)
    assert "WRONGTYPE" in str(replies[1])
    assert replies[2] == b"v"
    assert isinstance(replies[3], rx.NoScriptError)
    send(conn, ("PING",))
    assert read(conn, 1) in ([True], [b"PONG"])  # nothing was left unread


@pytest.mark.parametrize("read", READERS)
def test_a_reply_larger_than_one_socket_read_arrives_whole(
    read: Reader, conn: Any, key: str
) -> None:
    value = b"x" * (3 << 20)  # three times socket_read_size
    send(conn, ("SET", key, value), ("GET", key), ("STRLEN", key))

    assert read(conn, 3)[1:] == [value, len(value)]


def test_a_push_between_replies_is_handled_and_not_taken_for_a_reply(
    redis_url: str, conn: Any, key: str
) -> None:
    if conn.protocol not in (3, "3"):
        pytest.skip("pushes need RESP3, which this redis-py does not speak by default")
    pushes: list[Any] = []
    conn._parser.set_invalidation_push_handler(pushes.append)
    send(conn, ("CLIENT", "TRACKING", "ON"), ("GET", key))
    read_raw_replies(conn, 2)
    other = redis.Redis.from_url(redis_url)
    try:
        other.set(key, "changed")  # the server pushes an invalidation to the tracker
    finally:
        other.close()
    time.sleep(0.05)
    send(conn, ("GET", key), ("CLIENT", "TRACKING", "OFF"))

    assert read_raw_replies(conn, 2)[0] == b"changed"
    assert pushes
    assert pushes[0][0] in (b"invalidate", "invalidate")


def test_an_interrupt_while_reading_disconnects_the_half_read_connection(
    conn: Any, key: str
) -> None:
    parser = conn._parser
    original = parser.read_from_socket

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    send(conn, ("SET", key, "v"), ("GET", key))
    parser.read_from_socket = interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            read_raw_replies(conn, 2)
    finally:
        parser.read_from_socket = original

    assert conn._sock is None  # the next user reconnects instead of reading our replies
    send(conn, ("GET", key))
    assert read_raw_replies(conn, 1) == [b"v"]
