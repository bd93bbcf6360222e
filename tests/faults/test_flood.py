"""Issue 6, fault 8: a flood of sends far beyond a bounded mailbox's capacity."""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from actors import Effect, MailboxFull, Store

pytestmark = [pytest.mark.slow]

BOUND = 1_000
SENDERS = 4
SECONDS = 4.0
PAYLOAD = 1_024  # bytes each send carries: an unbounded mailbox would hold them all
RSS_SLACK_KB = 16 * 1024


def rss_kb() -> int:
    """This process's resident set size (``VmRSS`` of ``/proc/self/status``), in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    pytest.skip("no VmRSS in /proc/self/status")
    raise AssertionError("unreachable")


def test_a_flood_far_beyond_a_bounded_mailbox_is_refused_at_once_with_rss_flat() -> None:
    """Figure: 4 threads sending 1 kB actions as fast as they can for 4 s at a store
    with ``mailbox_size=1000`` whose reducer takes ~0.5 ms per action (hundreds of
    thousands of sends, nearly all refused): every refusal is ``MailboxFull``, in
    under 1 ms on average and 1 s at worst (measured), RSS grows by less than 16 MB,
    and every accepted action is reduced, once."""

    def reduce(state: dict[str, int], action: bytes, env: Any) -> list[Effect[Any]]:
        # A reducer far slower than the senders, waiting without holding the GIL so
        # the senders' rate, not the machine's speed, sets how far beyond it they go
        # (a busy reducer on a slow machine left only 4.5 refusals per acceptance).
        time.sleep(0.0005)
        state["reduced"] += 1
        state["bytes"] += len(action)
        return []

    store = Store.start(reduce, {"reduced": 0, "bytes": 0}, None, mailbox_size=BOUND)
    try:
        gc.collect()
        before = rss_kb()
        accepted = [0] * SENDERS
        refused = [0] * SENDERS
        slowest = [0.0] * SENDERS
        refusing = [0.0] * SENDERS
        peak = [before]
        start = threading.Barrier(SENDERS + 1)
        end = time.monotonic() + SECONDS + 1.0

        def flood(i: int) -> None:
            payload = bytes(PAYLOAD)
            start.wait(10)
            n = 0
            while time.monotonic() < end:
                n += 1
                began = time.perf_counter()
                try:
                    store.send(payload)
                except MailboxFull:
                    took = time.perf_counter() - began
                    refused[i] += 1
                    refusing[i] += took
                    slowest[i] = max(slowest[i], took)
                else:
                    accepted[i] += 1
                if i == 0 and n % 10_000 == 0:
                    peak[0] = max(peak[0], rss_kb())

        workers = [threading.Thread(target=flood, args=(i,)) for i in range(SENDERS)]
        for worker in workers:
            worker.start()
        start.wait(10)
        end = time.monotonic() + SECONDS
        for worker in workers:
            worker.join(SECONDS + 10)
        gc.collect()
        after = rss_kb()
        peak[0] = max(peak[0], after)

        total_accepted, total_refused = sum(accepted), sum(refused)
        state = store.state(timeout=30)  # reduced after everything accepted before it
        assert state == {"reduced": total_accepted, "bytes": total_accepted * PAYLOAD}
        assert total_refused > 10 * total_accepted, (total_accepted, total_refused)
        # "At once": a send never waits for room. The mean shows it (a waiting send
        # would take a reduction's time or more); the worst is bounded loosely, since
        # on a loaded machine any thread may be descheduled for a few hundred ms.
        mean = sum(refusing) / total_refused
        assert mean < 0.001, f"refusals took {mean * 1e6:.0f} us on average"
        assert max(slowest) < 1.0, f"a refusal took {max(slowest) * 1000:.1f} ms"
        grown = peak[0] - before
        assert grown < RSS_SLACK_KB, f"RSS grew by {grown} kB"
        print(
            f"\n{total_accepted + total_refused} sends in {SECONDS} s: {total_accepted} "
            f"accepted and reduced, {total_refused} refused (mean "
            f"{sum(refusing) / total_refused * 1e6:.1f} us, worst {max(slowest) * 1000:.2f} "
            f"ms); RSS {before} kB before, peak {peak[0]} kB, {after} kB after"
        )
    finally:
        store.stop(5)
