"""Reducers and their composition.

A reducer is any callable ``(state, action, env) -> Sequence[Effect]`` that mutates
the state it is given, or an object with a ``reduce`` method of that signature. It
does no I/O: it reads the time from ``env.clock`` and returns effects for the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, cast

from actors._effect import Effect

__all__ = ["Reducer", "ReducerLike", "as_reducer", "combine", "scope"]

S = TypeVar("S")
A = TypeVar("A")
E = TypeVar("E")
CS = TypeVar("CS")
CA = TypeVar("CA")
CE = TypeVar("CE")
S_contra = TypeVar("S_contra", contravariant=True)
E_contra = TypeVar("E_contra", contravariant=True)

# Reducers may return one effect, a sequence of them, or None for "nothing to do".
Effects = Sequence[Effect[A]] | Effect[A] | None


class Reducer(Protocol[S_contra, A, E_contra]):
    """``(state, action, env) -> Sequence[Effect]``; mutates ``state`` in place."""

    def __call__(self, state: S_contra, action: A, env: E_contra, /) -> Sequence[Effect[A]]: ...


class _HasReduce(Protocol[S_contra, A, E_contra]):
    def reduce(self, state: S_contra, action: A, env: E_contra, /) -> Sequence[Effect[A]]: ...


ReducerLike = Reducer[S, A, E] | _HasReduce[S, A, E]


def as_reducer(reducer: ReducerLike[S, A, E]) -> Reducer[S, A, E]:
    """Normalize a reducer function or an object with a ``reduce`` method."""
    reduce = getattr(reducer, "reduce", None)
    if callable(reduce):
        return cast(Reducer[S, A, E], reduce)
    if not callable(reducer):
        raise TypeError(
            f"a reducer is a callable (state, action, env) -> effects, or has a reduce "
            f"method; got {reducer!r}"
        )
    return reducer


def effects_of(result: object) -> Sequence[Effect[Any]]:
    """What a reducer returned, as a sequence of effects."""
    if result is None:
        return ()
    if isinstance(result, Effect):
        return (result,)
    if isinstance(result, (list, tuple)):
        return result
    raise TypeError(
        f"a reducer must return a sequence of effects, an Effect or None; got {result!r}"
    )


def combine(*reducers: ReducerLike[S, A, E]) -> Reducer[S, A, E]:
    """One reducer that runs ``reducers`` in order on the same state and action.

    The effects of all of them are returned, in order.
    """
    normalized = [as_reducer(r) for r in reducers]

    def combined(state: S, action: A, env: E) -> Sequence[Effect[A]]:
        out: list[Effect[A]] = []
        for reducer in normalized:
            out.extend(effects_of(reducer(state, action, env)))
        return out

    return combined


def scope(
    child: ReducerLike[CS, CA, CE],
    *,
    state: Callable[[S], CS],
    action: Callable[[A], CA | None],
    embed: Callable[[CA], A],
    environment: Callable[[E], CE] | None = None,
) -> Reducer[S, A, E]:
    """Run ``child`` on part of a parent's state, for the parent actions it owns.

    Args:
        child: the child reducer.
        state: picks the child's state out of the parent's (mutated in place).
        action: the child action inside a parent action, or None when the parent
            action is not the child's.
        embed: lifts a child action back into a parent action; applied to every
            action the child's effects feed back.
        environment: picks the child's environment out of the parent's (default:
            the same environment).
    """
    reduce_child = as_reducer(child)

    def scoped(parent_state: S, parent_action: A, env: E) -> Sequence[Effect[A]]:
        child_action = action(parent_action)
        if child_action is None:
            return ()
        child_env = environment(env) if environment is not None else cast(CE, env)
        effects = effects_of(reduce_child(state(parent_state), child_action, child_env))
        return [effect.map(embed) for effect in effects]

    return scoped
