"""The ticketing example: inventory, payment, the reservation saga, their projections."""

from __future__ import annotations

__all__: list[str] = []
