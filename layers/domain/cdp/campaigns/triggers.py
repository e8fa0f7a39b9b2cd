"""What enters a person into a journey (`Trigger`), and the period in which each kind fires once per person.

- `event`: an event of this type is applied to the person's profile (`where`: carrying these values); every event
  is its own occasion (a redelivery of it enters nobody).
- `audience_entered` / `lifecycle`: the tag engine announces the person entered a dynamic audience or a lifecycle
  stage; once per announcement.
- `date`: the person's own date comes round (their birthday or a family member's, the first day of a month a tag
  lists, their predicted next purchase), entered by the daily sweep (`cdp.campaigns.sweeps`); once per person per
  birthday year (per member), month or predicted date.
- `weather`: a reading posted for a city crosses a threshold; everyone whose profile city it is enters, once per
  person per local day.
- `location`: a device reports entering a store's geofence, or home; once per person per place and local day.

A person already in the journey is not entered again, and one who left enters again only after
`reentry_after_days` (`cdp.campaigns.journeys`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cdp.ingest.events import CORRELATION_KEYS, EVENT_TYPES, FamilyRelation
from cdp.profile.models import Profile
from cdp.shared.time import anniversary

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
CorrelationKey = Literal[CORRELATION_KEYS]  # type: ignore[valid-type]
DEFAULT_CYCLE_TAG = "repurchase_cycle_days"
MAX_CYCLE_DAYS = 3650


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _hh_mm(value: time) -> time:
    if value.second or value.microsecond or value.tzinfo is not None:
        raise ValueError("give a local time as HH:MM")
    return value


class LifecycleTrigger(_Frozen):
    to: str = Field(min_length=1, max_length=64, description="the stage entered, e.g. dormant")


class DateTrigger(_Frozen):
    """`days_before` a person's own date: `birthday`; `family_birthday` (a family member's the profile holds, of
    `relation` only when given); `month_tag` (the first day of each month a tag lists, e.g. cake_months "3,11");
    `predicted_purchase` (the last order + the days of a cycle tag, repurchase_cycle_days by
    default). The daily sweep enters them at `at`, the brand's local time; a sweep that was late still enters them
    up to the date itself."""

    of: Literal["birthday", "family_birthday", "month_tag", "predicted_purchase"]
    tag: str | None = Field(default=None, min_length=1, max_length=64, description="month_tag / predicted_purchase")
    relation: FamilyRelation | None = Field(default=None, description="family_birthday: only these members, e.g. child")
    days_before: int = Field(default=7, ge=0, le=90)
    at: time = Field(default=time(9, 0), description="local time of the daily sweep, HH:MM")

    _at = field_validator("at")(_hh_mm)

    @model_validator(mode="after")
    def _needs_tag(self) -> DateTrigger:
        if self.of == "month_tag" and self.tag is None:
            raise ValueError("a month_tag trigger names the tag that lists the months, e.g. cake_months")
        if self.of in ("birthday", "family_birthday") and self.tag is not None:
            raise ValueError(f"a {self.of} trigger reads the birthday: remove `tag`")
        if self.relation is not None and self.of != "family_birthday":
            raise ValueError("`relation` filters a family_birthday trigger")
        return self

    def occasion(self, profile: Profile, today: date, zone: tzinfo = UTC) -> tuple[date, str] | None:
        """The person's date this sweep is for and the key of its period, when `today` falls in the `days_before`
        ahead of it (or on it); None otherwise. `zone`: the person's, in which their last order's date is read."""
        for day, key in self._dates(profile, today, zone):
            if day - timedelta(days=self.days_before) <= today <= day:
                return day, key
        return None

    def _dates(self, profile: Profile, today: date, zone: tzinfo) -> list[tuple[date, str]]:
        if self.of == "birthday":
            born = profile.traits.birthday
            if born is None:
                return []
            return [(anniversary(born, year), f"birthday:{year}") for year in (today.year, today.year + 1)]
        if self.of == "family_birthday":
            members = [
                (key, m.birthday)
                for key, m in sorted(profile.facts.family.items())
                if self.relation is None or m.relation == self.relation
            ]
            found = [
                (anniversary(born, year), f"family_birthday:{key}:{year}")
                for key, born in members
                for year in (today.year, today.year + 1)
            ]
            return sorted(found)
        if self.of == "month_tag":
            value = profile.tags.get(self.tag or "")
            months = _months(value.value if value else None)
            firsts = [date(today.year + y, m, 1) for y in (0, 1) for m in months]
            return [(d, f"{self.tag}:{d:%Y-%m}") for d in sorted(firsts)]
        cycle = profile.tags.get(self.tag or DEFAULT_CYCLE_TAG)
        last = profile.facts.last_order_at
        if (
            cycle is None
            or last is None
            or isinstance(cycle.value, bool | str)
            or not 1 <= cycle.value <= MAX_CYCLE_DAYS
        ):
            return []  # no cycle, or one no purchase rhythm has (a bad tag value must not break the daily sweep)
        expected = last.astimezone(zone).date() + timedelta(days=round(cycle.value))
        return [(expected, f"predicted_purchase:{expected.isoformat()}")]


def _months(value: object) -> list[int]:
    if not isinstance(value, str):
        return []
    out = []
    for part in value.split(","):
        part = part.strip()
        if part.isdigit() and 1 <= int(part) <= 12:
            out.append(int(part))
    return out


class WeatherTrigger(_Frozen):
    """A reading posted for a city (`POST /v1/signals`) crosses a threshold: `below_c` (a cold snap: heaters, hot
    drinks) or `above_c` (cold drinks). Everyone of the brand whose profile city is that city enters (any city when
    `city` is omitted), once per person per local day."""

    city: str | None = Field(default=None, min_length=1, max_length=100)
    below_c: float | None = Field(default=None, ge=-90, le=60)
    above_c: float | None = Field(default=None, ge=-90, le=60)

    @model_validator(mode="after")
    def _one(self) -> WeatherTrigger:
        if (self.below_c is None) == (self.above_c is None):
            raise ValueError("a weather trigger has exactly one of below_c or above_c")
        return self

    def covers(self, city: str) -> bool:
        return self.city is None or self.city.casefold() == city.casefold()

    def crossed(self, previous: float | None, now: float) -> bool:
        """The reading `now` crosses the threshold from `previous` (None: no reading before, so any side counts)."""
        if self.below_c is not None:
            return now < self.below_c and (previous is None or previous >= self.below_c)
        assert self.above_c is not None
        return now > self.above_c and (previous is None or previous <= self.above_c)


class LocationTrigger(_Frozen):
    """A device reports entering a place (`POST /v1/signals`): a store's geofence (`store_ids`: only these) or
    home; `between` local times of the person (e.g. near home in the evening)."""

    place: Literal["store", "home"]
    store_ids: list[str] | None = Field(default=None, min_length=1, max_length=500)
    between: tuple[time, time] | None = Field(default=None, description='local times, e.g. ["17:00", "21:00"]')

    @field_validator("between")
    @classmethod
    def _times(cls, value: tuple[time, time] | None) -> tuple[time, time] | None:
        if value is not None:
            _hh_mm(value[0])
            _hh_mm(value[1])
            if value[0] == value[1]:
                raise ValueError("between needs two different times (it would never hold)")
        return value

    def covers(self, place: str, store_id: str | None, local: datetime) -> bool:
        if place != self.place or (self.store_ids is not None and store_id not in self.store_ids):
            return False
        if self.between is None:
            return True
        start, end, now = self.between[0], self.between[1], local.time().replace(tzinfo=None)
        return start <= now < end if start <= end else (now >= start or now < end)


class Trigger(_Frozen):
    """Who enters the journey, and when: exactly one of `event` (with `where`), `audience_entered`, `lifecycle`,
    `date`, `weather` or `location`; then only if they meet the campaign's audience conditions."""

    event: EventType | None = Field(default=None, description="a canonical event type, e.g. add_to_cart")
    where: dict[CorrelationKey, str] | None = Field(
        default=None, max_length=5, description="an event only with these values, e.g. {category: air_conditioner}"
    )
    audience_entered: str | None = Field(
        default=None, pattern=r"^[a-z][a-z0-9_]{0,63}$", description="a dynamic audience's id"
    )
    lifecycle: LifecycleTrigger | None = Field(default=None, description="a lifecycle.changed to this stage")
    date: DateTrigger | None = Field(default=None, description="a person's own date comes round")
    weather: WeatherTrigger | None = Field(default=None, description="a posted weather reading crosses a threshold")
    location: LocationTrigger | None = Field(default=None, description="a device enters a store's geofence or home")

    @model_validator(mode="after")
    def _one(self) -> Trigger:
        kinds = (self.event, self.audience_entered, self.lifecycle, self.date, self.weather, self.location)
        if sum(x is not None for x in kinds) != 1:
            raise ValueError(
                "a trigger is exactly one of event, audience_entered, lifecycle, date, weather or location"
            )
        if self.where is not None and self.event is None:
            raise ValueError("`where` filters an event trigger")
        return self

    @property
    def swept(self) -> bool:
        """Entered by a sweep over the profiles (date, weather), not one person at a time."""
        return self.date is not None or self.weather is not None

    def fires_on(self, kind: str, value: str, keys: Mapping[str, Sequence[str]] | None = None) -> bool:
        """Whether a signal (`event`/type, `audience_entered`/audience, `lifecycle`/stage) enters the journey."""
        if kind == "event":
            if self.event != value:
                return False
            return all(want in (keys or {}).get(key, ()) for key, want in (self.where or {}).items())
        if kind == "audience_entered":
            return self.audience_entered == value
        return kind == "lifecycle" and self.lifecycle is not None and self.lifecycle.to == value
