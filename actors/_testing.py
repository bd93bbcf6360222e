"""``TestStore``: exhaustive, deterministic tests of a reducer and its effects.

Everything runs on the test's thread. ``future`` and ``run`` effects run as soon as
they start (a ``pipe`` effect's future is awaited then), and the actions they
produce wait in a queue until the test ``receive``s them; delays wait on a
``ManualClock`` until the test ``advance``s it. Exhaustive by default: an action fed
back and not received, or an effect still running at ``finish()``, fails the test
and is named in the message.
"""

from __future__ import annotations

import copy
import difflib
import pprint
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from actors._clock import ManualClock
from actors._effect import _Run
from actors._errors import EffectFailed
from actors._reducer import ReducerLike, as_reducer, effects_of
from actors._runner import RUNNING, EffectRunner, Task, started_future

__all__ = ["TestStore", "unimplemented"]

S = TypeVar("S")
A = TypeVar("A")
E = TypeVar("E")

PIPE_TIMEOUT = 30.0
"""Seconds a TestStore waits for an ``Effect.pipe`` future before failing the effect."""


class _TestRunner(EffectRunner):
    def __init__(self, owner: TestStore[Any, Any, Any]) -> None:
        super().__init__()
        self._owner = owner

    def spawn_future(self, task: Task, fn: Callable[[], Any]) -> None:
        try:
            result = fn()
        except Exception as cause:
            self.finish(task)
            raise self._owner._effect_failed(task, cause) from cause
        if result is None:
            self.finish(task)
        else:
            self._enqueue(task, result)

    def spawn_pipe(
        self,
        task: Task,
        start: Callable[[], Any],
        recover: Callable[[BaseException], Any] | None,
    ) -> None:
        # The future is awaited here, on the test's thread, so the test stays
        # deterministic: its result waits in the queue like a future's.
        def awaited() -> Any:
            future = started_future(start)
            try:
                return future.result(timeout=PIPE_TIMEOUT)
            except Exception as error:
                if recover is None or not future.done():  # not done: waited too long
                    raise
                return recover(error)

        self.spawn_future(task, awaited)

    def spawn_run(self, task: Task, fn: Callable[[Callable[[Any], None]], None]) -> None:
        def send(action: Any) -> None:
            if task.state is RUNNING:
                self._enqueue(task, action)

        try:
            fn(send)
        except Exception as cause:
            self.cancel(task)
            raise self._owner._effect_failed(task, cause) from cause
        task.action = _RETURNED
        if task.outstanding == 0:
            self.finish(task)

    def post(self, task: Task, action: Any) -> None:
        self._enqueue(task, action)

    def schedule(self, task: Task, seconds: float, action: Any) -> Any:
        def fire() -> None:
            if task.state is RUNNING:
                task.timer = None
                self._enqueue(task, action)

        return self._owner.clock.call_later(seconds, fire)

    def on_cancelled(self, task: Task) -> None:
        queue = self._owner._received
        kept = [entry for entry in queue if entry[0] is not task]
        queue.clear()
        queue.extend(kept)

    def _enqueue(self, task: Task, action: Any) -> None:
        task.outstanding += 1
        self._owner._received.append((task, action))

    def delivered(self, task: Task) -> None:
        task.outstanding -= 1
        if task.outstanding == 0 and (type(task.effect) is not _Run or task.action is _RETURNED):
            self.finish(task)


_RETURNED = object()


