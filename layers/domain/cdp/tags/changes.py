"""The profile changes tag_update consumes (identity's `profile.updated` / `profile.merged`, through SQS)."""

from __future__ import annotations

from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import BaseModel, Json, model_validator

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


class ProfileChangeRecord(SqsRecordModel):
    body: Json[BusEntry[ProfileChange]]
