"""Interpreting effects: the part shared by ``Store`` and ``TestStore``.

The runner walks an effect tree and turns its leaves (``future``, ``run``, ``pipe``,
``send``, ``delay``) into tasks. A backend decides where a task's work runs: the store puts it
on an executor and gets results back through its mailbox; the test store runs it on
the test thread and queues the results for ``receive``. Everything here runs on the
owner's thread (the store's actor thread, or the test's), so it takes no locks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from typing import Any

from actors._effect import (
    Effect,
    _Cancel,
    _Cancellable,
    _Concat,
    _Delay,
    _Future,
    _Map,
    _Merge,
    _Nothing,
    _Pipe,
    _Run,
    _Send,
)
from actors._handle import EffectHandle

Transform = Callable[[Any], Any] | None

RUNNING, FINISHED, CANCELLED = 0, 1, 2


class Group:
    """Counts the leaves of one step of a ``concat``; calls ``on_done`` after the last."""

    __slots__ = ("on_done", "remaining", "sealed")

    def __init__(self, on_done: Callable[[], None]) -> None:
        self.remaining = 0
        self.sealed = False
        self.on_done = on_done

    def leaf_done(self) -> None:
        self.remaining -= 1
        if self.remaining == 0 and self.sealed:
            self.on_done()

    def seal(self) -> None:
        self.sealed = True
        if self.remaining == 0:
            self.on_done()


class Task:
    """One running leaf effect."""

    __slots__ = (
        "action",
        "effect",
        "group",
        "handle",
        "keys",
        "outstanding",
        "state",
        "timer",
        "transform",
        "work",
    )

    def __init__(
        self,
        effect: Effect[Any],
        handle: EffectHandle | None,
        transform: Transform,
        keys: tuple[Hashable, ...],
        group: Group | None,
    ) -> None:
        self.effect = effect
        self.handle = handle
        self.transform = transform
        self.keys = keys
        self.group = group
        self.state = RUNNING
        self.timer: Any = None  # a Timer for delays
        self.work: Any = None  # a concurrent.futures.Future for executor work
        self.outstanding = 0  # fed-back actions not yet reduced (test store)
        self.action: Any = None

    def lift(self, action: Any) -> Any:
        """The action as the store sees it (after the ``map``s around the effect)."""
        transform = self.transform
        return action if transform is None else transform(action)

    def __repr__(self) -> str:
        return repr(self.effect)


def started_future(start: Callable[[], Any]) -> Future[Any]:
    """Call an ``Effect.pipe``'s ``start`` and check that it gave a Future."""
    future = start()
    if not isinstance(future, Future):
        raise TypeError(f"Effect.pipe: start() returned {future!r}, not a Future")
    return future


