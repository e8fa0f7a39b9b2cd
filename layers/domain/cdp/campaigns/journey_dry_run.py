"""A journey's dry run, before it goes live: how many would have entered, on which days, what it would cost, who a cap
would stop and what it would overlap, written nowhere.

- An event trigger is replayed on history: the trigger events of the last `HORIZON_DAYS` days in every person's
  timeline (with its `where` filter), entered as the journey would have entered them: today's audience conditions
  and contact policy, the stable holdout, and no second entry while one is still running (the main path's waits) or
  before `reentry_after_days`.
- A date trigger is forecast: the persons whose own date falls in the window on each of the next `HORIZON_DAYS` days,
  each occasion counted on the first day the daily sweep would enter them.
- Audience, lifecycle, weather and location triggers depend on announcements and signals still to come: no dry run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from cdp.campaigns.catalog import CampaignState
from cdp.campaigns.definition import CampaignDefinition, Step
from cdp.campaigns.dry_run import HORIZON_DAYS, ContactHistory, Overlap
from cdp.campaigns.journeys import holdout_group
from cdp.channels.contact import exclusion, passed_cap, person_zone
from cdp.errors import ConflictError
from cdp.ingest.events import correlation_keys
from cdp.org import BrandConfig
from cdp.profile.models import Profile
from cdp.profile.ports import ProfileReader, TimelineEntry
from cdp.tags.selection import AUDIENCE_PREFIX

SCAN_SHARDS = 4


class JourneyDryRun(BaseModel):
    campaign_id: str
    version: int | None
    basis: Literal["replayed", "forecast"] = Field(
        description=f"replayed: the trigger events of the last {HORIZON_DAYS} days; forecast: persons' own dates "
        f"in the next {HORIZON_DAYS} days"
    )
    entries: int
    treatment: int
    holdout: int
    entries_by_day: dict[str, int] = Field(description="entries per local date")
    not_entered_already_in: int = Field(description="trigger events of persons still in it, or within re-entry")
    not_eligible: int = Field(description="persons the audience conditions or the contact policy keep out")
    currency: str
    first_send_cost_minor: int = Field(description="the treated entries times the first send's cost")
    cost_at_most_minor: int = Field(description="the treated entries times the costliest route through the steps")
    capped_today: int = Field(description="treated persons a frequency cap would stop today on the first send")
    overlaps: list[Overlap]


@dataclass
class _Tally:
    entries: dict[str, int]
    treated: set[str]
    held: int = 0
    already_in: int = 0
    not_eligible: int = 0


def journey_dry_run(
    definition: CampaignDefinition,
    version: int | None,
    brand: BrandConfig,
    profiles: ProfileReader,
    contacts: ContactHistory | None,
    others: Sequence[tuple[CampaignState, CampaignDefinition]],
    now: datetime,
) -> JourneyDryRun:
    trigger = definition.trigger
    if trigger is None:
        raise ConflictError(f"campaign {definition.campaign_id} is not a journey")
    zone = ZoneInfo(brand.timezone)
    tally = _Tally(entries={}, treated=set())
    if trigger.event is not None:
        basis: Literal["replayed", "forecast"] = "replayed"
        for profile, timeline in _brand_profiles(profiles, brand.brand_id, with_timelines=True):
            _replay(definition, brand, profile, timeline, now, zone, tally)
    elif trigger.date is not None:
        basis = "forecast"
        for profile, _ in _brand_profiles(profiles, brand.brand_id, with_timelines=False):
            _forecast(definition, brand, profile, now.astimezone(zone).date(), tally)
    else:
        raise ConflictError(
            f"campaign {definition.campaign_id}'s entries come from announcements or signals still to come "
            "(audience, lifecycle, weather, location): only event and date journeys have a dry run"
        )
    costs = definition.budget
    first = definition.first_send_step
    first_cost = costs.cost_of(first) if first is not None else 0
    treated = sum(tally.entries.values()) - tally.held
    capped = 0
    if contacts is not None and brand.contact.caps and first is not None:
        for person_id in sorted(tally.treated):
            history = contacts.history(brand.brand_id, person_id)
            capped += passed_cap(history, first.channel, now, brand.contact.caps) is not None
    overlaps = [
        Overlap(campaign_id=state.campaign_id, status=state.status, days=["every day"])
        for state, other in others
        if other.campaign_id != definition.campaign_id and state.status in ("live", "scheduled")
    ]
    return JourneyDryRun(
        campaign_id=definition.campaign_id,
        version=version,
        basis=basis,
        entries=sum(tally.entries.values()),
        treatment=treated,
        holdout=tally.held,
        entries_by_day=dict(sorted(tally.entries.items())),
        not_entered_already_in=tally.already_in,
        not_eligible=tally.not_eligible,
        currency=costs.currency,
        first_send_cost_minor=treated * first_cost,
        cost_at_most_minor=treated * _costliest(definition),
        capped_today=capped,
        overlaps=overlaps,
    )


def _brand_profiles(
    profiles: ProfileReader, brand_id: str, with_timelines: bool
) -> Iterator[tuple[Profile, list[TimelineEntry]]]:
    for shard in range(SCAN_SHARDS):
        if with_timelines:
            for profile, timeline in profiles.scan_with_timelines(shard, SCAN_SHARDS):
                if profile.brand_id == brand_id:
                    yield profile, timeline
        else:
            for profile in profiles.scan_shard(shard, SCAN_SHARDS):
                if profile.brand_id == brand_id:
                    yield profile, []


def _eligible(definition: CampaignDefinition, brand: BrandConfig, profile: Profile) -> bool:
    if definition.markets and exclusion(brand, profile) is not None:
        return False
    audience = definition.audience
    if audience.audience_id is not None:
        membership = profile.tags.get(f"{AUDIENCE_PREFIX}{audience.audience_id}")
        if membership is None or membership.value is not True:
            return False
    return audience.matches(profile)


def _enter(definition: CampaignDefinition, profile: Profile, day: date, tally: _Tally) -> None:
    tally.entries[day.isoformat()] = tally.entries.get(day.isoformat(), 0) + 1
    if holdout_group(definition.campaign_id, profile.person_id, definition.holdout) == "holdout":
        tally.held += 1
    else:
        tally.treated.add(profile.person_id)


def _replay(
    definition: CampaignDefinition,
    brand: BrandConfig,
    profile: Profile,
    timeline: list[TimelineEntry],
    now: datetime,
    zone: ZoneInfo,
    tally: _Tally,
) -> None:
    trigger = definition.trigger
    assert trigger is not None and trigger.event is not None
    since = now - timedelta(days=HORIZON_DAYS)
    events = [
        e.event
        for e in timeline
        if since <= e.event.occurred_at <= now
        and trigger.fires_on("event", e.event.event_type, correlation_keys(e.event))
    ]
    if not events:
        return
    if not _eligible(definition, brand, profile):
        tally.not_eligible += 1
        return
    stays = _main_path_length(definition)
    last: datetime | None = None
    for event in sorted(events, key=lambda e: e.occurred_at):
        at = event.occurred_at
        again = definition.reentry_after_days
        if last is not None and (at < last + stays or again is None or at < last + timedelta(days=again)):
            tally.already_in += 1
            continue
        last = at
        _enter(definition, profile, at.astimezone(zone).date(), tally)


def _forecast(definition: CampaignDefinition, brand: BrandConfig, profile: Profile, today: date, tally: _Tally) -> None:
    trigger = definition.trigger
    assert trigger is not None and trigger.date is not None
    seen: set[str] = set()
    eligible: bool | None = None
    for offset in range(HORIZON_DAYS):
        day = today + timedelta(days=offset)
        found = trigger.date.occasion(profile, day, person_zone(brand, profile))
        if found is None or found[1] in seen:
            continue
        seen.add(found[1])
        if eligible is None:
            eligible = _eligible(definition, brand, profile)
        if not eligible:
            tally.not_eligible += 1
            return
        _enter(definition, profile, day, tally)


def _main_path_length(definition: CampaignDefinition) -> timedelta:
    """How long an entry stays on the main path at least (its waits and timeouts; `until` counts as a day)."""
    total = timedelta()
    for step in definition.steps:
        if step.wait is not None:
            total += timedelta(days=1) if step.wait.until is not None else timedelta(seconds=step.wait.seconds)
        elif step.wait_for is not None:
            total += timedelta(seconds=step.wait_for.timeout.seconds)
    return total


def _costliest(definition: CampaignDefinition) -> int:
    """An upper bound of what one treated entry can cost: the dearest arm's main steps and every path's sends once
    (linear in the steps, where following every route could take exponential time)."""

    def sends(steps: Sequence[Step]) -> int:
        return sum(definition.budget.cost_of(step.send) for step in steps if step.send is not None)

    arms = [definition.steps_of(v.name) for v in definition.variants] or [definition.steps]
    return max(sends(steps) for steps in arms) + sum(sends(steps) for steps in definition.paths.values())
