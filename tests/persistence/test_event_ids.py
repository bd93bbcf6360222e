"""Event ids: unique without a system call per id, and not repeated by random.seed or fork."""

from __future__ import annotations

import os
import random
import warnings

import pytest

from persistence._common import new_event_id


def test_event_ids_are_32_hex_digits_and_do_not_repeat() -> None:
    ids = [new_event_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(event_id) == 32 and int(event_id, 16) >= 0 for event_id in ids)


def test_seeding_the_applications_random_does_not_repeat_event_ids() -> None:
    random.seed(1)
    first = new_event_id()
    random.seed(1)
    assert new_event_id() != first


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_repeat_its_parents_event_ids() -> None:
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # the child: one id to the parent, then out without cleanup
        os.write(write_end, new_event_id().encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as pipe:
        child = pipe.read()
    # Without the reseed at fork, the child's next id is the parent's next id.
    assert len(child) == 32
    assert child != new_event_id()
