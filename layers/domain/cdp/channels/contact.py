"""Contact policy, enforced when a campaign message actually leaves (also after any wait or queue), across every
campaign and journey of a brand (`cdp.org.ContactPolicy`):

- quiet hours in the recipient's time zone (the profile's, else their usual store's, else the brand's: `person_zone`):
  the message is deferred to the end of the quiet time, not dropped (`Deferrals`: the schedule's tick orders it
  again then);
- frequency caps per channel and in total: a send is recorded in the person's contact history only if no cap would
  be passed, in one conditional write, so two campaigns sending to one person at once never exceed a cap together.

- a persistent global control group: a fixed share of the brand's customers (a stable hash of brand and person)
  receives no marketing at all, so the whole programme can be measured against them (`in_global_control`);
- suppression lists: members of the brand's `suppress_audiences` (dynamic audiences: their membership is a tag)
  receive no marketing.

Marketing needs the person's opt-in on the channel; a service message (`purpose: service`: an order, a delivery, an
expiry notice) needs only that they have not refused service messages there, and skips caps, quiet hours, the
control group and the suppression lists (PIPL keeps the two consents apart).

Priority when two campaigns want the same person on the same day (`priority`, 1-100, higher wins): a marketing send
leaves room under the caps for every scheduled run of a higher-priority campaign due later that day (the brand's local
day) whose audience the person is in (`PlannedRuns`). When one more send now would leave that run no room, it is
suppressed (`suppressed_priority`, naming the run). Runs due are known ahead; journeys' triggers are not, so a
journey's send is never held back for a journey. Among equal priorities, and against a send that has already left:
first come, first served (the later one finds the cap reached: `suppressed_frequency_cap`).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cdp.channels.models import SendBatchRequest
from cdp.org import BrandConfig, FrequencyCap, OrgDirectory
from cdp.profile.models import Profile, split_scope_key
from cdp.tags.selection import AUDIENCE_PREFIX


@dataclass(frozen=True)
class PlannedSend:
    """A higher-priority campaign's scheduled run, due later the same day, that would send to the person."""

    campaign_id: str
    priority: int
    channel: str
    at: datetime


@dataclass(frozen=True)
class PlannedRun:
    """A scheduled run due soon: its campaign, priority, first send's channel and whom it is for."""

    brand_id: str
    campaign_id: str
    priority: int
    channel: str
    at: datetime
    wants: Callable[[Profile], bool]


class PlannedRuns(ABC):
    """The brand's scheduled runs due in a window (the campaign catalog's due list on AWS:
    `cdp.campaigns.planned.CatalogPlannedRuns`)."""

    @abstractmethod
    def due(self, brand_id: str, after: datetime, until: datetime) -> Sequence[PlannedRun]:
        """Runs of the brand's marketing campaigns due in (after, until]."""


@dataclass(frozen=True)
class Refusal:
    """Why a send was not recorded: `cap` would be passed by it, or (with `yielded_to`) by that later run after it."""

    cap: FrequencyCap
    yielded_to: PlannedSend | None = None


class ContactLedger(ABC):
    """Each person's recent campaign sends (the ledger table on AWS: `cdp.channels.ledger.DynamoContactLedger`)."""

    @abstractmethod
    def reserve(
        self,
        brand_id: str,
        person_id: str,
        channel: str,
        at: datetime,
        caps: Sequence[FrequencyCap],
        ahead: Sequence[PlannedSend] = (),
    ) -> Refusal | None:
        """Record a send at `at` (None) unless it would pass one of `caps`, or leave one of the runs `ahead` no room
        (then the refusal, and nothing is recorded)."""

    @abstractmethod
    def release(self, brand_id: str, person_id: str, channel: str, at: datetime) -> None:
        """Take back a recorded send that certainly did not leave."""


class Deferrals(ABC):
    """Sends held back (by quiet hours, or by a provider's rate), ordered again by the tick once their time has come
    (`cdp.campaigns.journeys_dynamodb`)."""

    @abstractmethod
    def defer(self, request: SendBatchRequest, until: datetime) -> bool:
        """Keep `request` (its persons: one held by quiet hours, the rest of a batch held by a rate) to be ordered
        again at `until`. False: the same request was held until then already (a redelivered order: not counted
        again)."""


