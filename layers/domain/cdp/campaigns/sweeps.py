"""Journeys entered by a sweep over the profiles: a person's own date coming round, and a weather reading crossing a
threshold in their city (`cdp.campaigns.triggers`). Location signals enter one person at once.

A sweep is opened for one journey and one occasion: each day at the trigger's local time for a date trigger
(`open_date_sweeps`), on the crossing reading for a weather trigger (`on_weather`). The schedule's tick runs the
open sweeps (`run_sweeps`): it scans the profiles shard by shard and each shard page by page (DynamoDB's 1 MB
pages), one scan serving every open sweep at the same place, and records after each page either the shard done or
the cursor of its next page, so a sweep larger than one tick - or a shard larger than one tick - goes on at the
next one from where it stopped. A page scanned twice (a tick that stopped before recording it) enters nobody twice:
the occasion's key is the entry's key.

Why a sweep and not a timer per person: a timer needs every person's dates indexed as they change and backfilled
when a journey goes live; a daily scan reads what the profiles say today, at the price of reading the table once a
day per brand with a date journey (the README's cost table has the figure).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Annotated, ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from cdp import topology
from cdp.campaigns.journeys import JourneyEngine, Live
from cdp.ingest.events import Token, UtcDatetime
from cdp.observability import logger
from cdp.org import OrgDirectory
from cdp.profile.models import Profile
from cdp.profile.ports import ProfileReader
from cdp.shared.envelope import Publishable

SWEEP_SHARDS = 64  # segments of the parallel scan; progress is kept per page, so a shard of any size goes on


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sweep(_Frozen):
    """One journey's occasion to enter persons found by a scan: `date` (persons whose date falls in the window on
    `day`) or `weather` (persons whose city is `city`, on `day`).

    Its progress: the shards scanned (`done`) and, for a shard begun, the cursor of its next page (`cursors`). A page
    is one Scan request of up to 1 MB (128 read units, eventually consistent: about $0.000016 on demand) and one
    write per sweep it serves to record it (1 write unit while the sweep's item stays under 1 KB: about $0.0000006,
    under 5% of the page), so pages are kept large."""

    brand_id: str
    campaign_id: str
    kind: Literal["date", "weather"]
    day: date = Field(description="the brand's local date the sweep is for")
    city: str | None = None
    done: frozenset[int] = Field(default_factory=frozenset, description="shards scanned")
    cursors: dict[int, str] = Field(default_factory=dict, description="shard begun -> the cursor of its next page")

    @property
    def label(self) -> str:
        return f"{self.kind}#{self.day.isoformat()}#{(self.city or '').casefold()}"  # one sweep per city and day

    def key_for(self, journey: Live, profile: Profile, zone: tzinfo = UTC) -> str | None:
        """The entry key of this person's occasion, or None when the sweep is not for them (`zone`: theirs)."""
        trigger = journey.definition.trigger
        if trigger is None:
            return None
        if self.kind == "date" and trigger.date is not None:
            found = trigger.date.occasion(profile, self.day, zone)
            return f"date:{found[1]}" if found else None
        city = profile.traits.city
        if self.kind == "weather" and self.city and city and city.casefold() == self.city.casefold():
            return f"weather:{self.city.casefold()}:{self.day.isoformat()}"
        return None


class WeatherSignal(_Frozen):
    """A temperature reading for a city (from a weather service the brand subscribes to)."""

    kind: Literal["weather"] = "weather"
    brand_id: Token
    city: str = Field(min_length=1, max_length=100)
    temperature_c: float = Field(ge=-90, le=60)
    observed_at: UtcDatetime


class LocationSignal(_Frozen):
    """A person's device entered a place: a store's geofence (`store_id`) or home."""

    kind: Literal["location"] = "location"
    brand_id: Token
    person_id: str = Field(min_length=1, max_length=128)
    place: Literal["store", "home"]
    store_id: Token | None = None
    at: UtcDatetime


@dataclass(frozen=True)
class Reading:
    kept: bool  # False: a later reading was kept before it, so this one crosses nothing
    previous: float | None = None  # the city's reading it replaced


