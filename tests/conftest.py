"""Shared fixtures: a real Redis server and a key prefix of the test's own."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.redis_server import RedisServer, answers, delete_keys, redis_server_binary

RUN_ID = uuid.uuid4().hex[:8]
RUN_PREFIX = f"ca-test-{RUN_ID}"


def _missing_redis(reason: str) -> None:
    # A newcomer without Redis gets a skip; CI must never pass by skipping.
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and no Redis server: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis URL: REDIS_URL, else 127.0.0.1:6379 if it answers, else a server started here."""
    url = os.environ.get("REDIS_URL")
    if url:
        if not answers(url, timeout=2.0):
            _missing_redis("REDIS_URL is set but the server does not answer")
        yield url
        delete_keys(url, RUN_PREFIX)
        return
    local = "redis://127.0.0.1:6379/0"
    if answers(local):
        yield local
        delete_keys(local, RUN_PREFIX)
        return
    binary = redis_server_binary()
    if binary is None:
        _missing_redis("no Redis answers and no redis-server binary was found")
        return
    with RedisServer(binary) as server:
        yield server.url


@pytest.fixture
def key_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix unique to this test (all keys of the run share RUN_PREFIX)."""
    return f"{RUN_PREFIX}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def redis_server_factory() -> Iterator[Callable[..., RedisServer]]:
    """Start ``redis-server`` processes owned by the test, killed at its end."""
    binary = redis_server_binary()
    if binary is None:
        _missing_redis("no redis-server binary to start")
    started: list[RedisServer] = []

    def start(**kwargs: object) -> RedisServer:
        assert binary is not None
        server = RedisServer(binary, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.close()
