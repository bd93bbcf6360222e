"""``Store``: a Pykka actor whose mailbox serializes actions through a reducer.

Threads: the store's own actor thread runs the reducer, starts effects and does all
the bookkeeping of handles and tasks. Executor threads run ``future`` and ``run``
functions and only post their results back to the mailbox. The clock's thread only
posts fired delays. Any thread may call the ``StoreRef`` methods.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, Generic, Literal, TypeVar

import pykka

from actors._clock import Clock, shared_system_clock
from actors._errors import (
    ActorsError,
    EffectFailed,
    MailboxFull,
    ReducerFailed,
    StoreStopped,
    Timeout,
)
from actors._handle import EffectHandle
from actors._pool import EffectPool
from actors._reducer import ReducerLike, as_reducer, effects_of
from actors._runner import RUNNING, EffectRunner, Task, started_future

__all__ = ["DEFAULT_STOP_TIMEOUT", "Store", "StoreRef", "Supervision"]

S = TypeVar("S")
A = TypeVar("A")
E = TypeVar("E")

Supervision = Literal["restart", "resume", "stop"]

DEFAULT_STOP_TIMEOUT = 10.0
"""How long ``stop()`` waits for in-flight effects when given no timeout."""

log = logging.getLogger("actors.store")

_names = itertools.count(1)
_executor: EffectPool | None = None
_executor_lock = threading.Lock()


def shared_executor() -> EffectPool:
    """The executor that stores share when given none (created on first use)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = EffectPool(max_workers=64, thread_name_prefix="actors-effect")
        return _executor


# Mailbox messages other than external actions (those are their EffectHandle).


class _LeafDone:
    __slots__ = ("error", "reduced", "result", "task")

    def __init__(
        self,
        task: Task,
        result: Any,
        error: BaseException | None,
        reduced: threading.Event | None = None,
    ) -> None:
        self.task = task
        self.result = result
        self.error = error
        self.reduced = reduced


class _Feedback:
    __slots__ = ("action", "task")

    def __init__(self, task: Task, action: Any) -> None:
        self.task = task
        self.action = action


