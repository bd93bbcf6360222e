"""The runtime: stores as Pykka actors, reducers, effects, clocks and errors.

It knows nothing of Redis or tickets. See ``actors.testing`` for ``TestStore``.
"""

from actors._clock import Clock, ManualClock, SystemClock, Timer
from actors._effect import Effect, Send
from actors._errors import (
    ActorsError,
    EffectFailed,
    MailboxFull,
    ReducerFailed,
    StoreStopped,
    Timeout,
)
from actors._future import LightFuture
from actors._gc import SERVICE_GC_THRESHOLDS, tune_gc
from actors._handle import EffectHandle
from actors._pool import EffectPool
from actors._reducer import Reducer, ReducerLike, combine, scope
from actors._store import DEFAULT_STOP_TIMEOUT, Store, StoreRef, Supervision
from actors._switch import SERVICE_SWITCH_INTERVAL, tune_switch_interval

__all__ = [
    "DEFAULT_STOP_TIMEOUT",
    "SERVICE_GC_THRESHOLDS",
    "SERVICE_SWITCH_INTERVAL",
    "ActorsError",
    "Clock",
    "Effect",
    "EffectFailed",
    "EffectHandle",
    "EffectPool",
    "LightFuture",
    "MailboxFull",
    "ManualClock",
    "Reducer",
    "ReducerFailed",
    "ReducerLike",
    "Send",
    "Store",
    "StoreRef",
    "StoreStopped",
    "Supervision",
    "SystemClock",
    "Timeout",
    "Timer",
    "combine",
    "scope",
    "tune_gc",
    "tune_switch_interval",
]
