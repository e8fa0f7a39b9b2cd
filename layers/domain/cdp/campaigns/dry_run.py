"""A scheduled campaign's dry run: what its next runs would do, computed on today's profiles before anything is sent.

The selection is the select step's own (`plan_selection`: audience, consent, ranking, budget cut, holdout), written
nowhere. On top of it: the cost of the first send and the most the follow-up can add, the first sends per day over
the schedule's next occurrences, the treated persons whose contact history already puts this send past a frequency
cap today (they would be suppressed), and the brand's other scheduled or live campaigns that reach persons the same
days. A journey's dry run replays history instead (`cdp.campaigns.journey_dry_run`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from cdp.audiences.store import AudienceStore
from cdp.campaigns.catalog import CampaignState
from cdp.campaigns.definition import CampaignDefinition
from cdp.campaigns.service import plan_selection
from cdp.campaigns.targeting import TargetingReport, ValidationSource
from cdp.channels.contact import passed_cap
from cdp.errors import ConflictError
from cdp.org import BrandConfig
from cdp.profile.ports import ProfileReader

HORIZON_DAYS = 14


class ContactHistory(Protocol):
    def history(self, brand_id: str, person_id: str) -> list[tuple[str, datetime]]:
        """The person's campaign sends within the longest cap window (channel, when)."""
        ...


class Overlap(BaseModel):
    campaign_id: str
    status: str
    days: list[str] = Field(description="local dates both would reach persons ('every day' for a live journey)")


class DryRunReport(BaseModel):
    campaign_id: str
    version: int | None = Field(description="the stored version run dry (None: a definition not stored)")
    eligible: int = Field(description="pass the audience conditions and consent, before the budget cut")
    selected: int
    treatment: int
    holdout: int
    unscored: int = Field(description="selected persons without a score (ranked last)")
    currency: str
    first_send_cost_minor: int
    follow_up_cost_at_most_minor: int = Field(description="if no treated person converts before the follow-up")
    capped_today: int = Field(description="treated persons a frequency cap would stop today (suppressed, not sent)")
    sends_by_day: dict[str, int] = Field(description=f"first sends per local date over the next {HORIZON_DAYS} days")
    overlaps: list[Overlap]
    targeting: TargetingReport | None = Field(
        default=None,
        description="uplift targeting: the ranking used and why, with both rankings' expected incremental conversions "
        "and profit side by side",
    )


def dry_run(
    definition: CampaignDefinition,
    version: int | None,
    brand: BrandConfig,
    profiles: ProfileReader,
    audiences: AudienceStore | None,
    contacts: ContactHistory | None,
    others: Sequence[tuple[CampaignState, CampaignDefinition]],
    now: datetime,
    validations: ValidationSource | None = None,
) -> DryRunReport:
    if definition.trigger is not None:
        raise ConflictError(f"campaign {definition.campaign_id} is a journey: its entries depend on events to come")
    request = definition.to_request(f"{definition.campaign_id}-dry-run")
    plan = plan_selection(request, profiles, audiences, brand, validations)
    costs = definition.budget
    treated = len(plan.treatment)
    capped = 0
    caps = brand.contact.caps
    if contacts is not None and caps:
        channel = request.touch1.channel
        for member in plan.treatment:
            if passed_cap(contacts.history(brand.brand_id, member.person_id), channel, now, caps) is not None:
                capped += 1
    zone = definition.schedule.zone(brand) if definition.schedule else ZoneInfo(brand.timezone)
    ours = _days(definition, brand, now, zone)
    by_day = dict.fromkeys(ours, treated)
    overlaps: list[Overlap] = []
    for state, other in others:
        if other.campaign_id == definition.campaign_id:
            continue
        if state.status == "live":
            overlaps.append(Overlap(campaign_id=state.campaign_id, status=state.status, days=["every day"]))
        elif state.status == "scheduled":
            shared = sorted(set(ours) & set(_days(other, brand, now, zone)))
            if shared:
                overlaps.append(Overlap(campaign_id=state.campaign_id, status=state.status, days=shared))
    return DryRunReport(
        campaign_id=definition.campaign_id,
        version=version,
        eligible=len(plan.pool),
        selected=len(plan.selected),
        treatment=treated,
        holdout=len(plan.holdout),
        unscored=sum(1 for m in plan.selected if m.score is None),
        currency=definition.budget.currency,
        first_send_cost_minor=treated * costs.cost_of(request.touch1),  # as the select step reserves it
        follow_up_cost_at_most_minor=treated * costs.cost_of(request.touch2) if request.touch2 else 0,
        capped_today=capped,
        sends_by_day=by_day,
        overlaps=overlaps,
        targeting=plan.targeting,
    )


def _days(definition: CampaignDefinition, brand: BrandConfig, now: datetime, zone: ZoneInfo) -> list[str]:
    """Local dates of the occurrences within the horizon (a campaign without a schedule: today, started by hand)."""
    if definition.schedule is None:
        return [now.astimezone(zone).date().isoformat()]
    out: list[str] = []
    at = now
    end = now + timedelta(days=HORIZON_DAYS)
    while (following := definition.schedule.next_after(at, brand)) is not None and following <= end:
        out.append(following.astimezone(zone).date().isoformat())
        at = following
    return out
