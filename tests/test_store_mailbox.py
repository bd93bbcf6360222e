"""The mailbox: order, no loss, one reduction at a time, state copies, request/response."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from actors import (
    ActorsError,
    Effect,
    EffectFailed,
    EffectHandle,
    ReducerFailed,
    StoreStopped,
    Timeout,
)
from tests.runtime_support import WAIT, Env, Stores, started_stores


@pytest.fixture
def stores() -> Iterator[Stores]:
    with started_stores() as started:
        yield started


def record(state: list[Any], action: Any, env: Any) -> list[Effect[Any]]:
    state.append(action)
    return []


def test_one_senders_actions_are_reduced_in_the_order_sent(stores: Stores) -> None:
    store = stores.start(record, [])
    for n in range(1000):
        store.send(n)

    assert store.state(timeout=WAIT) == list(range(1000))


def test_eight_threads_sending_ten_thousand_actions_each_give_exactly_eighty_thousand_reductions(
    stores: Stores,
) -> None:
    threads, sends = 8, 10_000
    store = stores.start(record, [])
    start = threading.Barrier(threads)

    def sender(sender_id: int) -> None:
        start.wait(WAIT)
        for n in range(sends):
            store.send((sender_id, n))

    workers = [threading.Thread(target=sender, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(WAIT * 4)

    reduced = store.state(timeout=WAIT * 4)
    assert len(reduced) == threads * sends
    assert len(set(reduced)) == threads * sends, "an action was reduced twice"
    for sender_id in range(threads):
        mine = [n for who, n in reduced if who == sender_id]
        assert mine == list(range(sends)), f"sender {sender_id}'s actions lost their order"


@dataclass
class Guarded:
    inside: threading.Lock = field(default_factory=threading.Lock)
    overlaps: int = 0
    reductions: int = 0
    threads: set[str] = field(default_factory=set)

    def __deepcopy__(self, memo: dict[int, Any]) -> Guarded:
        copied = Guarded(overlaps=self.overlaps, reductions=self.reductions)
        copied.threads = set(self.threads)
        return copied


def guarded(state: Guarded, action: Any, env: Any) -> list[Effect[Any]]:
    # A reducer entered while another thread is inside finds the lock taken.
    if not state.inside.acquire(blocking=False):
        state.overlaps += 1
        return []
    try:
        state.reductions += 1
        state.threads.add(threading.current_thread().name)
        time.sleep(0)  # give another thread the chance to come in, were it allowed to
        if action == "external":
            return [Effect.future(lambda: "fed back"), Effect.send("sent back")]
        return []
    finally:
        state.inside.release()


def test_the_guard_detects_a_reducer_entered_while_another_thread_is_inside() -> None:
    state = Guarded()
    with state.inside:  # another thread is inside the reducer
        guarded(state, "external", None)

    assert state.overlaps == 1


def test_the_reducer_is_never_entered_by_two_threads_at_once(stores: Stores) -> None:
    store = stores.start(guarded, Guarded)
    start = threading.Barrier(4)
    handles: list[list[EffectHandle]] = [[] for _ in range(4)]

    def sender(mine: list[EffectHandle]) -> None:
        start.wait(WAIT)
        for _ in range(500):
            mine.append(store.send("external"))

    workers = [threading.Thread(target=sender, args=(mine,)) for mine in handles]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(WAIT)
    # Each handle covers its action, its future's result and its sent-back action,
    # reduced while other threads keep sending.
    for mine in handles:
        for handle in mine:
            handle.wait(timeout=WAIT)

    state = store.state(timeout=WAIT)
    assert state.overlaps == 0
    assert state.reductions == 4 * 500 * 3
    assert len(state.threads) == 1, f"the reducer ran on {state.threads}"


def test_send_returns_at_once_while_the_reducer_is_busy(stores: Stores) -> None:
    release = stores.gate()
    entered = threading.Event()

    def blocking(state: list[Any], action: Any, env: Any) -> list[Effect[Any]]:
        if action == "block":
            entered.set()
            release.wait(WAIT)
        state.append(action)
        return []

    store = stores.start(blocking, [])
    store.send("block")
    assert entered.wait(WAIT)

    began = time.monotonic()
    handles = [store.send(n) for n in range(100)]
    assert time.monotonic() - began < 0.5
    assert not any(handle.done for handle in handles)

    release.set()
    handles[-1].wait(timeout=WAIT)
    assert store.state(timeout=WAIT) == ["block", *range(100)]


def test_state_returns_a_copy_that_changes_neither_the_store_nor_with_it(stores: Stores) -> None:
    store = stores.start(record, [])
    store.send("a").wait(timeout=WAIT)

    copy = store.state(timeout=WAIT)
    copy.append("changed by the caller")
    store.send("b").wait(timeout=WAIT)

    assert copy == ["a", "changed by the caller"]
    assert store.state(timeout=WAIT) == ["a", "b"]


def test_the_initial_state_value_is_copied_at_start(stores: Stores) -> None:
    initial: list[Any] = []
    store = stores.start(record, initial)
    store.send("a").wait(timeout=WAIT)

    assert initial == []
    assert store.state(timeout=WAIT) == ["a"]


def test_state_raises_timeout_when_the_store_does_not_answer_in_time(stores: Stores) -> None:
    release = stores.gate()
    entered = threading.Event()

    def blocking(state: list[Any], action: Any, env: Any) -> list[Effect[Any]]:
        entered.set()
        release.wait(WAIT)
        return []

    store = stores.start(blocking, [])
    store.send("block")
    assert entered.wait(WAIT)

    with pytest.raises(Timeout):
        store.state(timeout=0.05)


def test_an_object_with_a_reduce_method_is_a_reducer(stores: Stores) -> None:
    class Doubler:
        def reduce(self, state: list[int], action: int, env: Any) -> list[Effect[int]]:
            state.append(action * 2)
            return []

    store = stores.start(Doubler(), [])
    store.send(21).wait(timeout=WAIT)

    assert store.state(timeout=WAIT) == [42]


def test_a_reducer_may_return_one_effect_or_none_instead_of_a_sequence(stores: Stores) -> None:
    def loose(state: list[Any], action: Any, env: Any) -> Any:
        state.append(action)
        if action == "one":
            return Effect.send("fed back")
        return None

    store = stores.start(loose, [])
    store.send("one").wait(timeout=WAIT)

    assert store.state(timeout=WAIT) == ["one", "fed back"]


def test_a_store_is_named_in_its_errors(stores: Stores) -> None:
    store = stores.start(record, [], name="orders")
    store.stop(timeout=WAIT)

    with pytest.raises(StoreStopped, match="'orders'"):
        store.send("late")


# send_and_wait_for: request/response for application code.


def ping_pong(state: list[Any], action: Any, env: Env) -> list[Effect[Any]]:
    state.append(action)
    if action == "ping":
        return [Effect.future(lambda: "working"), Effect.delay(1.0, "pong")]
    return []


def test_send_and_wait_for_returns_the_first_matching_action_of_the_cascade(
    stores: Stores,
) -> None:
    env = Env()
    store = stores.start(ping_pong, [], env)
    answers: list[Any] = []
    asked = threading.Thread(
        target=lambda: answers.append(
            store.send_and_wait_for("ping", lambda a: a in ("pong", "working"), timeout=WAIT)
        )
    )
    asked.start()
    asked.join(WAIT)

    assert answers == ["working"]


def test_send_and_wait_for_returns_a_matching_action_from_another_sender(
    stores: Stores,
) -> None:
    answers: list[Any] = []
    registered = threading.Event()

    def reducer(state: list[Any], action: Any, env: Any) -> list[Effect[Any]]:
        state.append(action)
        if action == "request":
            registered.set()
        return []

    store = stores.start(reducer, [])

    def ask() -> None:
        answers.append(store.send_and_wait_for("request", lambda a: a == "reply", timeout=WAIT))

    asker = threading.Thread(target=ask)
    asker.start()
    assert registered.wait(WAIT)
    store.send("unrelated")
    store.send("reply")  # from another sender, e.g. a subscription
    asker.join(WAIT)

    assert answers == ["reply"]


def test_send_and_wait_for_ignores_matching_actions_reduced_before_its_action(
    stores: Stores,
) -> None:
    store = stores.start(record, [])
    store.send("reply").wait(timeout=WAIT)

    with pytest.raises(Timeout, match="no matching action"):
        store.send_and_wait_for("request", lambda a: a == "reply", timeout=0.1)


def test_send_and_wait_for_raises_timeout_which_is_also_a_timeout_error(
    stores: Stores,
) -> None:
    store = stores.start(record, [])

    with pytest.raises(TimeoutError):
        store.send_and_wait_for("request", lambda a: a == "never", timeout=0.05)


def test_send_and_wait_for_raises_reducer_failed_when_its_action_fails(stores: Stores) -> None:
    def failing(state: list[Any], action: Any, env: Any) -> list[Effect[Any]]:
        raise ValueError("bad request")

    store = stores.start(failing, [])

    with pytest.raises(ReducerFailed) as failed:
        store.send_and_wait_for("request", lambda a: True, timeout=WAIT)
    assert isinstance(failed.value.__cause__, ValueError)


def test_send_and_wait_for_raises_what_the_predicate_raises(stores: Stores) -> None:
    store = stores.start(ping_pong, [], Env())

    def broken(action: Any) -> bool:
        raise KeyError(action)

    with pytest.raises(KeyError):
        store.send_and_wait_for("ping", broken, timeout=WAIT)


def test_send_and_wait_for_raises_the_effect_failure_of_its_cascade_at_once(
    stores: Stores,
) -> None:
    def reducer(state: list[Any], action: Any, env: Any) -> list[Effect[Any]]:
        if action == "go":
            return [Effect.future(lambda: 1 / 0)]
        return []

    store = stores.start(reducer, [])
    started = time.monotonic()
    with pytest.raises(EffectFailed) as failure:
        store.send_and_wait_for("go", lambda action: action == "never", timeout=WAIT)
    assert isinstance(failure.value.__cause__, ZeroDivisionError)
    assert time.monotonic() - started < WAIT / 2


def test_state_send_and_wait_for_and_a_handles_wait_refuse_to_deadlock_on_the_stores_own_thread(
    stores: Stores,
) -> None:
    refs: list[Any] = []
    errors: list[BaseException] = []

    def reducer(state: list[Any], action: Any, env: Any) -> list[Effect[Any]]:
        if action == "ask myself":
            for call in (
                lambda: refs[0].state(1.0),
                lambda: refs[0].send_and_wait_for("x", lambda a: True, 1.0),
                lambda: refs[0].send("x").wait(1.0),
            ):
                try:
                    call()
                except ActorsError as error:
                    errors.append(error)
        return []

    refs.append(stores.start(reducer, []))
    refs[0].send("ask myself").wait(WAIT)
    assert len(errors) == 3
    assert all("own thread" in str(error) for error in errors)
