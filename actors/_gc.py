"""CPython's cyclic garbage collector, set for a process that runs stores under load.

The collector runs a young collection every 700 net allocations of container
objects (CPython's default). A store system with many commands in flight holds
thousands of short-lived containers at any moment (messages, futures, effect
handles); each young collection promotes those alive at that instant, and once the
promoted objects add up to a quarter of the old generation CPython runs a full
collection, which stops every thread while it walks the whole heap. Measured on the
ticketing benchmark (2 cores, 64 callers, ``bin/bench ticketing``), the default
thresholds gave 4-8 full collections per 2,000 reservations, of 30-200 ms each:
they were the p95 and p99 latencies. With a young threshold of 50,000 the in-flight
objects are mostly gone before a collection comes, full collections become rare,
and reservations/s rose by a quarter to a half.

Where to set it is the application's choice, like a JVM's collector flags: this
module changes nothing on import, and neither does any store. ``bin/run-demo`` and
``bin/bench`` call ``tune_gc()`` at start-up.
"""

from __future__ import annotations

import gc

__all__ = ["SERVICE_GC_THRESHOLDS", "tune_gc"]

SERVICE_GC_THRESHOLDS: tuple[int, int, int] = (50_000, 20, 10)
"""Young threshold 50,000 net allocations; a middle collection every 20 young ones;
the old generation as CPython decides (``threshold2`` and the quarter rule)."""


def tune_gc(
    thresholds: tuple[int, int, int] = SERVICE_GC_THRESHOLDS,
) -> tuple[int, int, int]:
    """Set the collector's thresholds (see ``gc.set_threshold``); the previous ones.

    Reference counting still frees every object without cycles at once; only how
    often the cycle collector runs changes. Restore with ``tune_gc(previous)``.

    Raises:
        ValueError: a threshold below 1 (0 would disable the collector: use
            ``gc.disable()`` for that, knowingly).
    """
    if len(thresholds) != 3 or any(int(t) < 1 for t in thresholds):
        raise ValueError(f"three thresholds of at least 1 expected, got {thresholds!r}")
    previous = gc.get_threshold()
    gc.set_threshold(*(int(t) for t in thresholds))
    return previous[0], previous[1], previous[2]
