"""Effects in a running store: feedback, map, merge, concat, cancellation, handles."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pytest

from actors import Effect, EffectFailed, Send, Timeout, combine, scope
from tests.runtime_support import WAIT, Env, Stores, started_stores


@pytest.fixture
def stores() -> Iterator[Stores]:
    with started_stores() as started:
        yield started


Script = dict[Any, Callable[[Env], list[Effect[Any]]]]


def scripted(script: Script) -> Callable[[list[Any], Any, Env], list[Effect[Any]]]:
    """A reducer that records every action and returns the effects scripted for it."""

    def reducer(state: list[Any], action: Any, env: Env) -> list[Effect[Any]]:
        state.append(action)
        env.log.append(action)
        env.mark(f"reduced {action}")
        make = script.get(action)
        return make(env) if make else []

    return reducer


def flush(executor: Any) -> None:
    """Wait until a one-worker executor has finished (and posted) what it was given."""
    executor.submit(lambda: None).result(WAIT)


# Feedback.


def test_send_effects_are_reduced_after_their_action_in_the_order_returned(
    stores: Stores,
) -> None:
    store = stores.start(
        scripted({"go": lambda env: [Effect.send("a"), Effect.send("b"), Effect.send("c")]}),
        [],
        Env(),
    )
    store.send("go").wait(timeout=WAIT)

    assert store.state(timeout=WAIT) == ["go", "a", "b", "c"]


def test_fed_back_actions_join_the_back_of_the_mailbox(stores: Stores) -> None:
    env = Env()
    release = stores.gate()

    def script_block(env: Env) -> list[Effect[Any]]:
        release.wait(WAIT)
        return [Effect.send("fed back")]

    store = stores.start(scripted({"go": script_block}), [], env)
    handle = store.send("go")
    assert env.reached("reduced go")
    store.send("queued meanwhile")
    release.set()
    handle.wait(timeout=WAIT)

    assert store.state(timeout=WAIT) == ["go", "queued meanwhile", "fed back"]


def test_a_futures_result_is_fed_back_and_none_feeds_nothing_back(stores: Stores) -> None:
    store = stores.start(
        scripted(
            {
                "go": lambda env: [
                    Effect.future(lambda: "result"),
                    Effect.future(lambda: None),
                ]
            }
        ),
        [],
        Env(),
    )
    store.send("go").wait(timeout=WAIT)

    assert store.state(timeout=WAIT) == ["go", "result"]


def test_a_piped_futures_result_is_fed_back_when_another_thread_completes_it(
    stores: Stores,
) -> None:
    env = Env()
    pending: list[Future[str | None]] = []
    threads: list[str] = []

    def start() -> Future[str | None]:
        # Called on the store's thread: the work is only handed over here.
        threads.append(threading.current_thread().name)
        future: Future[str | None] = Future()
        pending.append(future)
        if len(pending) == 2:
            env.mark("started")
        return future

    store = stores.start(
        scripted({"go": lambda env: [Effect.pipe(start), Effect.pipe(start)]}), [], env
    )
    handle = store.send("go")
    assert env.reached("started")
    assert not handle.done  # the effects count as running until their futures complete

    def complete() -> None:
        pending[0].set_result("piped")
        pending[1].set_result(None)

    completer = threading.Thread(target=complete)
    completer.start()
    completer.join(WAIT)
    handle.wait(timeout=WAIT)

    assert store.state(timeout=WAIT) == ["go", "piped"]
    # Started on the store's own thread; no executor thread was taken.
    assert threads[0] == threads[1]
    assert not threads[0].startswith("actors-effect")


def test_a_piped_future_that_fails_or_a_start_that_raises_fails_the_handle(
    stores: Stores,
) -> None:
    def failing() -> Future[str]:
        future: Future[str] = Future()
        future.set_exception(ConnectionError("writer lost its connection"))
        return future

    def broken() -> Future[str]:
        raise RuntimeError("queue closed")

    store = stores.start(
        scripted(
            {
                "fail": lambda env: [Effect.pipe(failing, name="append")],
                "break": lambda env: [Effect.pipe(broken, name="append")],
                "not a future": lambda env: [Effect.pipe(lambda: "x", name="odd")],  # type: ignore[arg-type,return-value]
            }
        ),
        [],
        Env(),
    )

    for action, cause in [
        ("fail", ConnectionError),
        ("break", RuntimeError),
        ("not a future", TypeError),
    ]:
        with pytest.raises(EffectFailed) as failed:
            store.send(action).wait(timeout=WAIT)
        assert isinstance(failed.value.__cause__, cause)
    store.send("probe").wait(timeout=WAIT)  # the store lives on
    assert store.state(timeout=WAIT) == ["fail", "break", "not a future", "probe"]


def test_recover_turns_a_piped_futures_exception_into_an_action(stores: Stores) -> None:
    def conflict() -> Future[str]:
        future: Future[str] = Future()
        threading.Timer(0.01, future.set_exception, [LookupError("version 3, not 2")]).start()
        return future

    store = stores.start(
        scripted(
            {
                "append": lambda env: [
                    Effect.pipe(conflict, recover=lambda error: f"conflicted: {error}")
                ],
            }
        ),
        [],
        Env(),
    )
    store.send("append").wait(timeout=WAIT)

    assert store.state(timeout=WAIT) == ["append", "conflicted: version 3, not 2"]


def test_cancel_drops_the_result_of_a_piped_future_without_cancelling_the_future(
    stores: Stores,
) -> None:
    future: Future[str] = Future()
    store = stores.start(
        scripted(
            {
                "start": lambda env: [Effect.pipe(lambda: future).cancellable("job")],
                "cancel": lambda env: [Effect.cancel("job")],
            }
        ),
        [],
        Env(),
    )
    started = store.send("start")
    store.send("cancel").wait(timeout=WAIT)
    started.wait(timeout=WAIT)  # a cancelled effect counts as finished

    assert not future.cancelled()  # the work was handed over; only its result is dropped
    future.set_result("late")
    store.send("probe").wait(timeout=WAIT)
    assert store.state(timeout=WAIT) == ["start", "cancel", "probe"]


def test_a_run_effect_feeds_back_every_action_it_sends_in_order(stores: Stores) -> None:
    def emit(send: Send[Any]) -> None:
        for n in range(5):
            send(n)

    store = stores.start(scripted({"go": lambda env: [Effect.run(emit)]}), [], Env())
    store.send("go").wait(timeout=WAIT)

    assert store.state(timeout=WAIT) == ["go", 0, 1, 2, 3, 4]


def test_a_run_effects_sends_after_it_returned_are_dropped(stores: Stores) -> None:
    kept: list[Send[Any]] = []
    executor = stores.executor(workers=1)

    def keep(send: Send[Any]) -> None:
        send("inside")
        kept.append(send)

    store = stores.start(
        scripted({"go": lambda env: [Effect.run(keep)]}), [], Env(), executor=executor
    )
    store.send("go").wait(timeout=WAIT)
    kept[0]("after it returned")
    store.send("probe").wait(timeout=WAIT)

    assert store.state(timeout=WAIT) == ["go", "inside", "probe"]


def test_map_transforms_what_every_kind_of_effect_feeds_back(stores: Stores) -> None:
    env = Env()

    def emit(send: Send[str]) -> None:
        send("run")

    store = stores.start(
        scripted(
            {
                "go": lambda env: [
                    Effect.future(lambda: "future").map(str.upper),
                    Effect.send("send").map(str.upper),
                    Effect.run(emit).map(str.upper),
                    Effect.delay(1.0, "delay").map(str.upper),
                    Effect.send("twice").map(str.upper).map(lambda a: f"<{a}>"),
                ]
            }
        ),
        [],
        env,
    )
    handle = store.send("go")
    store.state(timeout=WAIT)  # "go" is reduced and its delay scheduled
    env.clock.advance(1.0)  # type: ignore[attr-defined]
    handle.wait(timeout=WAIT)

    assert sorted(store.state(timeout=WAIT)[1:]) == [
        "<TWICE>",
        "DELAY",
        "FUTURE",
        "RUN",
        "SEND",
    ]


def test_merge_runs_its_effects_concurrently(stores: Stores) -> None:
    both = threading.Barrier(2)

    def meet(name: str) -> Callable[[], str]:
        def wait_for_the_other() -> str:
            both.wait(WAIT)  # broken (and the effect fails) unless both run at once
            return name

        return wait_for_the_other

    store = stores.start(
        scripted(
            {"go": lambda env: [Effect.merge(Effect.future(meet("a")), Effect.future(meet("b")))]}
        ),
        [],
        Env(),
        executor=stores.executor(workers=2),
    )
    store.send("go").wait(timeout=WAIT)

    assert sorted(store.state(timeout=WAIT)) == ["a", "b", "go"]


def test_concat_starts_each_effect_once_the_previous_ones_feedback_is_reduced(
    stores: Stores,
) -> None:
    env = Env()
    release = stores.gate()
    seen_at_start: list[list[Any]] = []

    def first() -> str:
        release.wait(WAIT)
        return "first done"

    def second() -> str:
        seen_at_start.append(list(env.log))
        return "second done"

    store = stores.start(
        scripted(
            {
                "go": lambda env: [
                    Effect.concat(Effect.future(first), Effect.future(second), Effect.send("last"))
                ]
            }
        ),
        [],
        env,
        executor=stores.executor(workers=4),
    )
    handle = store.send("go")
    assert env.reached("reduced go")
    assert not env.reached("reduced second done", timeout=0.1)
    assert seen_at_start == []

    release.set()
    handle.wait(timeout=WAIT)

    assert seen_at_start == [["go", "first done"]]
    assert store.state(timeout=WAIT) == ["go", "first done", "second done", "last"]


def test_concat_of_delays_fires_them_one_after_another(stores: Stores) -> None:
    env = Env()
    store = stores.start(
        scripted(
            {"go": lambda env: [Effect.concat(Effect.delay(1.0, "one"), Effect.delay(1.0, "two"))]}
        ),
        [],
        env,
    )
    handle = store.send("go")
    store.state(timeout=WAIT)  # "go" is reduced and its delay scheduled

    env.clock.advance(1.0)  # type: ignore[attr-defined]
    assert store.state(timeout=WAIT) == ["go", "one"]
    assert not handle.done

    env.clock.advance(1.0)  # type: ignore[attr-defined]
    handle.wait(timeout=WAIT)
    assert store.state(timeout=WAIT) == ["go", "one", "two"]


# Composition.


@dataclass
class Parent:
    counter: list[Any] = field(default_factory=list)
    log: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class Child:
    action: Any


def child_reducer(state: list[Any], action: Any, env: Env) -> list[Effect[Any]]:
    state.append(action)
    if action == "start":
        return [Effect.send("child feedback"), Effect.future(lambda: "child future")]
    return []


def test_scope_runs_the_child_on_its_part_and_embeds_what_it_feeds_back(stores: Stores) -> None:
    def parent_log(state: Parent, action: Any, env: Env) -> list[Effect[Any]]:
        state.log.append(action)
        return []

    reducer = combine(
        parent_log,
        scope(
            child_reducer,
            state=lambda parent: parent.counter,
            action=lambda a: a.action if isinstance(a, Child) else None,
            embed=Child,
        ),
    )
    store = stores.start(reducer, Parent, Env())
    store.send(Child("start")).wait(timeout=WAIT)
    store.send("not the child's").wait(timeout=WAIT)

    state = store.state(timeout=WAIT)
    assert state.counter[0] == "start"
    assert sorted(state.counter[1:]) == ["child feedback", "child future"]
    assert state.log[0] == Child("start")
    assert sorted(a.action for a in state.log[1:3]) == ["child feedback", "child future"]
    assert state.log[3] == "not the child's"


def test_scope_gives_the_child_the_environment_it_picks(stores: Stores) -> None:
    seen: list[Any] = []

    def child(state: list[Any], action: Any, env: Any) -> list[Effect[Any]]:
        seen.append(env)
        return []

    reducer = scope(
        child,
        state=lambda parent: parent,
        action=lambda a: a,
        embed=lambda a: a,
        environment=lambda env: env.hooks,
    )
    env = Env(hooks={"the child's": lambda: None})
    store = stores.start(reducer, [], env)
    store.send("go").wait(timeout=WAIT)

    assert seen == [env.hooks]


def test_combine_runs_reducers_in_order_and_returns_all_their_effects(stores: Stores) -> None:
    def first(state: list[Any], action: Any, env: Env) -> list[Effect[Any]]:
        state.append(("first", action))
        return [Effect.send("from first")] if action == "go" else []

    def second(state: list[Any], action: Any, env: Env) -> list[Effect[Any]]:
        state.append(("second", action))
        return [Effect.send("from second")] if action == "go" else []

    store = stores.start(combine(first, second), [], Env())
    store.send("go").wait(timeout=WAIT)

    assert store.state(timeout=WAIT) == [
        ("first", "go"),
        ("second", "go"),
        ("first", "from first"),
        ("second", "from first"),
        ("first", "from second"),
        ("second", "from second"),
    ]


# Cancellation.


def test_cancel_drops_the_result_of_an_in_flight_effect(stores: Stores) -> None:
    env = Env()
    release = stores.gate()
    executor = stores.executor(workers=1)

    def slow() -> str:
        env.mark("started")
        release.wait(WAIT)
        return "result"

    store = stores.start(
        scripted(
            {
                "start": lambda env: [Effect.future(slow).cancellable("job")],
                "cancel": lambda env: [Effect.cancel("job")],
            }
        ),
        [],
        env,
        executor=executor,
    )
    started = store.send("start")
    assert env.reached("started")
    store.send("cancel").wait(timeout=WAIT)
    started.wait(timeout=WAIT)  # a cancelled effect counts as finished

    release.set()
    flush(executor)  # the result has been posted to the mailbox...
    store.send("probe").wait(timeout=WAIT)  # ...and is behind us, dropped

    assert store.state(timeout=WAIT) == ["start", "cancel", "probe"]


def test_cancel_drops_what_a_run_effect_sends_after_the_cancel(stores: Stores) -> None:
    env = Env()
    release = stores.gate()

    def chatty(send: Send[Any]) -> None:
        send("before")
        env.mark("sent before")
        release.wait(WAIT)
        send("after")
        env.mark("sent after")

    store = stores.start(
        scripted(
            {
                "start": lambda env: [Effect.run(chatty).cancellable("job")],
                "cancel": lambda env: [Effect.cancel("job")],
            }
        ),
        [],
        env,
    )
    started = store.send("start")
    assert env.reached("sent before")
    assert env.reached("reduced before")
    store.send("cancel").wait(timeout=WAIT)
    started.wait(timeout=WAIT)
    release.set()
    assert env.reached("sent after")
    store.send("probe").wait(timeout=WAIT)

    assert store.state(timeout=WAIT) == ["start", "before", "cancel", "probe"]


def test_cancel_cancels_pending_delays(stores: Stores) -> None:
    env = Env()
    store = stores.start(
        scripted(
            {
                "start": lambda env: [Effect.delay(1.0, "tick").cancellable("timer")],
                "cancel": lambda env: [Effect.cancel("timer")],
            }
        ),
        [],
        env,
    )
    started = store.send("start")
    store.state(timeout=WAIT)  # "start" is reduced and its delay scheduled
    assert env.clock.pending == 1  # type: ignore[attr-defined]

    store.send("cancel").wait(timeout=WAIT)
    started.wait(timeout=WAIT)
    assert env.clock.pending == 0  # type: ignore[attr-defined]
    env.clock.advance(5.0)  # type: ignore[attr-defined]

    assert store.state(timeout=WAIT) == ["start", "cancel"]


def test_cancel_leaves_effects_of_other_keys_running(stores: Stores) -> None:
    env = Env()
    store = stores.start(
        scripted(
            {
                "start": lambda env: [
                    Effect.delay(1.0, "a").cancellable("a"),
                    Effect.delay(1.0, "b").cancellable("b"),
                    Effect.delay(1.0, "unkeyed"),
                ],
                "cancel": lambda env: [Effect.cancel("a")],
            }
        ),
        [],
        env,
    )
    store.send("start")
    store.send("cancel").wait(timeout=WAIT)
    env.clock.advance(1.0)  # type: ignore[attr-defined]

    assert store.state(timeout=WAIT) == ["start", "cancel", "b", "unkeyed"]


def test_cancelling_a_concat_cancels_its_steps_not_yet_started(stores: Stores) -> None:
    env = Env()
    store = stores.start(
        scripted(
            {
                "start": lambda env: [
                    Effect.concat(Effect.delay(1.0, "one"), Effect.delay(1.0, "two")).cancellable(
                        "steps"
                    )
                ],
                "cancel": lambda env: [Effect.cancel("steps")],
            }
        ),
        [],
        env,
    )
    started = store.send("start")
    store.send("cancel").wait(timeout=WAIT)
    started.wait(timeout=WAIT)
    env.clock.advance(5.0)  # type: ignore[attr-defined]

    assert store.state(timeout=WAIT) == ["start", "cancel"]
    assert env.clock.pending == 0  # type: ignore[attr-defined]


def test_cancelling_a_step_of_a_concat_moves_it_to_the_next_step(stores: Stores) -> None:
    env = Env()
    store = stores.start(
        scripted(
            {
                "start": lambda env: [
                    Effect.concat(
                        Effect.delay(1.0, "one").cancellable("first step"),
                        Effect.send("two"),
                    )
                ],
                "cancel": lambda env: [Effect.cancel("first step")],
            }
        ),
        [],
        env,
    )
    started = store.send("start")
    store.send("cancel")
    started.wait(timeout=WAIT)

    assert store.state(timeout=WAIT) == ["start", "cancel", "two"]


def test_cancel_in_flight_debounces_to_the_latest_delay(stores: Stores) -> None:
    env = Env()
    store = stores.start(
        scripted(
            {
                "type": lambda env: [
                    Effect.delay(1.0, "search").cancellable("debounce", cancel_in_flight=True)
                ]
            }
        ),
        [],
        env,
    )
    handles = []
    for _ in range(3):
        handles.append(store.send("type"))
        store.state(timeout=WAIT)  # the delay is scheduled
        env.clock.advance(0.5)  # type: ignore[attr-defined]
    for superseded in handles[:2]:
        superseded.wait(timeout=WAIT)
    assert not handles[2].done

    env.clock.advance(0.5)  # type: ignore[attr-defined]
    handles[2].wait(timeout=WAIT)

    assert store.state(timeout=WAIT) == ["type", "type", "type", "search"]


def test_cancel_in_flight_drops_the_result_of_the_effect_it_replaces(stores: Stores) -> None:
    env = Env()
    release_first = stores.gate()

    def fetch(n: int) -> Effect[Any]:
        def work(send: Send[Any]) -> None:
            if n == 1:
                env.mark("first started")
                release_first.wait(WAIT)
            send(("got", n))
            env.mark(f"sent {n}")

        return Effect.run(work).cancellable("fetch", cancel_in_flight=True)

    store = stores.start(scripted({1: lambda env: [fetch(1)], 2: lambda env: [fetch(2)]}), [], env)
    first = store.send(1)
    assert env.reached("first started")
    second = store.send(2)
    second.wait(timeout=WAIT)
    first.wait(timeout=WAIT)
    release_first.set()
    assert env.reached("sent 1")
    store.send("probe").wait(timeout=WAIT)

    assert store.state(timeout=WAIT) == [1, 2, ("got", 2), "probe"]


# Handles.


def test_a_handle_waits_for_the_whole_cascade_of_its_action(stores: Stores) -> None:
    env = Env()
    release = stores.gate()

    def last() -> str:
        release.wait(WAIT)
        return "four"

    store = stores.start(
        scripted(
            {
                "one": lambda env: [Effect.future(lambda: "two")],
                "two": lambda env: [Effect.delay(1.0, "three")],
                "three": lambda env: [Effect.future(last)],
            }
        ),
        [],
        env,
    )
    handle = store.send("one")
    assert env.reached("reduced two")
    store.state(timeout=WAIT)  # "two" is reduced and its delay scheduled
    with pytest.raises(Timeout):
        handle.wait(timeout=0.05)  # the pending delay counts

    env.clock.advance(1.0)  # type: ignore[attr-defined]
    assert env.reached("reduced three")
    assert not handle.done  # the future of the fed-back action counts too

    release.set()
    handle.wait(timeout=WAIT)
    assert handle.done
    assert handle.exception() is None
    assert store.state(timeout=WAIT) == ["one", "two", "three", "four"]


def test_a_handle_of_an_action_without_effects_is_done_once_it_is_reduced(
    stores: Stores,
) -> None:
    store = stores.start(scripted({}), [], Env())
    handle = store.send("alone")
    handle.wait(timeout=WAIT)

    assert handle.done
    assert "done" in repr(handle)


def test_a_handle_wait_that_runs_out_of_time_raises_timeout_a_timeout_error(
    stores: Stores,
) -> None:
    release = stores.gate()
    store = stores.start(
        scripted({"go": lambda env: [Effect.future(lambda: release.wait(WAIT) and None)]}),
        [],
        Env(),
    )
    handle = store.send("go")

    with pytest.raises(Timeout) as timed_out:
        handle.wait(timeout=0.05)
    assert isinstance(timed_out.value, TimeoutError)
    assert not handle.done

    release.set()
    handle.wait(timeout=WAIT)


def test_a_handle_raises_effect_failed_caused_by_what_the_effect_raised(stores: Stores) -> None:
    def broken() -> str:
        raise ConnectionError("gateway down")

    store = stores.start(
        scripted({"go": lambda env: [Effect.future(broken, name="charge")]}), [], Env()
    )
    handle = store.send("go")

    with pytest.raises(EffectFailed, match="charge") as failed:
        handle.wait(timeout=WAIT)
    assert isinstance(failed.value.__cause__, ConnectionError)
    assert handle.exception() is failed.value


def test_many_handles_may_wait_on_one_cascade(stores: Stores) -> None:
    release = stores.gate()
    store = stores.start(
        scripted({"go": lambda env: [Effect.future(lambda: release.wait(WAIT) and None)]}),
        [],
        Env(),
    )
    handle = store.send("go")
    woke: list[str] = []
    waiters = [
        threading.Thread(target=lambda: (handle.wait(timeout=WAIT), woke.append("woke")))
        for _ in range(3)
    ]
    for waiter in waiters:
        waiter.start()
    release.set()
    for waiter in waiters:
        waiter.join(WAIT)

    assert woke == ["woke"] * 3


def test_nested_sequences_keep_their_order_and_run_beside_each_other_in_a_merge(
    stores: Stores,
) -> None:
    env = Env()
    store = stores.start(
        scripted(
            {
                "nested": lambda env: [
                    Effect.concat(
                        Effect.concat(Effect.send("a1"), Effect.send("a2")), Effect.send("a3")
                    )
                ],
                "merged": lambda env: [
                    Effect.merge(
                        Effect.concat(Effect.delay(1.0, "x1"), Effect.delay(2.0, "x2")),
                        Effect.concat(Effect.delay(2.0, "y1"), Effect.delay(2.0, "y2")),
                    )
                ],
            }
        ),
        [],
        env,
    )
    store.send("nested").wait(timeout=WAIT)
    assert store.state(timeout=WAIT) == ["nested", "a1", "a2", "a3"]

    merged = store.send("merged")
    store.state(timeout=WAIT)
    env.clock.advance(4.0)  # type: ignore[attr-defined]
    merged.wait(timeout=WAIT)
    assert store.state(timeout=WAIT)[4:] == ["merged", "x1", "y1", "x2", "y2"]


# Effects are values.


def test_merge_and_concat_drop_none_and_unwrap_a_single_effect() -> None:
    tick = Effect.send("tick")

    assert Effect.merge() is Effect.none()
    assert Effect.merge(Effect.none(), Effect.none()) is Effect.none()
    assert Effect.merge(Effect.none(), tick) is tick
    assert Effect.concat() is Effect.none()
    assert Effect.concat(Effect.none(), tick) is tick


def test_merge_flattens_nested_merges() -> None:
    a, b, c = Effect.send("a"), Effect.send("b"), Effect.send("c")

    assert Effect.merge(Effect.merge(a, b), c) == Effect.merge(a, b, c)


def test_none_stays_none_when_mapped_or_made_cancellable() -> None:
    assert Effect.none().map(str.upper) is Effect.none()
    assert Effect.none().cancellable("key") is Effect.none()
    assert Effect.none().cancellable("key", cancel_in_flight=True) is not Effect.none()


def test_effects_are_equal_values_with_readable_reprs() -> None:
    def charge() -> None:
        return None

    assert Effect.send("a") == Effect.send("a")
    assert Effect.delay(1, "a") == Effect.delay(1.0, "a")
    assert repr(Effect.none()) == "Effect.none()"
    assert repr(Effect.send("a")) == "Effect.send('a')"
    assert repr(Effect.delay(2, "a")) == "Effect.delay(2.0, 'a')"
    assert repr(Effect.future(charge)).startswith("Effect.future(")
    assert repr(Effect.future(charge, name="charge")) == "Effect.future(charge)"
    assert repr(Effect.run(lambda send: None, name="stream")) == "Effect.run(stream)"
