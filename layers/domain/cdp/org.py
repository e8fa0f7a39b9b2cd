"""The brand's organisation: group -> brand -> dealer -> store, and each brand's identity and merge policies.

Identity is resolved per group by default (a person who buys from two brands of one group is one person), or per
brand when the brand says so. Facts are kept per (brand, store) scope and rolled up along this hierarchy.
The directory is JSON validated here; an error names the brand and field. Brands not listed get the defaults and
form a group of their own.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cdp.errors import CdpError
from cdp.identifiers.link_rules import IdentityRules
from cdp.identifiers.model import DEFAULT_PHONE_REGION

ORG_CONFIG_ENV = "CDP_ORG_CONFIG"  # a path to the directory JSON; the packaged default is used when unset
_DEFAULT_FILE = Path(__file__).with_name("org.default.json")

TraitRule = Literal["most_recent", "source_priority", "keep_all"]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TraitPolicy(_Config):
    rule: TraitRule = "most_recent"
    source_priority: tuple[str, ...] = Field(default=(), description="for rule=source_priority: most trusted first")


class LoyaltyPolicy(_Config):
    """Loyalty math on merge: levels keep the highest, points convert per program, cards stay per card."""

    level_order: tuple[str, ...] = Field(
        default=("basic", "silver", "gold", "platinum", "diamond"), description="lowest first"
    )
    level_rule: Literal["highest", "most_recent"] = "highest"
    points_per_brand_point: dict[str, int] = Field(
        default_factory=dict, description="program -> how many of its points make one brand point (default 1)"
    )

    def rate(self, program: str) -> int:
        return self.points_per_brand_point.get(program, 1)


class MergePolicy(_Config):
    survivor: Literal["oldest", "most_events", "highest_level"] = "oldest"
    traits: dict[str, TraitPolicy] = Field(default_factory=dict, description="trait -> rule; default most_recent")

    def trait(self, name: str) -> TraitPolicy:
        return self.traits.get(name, TraitPolicy())


def check_zone(name: str) -> str:
    """An IANA time zone name that zoneinfo knows (e.g. Asia/Shanghai), else ValueError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (an IANA name, e.g. Asia/Shanghai)") from exc
    return name


class CampaignPolicy(_Config):
    """Launch safety: a campaign version whose planned sends or budget exceed these needs an approval before it
    runs (by another client than the one that defined it); None: no limit."""

    approval_above_sends: int | None = Field(default=None, ge=0, description="planned touch1 sends (budget cut)")
    approval_above_budget_minor: int | None = Field(default=None, ge=0, description="in the campaign's currency")
    seed_list: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="identifier keys of the staff who get test sends, e.g. phone:+8613800138000",
    )


class FrequencyCap(_Config):
    """At most `max` campaign messages on `channel` (or on all channels together) in any `per_days` days."""

    channel: str = Field(pattern=r"^(all|sms|email|push|wechat|webhook|outbox)$")
    max: int = Field(ge=1, le=1000)
    per_days: int = Field(ge=1, le=90)


class QuietHours(_Config):
    """No campaign message between `start` and `end` in the recipient's time zone (it waits until `end`)."""

    start: time
    end: time

    def until(self, local: datetime) -> datetime | None:
        """The end of the quiet time `local` falls in (same zone), or None when it falls in none."""
        start, end, now = self.start, self.end, local.time()
        if start == end:
            return None
        inside = start <= now < end if start < end else now >= start or now < end
        if not inside:
            return None
        day = local.date() if now < end else local.date() + timedelta(days=1)
        return datetime.combine(day, end, tzinfo=local.tzinfo)


class ContactPolicy(_Config):
    """The brand's contact policy, enforced when a campaign message actually leaves, across all its campaigns (caps,
    quiet hours, the control group and the suppression lists apply to marketing; service messages only need the
    person not to have refused them)."""

    caps: list[FrequencyCap] = Field(default_factory=list, max_length=20)
    quiet_hours: QuietHours | None = None
    global_control_share: float = Field(
        default=0.0, ge=0.0, le=0.2, description="a fixed share of customers who receive no marketing at all"
    )
    suppress_audiences: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="dynamic audiences whose members receive no marketing (complaints, staff, legal holds)",
    )


