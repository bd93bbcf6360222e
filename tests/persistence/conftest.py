"""Fixtures running each contract test on both adapters: memory and a real Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from persistence import Codec, Persistence
from tests.persistence.events import make_codec

ADAPTERS = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture
def codec() -> Codec:
    return make_codec()


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest, codec: Codec) -> Iterator[Persistence]:
    """A fresh ``Persistence`` per test: in memory, or on Redis under the test's prefix."""
    if request.param == "memory":
        persistence = Persistence.in_memory(codec, partitions=4)
    else:
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("key_prefix")
        persistence = Persistence.on_redis(url, codec, prefix=prefix, partitions=4)
    yield persistence
    persistence.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Wait until ``predicate()`` holds, re-checking on a condition-free short wait.

    For state without a notification hook (a projection that catches up); tests that
    can, wait on a ``threading.Event`` set by the handler instead.
    """
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        tick.wait(0.01)
    return True
