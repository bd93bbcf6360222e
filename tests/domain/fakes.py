"""Test doubles of the domain's ports: streams in a dict, failures on demand."""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from domain._events import DomainEvent
from domain._repository import Loaded, VersionConflict
from persistence import ANY, NO_STREAM, EventStoreUnavailable, ExpectedVersion

K = TypeVar("K", bound=Hashable)
St = TypeVar("St")


class StreamRepository(Generic[K, St]):
    """A ``Repository`` over streams kept in a dict, folded with the real ``evolve``.

    ``write`` plays another process appending behind the store's back; the ``fail_*``
    counters make the next loads or appends raise, as a backend that went away.
    """

    def __init__(self, initial: Callable[[K], St], evolve: Callable[[St, DomainEvent], St]) -> None:
        self.initial = initial
        self.evolve = evolve
        self.streams: dict[K, list[DomainEvent]] = {}
        self.snapshots: dict[K, tuple[int, bytes]] = {}
        self.appends: list[tuple[K, tuple[DomainEvent, ...], ExpectedVersion]] = []
        self.loads: list[K] = []
        self.catch_ups: list[tuple[K, int]] = []
        self.fail_loads = 0
        self.fail_appends = 0
        self.first_appends: list[K] = []

    def write(self, key: K, *events: DomainEvent) -> None:
        self.streams.setdefault(key, []).extend(events)

    def events(self, key: K) -> list[DomainEvent]:
        return list(self.streams.get(key, []))

    def load(self, key: K) -> Loaded[St]:
        self.loads.append(key)
        if self.fail_loads:
            self.fail_loads -= 1
            raise EventStoreUnavailable("the test took the backend away")
        state = self.initial(key)
        events = self.streams.get(key, [])
        for event in events:
            state = self.evolve(state, copy.deepcopy(event))
        return Loaded(len(events), state)

    def load_from(self, key: K, since: Loaded[St]) -> Loaded[St]:
        self.catch_ups.append((key, since.version))
        if self.fail_loads:
            self.fail_loads -= 1
            raise EventStoreUnavailable("the test took the backend away")
        state = since.state
        events = self.streams.get(key, [])
        for event in events[since.version :]:
            state = self.evolve(state, copy.deepcopy(event))
        return Loaded(len(events), state)

    def append(
        self, key: K, events: Sequence[DomainEvent], expected_version: ExpectedVersion
    ) -> int:
        self.appends.append((key, tuple(events), expected_version))
        if self.fail_appends:
            self.fail_appends -= 1
            raise EventStoreUnavailable("the test took the backend away")
        stream = self.streams.setdefault(key, [])
        expected = 0 if expected_version == NO_STREAM else expected_version
        if expected != ANY and expected != len(stream):
            raise VersionConflict(str(key), expected_version, len(stream))
        if len(stream) == 0:
            self.first_appends.append(key)
        stream.extend(events)
        return len(stream)

    def append_async(
        self, key: K, events: Sequence[DomainEvent], expected_version: ExpectedVersion
    ) -> Future[int]:
        # Done before it is returned, as the in-memory event store does.
        future: Future[int] = Future()
        try:
            future.set_result(self.append(key, events, expected_version))
        except Exception as error:
            future.set_exception(error)
        return future

    def version(self, key: K) -> int:
        return len(self.streams.get(key, []))

    def save_snapshot(self, key: K, version: int, data: bytes) -> None:
        self.snapshots[key] = (version, data)


class Recorder:
    """Records calls made through it: ``recorder.calls == [("name", arg), ...]``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def record(self, name: str) -> Callable[[Any], None]:
        def call(value: Any) -> None:
            self.calls.append((name, value))

        return call