class BrandConfig(_Config):
    brand_id: str
    group_id: str
    timezone: str = Field(default="Asia/Shanghai", description="IANA name: campaign schedules without their own")
    campaigns: CampaignPolicy = Field(default_factory=CampaignPolicy)
    contact: ContactPolicy = Field(default_factory=ContactPolicy)
    identity_scope: Literal["group", "brand"] = "group"
    phone_region: str = Field(default=DEFAULT_PHONE_REGION, pattern=r"^[A-Z]{2}$")
    dealers: dict[str, tuple[str, ...]] = Field(default_factory=dict, description="dealer id -> its store ids")
    loyalty: LoyaltyPolicy = Field(default_factory=LoyaltyPolicy)
    merge: MergePolicy = Field(default_factory=MergePolicy)
    rules: IdentityRules = Field(default_factory=IdentityRules)

    @property
    def namespace(self) -> str:
        """Identifiers are looked up and persons merged within this namespace."""
        return f"g.{self.group_id}" if self.identity_scope == "group" else f"b.{self.brand_id}"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_zone(value)

    def dealer_of(self, store_id: str | None) -> str | None:
        if store_id is None:
            return None
        return next((d for d, stores in self.dealers.items() if store_id in stores), None)

    @model_validator(mode="after")
    def _stores_once(self) -> BrandConfig:
        seen: dict[str, str] = {}
        for dealer, stores in self.dealers.items():
            for store in stores:
                if store in seen:
                    raise ValueError(f"store {store} is listed under dealers {seen[store]} and {dealer}")
                seen[store] = dealer
        return self


class OrgDirectory(_Config):
    brands: dict[str, BrandConfig] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _brand_ids(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("brands"), dict):
            data = {**data, "brands": {k: {"brand_id": k, **v} for k, v in data["brands"].items()}}
        return data

    def brand(self, brand_id: str) -> BrandConfig:
        return self.brands.get(brand_id) or BrandConfig(brand_id=brand_id, group_id=brand_id)

    def brands_in_group(self, group_id: str) -> list[str]:
        return sorted(b for b, c in self.brands.items() if c.group_id == group_id)


class ScopeRef(_Config):
    """Where a key, a view or a fact sits in the hierarchy; None parts are not narrowed."""

    group_id: str | None = None
    brand_id: str | None = None
    dealer_id: str | None = None
    store_id: str | None = None

    def contains(self, org: OrgDirectory, brand_id: str, store_id: str | None) -> bool:
        """Whether facts of (brand, store) are visible at this scope."""
        cfg = org.brand(brand_id)
        if self.group_id and cfg.group_id != self.group_id:
            return False
        if self.brand_id and brand_id != self.brand_id:
            return False
        if self.dealer_id and cfg.dealer_of(store_id) != self.dealer_id:
            return False
        return not (self.store_id and store_id != self.store_id)

    def holds_brand(self, org: OrgDirectory, brand_id: str) -> bool:
        """Whether the whole brand lies within the scope (brand-wide work: campaigns, offers, budgets)."""
        return self.covers_brand(org, brand_id) and not (self.dealer_id or self.store_id)

    def covers_brand(self, org: OrgDirectory, brand_id: str) -> bool:
        """Whether any part of the brand lies within the scope (a store-scoped key covers its store's brand)."""
        cfg = org.brand(brand_id)
        if self.group_id and cfg.group_id != self.group_id:
            return False
        if self.brand_id and self.brand_id != brand_id:
            return False
        if self.dealer_id and self.dealer_id not in cfg.dealers:
            return False
        # a brand that lists its stores must list this one; one that lists none cannot say
        return not (self.store_id and cfg.dealers and cfg.dealer_of(self.store_id) is None)

    @property
    def label(self) -> str:
        parts = [
            ("group", self.group_id),
            ("brand", self.brand_id),
            ("dealer", self.dealer_id),
            ("store", self.store_id),
        ]
        return "/".join(f"{k}:{v}" for k, v in parts if v) or "all"


class OrgConfigError(CdpError):
    """The organisation directory is invalid (names the file and field)."""


def parse_org(text: str, origin: str) -> OrgDirectory:
    try:
        return OrgDirectory.model_validate(json.loads(text))
    except json.JSONDecodeError as exc:
        raise OrgConfigError(f"{origin}: not JSON ({exc})") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise OrgConfigError(f"{origin}: {problems}") from exc


@cache
def load_org() -> OrgDirectory:
    path = Path(os.environ.get(ORG_CONFIG_ENV) or _DEFAULT_FILE)
    try:
        text = path.read_text()
    except OSError as exc:
        raise OrgConfigError(f"{path}: cannot read the organisation directory ({exc})") from exc
    return parse_org(text, str(path))
