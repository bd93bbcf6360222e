"""The per-key workflow every store of the domain keeps: idle -> loading -> ready.

A store holds one ``Slot`` per key it has loaded (a section, a payment, a
reservation). A key without a slot is *idle*: its state lives only in the event
store. The first command for it creates a slot in ``loading`` and starts a load
effect; commands arriving meanwhile wait in the slot, in arrival order, while other
keys load and run. Once ``ready``, commands run in batches, one batch in flight per
key (``writing``): its append (or gateway call) must land before the next batch is
decided, because that one is decided on the state the first one produced.

Slots are bounded: ``evict`` drops the least recently used idle slots past a limit,
and any idle slot unused for longer than a time-to-live. Dropping one loses nothing;
the next command loads it again.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from actors import Effect, LightFuture
from domain._events import DomainEvent
from domain._repository import Loaded, Repository, VersionConflict, describe

__all__ = ["Phase", "Slot", "append_effect", "evict", "load_effect", "touch"]

K = TypeVar("K", bound=Hashable)
St = TypeVar("St")
C = TypeVar("C")
A = TypeVar("A")

Phase = Literal["loading", "ready"]

log = logging.getLogger("domain.slots")


@dataclass
class Slot(Generic[St, C]):
    """One key's workflow and its loaded state.

    Attributes:
        phase: ``loading`` (a load effect is in flight; ``state`` is None) or ``ready``.
        state: the aggregate as of ``version`` plus the events of the batch in flight.
        version: the stream version the state was loaded or last appended at.
        waiting: commands not yet decided, in arrival order.
        writing: the batch whose append is in flight (empty when none is).
        replies: what to answer for ``writing`` once its append has landed.
        attempts: conflicts met by the current batch so far.
        used_at: the clock time of the last command (for the LRU and the TTL).
        base: a copy of the state as of ``version``, without the batch in flight, kept
            by a store whose key is ``contended``: a conflict then catches up from it
            (``load_effect(since=...)``) instead of loading the whole aggregate again.
        contended: batches for which ``base`` is still kept (a conflict sets it).
    """

    phase: Phase = "loading"
    state: St | None = None
    version: int = 0
    waiting: deque[C] = field(default_factory=deque)
    writing: tuple[C, ...] = ()
    replies: tuple[Any, ...] = ()
    attempts: int = 0
    used_at: float = 0.0
    base: St | None = None
    contended: int = 0

    @property
    def idle(self) -> bool:
        """Ready with nothing waiting and nothing in flight: safe to evict."""
        return self.phase == "ready" and not self.writing and not self.waiting


def touch(slots: dict[K, Slot[St, C]], key: K, slot: Slot[St, C], now: float) -> None:
    """Mark ``slot`` used now: it moves to the most recently used end."""
    slot.used_at = now
    del slots[key]
    slots[key] = slot


def evict(
    slots: dict[K, Slot[St, C]],
    now: float,
    *,
    limit: int,
    ttl: float,
    evictable: Callable[[Slot[St, C]], bool] = lambda slot: slot.idle,
) -> list[K]:
    """Drop idle slots past ``limit`` (least recently used first) or older than ``ttl``.

    The dict's order is the LRU order (``touch`` moves a slot to the end), so only
    the oldest slots are looked at: the cost is the number evicted, not the table.

    Returns:
        The keys evicted.
    """
    victims: list[K] = []
    passed = 0
    excess = len(slots) - limit
    for key, slot in slots.items():
        if len(victims) >= excess and now - slot.used_at < ttl:
            break
        if evictable(slot):
            victims.append(key)
        else:
            passed += 1
            if passed > 32:  # busy slots at the old end: leave the rest for later
                break
    for key in victims:
        del slots[key]
    return victims


def load_effect(
    repository: Repository[K, St],
    key: K,
    loaded: Callable[[K, Loaded[St]], A],
    failed: Callable[[K, str], A],
    *,
    since: Loaded[St] | None = None,
) -> Effect[A]:
    """An effect that loads ``key`` and feeds back ``loaded(...)`` or ``failed(...)``.

    With ``since`` (the aggregate as of some version, handed over: the effect mutates
    it) only the events after that version are read (``Repository.load_from``).
    Every exception becomes ``failed``: a load that raised out of the effect would
    leave the slot ``loading`` forever, with its commands never answered.
    """

    def load() -> A:
        try:
            result = repository.load(key) if since is None else repository.load_from(key, since)
        except Exception as error:
            log.warning("loading %r failed: %s", key, describe(error), exc_info=error)
            return failed(key, describe(error))
        return loaded(key, result)

    return Effect.future(load, name=f"load {key!r}")


def append_effect(
    repository: Repository[K, St],
    key: K,
    events: tuple[DomainEvent, ...],
    expected_version: int,
    appended: Callable[[K, int], A],
    conflicted: Callable[[K, str], A],
    failed: Callable[[K, str], A],
    *,
    name: str | None = None,
) -> Effect[A]:
    """An effect that appends ``events`` at ``expected_version`` and reports how it went.

    Piped, not run on an executor: on Redis the append waits in the event store's
    pipeline, not in a thread of ours, and in memory it is done before the effect
    has started; either way no executor thread is woken per append. ``appended``,
    ``conflicted`` and ``failed`` run on the thread that completed the append: they
    must not block.
    """

    def start() -> Future[A]:
        outcome: Future[A] = LightFuture()

        def settle(done: Future[int]) -> None:
            try:
                version = done.result()
            except VersionConflict as conflict:
                outcome.set_result(conflicted(key, str(conflict)))
            except BaseException as error:
                log.warning("appending to %r failed: %s", key, describe(error), exc_info=error)
                outcome.set_result(failed(key, describe(error)))
            else:
                outcome.set_result(appended(key, version))

        try:
            appending = repository.append_async(key, events, expected_version)
        except Exception as error:  # the contract says it never raises: one that did
            appending = LightFuture()  # is a failed append, not a failed effect
            appending.set_exception(error)
        appending.add_done_callback(settle)
        return outcome

    effect: Effect[A] = Effect.pipe(start, name=name or f"append {key!r}@{expected_version}")
    return effect
