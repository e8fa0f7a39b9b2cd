"""What identity_merge receives: the bus entries ingest publishes (`cdp.ingest.service.EventsReceived`), each a
packed list of one request's events of one brand, read one event at a time so a bad one is parked alone."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from cdp.ingest.events import CanonicalEvent, parse_event


class ReceivedData(BaseModel):
    """A packed entry's events, or the one event of an entry published before packing."""

    brand_id: str | None = None
    events: list[dict[str, Any]] = Field(default_factory=list, max_length=10_000)
    event: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _some(self) -> ReceivedData:
        if not self.events and self.event is None:
            raise ValueError("the entry carries no event (data.events is empty)")
        return self

    def raw_events(self) -> list[dict[str, Any]]:
        return self.events or [self.event or {}]

    def parseable(self) -> list[CanonicalEvent]:
        """The events that parse (the others are parked with their reason when processed)."""
        out: list[CanonicalEvent] = []
        for raw in self.raw_events():
            try:
                out.append(parse_event(raw))
            except ValidationError:
                continue
        return out
