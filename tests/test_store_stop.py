"""Stopping a store: drain what is queued, await or drop what is in flight, refuse later."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from actors import Effect, Send, StoreRef, StoreStopped, Timeout
from tests.runtime_support import WAIT, Env, Stores, started_stores


@pytest.fixture
def stores() -> Iterator[Stores]:
    with started_stores() as started:
        yield started


def recorder(env: Env, state: list[Any], action: Any) -> None:
    state.append(action)
    env.log.append(action)  # readable after the store stopped
    env.mark(f"reduced {action}")


def slow_store(stores: Stores, env: Env, hang: threading.Event) -> StoreRef[Any, Any]:
    """A store whose "slow" action starts an effect that runs until ``hang`` is set."""

    def slow() -> str:
        env.mark("effect started")
        hang.wait(WAIT)
        return "late result"

    def reducer(state: list[Any], action: Any, env: Env) -> list[Effect[Any]]:
        recorder(env, state, action)
        if action == "block":
            env.event("unblock").wait(WAIT)
        if action == "slow":
            return [Effect.future(slow)]
        if action == "timer":
            return [Effect.delay(60.0, "tick")]
        if action == "stop me":
            env.hooks["stop"]()
        return []

    return stores.start(reducer, [], env)


def test_actions_already_in_the_mailbox_are_reduced_before_the_store_stops(
    stores: Stores,
) -> None:
    env = Env()
    store = slow_store(stores, env, stores.gate())
    store.send("block")
    assert env.reached("reduced block")
    queued = [store.send(n) for n in range(50)]
    stopper = threading.Thread(target=store.stop, kwargs={"timeout": WAIT})
    stopper.start()
    env.mark("unblock")
    stopper.join(WAIT)

    assert env.log == ["block", *range(50)]
    for handle in queued:
        handle.wait(timeout=WAIT)


def test_stop_awaits_an_in_flight_effect_and_reduces_its_result(stores: Stores) -> None:
    env = Env()
    hang = stores.gate()
    store = slow_store(stores, env, hang)
    handle = store.send("slow")
    assert env.reached("effect started")
    stopper = threading.Thread(target=store.stop, kwargs={"timeout": WAIT})
    stopper.start()
    assert not env.reached("reduced late result", timeout=0.05)

    hang.set()
    stopper.join(WAIT)

    assert not stopper.is_alive()
    handle.wait(timeout=WAIT)
    assert env.log == ["slow", "late result"]


def test_an_effect_still_running_at_the_stop_timeout_is_dropped_and_its_waiters_get_store_stopped(
    stores: Stores,
) -> None:
    env = Env()
    hang = stores.gate()
    store = slow_store(stores, env, hang)
    handle = store.send("slow")
    assert env.reached("effect started")

    began = time.monotonic()
    store.stop(timeout=0.1)
    assert time.monotonic() - began < 2.0
    assert not store.is_alive

    with pytest.raises(StoreStopped, match="before its effects finished"):
        handle.wait(timeout=WAIT)


def test_a_handle_waiting_while_the_store_stops_gets_store_stopped_not_a_hang(
    stores: Stores,
) -> None:
    env = Env()
    store = slow_store(stores, env, stores.gate())
    handle = store.send("slow")
    assert env.reached("effect started")
    outcome: list[BaseException | None] = []

    def wait() -> None:
        try:
            handle.wait()  # no timeout: only the stop can end it
            outcome.append(None)
        except StoreStopped as error:
            outcome.append(error)

    waiter = threading.Thread(target=wait)
    waiter.start()
    store.stop(timeout=0.05)
    waiter.join(WAIT)

    assert not waiter.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], StoreStopped)


def test_no_action_is_reduced_after_stop_returns(stores: Stores) -> None:
    env = Env()
    hang = stores.gate()
    store = slow_store(stores, env, hang)
    store.send("slow")
    assert env.reached("effect started")
    store.send("timer")
    store.stop(timeout=0.05)
    reduced_at_stop = list(env.log)

    hang.set()  # the effect returns its result now, to a stopped store
    assert not env.reached("reduced late result", timeout=0.2)

    assert env.log == reduced_at_stop == ["slow", "timer"]


def test_sends_after_stop_raise_store_stopped(stores: Stores) -> None:
    store = slow_store(stores, Env(), stores.gate())
    store.stop(timeout=WAIT)

    with pytest.raises(StoreStopped):
        store.send("late")
    with pytest.raises(StoreStopped):
        store.send_and_wait_for("late", lambda a: True, timeout=WAIT)
    with pytest.raises(StoreStopped):
        store.state(timeout=WAIT)
    assert not store.is_alive
    assert "stopped" in repr(store)


def test_sends_made_once_stop_was_called_raise_store_stopped(stores: Stores) -> None:
    env = Env()
    store = slow_store(stores, env, stores.gate())
    refused: list[BaseException] = []

    def stop_then_send() -> None:
        store.stop(timeout=WAIT)  # from the store's thread: returns before it stopped
        try:
            store.send("late")
        except StoreStopped as error:
            refused.append(error)

    env.hooks["stop"] = stop_then_send
    store.send("stop me").wait(timeout=WAIT)
    store.stop(timeout=WAIT)

    assert len(refused) == 1
    assert env.log == ["stop me"]


def test_stopping_twice_is_harmless(stores: Stores) -> None:
    store = slow_store(stores, Env(), stores.gate())
    store.stop(timeout=WAIT)
    store.stop(timeout=WAIT)

    assert not store.is_alive


def test_stop_called_from_the_stores_own_thread_does_not_deadlock(stores: Stores) -> None:
    env = Env()
    store = slow_store(stores, env, stores.gate())
    env.hooks["stop"] = lambda: store.stop(timeout=WAIT)

    store.send("stop me").wait(timeout=WAIT)
    store.stop(timeout=WAIT)  # waits for the stop the reducer asked for

    assert not store.is_alive
    with pytest.raises(StoreStopped):
        store.send("late")


def test_a_stop_from_inside_the_reducer_still_reduces_what_was_queued_before_it(
    stores: Stores,
) -> None:
    env = Env()
    store = slow_store(stores, env, stores.gate())
    env.hooks["stop"] = lambda: store.stop(timeout=WAIT)
    store.send("block")
    assert env.reached("reduced block")
    store.send("stop me")
    queued = store.send("queued before the stop")
    env.mark("unblock")

    queued.wait(timeout=WAIT)
    store.stop(timeout=WAIT)
    assert env.log == ["block", "stop me", "queued before the stop"]


def test_pending_delays_are_cancelled_at_stop(stores: Stores) -> None:
    env = Env()
    store = slow_store(stores, env, stores.gate())
    timer = store.send("timer")
    store.state(timeout=WAIT)
    assert env.clock.pending == 1  # type: ignore[attr-defined]

    began = time.monotonic()
    store.stop(timeout=WAIT)

    assert time.monotonic() - began < 1.0, "stop waited for a 60 s delay"
    assert env.clock.pending == 0  # type: ignore[attr-defined]
    with pytest.raises(StoreStopped):
        timer.wait(timeout=WAIT)
    env.clock.advance(60.0)  # type: ignore[attr-defined]
    assert env.log == ["timer"]


def test_send_and_wait_for_waiting_when_the_store_stops_gets_store_stopped(
    stores: Stores,
) -> None:
    env = Env()
    store = slow_store(stores, env, stores.gate())
    outcome: list[BaseException] = []

    def ask() -> None:
        try:
            store.send_and_wait_for("question", lambda a: a == "never", timeout=WAIT)
        except Exception as error:
            outcome.append(error)

    asker = threading.Thread(target=ask)
    asker.start()
    assert env.reached("reduced question")
    store.state(timeout=WAIT)  # the waiter is registered
    store.stop(timeout=WAIT)
    asker.join(WAIT)

    assert len(outcome) == 1
    assert isinstance(outcome[0], StoreStopped)


def test_a_run_effect_sending_after_the_stop_is_ignored(stores: Stores) -> None:
    env = Env()
    hang = stores.gate()
    sends: list[Send[Any]] = []

    def keeps_sending(send: Send[Any]) -> None:
        sends.append(send)
        env.mark("running")
        hang.wait(WAIT)
        send("after the stop")
        env.mark("sent")

    def reducer(state: list[Any], action: Any, env: Env) -> list[Effect[Any]]:
        recorder(env, state, action)
        return [Effect.run(keeps_sending)] if action == "go" else []

    store = stores.start(reducer, [], env)
    handle = store.send("go")
    assert env.reached("running")
    store.stop(timeout=0.05)
    hang.set()
    assert env.reached("sent")

    with pytest.raises(StoreStopped):
        handle.wait(timeout=WAIT)
    assert env.log == ["go"]


@pytest.mark.slow
def test_stop_raises_timeout_when_the_reducer_never_returns(stores: Stores) -> None:
    release = stores.gate()
    entered = threading.Event()

    def stuck(state: list[Any], action: Any, env: Any) -> list[Effect[Any]]:
        entered.set()
        release.wait(60.0)  # longer than stop waits; set in the finally below
        return []

    store = stores.start(stuck, [])
    store.send("block")
    assert entered.wait(WAIT)

    try:
        with pytest.raises(Timeout, match="did not stop"):
            store.stop(timeout=0.0)  # waits the grace period plus 5 s for the thread
    finally:
        release.set()
    store.stop(timeout=WAIT)
    assert not store.is_alive
