"""Effects: immutable descriptions of work, from a closed set.

A reducer returns effects; it never runs them. The store interprets them: ``future``
and ``run`` functions on the executor, ``pipe`` through a ``concurrent.futures.Future``
that a client library completes, ``delay`` through the store's clock, and every
action they produce is fed back into the same store's mailbox.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["Effect", "Send"]

A = TypeVar("A")
B = TypeVar("B")
A_contra = TypeVar("A_contra", contravariant=True)


class Send(Protocol[A_contra]):
    """What a ``run`` effect is given: call it to feed an action back to the store."""

    def __call__(self, action: A_contra, /) -> None: ...


class Effect(Generic[A]):
    """An immutable description of work that produces actions of type ``A``.

    Build effects with the static constructors (``Effect.future(fn)``,
    ``Effect.delay(2.0, Tick())``...) and combine them with ``merge``, ``concat``,
    ``cancellable`` and ``map``. Effects are values: building one runs nothing.
    """

    __slots__ = ()

    @staticmethod
    def none() -> Effect[Any]:
        """No work at all."""
        return _NONE

    @staticmethod
    def future(fn: Callable[[], A | None], *, name: str | None = None) -> Effect[A]:
        """Run ``fn()`` on the executor; the action it returns (if not None) is fed back.

        Args:
            fn: a function of no arguments, run on an executor thread. It may block
                (I/O); it must not touch the store's state.
            name: how errors and the TestStore name this effect (default: fn's name).
        """
        return _Future(fn, name or _name_of(fn))

    @staticmethod
    def run(fn: Callable[[Send[A]], None], *, name: str | None = None) -> Effect[A]:
        """Run ``fn(send)`` on the executor; each ``send(action)`` feeds an action back.

        The effect counts as running until ``fn`` returns; actions sent later are
        dropped.
        """
        return _Run(fn, name or _name_of(fn))

    @staticmethod
    def pipe(
        start: Callable[[], Future[Any]],
        *,
        recover: Callable[[BaseException], A | None] | None = None,
        name: str | None = None,
    ) -> Effect[A]:
        """Start work that completes by itself; the action its future gives is fed back.

        Akka's ``pipeToSelf``: for a client that is already asynchronous (a batching
        writer, a connection pool with its own I/O thread), so the work costs no
        executor thread while it waits. A failed future is reported as an effect
        that raised (``EffectFailed``), unless ``recover`` turns its exception into
        an action. Chain ``.map`` to turn the future's result into an action.

        Args:
            start: a function of no arguments, called on the store's thread when the
                effect starts: it must not block (hand the work over and return). It
                returns a ``concurrent.futures.Future`` whose result, if not None, is
                fed back; an exception it raises fails the effect. A ``LightFuture``
                is one that costs less to make.
            recover: called with the future's exception (on the thread that
                completed the future: keep it cheap and pure); the action it returns
                (if not None) is fed back instead of failing the effect. An
                exception it raises fails the effect.
            name: how errors and the TestStore name this effect (default: start's name).
        """
        return _Pipe(start, recover, name or _name_of(start))

    @staticmethod
    def send(action: A) -> Effect[A]:
        """Feed ``action`` back into the store, after the current action's reduction."""
        return _Send(action)

    @staticmethod
    def delay(seconds: float, action: A) -> Effect[A]:
        """Feed ``action`` back after ``seconds``, measured by the store's clock."""
        if seconds < 0:
            raise ValueError(f"a delay cannot be negative, got {seconds}")
        return _Delay(float(seconds), action)

    @staticmethod
    def merge(*effects: Effect[A]) -> Effect[A]:
        """Run ``effects`` concurrently."""
        flat: list[Effect[A]] = []
        for effect in _checked(effects):
            if isinstance(effect, _Merge):
                flat.extend(effect.effects)
            elif effect is not _NONE:
                flat.append(effect)
        if not flat:
            return _NONE
        if len(flat) == 1:
            return flat[0]
        return _Merge(tuple(flat))

    @staticmethod
    def concat(*effects: Effect[A]) -> Effect[A]:
        """Run ``effects`` one after another.

        Each one starts once the previous one has finished and the actions it fed
        back have been reduced.
        """
        kept = tuple(effect for effect in _checked(effects) if effect is not _NONE)
        if not kept:
            return _NONE
        if len(kept) == 1:
            return kept[0]
        return _Concat(kept)

    @staticmethod
    def cancel(key: Hashable) -> Effect[Any]:
        """Cancel every in-flight effect marked ``cancellable(key)``.

        Their pending delays never fire, and actions they produce later are dropped.
        """
        return _Cancel(key)

    def cancellable(self, key: Hashable, cancel_in_flight: bool = False) -> Effect[A]:
        """Mark this effect so that ``Effect.cancel(key)`` can cancel it.

        Args:
            key: any hashable value; several effects may share a key.
            cancel_in_flight: cancel the effects already running under ``key`` before
                this one starts (debounce, "latest wins").
        """
        if self is _NONE and not cancel_in_flight:
            return self
        return _Cancellable(self, key, cancel_in_flight)

    def map(self, f: Callable[[A], B]) -> Effect[B]:
        """Transform every action this effect feeds back with ``f``."""
        if self is _NONE:
            return _NONE
        return _Map(self, f)


@dataclass(frozen=True, slots=True, repr=False)
class _Nothing(Effect[Any]):
    def __repr__(self) -> str:
        return "Effect.none()"


@dataclass(frozen=True, slots=True)
class _Future(Effect[A]):
    fn: Callable[[], A | None]
    name: str

    def __repr__(self) -> str:
        return f"Effect.future({self.name})"


@dataclass(frozen=True, slots=True)
class _Run(Effect[A]):
    fn: Callable[[Send[A]], None]
    name: str

    def __repr__(self) -> str:
        return f"Effect.run({self.name})"


@dataclass(frozen=True, slots=True)
class _Pipe(Effect[A]):
    fn: Callable[[], Future[Any]]
    recover: Callable[[BaseException], A | None] | None
    name: str

    def __repr__(self) -> str:
        return f"Effect.pipe({self.name})"


@dataclass(frozen=True, slots=True)
class _Send(Effect[A]):
    action: A

    def __repr__(self) -> str:
        return f"Effect.send({self.action!r})"


@dataclass(frozen=True, slots=True)
class _Delay(Effect[A]):
    seconds: float
    action: A

    def __repr__(self) -> str:
        return f"Effect.delay({self.seconds}, {self.action!r})"


@dataclass(frozen=True, slots=True)
class _Merge(Effect[A]):
    effects: tuple[Effect[A], ...]


@dataclass(frozen=True, slots=True)
class _Concat(Effect[A]):
    effects: tuple[Effect[A], ...]


@dataclass(frozen=True, slots=True)
class _Cancellable(Effect[A]):
    effect: Effect[A]
    key: Hashable
    cancel_in_flight: bool


@dataclass(frozen=True, slots=True)
class _Cancel(Effect[Any]):
    key: Hashable


@dataclass(frozen=True, slots=True)
class _Map(Effect[B], Generic[A, B]):
    effect: Effect[A]
    f: Callable[[A], B]


_NONE: Effect[Any] = _Nothing()


def _checked(effects: tuple[Effect[A], ...]) -> tuple[Effect[A], ...]:
    # Refused when built, in the reducer: found later, when a concat reaches its
    # step, it could only fail a store that has nobody left to report it to.
    for effect in effects:
        if not isinstance(effect, Effect):
            raise TypeError(f"not an effect: {effect!r}")
    return effects


def _name_of(fn: object) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return str(name) if name else repr(fn)
