"""The public surface: what ``actors`` and ``actors.testing`` export, pinned."""

from __future__ import annotations

import types

import pytest

import actors
import actors.testing

ACTORS = [
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

ACTORS_TESTING = ["TestStore", "unimplemented"]


@pytest.mark.parametrize(
    ("module", "expected"), [(actors, ACTORS), (actors.testing, ACTORS_TESTING)]
)
def test_exported_members(module: types.ModuleType, expected: list[str]) -> None:
    assert sorted(module.__all__) == sorted(expected)
    for name in module.__all__:
        assert hasattr(module, name), f"{module.__name__}.{name} is in __all__ but missing"


@pytest.mark.parametrize("module", [actors, actors.testing])
def test_every_public_name_of_a_package_is_in_its_all(module: types.ModuleType) -> None:
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }

    assert public <= set(module.__all__)


def test_the_exported_classes_come_from_internal_modules() -> None:
    for name in ("Store", "Effect", "EffectHandle", "ManualClock", "StoreStopped"):
        assert getattr(actors, name).__module__.startswith("actors._")
    assert actors.testing.TestStore.__module__ == "actors._testing"