class _Waiter:
    __slots__ = ("active", "error", "event", "predicate", "result")

    def __init__(self, predicate: Callable[[Any], bool]) -> None:
        self.predicate = predicate
        self.event = threading.Event()
        self.active = True
        self.result: Any = None
        self.error: BaseException | None = None

    def resolve(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result = result
        self.error = error
        self.active = False
        self.event.set()


class _SendAndWait:
    __slots__ = ("handle", "waiter")

    def __init__(self, handle: EffectHandle, waiter: _Waiter) -> None:
        self.handle = handle
        self.waiter = waiter


class _Drain:
    __slots__ = ("timeout",)

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout


class _Status:
    """What a store and its refs share across threads.

    Written on the actor thread (``accepting`` also by ``stop()``), read anywhere;
    each write is one atomic attribute store.
    """

    __slots__ = (
        "accepting",
        "closed",
        "draining",
        "mailbox_size",
        "name",
        "queued",
        "queued_lock",
        "terminated",
        "thread",
    )

    def __init__(self, name: str, mailbox_size: int | None) -> None:
        self.name = name
        self.mailbox_size = mailbox_size
        self.accepting = True
        self.draining = False
        self.closed = False
        self.terminated = threading.Event()
        self.thread: threading.Thread | None = None
        self.queued = 0  # external actions in the mailbox (bounded mailboxes only)
        self.queued_lock = threading.Lock()


_GET_STATE = object()
_DRAIN_DEADLINE = object()


class _StoreRunner(EffectRunner):
    """Runs effects on the executor and the clock; results come back by the mailbox."""

    def __init__(self, store: Store[Any, Any, Any]) -> None:
        super().__init__()
        self._store = store
        self._post_msg = store.post
        self._executor = store.executor
        self._clock = store.clock

    def spawn_future(self, task: Task, fn: Callable[[], Any]) -> None:
        post = self._post_msg

        def work() -> None:
            if task.state is not RUNNING:
                return  # cancelled before it started
            try:
                result = fn()
            except BaseException as error:  # reported, never lost: see EffectFailed
                post(_LeafDone(task, None, error))
            else:
                post(_LeafDone(task, result, None))

        self._spawn(task, work)

    def spawn_run(self, task: Task, fn: Callable[[Callable[[Any], None]], None]) -> None:
        post = self._post_msg

        def send(action: Any) -> None:
            if task.state is RUNNING:
                post(_Feedback(task, action))

        def work() -> None:
            if task.state is not RUNNING:
                return  # cancelled before it started
            try:
                fn(send)
            except BaseException as error:
                post(_LeafDone(task, None, error))
            else:
                post(_LeafDone(task, None, None))

        self._spawn(task, work)

    def _spawn(self, task: Task, work: Callable[[], None]) -> None:
        executor = self._executor
        try:
            if type(executor) is EffectPool:
                # No Future to cancel: the work checks the task's state when it starts.
                executor.execute(work)
            else:
                task.work = executor.submit(work)
        except Exception as error:  # e.g. a shut-down executor: fail the task, never hang
            self._post_msg(_LeafDone(task, None, error))

    def spawn_pipe(
        self,
        task: Task,
        start: Callable[[], Any],
        recover: Callable[[BaseException], Any] | None,
    ) -> None:
        post = self._post_msg
        try:
            future = started_future(start)
        except Exception as error:
            post(_LeafDone(task, None, error))
            return

        # Runs on whichever thread completes the future (the client's I/O thread):
        # it only posts to the mailbox. The future is not cancelled with the task:
        # the work was handed over, and a cancelled task drops its late result anyway.
        def done(completed: Future[Any]) -> None:
            try:
                result = completed.result()
            except BaseException as error:  # reported, never lost: see EffectFailed
                if recover is None:
                    post(_LeafDone(task, None, error))
                    return
                try:
                    result = recover(error)
                except BaseException as failed:
                    post(_LeafDone(task, None, failed))
                    return
            post(_LeafDone(task, result, None))

        future.add_done_callback(done)

    def post(self, task: Task, action: Any) -> None:
        self._post_msg(_LeafDone(task, action, None))

    def schedule(self, task: Task, seconds: float, action: Any) -> Any:
        post = self._post_msg

        def fire() -> threading.Event:
            # The event lets a ManualClock wait for the reduction before it fires
            # the next timer, so chained delays fire within one advance().
            reduced = threading.Event()
            if task.state is not RUNNING or not post(_LeafDone(task, action, None, reduced)):
                reduced.set()
            return reduced

        return self._clock.call_later(seconds, fire)


class Store(pykka.ThreadingActor, Generic[S, A, E]):
    """A store: state, a reducer and an environment, behind a Pykka mailbox.

    Start one with ``Store.start(...)``; talk to it through the ``StoreRef`` it
    returns. The reducer runs on the store's own thread only, one action at a time.
    """

    use_daemon_thread = True  # a forgotten store must not keep the process alive

    @staticmethod
    def _create_actor_inbox() -> Any:
        # Pykka's hook for actor types. queue.SimpleQueue (C, lock-free for the
        # reader) has everything the inbox needs (put, get, empty) and costs about
        # half of queue.Queue per message; bounds are counted by us, not the queue.
        return queue.SimpleQueue()

    def __init__(
        self,
        reducer: ReducerLike[S, A, E],
        initial_state: S | Callable[[], S],
        environment: E,
        status: _Status,
        executor: Executor,
        supervision: Supervision,
        clock: Clock,
    ) -> None:
        super().__init__()
        self.status = status
        self.name = status.name
        self.reducer = as_reducer(reducer)
        self.environment = environment
        self.executor = executor
        self.clock = clock
        self.supervision = supervision
        self.mailbox_size = status.mailbox_size
        if callable(initial_state):
            self._make_state: Callable[[], S] = initial_state
        else:
            pristine = copy.deepcopy(initial_state)
            self._make_state = lambda: copy.deepcopy(pristine)
        self.state: S = self._make_state()
        self.runner = _StoreRunner(self)
        self.waiters: list[_Waiter] = []
        self._tell = self.actor_ref.tell

    @classmethod
    def start(  # type: ignore[override]
        cls,
        reducer: ReducerLike[S, A, E],
        initial_state: S | Callable[[], S],
        environment: E,
        *,
        name: str | None = None,
        executor: Executor | None = None,
        mailbox_size: int | None = None,
        supervision: Supervision = "restart",
        clock: Clock | None = None,
    ) -> StoreRef[S, A]:
        """Start a store on its own thread.

        Args:
            reducer: ``(state, action, env) -> Sequence[Effect]``, or an object with
                a ``reduce`` method of that signature.
            initial_state: the state (deep-copied, so ``restart`` can rebuild it),
                or a function of no arguments that makes a fresh one.
            environment: what the reducer and effects use for I/O: ports, clock, ids.
            name: shown in errors and logs (default: made up from the reducer).
            executor: where ``future``/``run`` effects run (default: one shared pool).
            mailbox_size: refuse sends past this many waiting actions with
                ``MailboxFull`` (default: unbounded). Fed-back actions never count.
            supervision: when the reducer raises: ``"restart"`` rebuilds the state
                from ``initial_state``; ``"resume"`` keeps the state as the reducer
                left it; ``"stop"`` stops the store.
            clock: what times ``delay`` effects (default: ``environment.clock`` if
                the environment has one, else the shared ``SystemClock``).

        Returns:
            The ``StoreRef`` to send actions to.
        """
        if supervision not in ("restart", "resume", "stop"):
            raise ValueError(f"supervision must be restart, resume or stop, not {supervision!r}")
        if mailbox_size is not None and mailbox_size < 1:
            raise ValueError(f"mailbox_size must be at least 1, got {mailbox_size}")
        if clock is None:
            env_clock = getattr(environment, "clock", None)
            clock = env_clock if isinstance(env_clock, Clock) else shared_system_clock()
        if name is None:
            base = getattr(reducer, "__name__", None) or type(reducer).__name__
            name = f"{base}-{next(_names)}"
        status = _Status(name, mailbox_size)
        actor_ref = super().start(
            reducer,
            initial_state,
            environment,
            status,
            executor or shared_executor(),
            supervision,
            clock,
        )
        return StoreRef(actor_ref, status)

    # Called from any thread.

    def post(self, message: object) -> bool:
        """Put an internal message in the mailbox; False once the store is dead."""
        if self.status.closed:
            return False
        try:
            self._tell(message)
        except pykka.ActorDeadError:
            return False
        return True

    # The actor thread.

    def on_start(self) -> None:
        thread = threading.current_thread()
        # Named after the store (Pykka's "Store-3" says nothing) for thread dumps,
        # py-spy and per-thread CPU figures.
        thread.name = f"store-{self.name}"
        self.status.thread = thread

    def on_receive(self, message: Any) -> Any:
        if type(message) is EffectHandle:
            self._receive_external(message)
        elif type(message) is _LeafDone:
            self._leaf_done(message)
        elif type(message) is _Feedback:
            task = message.task
            if task.state is RUNNING and not self.status.closed:
                try:
                    action = task.lift(message.action)
                except Exception as cause:  # a map() function raised
                    self._effect_failed(task, cause)
                else:
                    self.reduce(action, task.handle)
        elif type(message) is _SendAndWait:
            # The waiter is registered after the reduction: it wants what comes after.
            waiter = message.waiter
            try:
                self._receive_external(message.handle)
            except BaseException:  # SystemExit & co. (see reduce): the caller must not hang
                waiter.resolve(error=message.handle._error or self._stopped_error())
                raise
            if message.handle._error is not None:
                waiter.resolve(error=message.handle._error)
            elif self.status.closed:
                waiter.resolve(error=self._stopped_error())
            elif waiter.active:
                self.waiters.append(waiter)
        elif message is _GET_STATE:
            if self.status.closed:
                raise self._stopped_error()
            return copy.deepcopy(self.state)
        elif type(message) is _Drain:
            self._begin_drain(message.timeout)
        elif message is _DRAIN_DEADLINE:
            if not self.status.closed:
                self._shutdown("stopped before its effects finished")
        else:
            log.warning("store %r: unexpected message %r", self.name, message)
        if self.status.draining and not self.status.closed:
            self._check_drained()
        return None

    def _receive_external(self, handle: EffectHandle) -> None:
        if self.mailbox_size is not None:
            status = self.status
            with status.queued_lock:
                status.queued -= 1
        action = handle._action
        handle._action = None
        if self.status.closed or self.status.draining:
            handle._abort(self._stopped_error())
            return
        self.reduce(action, handle)
        handle._release()

    def _leaf_done(self, message: _LeafDone) -> None:
        task = message.task
        try:
            if task.state is not RUNNING or self.status.closed:
                return  # cancelled or stopped: a late result is dropped
            if message.error is not None:
                self._effect_failed(task, message.error)
            elif message.result is not None:
                try:
                    action = task.lift(message.result)
                except Exception as cause:  # a map() function raised
                    self._effect_failed(task, cause)
                else:
                    self.reduce(action, task.handle)
            self.runner.finish(task)
        finally:
            if message.reduced is not None:
                message.reduced.set()

    def reduce(self, action: Any, handle: EffectHandle | None) -> None:
        try:
            result = self.reducer(self.state, action, self.environment)
            effects = effects_of(result) if result else ()
        except Exception as cause:
            self._reducer_failed(action, handle, cause)
            return
        except BaseException as cause:
            # SystemExit, KeyboardInterrupt: no supervision policy applies. Pykka stops
            # this store (on_stop aborts what is in flight and queued) and every other
            # actor; the handle of this action must not be left waiting either.
            if handle is not None:
                error = self._stopped_error(f"stopped: the reducer raised {cause!r}")
                error.__cause__ = cause
                handle._abort(error)
            raise
        if effects:
            try:
                self.runner.start(effects, handle)
            except Exception as cause:  # e.g. the reducer returned something not an Effect
                self._effect_failed(None, cause, handle)
        if self.waiters:
            self._notify_waiters(action)

    def _effect_failed(
        self, task: Task | None, cause: BaseException, handle: EffectHandle | None = None
    ) -> None:
        error = EffectFailed(self.name, repr(task) if task is not None else "start")
        error.__cause__ = cause
        log.error("%s", error, exc_info=cause)
        handle = task.handle if task is not None else handle
        if handle is not None:
            handle._fail(error)

    def _reducer_failed(self, action: Any, handle: EffectHandle | None, cause: Exception) -> None:
        error = ReducerFailed(self.name, action)
        error.__cause__ = cause
        log.error("%s (supervision: %s)", error, self.supervision, exc_info=cause)
        if handle is not None:
            handle._fail(error)
        if self.supervision == "restart":
            try:
                self.state = self._make_state()
            except Exception as rebuild:  # the state is unusable: stop, don't die silently
                log.error(
                    "store %r: the initial state could not be rebuilt", self.name, exc_info=rebuild
                )
                self._shutdown("stopped: its initial state could not be rebuilt")
        elif self.supervision == "stop":
            self._shutdown("stopped by its supervision policy after the reducer raised")

    def _notify_waiters(self, action: Any) -> None:
        keep: list[_Waiter] = []
        for waiter in self.waiters:
            if not waiter.active:
                continue
            try:
                matched = waiter.predicate(action)
            except Exception as error:
                waiter.resolve(error=error)
                continue
            if matched:
                waiter.resolve(result=action)
            else:
                keep.append(waiter)
        self.waiters = keep

    def _begin_drain(self, timeout: float) -> None:
        if self.status.closed or self.status.draining:
            return
        self.status.accepting = False
        self.status.draining = True
        if self.runner.live:
            timer = threading.Timer(timeout, self.post, args=(_DRAIN_DEADLINE,))
            timer.daemon = True
            timer.start()

    def _check_drained(self) -> None:
        # Pending delays would hold a stop for their whole duration: cancel them.
        self.runner.cancel_delays(self._stopped_error())
        if not self.runner.live:
            self._shutdown("stopped")

    def _stopped_error(self, detail: str = "the store is stopped") -> StoreStopped:
        return StoreStopped(self.name, detail)

    def _shutdown(self, detail: str) -> None:
        """Stop reducing now: abort what is in flight, then stop the actor."""
        self.status.accepting = False
        self.status.closed = True
        error = self._stopped_error(detail)
        self.runner.cancel_all(error)
        for waiter in self.waiters:
            if waiter.active:
                waiter.resolve(error=error)
        self.waiters = []
        self.stop()

    def on_failure(self, *exc_info: object) -> None:
        # Only reached through a bug of ours (on_receive guards the reducer and the
        # effects): Pykka has stopped the actor; leave nobody waiting.
        self.on_stop()

    def on_stop(self) -> None:
        # Also reached when Pykka stops the actor itself (ActorRegistry.stop_all(), or
        # a BaseException in the reducer): abort everything, refuse what is queued.
        self.status.accepting = False
        self.status.closed = True
        error = self._stopped_error()
        self.runner.cancel_all(error)
        for waiter in self.waiters:
            if waiter.active:
                waiter.resolve(error=error)
        self.waiters = []
        self.status.terminated.set()
        inbox = self.actor_inbox
        while not inbox.empty():
            envelope = inbox.get()
            self._refuse(envelope.message, error)
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception(exc_info=(StoreStopped, error, None))

    def _refuse(self, message: Any, error: StoreStopped) -> None:
        if type(message) is EffectHandle:
            message._abort(error)
        elif type(message) is _SendAndWait:
            message.handle._abort(error)
            message.waiter.resolve(error=error)
        elif type(message) is _LeafDone and message.reduced is not None:
            message.reduced.set()


class StoreRef(Generic[S, A]):
    """How the rest of the application talks to a store; safe from any thread."""

    __slots__ = ("_actor_ref", "_status", "_tell", "name")

    def __init__(self, actor_ref: pykka.ActorRef[Any], status: _Status) -> None:
        self._actor_ref = actor_ref
        self._status = status
        self._tell = actor_ref.tell
        self.name = status.name

    def send(self, action: A) -> EffectHandle:
        """Put ``action`` in the store's mailbox; never blocks.

        Returns:
            A handle to wait on the action and every effect it caused (optional).

        Raises:
            StoreStopped: the store is stopped or stopping.
            MailboxFull: the mailbox is bounded and full.
        """
        if not self._status.accepting:
            raise StoreStopped(self.name)
        handle = EffectHandle(action, self._status)
        self._put(handle, handle)
        return handle

    def send_and_wait_for(
        self, action: A, predicate: Callable[[A], bool], timeout: float | None = None
    ) -> A:
        """Send ``action``, then return the first action reduced after it that matches.

        The match may come from the action's own cascade or from any other sender
        (a subscription delivering another store's event, say): request/response for
        application code.

        Raises:
            Timeout: no matching action was reduced within ``timeout`` seconds.
            ReducerFailed: the reducer raised on ``action``.
            StoreStopped, MailboxFull: as for ``send``.
        """
        if not self._status.accepting:
            raise StoreStopped(self.name)
        self._refuse_own_thread("send_and_wait_for()")
        handle = EffectHandle(action, self._status)
        waiter = _Waiter(predicate)

        def cascade_done(done: EffectHandle) -> None:
            # A cascade that failed ends the wait: its match would never come.
            if done._error is not None and waiter.active:
                waiter.resolve(error=done._error)

        handle._on_done = cascade_done
        self._put(_SendAndWait(handle, waiter), handle)
        if not waiter.event.wait(timeout):
            waiter.active = False
            raise Timeout(
                f"store {self.name!r}: no matching action within {timeout} s after {action!r}"
            )
        if waiter.error is not None:
            raise waiter.error
        result: A = waiter.result
        return result

    def state(self, timeout: float | None = None) -> S:
        """A deep copy of the store's state, taken between two actions.

        Raises:
            Timeout: the store did not answer within ``timeout`` seconds.
            StoreStopped: the store is stopped.
        """
        if self._status.closed:
            raise StoreStopped(self.name)
        self._refuse_own_thread("state()")
        try:
            future = self._actor_ref.ask(_GET_STATE, block=False)
            state: S = future.get(timeout=timeout)
        except pykka.ActorDeadError as error:
            raise StoreStopped(self.name) from error
        except pykka.Timeout as error:
            raise Timeout(f"store {self.name!r}: no state within {timeout} s") from error
        return state

    def stop(self, timeout: float | None = None) -> None:
        """Stop gracefully.

        Actions already in the mailbox are reduced; later sends raise
        ``StoreStopped``. Effects still in flight are awaited up to ``timeout``
        seconds (default ``DEFAULT_STOP_TIMEOUT``), then cancelled: their late
        results are dropped and handles waiting on them raise ``StoreStopped``.
        Pending delays are cancelled at once. No action is reduced after ``stop``
        returns. Called from the store's own thread, it returns at once and the
        store stops after the current action.

        Raises:
            Timeout: the store's thread did not end in time (a reducer that hangs).
        """
        status = self._status
        grace = DEFAULT_STOP_TIMEOUT if timeout is None else max(0.0, timeout)
        status.accepting = False
        if not status.closed:
            with contextlib.suppress(pykka.ActorDeadError):
                self._tell(_Drain(grace))
        if threading.current_thread() is status.thread:
            return
        if not status.terminated.wait(grace + 5.0):
            raise Timeout(f"store {self.name!r} did not stop within {grace + 5.0} s")

    @property
    def is_alive(self) -> bool:
        """True until the store has stopped."""
        return not self._status.terminated.is_set()

    def __repr__(self) -> str:
        return f"<StoreRef {self.name!r}{'' if self.is_alive else ' stopped'}>"

    def _refuse_own_thread(self, what: str) -> None:
        if threading.current_thread() is self._status.thread:
            raise ActorsError(
                f"store {self.name!r}: {what} called on the store's own thread would wait "
                f"for itself forever; reducers return effects instead of waiting"
            )

    def _put(self, message: object, handle: EffectHandle) -> None:
        status = self._status
        bound = status.mailbox_size
        if bound is not None:
            with status.queued_lock:
                if status.queued >= bound:
                    raise MailboxFull(self.name, bound)
                status.queued += 1
        try:
            self._tell(message)
        except pykka.ActorDeadError:
            if bound is not None:
                with status.queued_lock:
                    status.queued -= 1
            raise StoreStopped(self.name) from None
        if status.terminated.is_set():
            # The actor may have emptied its mailbox before this put landed.
            error = StoreStopped(self.name)
            handle._abort(error)
            if type(message) is _SendAndWait and message.waiter.active:
                message.waiter.resolve(error=error)
