"""The README's Performance figures, made from ``bin/bench --json`` files.

    python -m benchmarks._table /tmp/bench/*.json                  # print the block
    python -m benchmarks._table --readme README.md /tmp/bench/*.json  # replace it there

The block between ``<!-- bench:start -->`` and ``<!-- bench:end -->`` is generated:
the machine, one table per area (every figure of the run) and the targets of issues 4
and 5, each marked met or not from the same figures, so a refresh never edits a
figure by hand.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

START, END = "<!-- bench:start -->", "<!-- bench:end -->"
AREAS = ("runtime", "persistence", "peers", "ticketing", "growth")

Figures = dict[tuple[str, str], dict[str, Any]]  # (area, name) -> a row of the JSON
Check = Callable[[Figures], tuple[bool, str] | None]  # None: not measured


@dataclass(frozen=True)
class Target:
    text: str
    check: Check


def _median(figures: Figures, area: str, name: str) -> float | None:
    row = figures.get((area, name))
    return None if row is None else float(row["median"])


def _at_least(area: str, name: str, bound: float, unit: str, ceiling: str = "") -> Check:
    """``ceiling``: a figure bounding this one from above, cited beside it."""

    def check(figures: Figures) -> tuple[bool, str] | None:
        value = _median(figures, area, name)
        if value is None:
            return None
        text = f"{value:,.0f} {unit}"
        limit = _median(figures, area, ceiling) if ceiling else None
        if limit is not None:
            text += f"; ceiling, {ceiling}: {limit:,.0f}/s"
        return value >= bound, text

    return check


def _times(area: str, name: str, base: str, factor: float, most: bool = False) -> Check:
    def check(figures: Figures) -> tuple[bool, str] | None:
        value, baseline = _median(figures, area, name), _median(figures, area, base)
        if value is None or not baseline:
            return None
        ratio = value / baseline
        met = ratio <= factor if most else ratio >= factor
        return met, f"{value:,.0f} ÷ {baseline:,.0f} = {ratio:.2f}x"

    return check


def _below(area: str, name: str, bound: float, unit: str, floor: str = "") -> Check:
    """``floor``: a figure bounding this one from below, cited beside it."""

    def check(figures: Figures) -> tuple[bool, str] | None:
        value = _median(figures, area, name)
        if value is None:
            return None
        text = f"{value:,.1f} {unit}"
        least = _median(figures, area, floor) if floor else None
        if least is not None:
            text += f"; floor, {floor}: {least:,.1f} {unit}"
        return value < bound, text

    return check


TARGETS = (
    Target(
        "persistence: appends one at a time ≥ 0.8 x raw unpipelined XADD (issue 3)",
        _times("persistence", "append, one at a time", "raw XADD", 0.8),
    ),
    Target(
        "persistence: 64 threads ≥ 60,000 appends/s through group commit (issue 3)",
        _at_least(
            "persistence",
            "append, 64 threads",
            60000,
            "appends/s",
            ceiling="thread handoff, 64 threads",
        ),
    ),
    Target(
        "persistence: a 10,000-event stream loaded in < 50 ms (issue 3)",
        _below("persistence", "load 10,000 events", 50, "ms", floor="raw XRANGE 10,000"),
    ),
    Target(
        "persistence: loaded from a snapshot in < 5 ms (issue 3)",
        _below("persistence", "load from snapshot", 5, "ms"),
    ),
    Target(
        "peers: ours in memory ≥ 2 x eventsourcing in memory (issue 5)",
        _times("peers", "ours memory", "eventsourcing memory", 2),
    ),
    Target(
        "peers: ours on Redis ≥ 2 x eventsourcing in memory (issue 5)",
        _times("peers", "ours redis", "eventsourcing memory", 2),
    ),
    Target(
        "ticketing: embedded ≥ 1,000 reservations/s at concurrency 64 (issue 4)",
        _at_least("ticketing", "memory c=64", 1000, "reservations/s"),
    ),
    Target(
        "ticketing: embedded p99 < 100 ms at concurrency 64 (issue 4)",
        _below("ticketing", "memory c=64 p99", 100, "ms"),
    ),
    Target(
        "ticketing: Redis ≥ 300 reservations/s at concurrency 64 (issue 4)",
        _at_least("ticketing", "redis c=64", 300, "reservations/s"),
    ),
    Target(
        "ticketing: Redis ≥ 1,000 reservations/s at concurrency 64 (issue 5)",
        _at_least("ticketing", "redis c=64", 1000, "reservations/s"),
    ),
    Target(
        "ticketing: Redis p99 < 100 ms at concurrency 64 (issues 4 and 5)",
        _below("ticketing", "redis c=64 p99", 100, "ms"),
    ),
    Target(
        "ticketing: Redis ≥ 1,000 reservations/s at concurrency 64, the read side in a"
        " process of its own (`--projections-apart`) (issue 5)",
        _at_least("ticketing", "redis c=64 read side apart", 1000, "reservations/s"),
    ),
    Target(
        "ticketing: Redis p99 < 100 ms at concurrency 64, the read side in a process of"
        " its own (issues 4 and 5)",
        _below("ticketing", "redis c=64 read side apart p99", 100, "ms"),
    ),
    Target(
        "growth: peak RSS after 1,000,000 commands ≤ 1.5 x after 100,000, on Redis (issue 5)",
        _times(
            "growth",
            "redis peak RSS 1,000,000 commands",
            "redis peak RSS 100,000 commands",
            1.5,
            most=True,
        ),
    ),
    Target(
        "growth: the same in memory, for the store's own share (the process's peak less"
        " that of the same events held without a store: in memory the process is also"
        " the database) (issue 5)",
        _times(
            "growth",
            "memory store's own peak RSS 1,000,000 commands",
            "memory store's own peak RSS 100,000 commands",
            1.5,
            most=True,
        ),
    ),
)


def load(
    paths: list[str],
) -> tuple[list[dict[str, Any]], list[str], set[tuple[int, ...]], set[float]]:
    """The figures of every file, when each was measured, and under which gc thresholds
    and thread switch intervals (files written before they were recorded say nothing)."""
    rows: list[dict[str, Any]] = []
    times = []
    thresholds: set[tuple[int, ...]] = set()
    intervals: set[float] = set()
    for path in paths:
        with open(path) as fh:
            data = json.load(fh)
        rows.extend(data["figures"])
        times.append(data["time"])
        if "gc_thresholds" in data:
            thresholds.add(tuple(data["gc_thresholds"]))
        if "switch_interval" in data:
            intervals.add(float(data["switch_interval"]))
    return rows, times, thresholds, intervals


def machine(redis_url: str | None) -> str:
    cores = os.cpu_count() or 1
    memory = ""
    try:
        with open("/proc/meminfo") as fh:
            kib = int(fh.readline().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    text = f"{cores} cores{memory}, Python {sys.version.split()[0]}"
    if redis_url:
        import redis

        client = redis.Redis.from_url(redis_url)
        try:
            version = client.info("server")["redis_version"]
            # host and port only: a URL may carry a password
            where = urlsplit(redis_url)
            text += f", Redis {version} on {where.hostname}:{where.port or 6379}"
        finally:
            client.close()
    return text


def _number(value: float, digits: int = 4) -> str:
    """``digits`` significant digits (at least the units), thousands separated."""
    if value == 0 or abs(value) >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    places = digits - 1 - math.floor(math.log10(abs(value)))
    return f"{value:,.{places}f}"


def _gc_note(thresholds: Collection[tuple[int, ...]]) -> str:
    if not thresholds:
        return ""
    shown = "; ".join(" / ".join(f"{t:,}" for t in each) for each in sorted(thresholds))
    return f" CPython's collector thresholds: {shown} (`bin/bench --gc`, `actors.tune_gc`)."


def _switch_note(intervals: Collection[float]) -> str:
    if not intervals:
        return ""
    shown = "; ".join(f"{seconds * 1000:g} ms" for seconds in sorted(intervals))
    return (
        f" Thread switch interval: {shown}"
        " (`bin/bench --switch-interval`, `actors.tune_switch_interval`)."
    )


def block(
    rows: list[dict[str, Any]],
    times: list[str],
    redis_url: str | None,
    gc_thresholds: Collection[tuple[int, ...]] = (),
    switch_intervals: Collection[float] = (),
) -> str:
    by_key = {(row["area"], row["name"]): row for row in rows}
    dates = sorted({t[:10] for t in times})
    when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    lines = [
        START,
        f"Measured on {machine(redis_url)}; run {when}"
        " (generated by `python -m benchmarks._table`). Median of the repetitions (5 after a"
        " warm-up unless it says one run), their min-max beside it; **÷ baseline** is"
        " the median divided by its baseline's median, measured in the same run."
        + _gc_note(gc_thresholds)
        + _switch_note(switch_intervals),
        "",
    ]
    areas = [a for a in AREAS if any(r["area"] == a for r in rows)]
    areas += sorted({r["area"] for r in rows} - set(areas))
    for area in areas:
        lines += [
            f"**{area}**",
            "",
            "| figure | median | min-max | unit | ÷ baseline |",
            "|---|---:|---:|---|---|",
        ]
        for row in (r for r in rows if r["area"] == area):
            base = by_key.get((area, row["baseline"])) if row["baseline"] else None
            ratio = ""
            if base is not None and base["median"]:
                ratio = f"{_number(row['median'] / base['median'], 3)} x {row['baseline']}"
            spread = f"{_number(row['min'])}-{_number(row['max'])}"
            if len(row["samples"]) == 1:
                spread = "one run"
            lines.append(
                f"| {row['name']} | {_number(row['median'])} | {spread} | {row['unit']} | {ratio} |"
            )
        lines.append("")
    lines += ["Targets, checked against the figures above:", ""]
    for target in TARGETS:
        result = target.check(by_key)
        if result is None:
            lines.append(f"- {target.text}: not measured in this run")
        else:
            met, shown = result
            lines.append(f"- {target.text}: **{'met' if met else 'not met'}** ({shown})")
    lines.append(END)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("files", nargs="+", help="bin/bench --json outputs")
    parser.add_argument("--readme", metavar="FILE", help="replace the block in this file")
    parser.add_argument(
        "--redis",
        metavar="URL",
        default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="the Redis the figures were measured on (its version is named; '' for none)",
    )
    args = parser.parse_args()
    rows, times, thresholds, intervals = load(args.files)
    text = block(rows, times, args.redis or None, thresholds, intervals)
    if not args.readme:
        print(text)
        return 0
    with open(args.readme) as fh:
        readme = fh.read()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(readme):
        print(f"{args.readme} has no {START} ... {END} block", file=sys.stderr)
        return 1
    with open(args.readme, "w") as fh:
        fh.write(pattern.sub(lambda _: text, readme, count=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
