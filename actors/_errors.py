"""The runtime's errors: one tree under one base class.

::

    ActorsError
     ├── StoreStopped          the store is stopped or stopping; the action was not reduced,
     │                         or its effects were cancelled by the stop
     ├── MailboxFull           a bounded mailbox refused a send (raised at once, never blocks)
     ├── Timeout               (also a builtin TimeoutError) a wait ran out of time
     ├── ReducerFailed         the reducer raised; ``__cause__`` is the reducer's exception
     └── EffectFailed          an effect raised; ``__cause__`` is the effect's exception

Every error names the store it comes from, so logs of an application with many stores
stay readable. ``persistence`` and ``domain`` root their own trees in their packages;
this one knows nothing of them.
"""

from __future__ import annotations

__all__ = [
    "ActorsError",
    "EffectFailed",
    "MailboxFull",
    "ReducerFailed",
    "StoreStopped",
    "Timeout",
]


class ActorsError(Exception):
    """Base class of every error the runtime raises."""


class StoreStopped(ActorsError):
    """The store is stopped (or stopping) and takes no more actions.

    Also raised by ``EffectHandle.wait`` when the store stopped before the effects
    that the handle waits for had finished: their late results are dropped.
    """

    def __init__(self, store: str, detail: str = "the store is stopped") -> None:
        super().__init__(f"store {store!r}: {detail}")
        self.store = store


class MailboxFull(ActorsError):
    """A send was refused because the store's bounded mailbox is full."""

    def __init__(self, store: str, bound: int) -> None:
        super().__init__(
            f"store {store!r}: mailbox full ({bound} actions waiting); the send was refused"
        )
        self.store = store
        self.bound = bound


class Timeout(ActorsError, TimeoutError):
    """A wait on a store ran out of time. The work it waited for may still finish."""


class ReducerFailed(ActorsError):
    """The reducer raised while reducing an action; ``__cause__`` is what it raised."""

    def __init__(self, store: str, action: object) -> None:
        super().__init__(f"store {store!r}: the reducer raised on {_short(action)}")
        self.store = store
        self.action = action


class EffectFailed(ActorsError):
    """An effect raised instead of returning; ``__cause__`` is what it raised."""

    def __init__(self, store: str, effect: str) -> None:
        super().__init__(f"store {store!r}: effect {effect} raised")
        self.store = store
        self.effect = effect


def _short(value: object, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
