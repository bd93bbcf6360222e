"""Measuring: repetitions after a warm-up, medians, ratios to a baseline of the same run."""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Figure:
    """One measured figure: a rate (or a duration) over several repetitions."""

    area: str
    name: str
    unit: str
    samples: list[float]
    baseline: str | None = None  # name of the figure this one is compared with
    higher_is_better: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)
    # The collector's thresholds the figures were measured under (bin/bench --gc).
    gc_thresholds: tuple[int, int, int] = field(default_factory=gc.get_threshold)
    # The interpreter's thread switch interval, in seconds (bin/bench --switch-interval).
    switch_interval: float = field(default_factory=sys.getswitchinterval)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def find(self, area: str, name: str) -> Figure | None:
        for figure in self.figures:
            if figure.area == area and figure.name == name:
                return figure
        return None

    def ratio(self, figure: Figure) -> float | None:
        """The figure's median ÷ its baseline's, whichever way is better: "2.4x" of a
        CPU time is 2.4 times the baseline's, as the README's table reads too."""
        if figure.baseline is None:
            return None
        base = self.find(figure.area, figure.baseline)
        if base is None or base.median == 0:
            return None
        return figure.median / base.median

    def to_json(self) -> dict[str, Any]:
        out = []
        for figure in self.figures:
            row = asdict(figure)
            row["median"] = figure.median
            row["min"] = figure.low
            row["max"] = figure.high
            row["ratio_to_baseline"] = self.ratio(figure)
            out.append(row)
        return {
            "figures": out,
            "gc_thresholds": list(self.gc_thresholds),
            "switch_interval": self.switch_interval,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def write_json(self, path: str) -> None:
        with open(path, "w") as fh:
            json.dump(self.to_json(), fh, indent=2)


def measure(
    run_once: Callable[[], float],
    *,
    repeat: int,
    warmup: int = 1,
) -> list[float]:
    """Call ``run_once`` ``warmup`` times, then ``repeat`` times; return its results.

    ``run_once`` does one repetition and returns the figure for it (a rate, say).
    """
    for _ in range(warmup):
        run_once()
    samples = []
    for _ in range(repeat):
        gc.collect()
        samples.append(run_once())
    return samples


def measure_figure(
    report: Report,
    console: Any,
    area: str,
    name: str,
    unit: str,
    run_once: Callable[[], float],
    *,
    repeat: int,
    baseline: str | None = None,
) -> Figure:
    """Measure ``run_once`` (with a status line on ``console``) into a figure of ``report``."""
    with console.status(f"{area}: {name}"):
        samples = measure(run_once, repeat=repeat)
    return report.add(Figure(area, name, unit, samples, baseline=baseline))


@dataclass(frozen=True)
class Run:
    """One figure to measure with ``measure_together``."""

    name: str
    run_once: Callable[[], float]
    baseline: str | None = None


def measure_together(
    report: Report,
    console: Any,
    area: str,
    unit: str,
    runs: Sequence[Run],
    *,
    repeat: int,
    warmup: int = 1,
) -> list[Figure]:
    """Measure several figures in turns: repetition k of each before k+1 of any.

    This machine's speed drifts over tens of seconds; measured one after the other, a
    figure and its baseline may see different machines, and their ratio with them.
    Taken in turns, each repetition of a figure runs beside one of its baseline.
    """
    samples: dict[str, list[float]] = {run.name: [] for run in runs}
    with console.status(f"{area}: {', '.join(samples)}"):
        for _ in range(warmup):
            for run in runs:
                run.run_once()
        for _ in range(repeat):
            for run in runs:
                gc.collect()
                samples[run.name].append(run.run_once())
    return [
        report.add(Figure(area, run.name, unit, samples[run.name], baseline=run.baseline))
        for run in runs
    ]


def rate(count: int, fn: Callable[[], None]) -> float:
    """Run ``fn`` once and return ``count`` per second of wall-clock time."""
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    return count / elapsed if elapsed > 0 else float("inf")


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` (nearest rank)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@contextmanager
def collector_pauses() -> Iterator[list[float]]:
    """The cyclic collector's pauses (seconds each) while the block runs.

    A collection holds the GIL from start to end, so each pause stops every thread:
    what a latency percentile shows of the collector."""
    pauses: list[float] = []
    began = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - began[0])

    gc.callbacks.append(callback)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(callback)


def delete_prefix(url: str, prefix: str) -> None:
    """Remove a benchmark's keys: SCAN its own prefix and UNLINK, never a flush."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        batch: list[Any] = []
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)
    finally:
        client.close()