def in_global_control(brand_id: str, person_id: str, share: float) -> bool:
    """Stable: the same person is in the brand's global control group for as long as its share is unchanged."""
    if share <= 0:
        return False
    digest = hashlib.sha256(f"global-control:{brand_id}:{person_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def exclusion(brand: BrandConfig, profile: Profile) -> str | None:
    """Why the person receives no marketing from the brand at all (None: they may): the global control group, or a
    suppression list."""
    if in_global_control(brand.brand_id, profile.person_id, brand.contact.global_control_share):
        return "global_control"
    for audience_id in brand.contact.suppress_audiences:
        membership = profile.tags.get(f"{AUDIENCE_PREFIX}{audience_id}")
        if membership is not None and membership.value is True:
            return "suppression_list"
    return None


def refusal(
    history: Sequence[tuple[str, datetime]],
    channel: str,
    at: datetime,
    caps: Sequence[FrequencyCap],
    ahead: Sequence[PlannedSend] = (),
) -> Refusal | None:
    """Whether one more send on `channel` at `at` may be recorded: no cap passed, and every run `ahead` that fits
    without it still fits with it (a run that would not fit anyway is not a reason to hold this one back)."""
    cap = passed_cap(history, channel, at, caps)
    if cap is not None:
        return Refusal(cap)
    with_it = [*history, (channel, at)]
    for planned in sorted(ahead, key=lambda p: (-p.priority, p.at, p.campaign_id)):
        if passed_cap(history, planned.channel, planned.at, caps) is not None:
            continue
        cap = passed_cap(with_it, planned.channel, planned.at, caps)
        if cap is not None:
            return Refusal(cap, yielded_to=planned)
    return None


def passed_cap(
    history: Sequence[tuple[str, datetime]], channel: str, at: datetime, caps: Sequence[FrequencyCap]
) -> FrequencyCap | None:
    """The first cap one more send on `channel` at `at` would pass, given the sends in `history`."""
    for cap in caps:
        since = at - timedelta(days=cap.per_days)
        counted = [c for c, when in history if when > since and (cap.channel == "all" or c == cap.channel)]
        if (cap.channel in ("all", channel)) and len(counted) + 1 > cap.max:
            return cap
    return None


@dataclass(frozen=True)
class ContactRules:
    org: OrgDirectory
    ledger: ContactLedger
    deferrals: Deferrals
    planned: PlannedRuns | None = None

    def quiet_until(self, profile: Profile, now: datetime) -> datetime | None:
        """When the quiet time the person is in ends (UTC), or None when they may be messaged now."""
        brand = self.org.brand(profile.brand_id)
        quiet = brand.contact.quiet_hours
        if quiet is None:
            return None
        until = quiet.until(now.astimezone(person_zone(brand, profile)))
        return until.astimezone(UTC) if until else None

    def caps(self, brand_id: str) -> list[FrequencyCap]:
        return list(self.org.brand(brand_id).contact.caps)

    def excluded(self, profile: Profile) -> str | None:
        return exclusion(self.org.brand(profile.brand_id), profile)

    def ahead(self, profile: Profile, campaign_id: str, priority: int, now: datetime) -> list[PlannedSend]:
        """The higher-priority runs of other campaigns due later today (the brand's day) that want this person."""
        if self.planned is None or not self.caps(profile.brand_id):
            return []  # no cap: every run has room
        brand = self.org.brand(profile.brand_id)
        zone = zone_of(brand.timezone, "UTC")
        local = now.astimezone(zone)
        midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=zone)
        return [
            PlannedSend(run.campaign_id, run.priority, run.channel, run.at)
            for run in self.planned.due(profile.brand_id, now, midnight.astimezone(UTC))
            if run.priority > priority and run.campaign_id != campaign_id and run.wants(profile)
        ]


def usual_store(profile: Profile) -> str | None:
    """The store of the person's brand where most of their events happened (ties: the lowest id), if any."""
    counts: dict[str, int] = {}
    for key, facts in profile.scoped_facts.items():
        brand_id, store_id = split_scope_key(key)
        if brand_id == profile.brand_id and store_id is not None:
            counts[store_id] = counts.get(store_id, 0) + sum(facts.store_counts.values())
    return min(counts, key=lambda s: (-counts[s], s)) if counts else None


def person_zone(brand: BrandConfig, profile: Profile | None) -> ZoneInfo:
    """The person's time zone: their profile's, else their usual store's (the brand's `store_timezones`), else the
    brand's."""
    if profile is None:
        return zone_of(None, brand.timezone)
    store = usual_store(profile) if brand.store_timezones else None
    fallback = brand.store_timezones.get(store or "", brand.timezone)
    return zone_of(profile.traits.timezone, fallback)


def zone_of(preferred: str | None, fallback: str) -> ZoneInfo:
    """The person's time zone when zoneinfo knows it, else `fallback` (the brand's)."""
    for name in (preferred, fallback):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue  # a profile's free-text time zone that zoneinfo does not know: the brand's
    return ZoneInfo("UTC")
