"""Built-in tag families computed from the profile: lifecycle stage, RFM value, and windowed purchase tags.

Every tag that depends on time also yields the moment it would change with no new event, so a sweep can refresh it
exactly then (windowed tags expire on time, members turn dormant on time).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from cdp.profile.models import Profile, TagValue


class LifecycleThresholds(BaseModel):
    mature_orders: int = Field(default=3, ge=2)
    dormant_after_days: int = Field(default=90, ge=1)
    churned_after_days: int = Field(default=365, ge=2)


class RfmThresholds(BaseModel):
    """Fixed cut points (real-time tags cannot wait for nightly quantiles). Recency in days, monetary in minor units."""

    recency_days: tuple[int, int, int, int] = (30, 60, 120, 240)  # <= each -> 5, 4, 3, 2; else 1
    frequency: tuple[int, int, int, int] = (10, 6, 3, 2)  # >= each -> 5, 4, 3, 2; 1 order -> 1
    monetary_minor: tuple[int, int, int, int] = (500_000, 200_000, 80_000, 30_000)  # >= each -> 5, 4, 3, 2


class TagConfig(BaseModel):
    lifecycle: LifecycleThresholds = Field(default_factory=LifecycleThresholds)
    rfm: RfmThresholds = Field(default_factory=RfmThresholds)
    recent_purchase_days: int = Field(default=7, ge=1)


DEFAULT_TAG_CONFIG = TagConfig()

LIFECYCLE = "lifecycle"
RFM_SCORE = "rfm_score"
RFM_SEGMENT = "rfm_segment"
PURCHASED_RECENTLY = "purchased_last_7d"


@dataclass(frozen=True)
class ComputedTags:
    values: dict[str, str | int | bool]
    expires: dict[str, datetime]  # per tag: when it lapses by itself
    next_change_at: datetime | None  # the earliest moment any tag changes without a new event


def compute_tags(profile: Profile, now: datetime, config: TagConfig = DEFAULT_TAG_CONFIG) -> ComputedTags:
    f = profile.facts
    values: dict[str, str | int | bool] = {}
    expires: dict[str, datetime] = {}
    boundaries: list[datetime] = []
    last = f.last_order_at
    values[LIFECYCLE] = _lifecycle(f.order_count, last, now, config.lifecycle, boundaries)
    if last is not None and f.order_count > 0:
        r, r_next = _recency_score(last, now, config.rfm)
        if r_next:
            boundaries.append(r_next)
        fr = _at_least(f.order_count, config.rfm.frequency)
        m = _at_least(f.net_spend_minor, config.rfm.monetary_minor)
        values[RFM_SCORE] = f"{r}{fr}{m}"
        values[RFM_SEGMENT] = _segment(r, fr)
        window_end = last + timedelta(days=config.recent_purchase_days)
        if now < window_end:
            values[PURCHASED_RECENTLY] = True
            expires[PURCHASED_RECENTLY] = window_end
            boundaries.append(window_end)
    future = [b for b in boundaries if b > now]
    return ComputedTags(values=values, expires=expires, next_change_at=min(future) if future else None)


def _lifecycle(
    orders: int, last: datetime | None, now: datetime, t: LifecycleThresholds, boundaries: list[datetime]
) -> str:
    if orders == 0 or last is None:
        return "introduction"
    dormant_at = last + timedelta(days=t.dormant_after_days)
    churned_at = last + timedelta(days=t.churned_after_days)
    boundaries.extend([dormant_at, churned_at])
    if now >= churned_at:
        return "churned"
    if now >= dormant_at:
        return "dormant"
    return "mature" if orders >= t.mature_orders else "growth"


def _recency_score(last: datetime, now: datetime, t: RfmThresholds) -> tuple[int, datetime | None]:
    age = now - last
    for score, days in zip((5, 4, 3, 2), t.recency_days, strict=True):
        if age <= timedelta(days=days):
            return score, last + timedelta(days=days, microseconds=1)
    return 1, None


def _at_least(value: int, cuts: tuple[int, int, int, int]) -> int:
    for score, cut in zip((5, 4, 3, 2), cuts, strict=True):
        if value >= cut:
            return score
    return 1


def _segment(r: int, f: int) -> str:
    if r >= 4 and f >= 4:
        return "champions"
    if r >= 3 and f >= 3:
        return "loyal"
    if r >= 4 and f == 1:
        return "new"
    if r >= 4:
        return "potential"
    if r <= 2 and f >= 3:
        return "at_risk"
    if r <= 2:
        return "hibernating"
    return "needs_attention"


def merge_with_previous(
    previous: dict[str, TagValue], computed: ComputedTags, now: datetime, owned: frozenset[str]
) -> tuple[dict[str, TagValue], list[TagChange]]:
    """New tag map: unchanged values keep their `since`; tags this family owns but no longer yields are removed.

    Tags other writers own (predictive tags, later families) pass through untouched.
    """
    out = {k: v for k, v in previous.items() if k not in owned}
    changes: list[TagChange] = []
    for name, value in computed.values.items():
        old = previous.get(name)
        since = old.since if old is not None and old.value == value else now
        out[name] = TagValue(value=value, since=since, expires_at=computed.expires.get(name))
        if old is None or old.value != value:
            changes.append(TagChange(tag=name, old=old.value if old else None, new=value))
    for name in owned - computed.values.keys():
        if name in previous:
            changes.append(TagChange(tag=name, old=previous[name].value, new=None))
    return out, changes


class TagChange(BaseModel):
    tag: str
    old: str | int | bool | None
    new: str | int | bool | None


BUILTIN_TAGS = frozenset({LIFECYCLE, RFM_SCORE, RFM_SEGMENT, PURCHASED_RECENTLY})
