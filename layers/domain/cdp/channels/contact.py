"""Contact policy, enforced when a campaign message actually leaves (also after any wait or queue), across every
campaign and journey of a brand (`cdp.org.ContactPolicy`):

- quiet hours in the recipient's time zone (the profile's, else the brand's): the message is deferred to the end of
  the quiet time, not dropped (`Deferrals`: the schedule's tick orders it again then);
- frequency caps per channel and in total: a send is recorded in the person's contact history only if no cap would
  be passed, in one conditional write, so two campaigns sending to one person at once never exceed a cap together.

- a persistent global control group: a fixed share of the brand's customers (a stable hash of brand and person)
  receives no marketing at all, so the whole programme can be measured against them (`in_global_control`);
- suppression lists: members of the brand's `suppress_audiences` (dynamic audiences: their membership is a tag)
  receive no marketing.

Marketing needs the person's opt-in on the channel; a service message (`purpose: service`: an order, a delivery, an
expiry notice) needs only that they have not refused service messages there, and skips caps, quiet hours, the
control group and the suppression lists (PIPL keeps the two consents apart).

Priority when two campaigns want the same person on the same day: first come, first served. The one whose send
reaches the person first is sent; the other finds the cap reached and is suppressed (`suppressed_frequency_cap`).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cdp.channels.models import SendBatchRequest
from cdp.org import BrandConfig, FrequencyCap, OrgDirectory
from cdp.profile.models import Profile
from cdp.tags.selection import AUDIENCE_PREFIX


class ContactLedger(ABC):
    """Each person's recent campaign sends (the ledger table on AWS: `cdp.channels.ledger.DynamoContactLedger`)."""

    @abstractmethod
    def reserve(self, brand_id: str, person_id: str, channel: str, at: datetime, caps: Sequence[FrequencyCap]) -> bool:
        """Record a send at `at` unless it would pass one of `caps` (then False and nothing is recorded)."""

    @abstractmethod
    def release(self, brand_id: str, person_id: str, channel: str, at: datetime) -> None:
        """Take back a recorded send that certainly did not leave."""


class Deferrals(ABC):
    """Sends held back (by quiet hours, or by a provider's rate), ordered again by the tick once their time has come
    (`cdp.campaigns.journeys_dynamodb`)."""

    @abstractmethod
    def defer(self, request: SendBatchRequest, until: datetime) -> None:
        """Keep `request` (its persons: one held by quiet hours, the rest of a batch held by a rate) to be ordered
        again at `until`."""


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

    def quiet_until(self, profile: Profile, now: datetime) -> datetime | None:
        """When the quiet time the person is in ends (UTC), or None when they may be messaged now."""
        brand = self.org.brand(profile.brand_id)
        quiet = brand.contact.quiet_hours
        if quiet is None:
            return None
        until = quiet.until(now.astimezone(zone_of(profile.traits.timezone, brand.timezone)))
        return until.astimezone(UTC) if until else None

    def caps(self, brand_id: str) -> list[FrequencyCap]:
        return list(self.org.brand(brand_id).contact.caps)

    def excluded(self, profile: Profile) -> str | None:
        return exclusion(self.org.brand(profile.brand_id), profile)


def zone_of(preferred: str | None, fallback: str) -> ZoneInfo:
    """The person's time zone when zoneinfo knows it, else `fallback` (the brand's)."""
    for name in (preferred, fallback):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue  # a profile's free-text time zone that zoneinfo does not know: the brand's
    return ZoneInfo("UTC")
