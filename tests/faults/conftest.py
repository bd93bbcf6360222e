"""Fixtures of the fault tests: the codec of the persistence tests."""

from __future__ import annotations

import pytest

from persistence import Codec
from tests.persistence.events import make_codec


@pytest.fixture
def codec() -> Codec:
    return make_codec()
