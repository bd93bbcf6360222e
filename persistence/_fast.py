"""Fast constructors for the frozen value classes, for the adapters' hot paths.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``
looked up anew per field; building 10,000 ``RecordedEvent`` on a stream load spends
more time there than in decoding. These constructors set the same slots through
their descriptors, bound once: the objects are the very same frozen instances
(equal, hashable, immutable), built in about half the time. Used only with
arguments the adapter has already checked.
"""

from __future__ import annotations

import dataclasses
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = ["fast_constructor", "gc_paused"]

T = TypeVar("T")


def fast_constructor(cls: type[T]) -> Callable[..., T]:
    """A positional constructor for the slotted frozen dataclass ``cls``."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    if not names or not hasattr(cls, "__slots__"):
        raise TypeError(f"{cls.__qualname__} is not a slotted dataclass")
    bound: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    for name in names:
        bound[f"_set_{name}"] = getattr(cls, name).__set__
    # Bound as keyword defaults, so the body reads locals, not globals.
    defaults = ", ".join(f"{key}={key}" for key in bound)
    body = "".join(f"    _set_{name}(obj, {name})\n" for name in names)
    source = (
        f"def build({', '.join(names)}, *, {defaults}):\n"
        f"    obj = _new(_cls)\n{body}    return obj\n"
    )
    namespace: dict[str, Any] = dict(bound)
    exec(source, namespace)  # same technique as dataclasses' generated __init__
    build: Callable[..., T] = namespace["build"]
    build.__qualname__ = f"fast_constructor({cls.__qualname__})"
    return build


_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a block builds many long-lived objects.

    Decoding a 10,000-event stream allocates some 60,000 container objects, all of
    them kept: the collector, triggered every 700 allocations, would traverse them
    again and again (it doubled the load time). Nested and concurrent pauses are
    counted; the collector is re-enabled by the last one out, and only if it was
    enabled when the first one came in. Reference counting still frees everything
    as usual meanwhile.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()
