"""Loading and saving aggregates: the port the stores' effects use, and its adapter.

A store's reducer never touches the event store: its effects call a ``Repository``
(the query interface of the reference design), which folds a stream (after the
latest snapshot, when there is one) into an aggregate state with its version, and
appends with that version as the expected one. Tests give the reducers a fake
repository; the system gives them ``EventSourcedRepository`` over the persistence
ports.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from actors import LightFuture
from domain._events import DomainEvent
from persistence import (
    AppendResult,
    ConcurrencyError,
    EventStore,
    ExpectedVersion,
    SnapshotStore,
)

__all__ = [
    "EventSourcedRepository",
    "Loaded",
    "Repository",
    "VersionConflict",
    "describe",
]

K = TypeVar("K")
K_contra = TypeVar("K_contra", contravariant=True)
St = TypeVar("St")

log = logging.getLogger("domain.repository")


class VersionConflict(Exception):
    """The stream moved past the expected version: reload and decide again.

    Internal signal between a repository and the effects that call it (the reducers
    see it as a ``...Conflicted`` action); never leaves the domain package.
    """

    def __init__(self, stream_id: str, expected: int | str, actual: int) -> None:
        super().__init__(f"stream {stream_id!r} is at version {actual}, expected {expected}")
        self.stream_id = stream_id
        self.actual = actual


@dataclass(frozen=True, slots=True)
class Loaded(Generic[St]):
    """An aggregate's state as of ``version`` of its stream (0: the stream is empty)."""

    version: int
    state: St


class Repository(Protocol[K_contra, St]):
    """Load an aggregate with its version; append with optimistic concurrency.

    Called on executor threads (from effects), never on a store's thread, except
    ``append_async``, which an ``Effect.pipe`` calls on the store's thread.
    """

    def load(self, key: K_contra) -> Loaded[St]:
        """Fold the aggregate's stream (from its latest snapshot, if any).

        Raises:
            PersistenceError: the backend failed (an effect turns it into an action).
        """
        ...

    def load_from(self, key: K_contra, since: Loaded[St]) -> Loaded[St]:
        """Bring ``since`` (the aggregate as of ``since.version``) up to date: fold the
        events after that version onto its state, which it may mutate. For a caller
        that holds such a state: the cost is the events since, not the aggregate.

        Raises:
            PersistenceError: the backend failed.
        """
        ...

    def append(
        self, key: K_contra, events: Sequence[DomainEvent], expected_version: ExpectedVersion
    ) -> int:
        """Append ``events`` if the stream is at ``expected_version``; the new version.

        Raises:
            VersionConflict: the stream is at another version; nothing written.
            PersistenceError: the backend failed.
        """
        ...

    def append_async(
        self, key: K_contra, events: Sequence[DomainEvent], expected_version: ExpectedVersion
    ) -> Future[int]:
        """``append`` without waiting, for ``Effect.pipe``: it never blocks.

        The future gets the new version, or ``VersionConflict`` or ``PersistenceError``
        (any error, even one found at once, is set on the future, never raised).
        """
        ...

    def version(self, key: K_contra) -> int:
        """The stream's current version (0 when it is empty).

        Raises:
            PersistenceError: the backend failed.
        """
        ...

    def save_snapshot(self, key: K_contra, version: int, data: bytes) -> None:
        """Keep ``data`` as the aggregate's state at ``version`` (no-op without snapshots)."""
        ...


class EventSourcedRepository(Generic[K, St]):
    """``Repository`` over an ``EventStore`` (and optionally a ``SnapshotStore``).

    Args:
        events: the event store.
        stream_of: the stream id of a key.
        initial: the state of an empty stream, for a key.
        evolve: applies one event to a state, returns the state (it may mutate it).
        snapshots: where snapshots are kept (None: always fold the whole stream).
        decode_snapshot: bytes saved by ``save_snapshot`` back into a state.
        index: a stream index (``EventStore.append``) that lists each stream when
            its first append creates it, in the same atomic step (the saga's: every
            saga can be found after a crash, see ``TicketingSystem.recover``).
    """

    def __init__(
        self,
        events: EventStore,
        *,
        stream_of: Callable[[K], str],
        initial: Callable[[K], St],
        evolve: Callable[[St, DomainEvent], St],
        snapshots: SnapshotStore | None = None,
        decode_snapshot: Callable[[bytes], St] | None = None,
        index: str | None = None,
    ) -> None:
        self.events = events
        self.stream_of = stream_of
        self._initial = initial
        self._evolve = evolve
        self._snapshots = snapshots if decode_snapshot is not None else None
        self._decode_snapshot = decode_snapshot
        self._index = index

    def load(self, key: K) -> Loaded[St]:
        stream_id = self.stream_of(key)
        state: St | None = None
        version = 0
        if self._snapshots is not None and self._decode_snapshot is not None:
            snapshot = self._snapshots.load(stream_id)
            if snapshot is not None:
                try:
                    state = self._decode_snapshot(snapshot.state)
                    version = snapshot.version
                except Exception:  # a snapshot is only a shortcut: fold the stream instead
                    log.warning("unreadable snapshot of %s; folding the stream", stream_id)
                    state, version = None, 0
        if state is None:
            state = self._initial(key)
        return self._fold(stream_id, Loaded(version, state))

    def load_from(self, key: K, since: Loaded[St]) -> Loaded[St]:
        return self._fold(self.stream_of(key), since)

    def _fold(self, stream_id: str, since: Loaded[St]) -> Loaded[St]:
        state, version = since.state, since.version
        for recorded in self.events.read(stream_id, from_version=version):
            state = self._evolve(state, recorded.event)  # type: ignore[arg-type]
            version = recorded.version
        return Loaded(version, state)

    def append(
        self, key: K, events: Sequence[DomainEvent], expected_version: ExpectedVersion
    ) -> int:
        stream_id = self.stream_of(key)
        try:
            return self.events.append(
                stream_id, events, expected_version, index=self._index
            ).version
        except ConcurrencyError as error:
            raise VersionConflict(stream_id, error.expected, error.actual) from None

    def append_async(
        self, key: K, events: Sequence[DomainEvent], expected_version: ExpectedVersion
    ) -> Future[int]:
        stream_id = self.stream_of(key)
        result: Future[int] = LightFuture()

        def appended(done: Future[AppendResult]) -> None:
            try:
                result.set_result(done.result().version)
            except ConcurrencyError as error:
                result.set_exception(VersionConflict(stream_id, error.expected, error.actual))
            except BaseException as error:
                result.set_exception(error)

        try:
            self.events.append_async(
                stream_id, events, expected_version, index=self._index
            ).add_done_callback(appended)
        except BaseException as error:  # e.g. an unregistered event, found at once
            result.set_exception(error)
        return result

    def version(self, key: K) -> int:
        return self.events.stream_version(self.stream_of(key))

    def save_snapshot(self, key: K, version: int, data: bytes) -> None:
        if self._snapshots is not None:
            self._snapshots.save(self.stream_of(key), version, data)


def describe(error: BaseException) -> str:
    """A one-line reason for an action or a log line: ``"Type: message"``."""
    return f"{type(error).__name__}: {error}"