class SignalReceived(Publishable):
    """A signal for the journey function (published by `POST /v1/signals`)."""

    event_name: ClassVar[str] = topology.SIGNAL_RECEIVED
    event_source: ClassVar[str] = topology.SOURCE_CAMPAIGNS

    brand_id: str
    signal: Annotated[WeatherSignal | LocationSignal, Field(discriminator="kind")]


class SweepStore(ABC):
    """Open sweeps and each city's latest reading (the campaigns table on AWS: `cdp.campaigns.journeys_dynamodb`)."""

    @abstractmethod
    def open(self, sweep: Sweep) -> bool:
        """Open a sweep unless it is open or was opened before (then False)."""

    @abstractmethod
    def opened(self) -> list[Sweep]:
        """Every open sweep, with its progress: the shards done and the cursors of the shards begun."""

    @abstractmethod
    def mark(self, sweep: Sweep, shard: int, cursor: str | None = None) -> None:
        """Record a page of a shard scanned: `cursor` the shard's next page, None when the shard is done."""

    @abstractmethod
    def close(self, sweep: Sweep) -> None:
        """The sweep is done (it is not opened again)."""

    @abstractmethod
    def reading(self, signal: WeatherSignal) -> Reading:
        """Keep the reading as its city's latest unless a later one is kept."""


def open_date_sweeps(engine: JourneyEngine, store: SweepStore, org: OrgDirectory, now: datetime) -> int:
    """Open today's sweep of every live date journey whose local time has come; returns how many it opened."""
    opened = 0
    for brand_id, brand in org.brands.items():
        local = now.astimezone(ZoneInfo(brand.timezone))
        for journey in engine.live(brand_id):
            trigger = journey.definition.trigger
            if trigger is None or trigger.date is None or local.time() < trigger.date.at:
                continue
            sweep = Sweep(brand_id=brand_id, campaign_id=journey.definition.campaign_id, kind="date", day=local.date())
            opened += store.open(sweep)
    return opened


def on_weather(engine: JourneyEngine, store: SweepStore, org: OrgDirectory, signal: WeatherSignal) -> list[str]:
    """Keep the reading; open a sweep of every live weather journey whose threshold it crosses in that city."""
    reading = store.reading(signal)
    if not reading.kept:
        return []
    local_day = signal.observed_at.astimezone(ZoneInfo(org.brand(signal.brand_id).timezone)).date()
    done = []
    for journey in engine.live(signal.brand_id):
        trigger = journey.definition.trigger
        weather = trigger.weather if trigger else None
        if weather is None or not weather.covers(signal.city):
            continue
        if not weather.crossed(reading.previous, signal.temperature_c):
            continue
        sweep = Sweep(
            brand_id=signal.brand_id,
            campaign_id=journey.definition.campaign_id,
            kind="weather",
            day=local_day,
            city=signal.city,
        )
        if store.open(sweep):
            done.append(f"{signal.city} {signal.temperature_c:g} C: sweep opened for {sweep.campaign_id}")
    return done


def on_location(engine: JourneyEngine, signal: LocationSignal) -> list[str]:
    """Enter the person into the live journeys whose location trigger covers the place and their local time."""
    journeys = [j for j in engine.live(signal.brand_id) if j.definition.trigger and j.definition.trigger.location]
    if not journeys:
        return []
    profile = engine.profiles.get(signal.person_id)
    if profile is None or profile.brand_id != signal.brand_id:
        return []
    local = signal.at.astimezone(engine.zone_for(signal.brand_id, profile))
    key = f"location:{signal.place}:{signal.store_id or ''}:{local.date().isoformat()}"
    done = []
    for journey in journeys:
        location = journey.definition.trigger.location if journey.definition.trigger else None
        if location is not None and location.covers(signal.place, signal.store_id, local):
            done.append(engine.enter(journey, profile.person_id, key, profile))
    return [d for d in done if d]