class TestStore(Generic[S, A, E]):
    """Drive a reducer step by step and assert every state change and fed-back action.

    Args:
        reducer: the reducer under test.
        initial_state: the state, or a function of no arguments that makes it.
        environment: the reducer's environment. Its ``clock``, when it is a
            ``ManualClock``, is the test store's clock; otherwise the test store
            makes one (``TestStore.clock``).
        exhaustive: when True (default) every state change must be expected, every
            fed-back action received and every effect finished by ``finish()``.

    Example::

        with TestStore(counter, Counter(), Env()) as store:
            store.send(Increment(), lambda s: setattr(s, "count", 1))
            store.advance(1.0)
            store.receive(Tick(), lambda s: setattr(s, "count", 2))
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        reducer: ReducerLike[S, A, E],
        initial_state: S | Callable[[], S],
        environment: E,
        *,
        exhaustive: bool = True,
    ) -> None:
        self._reduce = as_reducer(reducer)
        self.state: S = initial_state() if callable(initial_state) else copy.deepcopy(initial_state)
        self.environment = environment
        env_clock = getattr(environment, "clock", None)
        self.clock: ManualClock = env_clock if isinstance(env_clock, ManualClock) else ManualClock()
        self.exhaustive = exhaustive
        self._received: deque[tuple[Task, Any]] = deque()
        self._runner = _TestRunner(self)
        self._finished = False

    # Steps.

    def send(self, action: A, expect: Callable[[S], object] | S | None = None) -> None:
        """Reduce ``action`` and check the state against ``expect``.

        Args:
            action: the action to send.
            expect: a function that mutates (a copy of) the previous state into the
                expected one, or the expected state itself. None means "no change"
                when exhaustive, "not checked" otherwise.
        """
        if self.exhaustive and self._received:
            raise AssertionError(
                f"sent {action!r} while {len(self._received)} received action(s) were not "
                f"yet asserted: {self._pending_actions()}; receive them first"
            )
        self._step(action, expect, f"send({action!r})")

    def receive(
        self,
        expected: A | type | Callable[[A], bool],
        expect: Callable[[S], object] | S | None = None,
    ) -> A:
        """Reduce the next fed-back action, which must match ``expected``.

        Args:
            expected: the action itself (compared with ``==``), an action class, or
                a predicate.
            expect: as for ``send``.

        Returns:
            The action received.
        """
        while True:
            if not self._received:
                raise AssertionError(
                    f"expected to receive {_describe(expected)}, but no action was fed "
                    f"back{self._in_flight_note()}"
                )
            task, raw = self._received.popleft()
            action = task.lift(raw)
            if _matches(expected, action):
                break
            if self.exhaustive:
                raise AssertionError(
                    f"expected to receive {_describe(expected)}, but received {action!r}"
                )
            # Non-exhaustive: actions nobody asked about are reduced and passed over.
            self._reduce_and_start(action)
            self._runner.delivered(task)
        self._step(action, expect, f"receive({action!r})", task)
        result: A = action
        return result

    def advance(self, seconds: float) -> None:
        """Move the clock forward; due delays feed their actions back (receive them)."""
        self.clock.advance(seconds)

    def skip_received_actions(self) -> None:
        """Reduce every fed-back action without asserting on it."""
        while self._received:
            task, raw = self._received.popleft()
            self._reduce_and_start(task.lift(raw))
            self._runner.delivered(task)

    def skip_in_flight_effects(self) -> None:
        """Cancel every effect still running (pending delays included)."""
        self._runner.cancel_all()

    def finish(self) -> None:
        """Fail if an action is left unreceived or an effect still runs (exhaustive)."""
        if self._finished or not self.exhaustive:
            return
        problems = []
        if self._received:
            problems.append(
                f"{len(self._received)} received action(s) not asserted: {self._pending_actions()}"
            )
        running = [task for task in self._runner.live if task.outstanding == 0]
        if running:
            problems.append(
                f"{len(running)} effect(s) still running: "
                + ", ".join(repr(task) for task in running)
            )
        if problems:
            raise AssertionError("the test store finished with " + "; ".join(problems))
        self._finished = True  # only a clean finish counts: a second call fails again

    def __enter__(self) -> TestStore[S, A, E]:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.finish()

    # Internals.

    def _step(
        self,
        action: A,
        expect: Callable[[S], object] | S | None,
        label: str,
        task: Task | None = None,
    ) -> None:
        before = copy.deepcopy(self.state)
        self._reduce_and_start(action)
        if task is not None:
            self._runner.delivered(task)
        if expect is None and not self.exhaustive:
            return
        if expect is None:
            expected = before
        elif callable(expect):
            expected = copy.deepcopy(before)
            expect(expected)  # it mutates; what it returns is ignored (list.pop...)
        else:
            expected = expect
        if expected != self.state:
            raise AssertionError(
                f"state after {label} differs from the expected state "
                f"(- expected, + actual):\n{_diff(expected, self.state)}"
            )

    def _reduce_and_start(self, action: A) -> None:
        effects = effects_of(self._reduce(self.state, action, self.environment))
        self._runner.start(effects, None)

    def _effect_failed(self, task: Task, cause: BaseException) -> EffectFailed:
        return EffectFailed("TestStore", f"{task!r}: {cause!r}")

    def _pending_actions(self) -> str:
        return ", ".join(repr(task.lift(raw)) for task, raw in self._received)

    def _in_flight_note(self) -> str:
        running = [repr(task) for task in self._runner.live if task.outstanding == 0]
        if not running:
            return ""
        return f" (still running: {', '.join(running)}; a delay needs advance())"


def _matches(expected: object, action: object) -> bool:
    if isinstance(expected, type):
        return isinstance(action, expected)
    if callable(expected):
        return bool(expected(action))
    return bool(expected == action)


def _describe(expected: object) -> str:
    if isinstance(expected, type):
        return f"an action of type {expected.__name__}"
    if callable(expected):
        return f"an action matching {getattr(expected, '__name__', expected)!r}"
    return repr(expected)


def _diff(expected: object, actual: object) -> str:
    left = pprint.pformat(expected, width=88, sort_dicts=True).splitlines()
    right = pprint.pformat(actual, width=88, sort_dicts=True).splitlines()
    lines = difflib.unified_diff(left, right, "expected", "actual", lineterm="", n=2)
    body = "\n".join(list(lines)[2:])
    return body or f"(the reprs are equal, the values are not)\n  {left}\n  {right}"


class _Unimplemented:
    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__") and attribute.endswith("__"):
            # Python's own protocol probes (copy, pickle, hasattr(x, "__iter__")) are
            # not uses of the dependency: answer them as a plain object would.
            raise AttributeError(attribute)
        raise AssertionError(
            f"{self._name}.{attribute} was used, but the test did not provide {self._name}"
        )

    def __call__(self, *args: object, **kwargs: object) -> Any:
        raise AssertionError(f"{self._name} was called, but the test did not provide it")

    def __repr__(self) -> str:
        return f"unimplemented({self._name!r})"


def unimplemented(name: str) -> Any:
    """A dependency the test did not provide: any use fails the test, naming it."""
    return _Unimplemented(name)
