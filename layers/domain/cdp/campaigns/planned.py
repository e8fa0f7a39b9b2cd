"""The brand's scheduled runs due soon, as the contact policy's priority arbitration asks for them at each send
(`cdp.channels.contact.PlannedRuns`): read from the catalog's due list, whom each wants judged on the profile the send
already holds (no extra read per person).

Whom a run wants: the person is live, has consent on the run's consent channel, matches its tag conditions and, for a
stored audience, holds its membership tag (a dynamic audience's). A static audience's snapshot is not looked up, so a
run on one is never anticipated (its own sends still pass the caps, first come, first served).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from cdp.campaigns.catalog import CampaignCatalog, DueEntry
from cdp.campaigns.definition import CampaignDefinition
from cdp.campaigns.service import eligible
from cdp.channels.contact import PlannedRun, PlannedRuns
from cdp.profile.models import Profile
from cdp.tags.evaluate import audience_tag

DUE_READ = 200  # due entries read per window, every brand's (one query); runs past the 200th are not anticipated
CACHE_SECONDS = 60.0  # every send of a minute asks about the same day: one read serves them


def wants(definition: CampaignDefinition) -> Callable[[Profile], bool]:
    """Whether a run of `definition` would select the person (before its budget cut and holdout)."""
    request = definition.to_request("planned")
    audience_id = definition.audience.audience_id
    member_tag = audience_tag(audience_id) if audience_id else None

    def check(profile: Profile) -> bool:
        if member_tag is not None:
            tag = profile.tags.get(member_tag)
            if tag is None or tag.value is not True:
                return False
        return eligible(request, profile)

    return check


class CatalogPlannedRuns(PlannedRuns):
    """Reads the due list up to a day's end once a minute (per container), each due campaign's state and version
    with it; a run scheduled or paused within the last minute is seen at the next read."""

    def __init__(self, catalog: CampaignCatalog, clock: Callable[[], float] = time.monotonic) -> None:
        self._catalog = catalog
        self._clock = clock
        self._windows: dict[datetime, tuple[float, list[PlannedRun]]] = {}
        self._versions: dict[tuple[str, str, int], PlannedRun | None] = {}  # a stored version never changes

    def due(self, brand_id: str, after: datetime, until: datetime) -> Sequence[PlannedRun]:
        return [run for run in self._runs(after, until) if run.brand_id == brand_id and after < run.at <= until]

    def _runs(self, after: datetime, until: datetime) -> list[PlannedRun]:
        now = self._clock()
        cached = self._windows.get(until)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        if len(self._windows) > 64:
            self._windows.clear()
        runs = [run for entry in self._catalog.due(until, DUE_READ, after=after) if (run := self._run(entry))]
        self._windows[until] = (now, runs)
        return runs

    def _run(self, entry: DueEntry) -> PlannedRun | None:
        state = self._catalog.state(entry.brand_id, entry.campaign_id)
        if state is None or state.status != "scheduled" or state.next_run_at != entry.at:
            return None  # paused, stopped or moved on: it will not run then
        if state.active_version is None:
            return None
        key = (entry.brand_id, entry.campaign_id, state.active_version)
        if key not in self._versions:
            stored = self._catalog.version(*key)
            self._versions[key] = None if stored is None else _planned(stored.definition)
        run = self._versions[key]
        return None if run is None else replace(run, at=entry.at)


def _planned(definition: CampaignDefinition) -> PlannedRun | None:
    """The version's run, its time still to be set (`at`: its due entry's)."""
    send = definition.first_send_step
    if send is None or send.purpose != "marketing":
        return None  # service messages pass no caps: nothing to keep room for
    return PlannedRun(
        brand_id=definition.brand_id,
        campaign_id=definition.campaign_id,
        priority=definition.priority,
        channel=send.channel,
        at=datetime.max.replace(tzinfo=UTC),
        wants=wants(definition),
    )
