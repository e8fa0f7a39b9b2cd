"""The brand's organisation: group -> brand -> dealer -> store, and each brand's identity and merge policies.

Identity is resolved per group by default (a person who buys from two brands of one group is one person), or per
brand when the brand says so. Facts are kept per (brand, store) scope and rolled up along this hierarchy.
The directory is JSON validated here; an error names the brand and field. Brands not listed get the defaults and
form a group of their own.
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Literal
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


ProgramId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:@/#+\-]+$")]
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class EarnMultiplier(_Config):
    """Extra points on matching order lines: every condition given must hold (none given: every line). A line earns
    at the highest multiplier that matches it; multipliers do not stack."""

    times: float = Field(gt=1.0, le=20.0, description="the line's base points are multiplied by this")
    categories: tuple[str, ...] = Field(default=(), max_length=100, description="the line's category is one of these")
    skus: tuple[str, ...] = Field(default=(), max_length=500, description="the line's sku is one of these")
    sku_prefixes: tuple[str, ...] = Field(default=(), max_length=50, description="a product line: skus starting so")
    stores: tuple[str, ...] = Field(default=(), max_length=500, description="the order's store is one of these")
    weekdays: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = Field(
        default=(), description="member days by weekday, in the brand's time zone"
    )
    month_days: tuple[int, ...] = Field(default=(), max_length=31, description="member days by day of the month")
    levels: tuple[str, ...] = Field(default=(), max_length=20, description="the member's level is one of these")

    @field_validator("month_days")
    @classmethod
    def _days(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        bad = [d for d in value if not 1 <= d <= 31]
        if bad:
            raise ValueError(f"days of the month run 1..31, not {bad}")
        return value

    def matches(self, *, sku: str, category: str | None, store: str | None, local_day: date, level: str | None) -> bool:
        checks = (
            not self.categories or category in self.categories,
            not self.skus or sku in self.skus,
            not self.sku_prefixes or sku.startswith(self.sku_prefixes),
            not self.stores or store in self.stores,
            not self.weekdays or _WEEKDAYS[local_day.weekday()] in self.weekdays,
            not self.month_days or local_day.day in self.month_days,
            not self.levels or level in self.levels,
        )
        return all(checks)


class EarnRule(_Config):
    points_per_unit: float = Field(
        gt=0.0, le=1000.0, description="base points per major currency unit paid (1: a point per yuan)"
    )
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$", description="orders in other currencies earn nothing")
    multipliers: tuple[EarnMultiplier, ...] = Field(default=(), max_length=50)


class LevelRule(_Config):
    level: str = Field(min_length=1, max_length=32)
    qualifying_spend_minor: int = Field(ge=0, description="paid in the qualifying window, in the earn currency")
    benefits: tuple[ProgramId, ...] = Field(default=(), max_length=20, description="granted while at this level")


class LoyaltyProgram(_Config):
    """A points programme. `platform`: the platform is its system of record and computes points, expiry and levels
    by these rules (sources may not report its points); `reported`: POS, dealer or app systems report its points and
    levels and they are kept as reported (no rule runs). Never both, so nothing is counted twice."""

    system_of_record: Literal["platform", "reported"]
    earn: EarnRule | None = None
    expire_after_months: int | None = Field(
        default=None,
        ge=1,
        le=120,
        description="points earned in a month expire at the end of the month this many later",
    )
    remind_days_before: int = Field(
        default=30, ge=1, le=90, description="a `loyalty_expiring` event this long before points or a level expire"
    )
    levels: tuple[LevelRule, ...] = Field(
        default=(), max_length=20, description="lowest first; the first (spend 0) is the entry level"
    )
    qualifying_months: int = Field(default=12, ge=1, le=36, description="the spend window levels are judged on")
    level_hold_months: int = Field(default=12, ge=1, le=36, description="a level reached is kept at least this long")
    converts_to: dict[ProgramId, tuple[int, int]] = Field(
        default_factory=dict, description="program -> (points given, points got), e.g. (10, 1): ten for one"
    )

    @model_validator(mode="after")
    def _rules_fit_the_record(self) -> LoyaltyProgram:
        if self.system_of_record == "reported":
            if self.earn or self.levels or self.expire_after_months or self.converts_to:
                raise ValueError("a reported programme keeps points as its source reports them: it takes no rules")
            return self
        spends = [rule.qualifying_spend_minor for rule in self.levels]
        if spends and spends[0] != 0:
            raise ValueError("levels: the first is the entry level every member holds (qualifying_spend_minor 0)")
        if spends != sorted(spends) or len(set(spends)) != len(spends):
            raise ValueError("levels: list them lowest first, each needing more qualifying spend than the one before")
        names = [rule.level for rule in self.levels]
        if len(set(names)) != len(names):
            raise ValueError("levels: a level is listed twice")
        for target, (give, get) in self.converts_to.items():
            if give < 1 or get < 1:
                raise ValueError(f"converts_to.{target}: both counts must be at least 1")
        return self

    def level_for(self, spend_minor: int) -> LevelRule | None:
        """The highest level the qualifying spend reaches (None: below the first)."""
        return next((rule for rule in reversed(self.levels) if spend_minor >= rule.qualifying_spend_minor), None)

    def rule_of(self, level: str | None) -> LevelRule | None:
        return next((rule for rule in self.levels if rule.level == level), None)


class LoyaltyPolicy(_Config):
    """Loyalty math on merge: levels keep the highest, points convert per program, cards stay per card. And the
    brand's points programmes: who keeps each one, and the rules of those the platform keeps."""

    level_order: tuple[str, ...] = Field(
        default=("basic", "silver", "gold", "platinum", "diamond"), description="lowest first"
    )
    level_rule: Literal["highest", "most_recent"] = "highest"
    points_per_brand_point: dict[str, int] = Field(
        default_factory=dict, description="program -> how many of its points make one brand point (default 1)"
    )
    programs: dict[ProgramId, LoyaltyProgram] = Field(default_factory=dict, max_length=20)

    def rate(self, program: str) -> int:
        return self.points_per_brand_point.get(program, 1)

    def kept_by_platform(self, program: str | None) -> bool:
        found = self.programs.get(program) if program else None
        return found is not None and found.system_of_record == "platform"

    def benefit_owner(self, benefit_id: str) -> str | None:
        """The programme the platform keeps whose levels grant `benefit_id` (the profile keeps a benefit by its id)."""
        return next(
            (
                name
                for name, program in sorted(self.programs.items())
                if program.system_of_record == "platform" and any(benefit_id in r.benefits for r in program.levels)
            ),
            None,
        )

    @model_validator(mode="after")
    def _programs_fit(self) -> LoyaltyPolicy:
        for name, program in self.programs.items():
            unknown = [rule.level for rule in program.levels if rule.level not in self.level_order]
            if unknown:
                raise ValueError(f"programs.{name}.levels: {unknown} are not in level_order {list(self.level_order)}")
            for target in program.converts_to:
                if not self.kept_by_platform(target) or target == name:
                    raise ValueError(
                        f"programs.{name}.converts_to.{target}: points convert only into another programme the "
                        "platform keeps"
                    )
        return self


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
    attribution_window_days: int = Field(
        default=7, ge=1, le=90, description="an order is credited to the last message or click this many days before"
    )