def on_signal_received(
    engine: JourneyEngine, store: SweepStore, org: OrgDirectory, received: SignalReceived
) -> list[str]:
    """A signal from `POST /v1/signals`: a weather reading or a location."""
    signal = received.signal
    if isinstance(signal, WeatherSignal):
        return on_weather(engine, store, org, signal)
    return on_location(engine, signal)


@dataclass(frozen=True)
class SweepReport:
    shards: int  # shards finished by this tick
    entered: int
    closed: int
    pages: int = 0


def run_sweeps(
    engine: JourneyEngine,
    store: SweepStore,
    profiles: ProfileReader,
    time_left: Callable[[], float],
    min_left_s: float = 15.0,
) -> SweepReport:
    """Scan the shards the open sweeps still need, each a page at a time from where the sweeps left it (one scan of a
    page for every sweep at that place), entering the persons each sweep is for and recording each page, while more
    than `min_left_s` seconds are left before a page; close the sweeps that are done."""
    sweeps = store.opened()
    shards = pages = entered = 0
    out_of_time = False
    for shard in range(SWEEP_SHARDS):
        journeys = _journeys(engine, [s for s in sweeps if shard not in s.done])
        while True:
            needing = [s for s in sweeps if shard not in s.done]
            if not needing:
                break
            if time_left() < min_left_s:
                out_of_time = True
                break
            # Sweeps at another place in the shard (opened while it was begun) scan it on their own, after these
            cursor = needing[0].cursors.get(shard)
            here = [s for s in needing if s.cursors.get(shard) == cursor]
            page = profiles.scan_page(shard, SWEEP_SHARDS, cursor)
            entered += _enter(engine, journeys, here, page.profiles)
            for sweep in here:
                store.mark(sweep, shard, page.next_cursor)
            sweeps = [_moved(s, shard, page.next_cursor) if s in here else s for s in sweeps]
            pages += 1
            shards += page.next_cursor is None
        if out_of_time:
            break
    closed = 0
    for sweep in sweeps:
        gone = (sweep.brand_id, sweep.campaign_id) not in _journeys(engine, [sweep])
        if gone or len(sweep.done) == SWEEP_SHARDS:
            store.close(sweep)
            closed += 1
    return SweepReport(shards=shards, entered=entered, closed=closed, pages=pages)


def _enter(
    engine: JourneyEngine, journeys: dict[tuple[str, str], Live], sweeps: list[Sweep], found: Iterable[Profile]
) -> int:
    """Enter the persons of a page each sweep is for; how many were entered (one entered before: not again)."""
    entered = 0
    for profile in found:
        for sweep in sweeps:
            journey = journeys.get((sweep.brand_id, sweep.campaign_id))
            if journey is None or sweep.brand_id != profile.brand_id:
                continue
            try:
                key = sweep.key_for(journey, profile, engine.zone_for(profile.brand_id, profile))
            except (ValueError, OverflowError) as exc:  # one person's odd date must not stop the sweep
                logger.warning("sweep skipped a person", person_id=profile.person_id, error=str(exc))
                continue
            if key is not None:
                entered += bool(engine.enter(journey, profile.person_id, key, profile))
    return entered


def _moved(sweep: Sweep, shard: int, cursor: str | None) -> Sweep:
    """The sweep after a page of the shard: at its next page, or with the shard done."""
    cursors = {n: c for n, c in sweep.cursors.items() if n != shard}
    if cursor is None:
        return sweep.model_copy(update={"done": sweep.done | {shard}, "cursors": cursors})
    return sweep.model_copy(update={"cursors": {**cursors, shard: cursor}})


def _journeys(engine: JourneyEngine, sweeps: Iterable[Sweep]) -> dict[tuple[str, str], Live]:
    """The live journeys the sweeps are for (one no longer live is left out: its sweep enters nobody)."""
    out: dict[tuple[str, str], Live] = {}
    for brand_id in {s.brand_id for s in sweeps}:
        for journey in engine.live(brand_id):
            out[(brand_id, journey.definition.campaign_id)] = journey
    return out
