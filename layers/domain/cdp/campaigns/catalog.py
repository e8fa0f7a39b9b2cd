"""What the campaign catalog holds (definitions in versions, each campaign's state, its runs, the brand's stop
switch, the schedule's due list) and the ports that hold and run them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cdp.campaigns.definition import CampaignDefinition
from cdp.ingest.events import UtcDatetime

CampaignStatus = Literal["draft", "scheduled", "live", "paused", "stopped", "completed"]
RunTrigger = Literal["manual", "schedule"]
RunOutcome = Literal["started", "skipped"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tick(_Frozen):
    """The schedule's input: `now` is Scheduler's scheduled time of this firing (the local runtime's clock)."""

    now: UtcDatetime


class Approval(_Frozen):
    by: str
    at: datetime


class StoredVersion(_Frozen):
    version: int = Field(ge=1)
    definition: CampaignDefinition
    created_at: datetime
    created_by: str
    approval: Approval | None = None


class CampaignState(_Frozen):
    """A campaign's lifecycle. `active_version` is the one its schedule runs; `next_run_at` its next occurrence
    (while scheduled). `rev` orders concurrent changes (each write checks the one it read)."""

    brand_id: str
    campaign_id: str
    name: str
    status: CampaignStatus
    latest_version: int = Field(ge=1)
    active_version: int | None = None
    next_run_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    updated_by: str
    rev: int = Field(default=1, ge=1)


class RunRecord(_Frozen):
    """One run (or an occurrence the schedule skipped, with the reason): written before its execution starts."""

    run_id: str
    brand_id: str
    campaign_id: str
    version: int
    trigger: RunTrigger
    at: datetime = Field(description="when it started (scheduled: the occurrence)")
    by: str
    outcome: RunOutcome
    reason: str | None = None


class BrandSwitch(_Frozen):
    """The brand-wide stop: while `stopped`, no run starts and no campaign message leaves."""

    brand_id: str
    stopped: bool = False
    reason: str | None = None
    by: str | None = None
    at: datetime | None = None


class DueEntry(_Frozen):
    brand_id: str
    campaign_id: str
    at: datetime


class CampaignCatalog(ABC):
    """Definitions, states, runs, switches and the due list (DynamoDB on AWS: `cdp.campaigns.dynamodb`)."""

    @abstractmethod
    def add_version(
        self, state: CampaignState, version: StoredVersion, expected_rev: int | None, previous_due: datetime | None
    ) -> None:
        """Store a new version with the state it leads to (as `put_state`); `expected_rev` None: the campaign must
        not exist yet. ConflictError when another change came first."""

    @abstractmethod
    def state(self, brand_id: str, campaign_id: str) -> CampaignState | None: ...

    @abstractmethod
    def states(self, brand_id: str) -> list[CampaignState]: ...

    @abstractmethod
    def version(self, brand_id: str, campaign_id: str, version: int) -> StoredVersion | None: ...

    @abstractmethod
    def approve(self, brand_id: str, campaign_id: str, version: int, approval: Approval) -> None:
        """Record the approval once (ConflictError if the version is approved already)."""

    @abstractmethod
    def put_state(self, state: CampaignState, expected_rev: int, previous_due: datetime | None) -> None:
        """Replace the state if it is still at `expected_rev`, moving its due entry from `previous_due` to
        `state.next_run_at` in the same write (ConflictError otherwise)."""

    @abstractmethod
    def due(self, until: datetime, limit: int, after: datetime | None = None) -> list[DueEntry]:
        """Due entries at or before `until` (and after `after`), oldest first."""

    @abstractmethod
    def add_run(self, run: RunRecord) -> bool:
        """Record a run once: False when a run with its id is recorded already."""

    @abstractmethod
    def runs(self, brand_id: str, campaign_id: str, limit: int) -> list[RunRecord]:
        """Newest first."""

    @abstractmethod
    def run(self, brand_id: str, campaign_id: str, run_id: str) -> RunRecord | None: ...

    @abstractmethod
    def switch(self, brand_id: str) -> BrandSwitch: ...

    @abstractmethod
    def put_switch(self, switch: BrandSwitch) -> None: ...


class CampaignRunner(ABC):
    """Runs start on the campaign state machine; a run id names its execution (a second start of it is a no-op)."""

    @abstractmethod
    def start(self, run_id: str, request: dict[str, Any]) -> None: ...

    @abstractmethod
    def stop(self, run_id: str, cause: str) -> None:
        """Stop the run's execution if it is running."""

    @abstractmethod
    def status(self, run_id: str) -> str | None:
        """RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED; None when no execution has that name."""
