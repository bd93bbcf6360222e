"""Fixtures of the domain's integration tests: a backend per test, on each adapter."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from domain import TicketingSystem
from domain._events import make_codec
from persistence import Persistence

OpenBackend = Callable[[], Persistence]
StartSystem = Callable[..., TicketingSystem]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest, key_prefix: str) -> Iterator[OpenBackend]:
    """Opens the test's backend: one in-memory store, or connections to one Redis prefix.

    Each call on Redis opens a new connection to the same data, as a new process would.
    """
    opened: list[Persistence] = []
    if request.param == "memory":
        shared = Persistence.in_memory(make_codec())

        def open_memory() -> Persistence:
            return shared

        yield open_memory
        return
    url: str = request.getfixturevalue("redis_url")

    def open_redis() -> Persistence:
        persistence = Persistence.on_redis(url, make_codec(), prefix=key_prefix)
        opened.append(persistence)
        return persistence

    yield open_redis
    for persistence in opened:
        persistence.close()


@pytest.fixture
def start(backend: OpenBackend) -> Iterator[StartSystem]:
    """Starts systems on the test's backend; every one is stopped at the end."""
    systems: list[TicketingSystem] = []

    def start_system(**options: Any) -> TicketingSystem:
        options.setdefault("persistence", backend())
        system = TicketingSystem.start(**options)
        systems.append(system)
        return system

    yield start_system
    for system in systems:
        system.stop()