def _compose(outer: Transform, inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
    if outer is None:
        return inner
    return lambda action: outer(inner(action))


class EffectRunner(ABC):
    """Starts, tracks and cancels the tasks of one owner (a store or a test store)."""

    def __init__(self) -> None:
        self.live: dict[Task, None] = {}  # insertion-ordered set of running tasks
        self._by_key: dict[Hashable, dict[Task, None]] = {}
        self._sequences: dict[Task, None] = {}  # the token task of each running concat

    # Backend: where the work of a leaf runs.

    @abstractmethod
    def spawn_future(self, task: Task, fn: Callable[[], Any]) -> None: ...

    @abstractmethod
    def spawn_run(self, task: Task, fn: Callable[[Callable[[Any], None]], None]) -> None: ...

    @abstractmethod
    def spawn_pipe(
        self,
        task: Task,
        start: Callable[[], Any],
        recover: Callable[[BaseException], Any] | None,
    ) -> None:
        """Call ``start()`` now; feed back its future's result when it completes."""

    @abstractmethod
    def post(self, task: Task, action: Any) -> None:
        """Feed ``action`` back soon (for ``Effect.send``)."""

    @abstractmethod
    def schedule(self, task: Task, seconds: float, action: Any) -> Any:
        """Arrange for ``action`` to be fed back after ``seconds``; return a Timer."""

    def on_cancelled(self, task: Task) -> None:  # noqa: B027 - optional hook
        """A task was cancelled before it finished."""

    # Starting effects.

    def start(self, effects: Sequence[Effect[Any]], handle: EffectHandle | None) -> None:
        for effect in effects:
            if type(effect) is not _Nothing:
                self._start(effect, handle, None, (), None)

    def _start(
        self,
        effect: Effect[Any],
        handle: EffectHandle | None,
        transform: Transform,
        keys: tuple[Hashable, ...],
        group: Group | None,
    ) -> None:
        kind = type(effect)
        if kind is _Future:
            assert isinstance(effect, _Future)
            self.spawn_future(self._task(effect, handle, transform, keys, group), effect.fn)
        elif kind is _Send:
            assert isinstance(effect, _Send)
            self.post(self._task(effect, handle, transform, keys, group), effect.action)
        elif kind is _Map:
            assert isinstance(effect, _Map)
            self._start(effect.effect, handle, _compose(transform, effect.f), keys, group)
        elif kind is _Merge:
            assert isinstance(effect, _Merge)
            for child in effect.effects:
                self._start(child, handle, transform, keys, group)
        elif kind is _Delay:
            assert isinstance(effect, _Delay)
            task = self._task(effect, handle, transform, keys, group)
            task.timer = self.schedule(task, effect.seconds, effect.action)
        elif kind is _Run:
            assert isinstance(effect, _Run)
            self.spawn_run(self._task(effect, handle, transform, keys, group), effect.fn)
        elif kind is _Pipe:
            assert isinstance(effect, _Pipe)
            task = self._task(effect, handle, transform, keys, group)
            self.spawn_pipe(task, effect.fn, effect.recover)
        elif kind is _Cancellable:
            assert isinstance(effect, _Cancellable)
            if effect.cancel_in_flight:
                self.cancel_key(effect.key)
            self._start(effect.effect, handle, transform, (*keys, effect.key), group)
        elif kind is _Cancel:
            assert isinstance(effect, _Cancel)
            self.cancel_key(effect.key)
        elif kind is _Concat:
            assert isinstance(effect, _Concat)
            self._start_concat(effect.effects, 0, handle, transform, keys, group)
        elif kind is _Nothing:
            pass
        else:
            raise TypeError(f"not an effect: {effect!r}")

    def _start_concat(
        self,
        effects: tuple[Effect[Any], ...],
        index: int,
        handle: EffectHandle | None,
        transform: Transform,
        keys: tuple[Hashable, ...],
        parent: Group | None,
        token: Task | None = None,
    ) -> None:
        # The whole remaining sequence counts as one leaf of the parent group, and
        # keeps the handle pending until its last step is done. A token task stands
        # for the steps not yet started: cancelling the sequence's key (or all)
        # cancels it, and the sequence then ends instead of starting its next step.
        if index == 0:
            if parent is not None:
                parent.remaining += 1
            if handle is not None:
                handle._add()
            token = Task(_Concat(effects), None, None, keys, None)
            self._sequences[token] = None
            for key in keys:
                self._by_key.setdefault(key, {})[token] = None
        assert token is not None
        if index == len(effects) or token.state is not RUNNING:
            self._sequences.pop(token, None)
            self._forget(token)
            if parent is not None:
                parent.leaf_done()
            if handle is not None:
                handle._release()
            return
        step = Group(
            lambda: self._start_concat(effects, index + 1, handle, transform, keys, parent, token)
        )
        self._start(effects[index], handle, transform, keys, step)
        step.seal()

    def _task(
        self,
        effect: Effect[Any],
        handle: EffectHandle | None,
        transform: Transform,
        keys: tuple[Hashable, ...],
        group: Group | None,
    ) -> Task:
        task = Task(effect, handle, transform, keys, group)
        self.live[task] = None
        for key in keys:
            self._by_key.setdefault(key, {})[task] = None
        if handle is not None:
            handle._add()
        if group is not None:
            group.remaining += 1
        return task

    # Ending tasks.

    def finish(self, task: Task) -> None:
        """The task's work is done and what it fed back has been reduced."""
        if task.state is not RUNNING:
            return
        task.state = FINISHED
        self._forget(task)
        if task.handle is not None:
            task.handle._release()
        if task.group is not None:
            task.group.leaf_done()

    def cancel_key(self, key: Hashable) -> None:
        tasks = self._by_key.get(key)
        if tasks:
            for task in list(tasks):
                self.cancel(task)

    def cancel(self, task: Task, abort: BaseException | None = None) -> None:
        """Stop ``task``: its timer never fires and its late results are dropped.

        With ``abort``, the handle waiting on the task finishes now with that error;
        otherwise the task simply counts as done.
        """
        if task.state is not RUNNING:
            return
        task.state = CANCELLED
        self._forget(task)
        if task.timer is not None:
            task.timer.cancel()
        if task.work is not None:
            task.work.cancel()
        self.on_cancelled(task)
        if task.handle is not None:
            if abort is not None:
                task.handle._abort(abort)
            else:
                task.handle._release()
        if task.group is not None and abort is None:
            task.group.leaf_done()

    def cancel_all(self, abort: BaseException | None = None) -> None:
        for token in list(self._sequences):  # first, or a cancelled step starts the next
            self.cancel(token, abort)
        for task in list(self.live):
            self.cancel(task, abort)

    def cancel_delays(self, abort: BaseException | None = None) -> None:
        for task in list(self.live):
            if type(task.effect) is _Delay:
                self.cancel(task, abort)

    def _forget(self, task: Task) -> None:
        self.live.pop(task, None)
        for key in task.keys:
            tasks = self._by_key.get(key)
            if tasks is not None:
                tasks.pop(task, None)
                if not tasks:
                    del self._by_key[key]
