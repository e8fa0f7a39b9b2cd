"""The profile changes tag_update consumes (identity's `profile.updated` / `profile.merged`, through SQS): a packed
entry of a batch's updates (`cdp.identity.events.ProfilesUpdated`), or one change per entry (a merge, a manual
operation, an edit, or an entry published before packing). Each change is read on its own, so a bad one is parked
alone while the others are processed."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import BaseModel, Field, Json, ValidationError, model_validator

from cdp.shared.envelope import BusEntry
from cdp.tags.catalog import IDENTITY_CHANGED
from cdp.topology import PROFILE_MERGED


class ProfileChange(BaseModel):
    person_id: str | None = None  # profile.updated
    event_type: str | None = None  # profile.updated: the canonical event type, or identity_changed
    survivor_id: str | None = None  # profile.merged

    @model_validator(mode="after")
    def _names_a_person(self) -> ProfileChange:
        if not (self.person_id or self.survivor_id):
            raise ValueError("profile event names no person")  # parked by the processor, with this reason
        return self

    @property
    def subject(self) -> str:
        return self.person_id or self.survivor_id or ""

    def trigger(self, detail_type: str) -> str:
        if detail_type == PROFILE_MERGED or not self.event_type:
            return IDENTITY_CHANGED
        return self.event_type


class ProfileChanges(BaseModel):
    """An entry's changes, unparsed: `updates` of a packed entry, else the entry's own fields as one change."""

    model_config = {"extra": "allow"}

    brand_id: str | None = None
    updates: list[dict[str, Any]] | None = Field(default=None, max_length=10_000)

    def raw_changes(self) -> list[dict[str, Any]]:
        if self.updates is not None:
            return self.updates
        return [{k: v for k, v in (self.model_extra or {}).items()}]

    def parseable(self) -> list[ProfileChange]:
        out: list[ProfileChange] = []
        for raw in self.raw_changes():
            try:
                out.append(ProfileChange.model_validate(raw))
            except ValidationError:
                continue  # parked with its reason when processed
        return out


class ProfileChangeRecord(SqsRecordModel):
    body: Json[BusEntry[ProfileChanges]]
