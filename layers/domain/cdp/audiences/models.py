"""Audience packages: who a campaign targets, as a condition over tags, attributes, scores and other audiences.

Static audiences are frozen into a snapshot (S3, with a manifest); dynamic ones are kept current by tag_update,
which stores each membership as the tag `audience:<id>` and publishes `audience.entered` / `audience.exited`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cdp.tags.audience_rules import AudienceDefinition

AUDIENCES_PREFIX = "audiences/"
DEFINITIONS_PREFIX = f"{AUDIENCES_PREFIX}definitions/"  # audiences/definitions/{id}.json
SNAPSHOTS_PREFIX = (
    f"{AUDIENCES_PREFIX}snapshots/"  # audiences/snapshots/{id}/{snapshot_id}/manifest.json, members-*.jsonl
)


class StoredAudience(BaseModel):
    """`audiences/definitions/{id}.json`: the definition with its version and times."""

    definition: AudienceDefinition
    version: int = Field(ge=1)
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = Field(
        default=None, description="set by DELETE: a tombstone keeps the version count (a new definition continues it)"
    )


# ---- stored state ---------------------------------------------------------------------------------------------
# (StoredAudience above is the document; `deleted_at` turns it into a tombstone that keeps the version count.)


def definition_key(audience_id: str) -> str:
    return f"{DEFINITIONS_PREFIX}{audience_id}.json"


def snapshot_prefix(audience_id: str, snapshot_id: str | None = None) -> str:
    return f"{SNAPSHOTS_PREFIX}{audience_id}/" + (f"{snapshot_id}/" if snapshot_id else "")


SNAPSHOT_ID_PATTERN = r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$"


class SnapshotManifest(BaseModel):
    """`audiences/snapshots/{id}/{snapshot_id}/manifest.json`, written after every members file (its presence
    means the snapshot is complete)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    audience_id: str
    snapshot_id: str = Field(pattern=SNAPSHOT_ID_PATTERN, description="sortable: the UTC time of export + a suffix")
    kind: Literal["static", "dynamic"]
    definition: AudienceDefinition
    version: int = Field(ge=1, description="the definition's version that was exported")
    references: dict[str, int] = Field(default_factory=dict, description="referenced audience id -> its version")
    source: Literal["evaluated", "membership_tags"] = Field(
        description="evaluated: the condition was evaluated on every profile (static); membership_tags: the persons "
        "whose tag audience:<id> is true, as tag_update keeps it (dynamic)"
    )
    as_of: datetime = Field(description="the instant the condition was evaluated at")
    created_at: datetime
    count: int = Field(ge=0)
    member_keys: list[str] = Field(description='members-00000.jsonl, ...: one {"person_id": ...} per line')
    condition_hash: str = Field(description="sha256 of the condition and the conditions it references")
    catalog_version: str
    segments: int = Field(ge=1, description="parallel scan segments read (all of them)")
    profiles_scanned: int = Field(ge=0)


class SnapshotList(BaseModel):
    audience_id: str
    snapshots: list[SnapshotManifest] = Field(description="newest first")


class AudienceSummary(BaseModel):
    id: str
    name: str
    brand_id: str | None = Field(default=None, description="the brand whose customers it holds (none: every brand's)")
    kind: Literal["static", "dynamic"]
    version: int
    owner: str
    updated_at: datetime


class AudienceList(BaseModel):
    audiences: list[AudienceSummary]


# ---- validation ---------------------------------------------------------------------------------------------


class ValidationIssue(BaseModel):
    field: str = Field(description="path in the definition, e.g. include.all[1].in")
    message: str


class Reads(BaseModel):
    """What the condition (with the audiences it references) reads."""

    tags: list[str] = Field(default_factory=list)
    attributes: list[str] = Field(default_factory=list)
    scores: list[str] = Field(default_factory=list)
    audiences: list[str] = Field(default_factory=list)
    events: list[str] = Field(default_factory=list, description="event types aggregated (timelines are read)")


class ValidationReport(BaseModel):
    valid: bool
    audience_id: str | None = None
    kind: Literal["static", "dynamic"] | None = None
    errors: list[ValidationIssue] = Field(default_factory=list)
    reads: Reads = Field(default_factory=Reads)
    freshness: Literal["real_time", "batch"] | None = Field(
        default=None,
        description="real_time: every input changes with events (tag_update keeps a dynamic membership current); "
        "batch: something it reads changes only with the nightly refresh or scoring",
    )
    notes: list[str] = Field(default_factory=list, description="what is worth knowing but not wrong")
    catalog_version: str


# ---- size, preview, export requests and answers -------------------------------------------------------------

DEFAULT_SEGMENTS = 16


class SizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    segments: int = Field(
        default=DEFAULT_SEGMENTS,
        ge=1,
        le=1000,
        description="parallel scan segments the profile table is split into; 1: one scan that also returns the filed "
        "events a condition over events reads (held in memory: a small table), instead of a timeline read per person "
        "(a condition over events on a table of at most 3,000 profiles, counted in one segment, is read that way "
        "unless sample_segments is given)",
    )
    sample_segments: int | None = Field(
        default=None,
        ge=2,
        le=1000,
        description="how many of them to scan (a random sample); none: all of them when the first segment suggests "
        "at most exact_below profiles, else enough segments for about exact_below profiles",
    )
    exact_below: int = Field(default=20_000, ge=1, le=10_000_000, description="scan everything up to this many")
    seed: int | None = Field(default=None, description="the segment sample's random seed (default: from the id)")


class SegmentCount(BaseModel):
    segment: int
    profiles: int
    members: int


class Timings(BaseModel):
    """Wall time in total; the parts are summed over the segments, which are scanned in parallel."""

    total_ms: float = Field(description="wall time")
    scan_ms: float = Field(description="reading profiles")
    timelines_ms: float = Field(
        description="reading timelines (only when the condition aggregates events; with one segment the scan returns "
        "them and its time is in scan_ms)"
    )
    evaluate_ms: float
    profiles: int
    timelines_read: int = Field(
        description="persons whose timeline was read: only when the condition aggregates events, and only for those "
        "it does not already rule out without them"
    )


class SizeEstimate(BaseModel):
    audience_id: str
    version: int
    as_of: datetime
    exact: bool = Field(description="true: every segment was scanned")
    estimate: int
    low: int = Field(description="95% interval (equal to the estimate when exact)")
    high: int
    confidence: float | None = Field(description="0.95 when extrapolated")
    method: str
    members_counted: int = Field(description="members found in the scanned segments")
    profiles_scanned: int
    population_estimate: int = Field(description="profiles in the table (extrapolated the same way)")
    segments_total: int
    segments_scanned: int
    sample: list[SegmentCount]
    read_timelines: bool
    timings: Timings


class PreviewMember(BaseModel):
    person_id: str
    brand_id: str
    traits: dict[str, str | int | None] = Field(description="a few key traits; PII masked")
    reads: dict[str, str | int | float | bool | None] = Field(
        description="the values the condition reads (tags, attributes, scores, aggregates), by what they are"
    )


class Preview(BaseModel):
    audience_id: str
    version: int
    as_of: datetime
    limit: int
    members: list[PreviewMember]
    profiles_scanned: int
    complete: bool = Field(description="true: every profile was scanned (fewer members than the limit exist)")
    read_timelines: bool
    timings: Timings


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    segments: int = Field(
        default=DEFAULT_SEGMENTS,
        ge=1,
        le=1000,
        description="parallel scan segments; 1: one scan that also returns the filed events a condition over events "
        "reads (held in memory: a small table), instead of a timeline read per person",
    )


# ---- estimate: a definition not saved yet (the console's audience builder) --------------------------------------

PORTRAIT_TAGS = ("lifecycle", "spend_tier", "top_category", "age_band")
MAX_PORTRAIT_TAGS = 8
MAX_PORTRAIT_VALUES = 12  # a dimension's most frequent values among all customers; the rest add up as `other`
MAX_ESTIMATE_PREVIEW = 20


class EstimateRequest(BaseModel):
    """A definition as it stands in the builder (saved or not), and what to work out for it in one scan."""

    model_config = ConfigDict(extra="forbid")

    definition: dict[str, object] = Field(
        description="the audience definition (as POST /v1/audiences takes it); errors name paths inside it"
    )
    size: SizeRequest = Field(default_factory=SizeRequest, description="how to size it (the sample, the segments)")
    portrait: list[str] = Field(
        default_factory=lambda: list(PORTRAIT_TAGS),
        max_length=MAX_PORTRAIT_TAGS,
        description="tags to compare the members with all customers on (lifecycle, value, preference, age)",
    )
    preview: int = Field(default=10, ge=0, le=MAX_ESTIMATE_PREVIEW, description="members to show (PII masked)")


class PortraitValue(BaseModel):
    value: str | None = Field(description="the tag's value as text; null: the person has no value; `other`: the rest")
    members: int = Field(description="members with this value, in the scanned profiles")
    customers: int = Field(description="scanned profiles with this value (members or not)")
    members_share: float = Field(description="of the members scanned")
    customers_share: float = Field(description="of the profiles scanned")
    index: float | None = Field(
        description="members_share / customers_share x 100: above 100 the audience holds more of this value than the "
        "customers do (null when no customer has it)"
    )


class PortraitDimension(BaseModel):
    tag: str
    values: list[PortraitValue] = Field(description="by the customers' count, most frequent first; null and other last")


class Portrait(BaseModel):
    """The members against all customers, over the same scanned profiles (the size's sample)."""

    members: int
    customers: int
    dimensions: list[PortraitDimension]


class AudienceEstimate(BaseModel):
    audience_id: str
    saved_version: int | None = Field(description="the stored version of this id, if any (the estimate is of the body)")
    report: ValidationReport = Field(description="valid (an invalid definition answers 422), what it reads, notes")
    size: SizeEstimate
    portrait: Portrait
    preview: list[PreviewMember] = Field(description="the first members found, PII masked")
