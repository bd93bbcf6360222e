"""Failures: supervision of a raising reducer, effects that raise or hang, the error tree."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

import actors
from actors import (
    ActorsError,
    Effect,
    EffectFailed,
    MailboxFull,
    ReducerFailed,
    Send,
    Store,
    StoreStopped,
    Timeout,
)
from tests.runtime_support import WAIT, Stores, started_stores


@pytest.fixture
def stores() -> Iterator[Stores]:
    with started_stores() as started:
        yield started


@dataclass
class Tally:
    actions: list[Any] = field(default_factory=list)


def tally(state: Tally, action: Any, env: Any) -> list[Effect[Any]]:
    state.actions.append(action)
    if action == "boom":
        raise ValueError("the reducer broke")
    return []


# A reducer that raises.


def test_a_reducer_that_raises_does_not_take_the_store_down(stores: Stores) -> None:
    store = stores.start(tally, Tally)

    failed = store.send("boom")
    store.send("after").wait(timeout=WAIT)

    with pytest.raises(ReducerFailed):
        failed.wait(timeout=WAIT)
    assert store.is_alive
    assert store.state(timeout=WAIT).actions == ["after"]


def test_the_senders_handle_carries_the_reducers_exception_as_cause(stores: Stores) -> None:
    store = stores.start(tally, Tally, name="tally")

    with pytest.raises(ReducerFailed, match=r"'tally'.*'boom'") as failed:
        store.send("boom").wait(timeout=WAIT)
    assert isinstance(failed.value.__cause__, ValueError)
    assert str(failed.value.__cause__) == "the reducer broke"
    assert failed.value.action == "boom"


def test_a_raising_reducer_is_logged(stores: Stores, caplog: pytest.LogCaptureFixture) -> None:
    store = stores.start(tally, Tally, name="tally")
    with caplog.at_level(logging.ERROR, logger="actors"):
        store.send("boom").exception()
        store.send("probe").wait(timeout=WAIT)

    [record] = [r for r in caplog.records if "the reducer raised" in r.getMessage()]
    assert "'tally'" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)


def test_restart_rebuilds_the_state_from_the_initial_value(stores: Stores) -> None:
    initial = Tally(actions=["initial"])
    store = stores.start(tally, initial, supervision="restart")
    store.send("a")
    store.send("boom")
    store.send("b").wait(timeout=WAIT)

    assert store.state(timeout=WAIT).actions == ["initial", "b"]


def test_restart_is_the_default_policy(stores: Stores) -> None:
    store = stores.start(tally, Tally(actions=["initial"]))
    store.send("a")
    store.send("boom")
    store.send("b").wait(timeout=WAIT)

    assert store.state(timeout=WAIT).actions == ["initial", "b"]


def test_restart_rebuilds_the_state_with_the_initial_state_factory(stores: Stores) -> None:
    made: list[Tally] = []

    def factory() -> Tally:
        made.append(Tally(actions=[f"made {len(made) + 1}"]))
        return made[-1]

    store = stores.start(tally, factory, supervision="restart")
    store.send("boom")
    store.send("b").wait(timeout=WAIT)

    assert len(made) == 2
    assert store.state(timeout=WAIT).actions == ["made 2", "b"]


def test_resume_keeps_the_state_as_the_reducer_left_it(stores: Stores) -> None:
    store = stores.start(tally, Tally, supervision="resume")
    store.send("a")
    failed = store.send("boom")
    store.send("b").wait(timeout=WAIT)

    with pytest.raises(ReducerFailed):
        failed.wait(timeout=WAIT)
    assert store.state(timeout=WAIT).actions == ["a", "boom", "b"]


def test_stop_policy_stops_the_store_and_later_sends_raise_store_stopped(
    stores: Stores,
) -> None:
    store = stores.start(tally, Tally, supervision="stop")

    with pytest.raises(ReducerFailed):
        store.send("boom").wait(timeout=WAIT)
    store.stop(timeout=WAIT)  # returns at once: the store is stopping or stopped

    assert not store.is_alive
    with pytest.raises(StoreStopped):
        store.send("after")
    with pytest.raises(StoreStopped):
        store.state(timeout=WAIT)


def test_stop_policy_refuses_the_actions_queued_behind_the_failure(stores: Stores) -> None:
    release = stores.gate()

    def blocking(state: Tally, action: Any, env: Any) -> list[Effect[Any]]:
        if action == "boom":
            release.wait(WAIT)
        return tally(state, action, env)

    store = stores.start(blocking, Tally, supervision="stop")
    failed = store.send("boom")
    queued = store.send("queued")
    release.set()

    with pytest.raises(ReducerFailed):
        failed.wait(timeout=WAIT)
    with pytest.raises(StoreStopped):
        queued.wait(timeout=WAIT)


def test_a_reducer_failing_on_a_fed_back_action_fails_the_original_handle(
    stores: Stores,
) -> None:
    def feeds_boom(state: Tally, action: Any, env: Any) -> list[Effect[Any]]:
        if action == "go":
            return [Effect.future(lambda: "boom")]
        return tally(state, action, env)

    store = stores.start(feeds_boom, Tally)

    with pytest.raises(ReducerFailed, match="'boom'"):
        store.send("go").wait(timeout=WAIT)
    assert store.is_alive


def test_a_restart_whose_state_factory_raises_stops_the_store_and_fails_the_handle(
    stores: Stores,
) -> None:
    made: list[Tally] = []

    def factory() -> Tally:
        if made:
            raise RuntimeError("the configuration is gone")
        made.append(Tally())
        return made[-1]

    release = stores.gate()

    def gated(state: Tally, action: Any, env: Any) -> list[Effect[Any]]:
        release.wait(WAIT)
        return tally(state, action, env)

    store = stores.start(gated, factory, supervision="restart")
    failed = store.send("boom")
    queued = store.send("queued")
    release.set()

    with pytest.raises(ReducerFailed):
        failed.wait(timeout=WAIT)
    with pytest.raises(StoreStopped):
        queued.wait(timeout=WAIT)
    store.stop(timeout=WAIT)
    assert not store.is_alive


def test_a_reducer_returning_something_that_is_not_an_effect_fails_its_handle(
    stores: Stores,
) -> None:
    def reducer(state: Tally, action: Any, env: Any) -> Any:
        state.actions.append(action)
        return ["not an effect"] if action == "go" else []

    store = stores.start(reducer, Tally)

    with pytest.raises(EffectFailed) as failed:
        store.send("go").wait(timeout=WAIT)
    assert isinstance(failed.value.__cause__, TypeError)
    store.send("after").wait(timeout=WAIT)
    assert store.state(timeout=WAIT).actions == ["go", "after"]


def test_a_concat_of_something_that_is_not_an_effect_fails_the_reducer_not_the_store(
    stores: Stores,
) -> None:
    def reducer(state: Tally, action: Any, env: Any) -> list[Effect[Any]]:
        state.actions.append(action)
        if action == "go":
            return [Effect.concat(Effect.send("a"), "not an effect")]  # type: ignore[arg-type]
        return []

    store = stores.start(reducer, Tally, supervision="resume")

    with pytest.raises(ReducerFailed) as failed:
        store.send("go").wait(timeout=WAIT)
    assert isinstance(failed.value.__cause__, TypeError)
    store.send("after").wait(timeout=WAIT)
    assert store.state(timeout=WAIT).actions == ["go", "after"]


def test_merge_and_concat_refuse_what_is_not_an_effect() -> None:
    with pytest.raises(TypeError, match="not an effect: None"):
        Effect.merge(Effect.none(), None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not an effect: 'a'"):
        Effect.concat(Effect.send("a"), "a")  # type: ignore[arg-type]


def test_an_unknown_supervision_policy_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="supervision"):
        Store.start(tally, Tally, None, supervision="ignore")  # type: ignore[arg-type]


# Effects that raise or hang.


def test_an_effect_that_raises_is_reported_through_the_handle_and_the_log(
    stores: Stores, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> Any:
        raise ConnectionError("gateway down")

    def reducer(state: Tally, action: Any, env: Any) -> list[Effect[Any]]:
        state.actions.append(action)
        return [Effect.future(broken, name="charge")] if action == "pay" else []

    store = stores.start(reducer, Tally, name="payments")
    with caplog.at_level(logging.ERROR, logger="actors"):
        with pytest.raises(EffectFailed) as failed:
            store.send("pay").wait(timeout=WAIT)
        store.send("after").wait(timeout=WAIT)

    assert isinstance(failed.value.__cause__, ConnectionError)
    assert "'payments'" in str(failed.value)
    assert "charge" in str(failed.value)
    [record] = [r for r in caplog.records if "charge" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ConnectionError)
    assert store.is_alive
    assert store.state(timeout=WAIT).actions == ["pay", "after"]


def test_a_run_effect_that_raises_is_reported_after_what_it_sent(stores: Stores) -> None:
    def half(send: Send[Any]) -> None:
        send("sent first")
        raise RuntimeError("then broke")

    def reducer(state: Tally, action: Any, env: Any) -> list[Effect[Any]]:
        state.actions.append(action)
        return [Effect.run(half)] if action == "go" else []

    store = stores.start(reducer, Tally)

    with pytest.raises(EffectFailed) as failed:
        store.send("go").wait(timeout=WAIT)
    assert isinstance(failed.value.__cause__, RuntimeError)
    assert store.state(timeout=WAIT).actions == ["go", "sent first"]


def test_an_effect_raising_a_base_exception_is_reported_not_fatal(stores: Stores) -> None:
    def exits() -> Any:
        raise SystemExit(3)

    def reducer(state: Tally, action: Any, env: Any) -> list[Effect[Any]]:
        state.actions.append(action)
        return [Effect.future(exits)] if action == "go" else []

    store = stores.start(reducer, Tally)

    with pytest.raises(EffectFailed) as failed:
        store.send("go").wait(timeout=WAIT)
    assert isinstance(failed.value.__cause__, SystemExit)
    store.send("after").wait(timeout=WAIT)
    assert store.state(timeout=WAIT).actions == ["go", "after"]


@pytest.mark.parametrize("kind", ["future", "run"])
def test_a_map_function_that_raises_is_an_effect_failure_not_a_dead_store(
    stores: Stores, kind: str
) -> None:
    def emit(send: Send[Any]) -> None:
        send("raw")

    effect: Effect[Any] = Effect.future(lambda: "raw") if kind == "future" else Effect.run(emit)

    def reducer(state: Tally, action: Any, env: Any) -> list[Effect[Any]]:
        state.actions.append(action)
        return [effect.map(lambda a: 1 / 0)] if action == "go" else []

    store = stores.start(reducer, Tally)

    with pytest.raises(EffectFailed) as failed:
        store.send("go").wait(timeout=WAIT)
    assert isinstance(failed.value.__cause__, ZeroDivisionError)
    store.send("after").wait(timeout=WAIT)
    assert store.state(timeout=WAIT).actions == ["go", "after"]


def test_an_effect_that_cannot_start_fails_its_handle_instead_of_hanging(
    stores: Stores,
) -> None:
    executor = ThreadPoolExecutor(max_workers=1)
    executor.shutdown()

    def reducer(state: Tally, action: Any, env: Any) -> list[Effect[Any]]:
        state.actions.append(action)
        return [Effect.future(lambda: "never")] if action == "go" else []

    store = stores.start(reducer, Tally, executor=executor)

    with pytest.raises(EffectFailed) as failed:
        store.send("go").wait(timeout=WAIT)
    assert isinstance(failed.value.__cause__, RuntimeError)
    store.send("after").wait(timeout=WAIT)
    assert store.state(timeout=WAIT).actions == ["go", "after"]
    store.stop(timeout=0.5)  # nothing is left in flight to wait for


def test_a_hung_effect_does_not_block_the_mailbox(stores: Stores) -> None:
    hang = stores.gate()

    def reducer(state: Tally, action: Any, env: Any) -> list[Effect[Any]]:
        state.actions.append(action)
        return [Effect.future(lambda: hang.wait() and None)] if action == "hang" else []

    store = stores.start(reducer, Tally)
    hung = store.send("hang")
    for n in range(100):
        store.send(n)
    store.send("last").wait(timeout=WAIT)

    assert store.state(timeout=WAIT).actions == ["hang", *range(100), "last"]
    assert not hung.done
    hang.set()
    hung.wait(timeout=WAIT)


def test_a_hung_effect_raced_against_its_timeout_ends_at_the_timeout_and_its_answer_is_dropped(
    stores: Stores,
) -> None:
    # How a store bounds a call that may never answer (the payment store does this
    # with its gateway): the call merged with a delay, under one key the first
    # answer cancels.
    hang = stores.gate()
    answered = threading.Event()

    def call() -> Any:
        hang.wait()
        answered.set()
        return "late answer"

    def reducer(state: Tally, action: Any, env: Any) -> list[Effect[Any]]:
        state.actions.append(action)
        if action == "call":
            timer = Effect.delay(0.05, "timed out")
            return [Effect.merge(Effect.future(call), timer).cancellable("call")]
        if action in ("timed out", "late answer"):
            return [Effect.cancel("call")]
        return []

    store = stores.start(reducer, Tally)
    store.send("call").wait(timeout=WAIT)  # returns at the timeout, the call still hangs
    store.send("meanwhile").wait(timeout=WAIT)
    assert not answered.is_set()
    hang.set()
    assert answered.wait(WAIT)
    threading.Event().wait(0.2)  # room for the late answer to reach the mailbox
    store.send("probe").wait(timeout=WAIT)

    assert store.state(timeout=WAIT).actions == ["call", "timed out", "meanwhile", "probe"]


@pytest.mark.parametrize("base_exception", [SystemExit, KeyboardInterrupt])
def test_a_base_exception_in_a_reducer_stops_every_store_and_leaves_nobody_waiting(
    stores: Stores, base_exception: type[BaseException]
) -> None:
    """What a ``BaseException`` in a reducer does.

    ``SystemExit`` and ``KeyboardInterrupt`` are not reducer failures: they ask the
    process to end, so no supervision policy applies. The store lets Pykka handle them
    as it does for any actor: the store stops, and Pykka stops every other actor of
    the process (``ActorRegistry.stop_all()``), each refusing what is left in its
    mailbox. Nobody is left waiting: the handle of the action, handles of effects in
    flight, queued actions and ``send_and_wait_for`` callers all get ``StoreStopped``
    (whose ``__cause__`` is the ``BaseException`` for the action that raised it);
    later sends raise ``StoreStopped``. The exception itself does not propagate to
    the sender's thread (it ends in the store's own thread).
    """
    release = stores.gate()
    entered = threading.Event()
    hang = stores.gate()

    def reducer(state: Tally, action: Any, env: Any) -> list[Effect[Any]]:
        state.actions.append(action)
        if action == "in flight":
            return [Effect.future(lambda: hang.wait(WAIT) and None)]
        if action == "exit":
            entered.set()
            release.wait(WAIT)
            raise base_exception()
        return []

    store = stores.start(reducer, Tally)
    bystander = stores.start(tally, Tally)
    in_flight = store.send("in flight")
    exiting = store.send("exit")
    assert entered.wait(WAIT)
    queued = store.send("queued")
    answers: list[Any] = []

    def ask() -> None:
        try:
            answers.append(store.send_and_wait_for("request", lambda a: True, timeout=WAIT))
        except ActorsError as error:
            answers.append(error)

    asker = threading.Thread(target=ask)
    asker.start()
    release.set()

    with pytest.raises(StoreStopped) as stopped:
        exiting.wait(timeout=WAIT)
    assert isinstance(stopped.value.__cause__, base_exception)
    with pytest.raises(StoreStopped):
        queued.wait(timeout=WAIT)
    with pytest.raises(StoreStopped):
        in_flight.wait(timeout=WAIT)
    asker.join(WAIT)
    assert len(answers) == 1
    assert isinstance(answers[0], StoreStopped)
    with pytest.raises(StoreStopped):
        store.send("later")

    bystander.stop(timeout=WAIT)  # Pykka stopped it too: stop returns at once
    assert not bystander.is_alive


def test_a_base_exception_in_a_reducer_does_not_hang_send_and_wait_for(
    stores: Stores,
) -> None:
    def reducer(state: Tally, action: Any, env: Any) -> list[Effect[Any]]:
        raise SystemExit(1)

    store = stores.start(reducer, Tally)

    with pytest.raises(StoreStopped):
        store.send_and_wait_for("request", lambda a: True, timeout=WAIT)


# The error tree.


def test_every_error_is_an_actors_error_and_timeout_is_a_timeout_error() -> None:
    for error in (StoreStopped, MailboxFull, Timeout, EffectFailed, ReducerFailed):
        assert issubclass(error, ActorsError)
        assert getattr(actors, error.__name__) is error
    assert issubclass(Timeout, TimeoutError)
    assert issubclass(ActorsError, Exception)


def test_the_error_tree_is_drawn_in_the_errors_module_docstring() -> None:
    import actors._errors as errors

    doc = errors.__doc__ or ""
    for name in ("ActorsError", "StoreStopped", "MailboxFull", "Timeout", "ReducerFailed"):
        assert name in doc
    assert "EffectFailed" in doc


def test_errors_name_their_store() -> None:
    assert "'orders'" in str(StoreStopped("orders"))
    full = MailboxFull("orders", 8)
    assert "'orders'" in str(full)
    assert full.bound == 8
    assert "'orders'" in str(ReducerFailed("orders", "Pay()"))
    assert "'orders'" in str(EffectFailed("orders", "Effect.future(charge)"))


def test_a_reducer_returning_neither_effects_nor_none_fails_its_handle(stores: Stores) -> None:
    def reducer(state: Tally, action: Any, env: Any) -> Any:
        state.actions.append(action)
        return (effect for effect in [Effect.none()])  # a generator is not a sequence

    store = stores.start(reducer, Tally, supervision="resume")

    with pytest.raises(ReducerFailed) as failed:
        store.send("go").wait(timeout=WAIT)
    assert isinstance(failed.value.__cause__, TypeError)


def test_something_that_is_not_a_reducer_is_refused_at_start() -> None:
    with pytest.raises(TypeError, match="a reducer is a callable"):
        Store.start(42, Tally, None)  # type: ignore[arg-type]
