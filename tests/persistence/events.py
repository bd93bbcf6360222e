"""Event models the persistence tests append (persistence itself knows no events)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from persistence import Codec


class Deposited(BaseModel):
    model_config = ConfigDict(frozen=True)
    account: str
    amount: int


class Withdrawn(BaseModel):
    model_config = ConfigDict(frozen=True)
    account: str
    amount: int
    at: datetime | None = None


class Renamed(BaseModel):
    """Schema version 2: version 1 called the field ``name``."""

    model_config = ConfigDict(frozen=True)
    title: str


class Unregistered(BaseModel):
    model_config = ConfigDict(frozen=True)
    x: int = 0


def make_codec() -> Codec:
    codec = Codec()
    codec.register(Deposited, name="Deposited")
    codec.register(Withdrawn, name="Withdrawn")
    codec.register(Renamed, name="Renamed", version=2)

    @codec.upcaster("Renamed", from_version=1)
    def _name_to_title(payload: dict[str, Any]) -> dict[str, Any]:
        return {"title": payload["name"]}

    return codec
