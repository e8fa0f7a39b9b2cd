"""The activation request (an API body) and the record kept of each activation (listed per audience)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cdp.activation.ports import PlatformName
from cdp.audiences.models import SNAPSHOT_ID_PATTERN

ConsentChannel = Literal["all", "sms", "email", "push", "wechat"]
Status = Literal["running", "in_progress", "complete", "failed"]
ACTIVATION_ID_PATTERN = r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$"


class ActivationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    brand_id: str = Field(
        min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@/#+\-]+$", description="whose ad account uploads"
    )
    platform: PlatformName
    snapshot_id: str | None = Field(
        default=None, pattern=SNAPSHOT_ID_PATTERN, description="the snapshot to upload (default: the latest)"
    )
    consent_channel: ConsentChannel = Field(
        default="all",
        description="members need marketing opt-in here (`all`: their general marketing consent, the default; a "
        "brand that records consent per channel names the one that covers advertising)",
    )
    in_parts: bool = Field(
        default=False,
        description="a snapshot larger than one request uploads (`part_size`) is uploaded in parts: this request "
        "uploads the first, `POST .../activations/{activation_id}/continue` each next one",
    )


class ActivationCounts(BaseModel):
    """Snapshot members read so far, and what became of each (every member is counted once)."""

    members: int = 0
    uploaded: int = Field(default=0, description="members with at least one hashed identifier uploaded")
    identifiers: int = Field(default=0, description="hashed identifiers uploaded (a person may have several)")
    not_found: int = Field(default=0, description="no profile any more (erased, or every identifier shared)")
    other_brand: int = Field(default=0, description="another brand's customer: not this brand's to upload")
    no_consent: int = Field(default=0, description="no marketing opt-in on the consent channel")
    global_control: int = Field(default=0, description="in the brand's global control group (no marketing)")
    suppression_list: int = Field(default=0, description="in one of the brand's suppression audiences")
    no_identifier: int = Field(default=0, description="no identifier this platform matches (a mainland mobile)")
    duplicate: int = Field(default=0, description="the same person again (members merged since the snapshot)")

    def add(self, other: ActivationCounts) -> ActivationCounts:
        return ActivationCounts(**{k: v + getattr(other, k) for k, v in self.model_dump().items()})


class Activation(BaseModel):
    activation_id: str = Field(pattern=ACTIVATION_ID_PATTERN)
    audience_id: str
    brand_id: str
    platform: PlatformName
    id_type: str = Field(description="what was uploaded, in the platform's terms (e.g. HASH_MOBILE_PHONE)")
    snapshot_id: str
    snapshot_count: int = Field(ge=0, description="members in the snapshot")
    consent_channel: ConsentChannel
    status: Status = Field(
        description="running (a request is uploading), in_progress (parts remain: continue it), complete, failed"
    )
    platform_audience_id: str | None = Field(
        default=None,
        description="the audience (Tencent Ads) or data source (Ocean Engine) id at the platform, once it exists",
    )
    file_refs: list[str] = Field(default_factory=list, description="the platform's ids of the files uploaded")
    next_offset: int = Field(ge=0, description="snapshot members read so far (the next part starts here)")
    part_size: int = Field(ge=1, description="snapshot members one request reads")
    counts: ActivationCounts = Field(default_factory=ActivationCounts)
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    error: str | None = Field(default=None, description="why the last part failed (the platform's code and message)")
    error_code: str | None = None


class ActivationList(BaseModel):
    audience_id: str
    activations: list[Activation] = Field(description="newest first")
