"""``tune_gc``: the collector's thresholds set by the application, and restorable (and
importing the runtime sets neither them nor the switch interval)."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator

import pytest

from actors import SERVICE_GC_THRESHOLDS, tune_gc


@pytest.fixture(autouse=True)
def _restore_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_tune_gc_sets_the_service_thresholds_and_returns_the_previous_ones() -> None:
    gc.set_threshold(700, 10, 10)
    assert tune_gc() == (700, 10, 10)
    assert gc.get_threshold() == SERVICE_GC_THRESHOLDS


def test_the_previous_thresholds_put_back_restore_the_collector() -> None:
    gc.set_threshold(900, 11, 12)
    previous = tune_gc((10_000, 5, 5))
    assert gc.get_threshold() == (10_000, 5, 5)
    tune_gc(previous)
    assert gc.get_threshold() == (900, 11, 12)


@pytest.mark.parametrize("thresholds", [(0, 10, 10), (700, -1, 10), (700, 10)])
def test_a_threshold_that_would_disable_the_collector_is_refused(
    thresholds: tuple[int, ...],
) -> None:
    before = gc.get_threshold()
    with pytest.raises(ValueError, match="thresholds"):
        tune_gc(thresholds)  # type: ignore[arg-type]
    assert gc.get_threshold() == before


def test_importing_the_runtime_changes_neither_collector_nor_switch_interval() -> None:
    def settings_after(imports: str) -> str:
        code = f"import gc, sys{imports}; print(gc.get_threshold(), sys.getswitchinterval())"
        run = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        return run.stdout.decode().strip()

    assert settings_after(", actors, domain, persistence") == settings_after("")