class FrequencyCap(_Config):
    """At most `max` campaign messages on `channel` (or on all channels together) in any `per_days` days."""

    channel: str = Field(pattern=r"^(all|sms|email|push|wechat|webhook|outbox|inapp)$")
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
    store_timezones: dict[str, str] = Field(
        default_factory=dict,
        max_length=10_000,
        description="store id -> IANA name: the time zone of a person who gave none is their usual store's",
    )
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

    @field_validator("store_timezones")
    @classmethod
    def _known_store_zones(cls, value: dict[str, str]) -> dict[str, str]:
        for store, zone in value.items():
            try:
                check_zone(zone)
            except ValueError as exc:
                raise ValueError(f"store {store}: {exc}") from exc
        return value

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


class BrandSummary(BaseModel):
    """A brand as a caller may see it listed: where it sits in the org and what a console shows beside it."""

    brand_id: str
    group_id: str
    timezone: str
    dealers: dict[str, list[str]] = Field(description="dealer id -> its store ids (those within the caller's scope)")
    stores: list[str] = Field(description="the brand's stores the caller may see (its dealers' and its own)")


class BrandList(BaseModel):
    brands: list[BrandSummary] = Field(description="the brands the caller's org scope covers, by id")


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


def visible_brands(org: OrgDirectory, scope: ScopeRef) -> BrandList:
    """The org directory's brands a key or user may look at: every brand its scope covers, with only the dealers
    and stores inside the scope (a store's key sees its brand and its store)."""
    listed = []
    for brand_id in sorted(org.brands):
        if not scope.covers_brand(org, brand_id):
            continue
        brand = org.brands[brand_id]
        dealers = {
            d: [s for s in stores if scope.store_id in (None, s)]
            for d, stores in sorted(brand.dealers.items())
            if scope.dealer_id in (None, d)
        }
        stores = sorted({s for ids in dealers.values() for s in ids} | set(brand.store_timezones))
        if scope.store_id is not None:
            stores = [s for s in stores if s == scope.store_id]
        elif scope.dealer_id is not None:
            stores = sorted({s for ids in dealers.values() for s in ids})
        listed.append(
            BrandSummary(
                brand_id=brand_id,
                group_id=brand.group_id,
                timezone=brand.timezone,
                dealers={d: ids for d, ids in dealers.items() if ids},
                stores=stores,
            )
        )
    return BrandList(brands=listed)
