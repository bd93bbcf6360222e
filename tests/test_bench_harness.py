"""The benchmark harness's own measuring aids (the figures themselves are never asserted)."""

from __future__ import annotations

import gc

from benchmarks._harness import collector_pauses


def test_collector_pauses_records_each_collection_and_removes_its_callback() -> None:
    before = list(gc.callbacks)
    with collector_pauses() as pauses:
        gc.collect()
        gc.collect()
    gc.collect()  # after the block: not recorded
    assert len(pauses) == 2
    assert all(0 <= pause < 5 for pause in pauses)
    assert gc.callbacks == before
