"""``tune_switch_interval``: the interpreter's switch interval set by the application."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from actors import SERVICE_SWITCH_INTERVAL, tune_switch_interval


@pytest.fixture(autouse=True)
def _restore_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


def test_tune_switch_interval_sets_the_service_interval_and_returns_the_previous_one() -> None:
    sys.setswitchinterval(0.005)
    assert tune_switch_interval() == pytest.approx(0.005)
    assert sys.getswitchinterval() == pytest.approx(SERVICE_SWITCH_INTERVAL)


def test_the_previous_interval_put_back_restores_it() -> None:
    sys.setswitchinterval(0.003)
    previous = tune_switch_interval(0.05)
    assert sys.getswitchinterval() == pytest.approx(0.05)
    tune_switch_interval(previous)
    assert sys.getswitchinterval() == pytest.approx(0.003)


@pytest.mark.parametrize("seconds", [0, -0.01, float("nan"), float("inf"), True, "0.02"])
def test_an_interval_that_is_not_a_positive_number_of_seconds_is_refused(seconds: object) -> None:
    before = sys.getswitchinterval()
    with pytest.raises(ValueError, match="switch interval"):
        tune_switch_interval(seconds)  # type: ignore[arg-type]
    assert sys.getswitchinterval() == before

