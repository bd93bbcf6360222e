"""``bin/bench --plot FILE``: throughput against concurrency, one line per series, as a PNG.

Draws the figures whose ``extra`` names a ``series`` and a ``concurrency`` (commands in
flight); the peers area makes them. matplotlib comes with the ``bench`` extra only, so
it is imported here, when a chart is asked for, never by the runtime.
"""

from __future__ import annotations

import platform
import time
from collections import defaultdict
from typing import Any

from benchmarks._harness import Figure, Report

MISSING = "--plot needs matplotlib, which the bench extra installs: pip install -e '.[bench]'"


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plottable(report: Report) -> list[Figure]:
    return [
        figure
        for figure in report.figures
        if "series" in figure.extra and isinstance(figure.extra.get("concurrency"), int)
    ]


def plot(report: Report, path: str, *, title: str | None = None) -> int:
    """Write the chart to ``path``; return how many series it shows (0: nothing written)."""
    figures = plottable(report)
    if not figures:
        return 0
    import matplotlib

    matplotlib.use("Agg")  # no display: CI and servers
    import matplotlib.pyplot as plt

    series: dict[str, list[Figure]] = defaultdict(list)
    for figure in figures:
        series[figure.extra["series"]].append(figure)
    chart: Any
    fig, chart = plt.subplots(figsize=(9, 5.5), dpi=110)
    ticks: set[int] = set()
    for name in sorted(series, key=_order):
        points = sorted(series[name], key=lambda f: int(f.extra["concurrency"]))
        xs = [int(f.extra["concurrency"]) for f in points]
        ys = [f.median for f in points]
        # min-max of the repetitions, as the table prints them
        errors = [[f.median - f.low for f in points], [f.high - f.median for f in points]]
        style = "-" if name.startswith("ours") else "--"
        chart.errorbar(xs, ys, yerr=errors, fmt=f"o{style}", capsize=3, label=name)
        ticks.update(xs)
    chart.set_xscale("log", base=2)
    chart.set_xticks(sorted(ticks))
    chart.set_xticklabels([f"{tick:,}" for tick in sorted(ticks)])
    chart.set_xlabel("commands in flight (callers; the largest: every command sent at once)")
    chart.set_ylabel("commands/s (median, min-max)")
    chart.set_ylim(bottom=0)
    chart.grid(True, which="major", alpha=0.3)
    chart.legend()
    machine = f"{platform.machine()}, {_cores()} cores, Python {platform.python_version()}"
    chart.set_title(
        title
        or f"load-validate-append: throughput against concurrency\n"
        f"{machine}, {time.strftime('%Y-%m-%d')}",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return len(series)


def _order(name: str) -> tuple[int, str]:
    return (0 if name.startswith("ours") else 1, name)


def _cores() -> int:
    import os

    return os.cpu_count() or 1
