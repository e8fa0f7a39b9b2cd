"""Tags and their history for imported events: each person's timeline replayed through the real-time engine.

Had the events arrived live, tag_update would have evaluated, after each one, what its event type can change (and
first caught up the time-driven changes predicted in between); the nightly refresh would then have brought every
tag up to date, the batch-freshness ones included. The replay does exactly that with `cdp.tags.recompute`, in
memory, stamping each change at the instant it happened in the past (live changes are stamped when processed). So
as-of reads and month-over-month views work for imported history, and the tags it leaves are the ones the live path
would have left.

Pure: a person (identity fields set, no facts yet) and their events in; the folded profile with its tags, next
expiry and the history entries out.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cdp.ingest.events import CanonicalEvent
from cdp.org import BrandConfig
from cdp.profile.models import Profile, fold_event
from cdp.tags.ports import TagHistoryEntry
from cdp.tags.recompute import recompute
from cdp.tags.records import EventRecord, event_records
from cdp.tags.selection import FULL_REFRESH, TagRules


@dataclass(frozen=True)
class Replayed:
    profile: Profile  # folded from the events, with tags and next_tag_expiry
    history: list[TagHistoryEntry]
    evaluations: int


def _order(record: EventRecord) -> tuple[int, str]:
    return record.ts, record.event_id


def to_millis(at: datetime) -> datetime:
    """History keys carry milliseconds (as tag_update truncates its clock)."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def replay_tags(
    rules: TagRules,
    person: Profile,
    events: Sequence[CanonicalEvent],
    brand: BrandConfig,
    now: datetime,
    cause: str,
) -> Replayed:
    """Fold `events` (each once) into a copy of `person` in time order, evaluating tags after each as tag_update
    would, then evaluate every tag at `now` as the nightly refresh would."""
    profile = person.model_copy(deep=True)
    profile.tags, profile.next_tag_expiry = {}, None
    records: list[EventRecord] = []
    history: list[TagHistoryEntry] = []
    evaluations = 0
    for event in sorted(events, key=lambda e: (e.occurred_at, e.event_id)):
        fold_event(profile, event, brand)
        for record in event_records(event):  # kept in (ts, event_id) order, as timelines are read
            insort(records, record, key=_order)
        selection = rules.select(event.event_type)
        if selection.empty:
            continue
        result = recompute(rules, selection, profile, records, to_millis(event.occurred_at), cause)
        profile.tags, profile.next_tag_expiry = result.tags, result.next_expiry
        history.extend(result.history)
        evaluations += result.evaluations
    result = recompute(rules, rules.select(FULL_REFRESH), profile, records, to_millis(now), cause)
    profile.tags, profile.next_tag_expiry = result.tags, result.next_expiry
    history.extend(result.history)
    return Replayed(profile=profile, history=history, evaluations=evaluations + result.evaluations)
