"""Testing reducers: ``TestStore`` and ``unimplemented`` dependencies."""

from actors._testing import TestStore, unimplemented

__all__ = ["TestStore", "unimplemented"]
