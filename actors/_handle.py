"""``EffectHandle``: what ``StoreRef.send`` returns.

A handle counts the work its action caused: the reduction itself, every effect it
started, the actions those effects fed back and, transitively, their effects. The
count is only touched on the store's own thread; other threads only read ``done``
and wait, so a handle nobody waits on costs one small object and no lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from actors._errors import ActorsError, Timeout

__all__ = ["EffectHandle"]

# One lock for every handle: taken only by waiters and at completion, never per effect.
_LOCK = threading.Lock()


class EffectHandle:
    """The cascade of one sent action: wait on it, or ignore it (the common case)."""

    __slots__ = ("_action", "_done", "_error", "_event", "_on_done", "_owner", "_pending")

    def __init__(self, action: Any = None, owner: Any = None) -> None:
        self._action = action  # the action to reduce, until the store has reduced it
        # The store's shared status (its ``thread``): waiting there would deadlock.
        self._owner = owner
        self._pending = 1  # the reduction itself
        self._error: BaseException | None = None
        self._done = False
        self._event: threading.Event | None = None
        self._on_done: Callable[[EffectHandle], None] | None = None

    @property
    def done(self) -> bool:
        """True once the action and all the effects it caused have finished."""
        return self._done

    def exception(self) -> BaseException | None:
        """The error of the cascade (None while running or when it succeeded)."""
        return self._error if self._done else None

    def wait(self, timeout: float | None = None) -> None:
        """Block until the action and every effect it caused have finished.

        Args:
            timeout: seconds to wait at most; None waits as long as it takes.

        Raises:
            Timeout: the cascade did not finish in time (it may still finish).
            ReducerFailed: the reducer raised on the action or on a fed-back action.
            EffectFailed: one of the effects raised.
            StoreStopped: the store stopped before the cascade finished.
            ActorsError: called on the store's own thread, where the cascade could
                never run while it waits (a deadlock, refused at once instead).
        """
        if not self._done:
            owner = self._owner
            if owner is not None and threading.current_thread() is owner.thread:
                raise ActorsError(
                    f"store {owner.name!r}: EffectHandle.wait() called on the store's own"
                    " thread would wait for itself forever; reducers return effects"
                    " instead of waiting"
                )
            with _LOCK:
                event = self._event
                if event is None and not self._done:
                    event = self._event = threading.Event()
            if event is not None and not event.wait(timeout):
                raise Timeout(f"the action's effects did not finish within {timeout} s")
        if self._error is not None:
            raise self._error

    def __repr__(self) -> str:
        state = "done" if self._done else f"pending={self._pending}"
        return f"<EffectHandle {state}{' failed' if self._error else ''}>"

    # The store's side: called on the store's own thread only.

    def _add(self) -> None:
        self._pending += 1

    def _release(self) -> None:
        self._pending -= 1
        if self._pending <= 0:
            self._complete()

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error

    def _abort(self, error: BaseException) -> None:
        """Finish now with ``error`` (safe from any thread; no-op once done)."""
        with _LOCK:
            if self._done:
                return
            if self._error is None:
                self._error = error
            self._done = True
            event = self._event
        if event is not None:
            event.set()
        if self._on_done is not None:
            self._on_done(self)

    def _complete(self) -> None:
        with _LOCK:
            if self._done:
                return
            self._done = True
            event = self._event
        if event is not None:
            event.set()
        if self._on_done is not None:
            self._on_done(self)
