"""A bounded mailbox: sends past the bound fail at once; feedback is never refused."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from actors import Effect, MailboxFull, Store
from tests.runtime_support import WAIT, Stores, started_stores


@pytest.fixture
def stores() -> Iterator[Stores]:
    with started_stores() as started:
        yield started


def busy_store(stores: Stores, bound: int, **options: Any) -> tuple[Any, threading.Event]:
    """A store with a bounded mailbox whose reducer is stuck on its first action."""
    release = stores.gate()
    entered = threading.Event()

    def reducer(state: list[Any], action: Any, env: Any) -> list[Effect[Any]]:
        if action == "block":
            entered.set()
            release.wait(WAIT)
        state.append(action)
        if action == "feed back":
            return [Effect.send(("fed", n)) for n in range(3 * bound)]
        return []

    store = stores.start(reducer, [], None, mailbox_size=bound, **options)
    store.send("block")
    assert entered.wait(WAIT)  # taken out of the mailbox: it no longer counts
    return store, release


def test_a_send_past_the_bound_fails_at_once_with_mailbox_full(stores: Stores) -> None:
    store, _ = busy_store(stores, bound=10)
    for n in range(10):
        store.send(n)

    began = time.monotonic()
    with pytest.raises(MailboxFull, match="mailbox full") as full:
        store.send("one too many")
    assert time.monotonic() - began < 0.1, "the send blocked"
    assert full.value.bound == 10
    assert full.value.store == store.name


def test_send_and_wait_for_past_the_bound_fails_at_once_with_mailbox_full(
    stores: Stores,
) -> None:
    store, _ = busy_store(stores, bound=1)
    store.send("fills it")

    with pytest.raises(MailboxFull):
        store.send_and_wait_for("request", lambda a: True, timeout=WAIT)


def test_everything_accepted_is_processed_once_the_store_catches_up(stores: Stores) -> None:
    store, release = busy_store(stores, bound=5)
    accepted = []
    for n in range(20):
        with contextlib.suppress(MailboxFull):
            accepted.append(store.send(n))
    assert len(accepted) == 5

    release.set()
    for handle in accepted:
        handle.wait(timeout=WAIT)
    assert store.state(timeout=WAIT) == ["block", 0, 1, 2, 3, 4]


def test_a_mailbox_that_drained_accepts_sends_again(stores: Stores) -> None:
    store, release = busy_store(stores, bound=2)
    store.send("a")
    store.send("b")
    with pytest.raises(MailboxFull):
        store.send("c")

    release.set()
    store.state(timeout=WAIT)
    store.send("d").wait(timeout=WAIT)

    assert store.state(timeout=WAIT) == ["block", "a", "b", "d"]


def test_fed_back_actions_are_never_refused_by_a_full_mailbox(stores: Stores) -> None:
    store, release = busy_store(stores, bound=2)
    fed = store.send("feed back")  # its six sent-back actions exceed the bound of 2
    store.send("fills it")
    with pytest.raises(MailboxFull):
        store.send("refused")

    release.set()
    fed.wait(timeout=WAIT)

    state = store.state(timeout=WAIT)
    assert state[:3] == ["block", "feed back", "fills it"]
    assert state[3:] == [("fed", n) for n in range(6)]


def test_a_flood_from_many_threads_is_refused_past_the_bound_and_the_rest_reduced(
    stores: Stores,
) -> None:
    def count(state: list[int], action: int, env: Any) -> list[Effect[Any]]:
        state[0] += 1
        return []

    store = stores.start(count, [0], None, mailbox_size=64)
    accepted = [0] * 4
    refused = [0] * 4
    start = threading.Barrier(4)

    def flood(i: int) -> None:
        start.wait(WAIT)
        for _ in range(5000):
            try:
                store.send(1)
                accepted[i] += 1
            except MailboxFull:
                refused[i] += 1

    workers = [threading.Thread(target=flood, args=(i,)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(WAIT * 2)

    assert store.state(timeout=WAIT) == [sum(accepted)]
    assert sum(accepted) + sum(refused) == 4 * 5000


def test_a_mailbox_bound_below_one_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="mailbox_size"):
        Store.start(lambda s, a, e: [], [], None, mailbox_size=0)
