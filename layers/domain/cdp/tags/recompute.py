"""The pure recompute: a person's selected tags and audiences evaluated in catalog order, with each value's next
change, the catch-up of predicted instants for an overdue person, and the history entries of what changed."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cdp.ingest.events import CanonicalEvent
from cdp.profile.models import Profile, TagValue, flat_scores
from cdp.shared.time import iso
from cdp.tags.evaluate import RuleEvaluator, audience_tag
from cdp.tags.ports import TagHistoryEntry, TagScalar
from cdp.tags.records import EventRecord, PersonRecord, epoch, event_records
from cdp.tags.records import profile_columns as columns_of
from cdp.tags.selection import AUDIENCE_PREFIX, SWEEP, Selection, TagRules

log = logging.getLogger(__name__)

MAX_CATCH_UP_STEPS = 200  # predicted instants replayed for one overdue person before jumping to now


# ---- the pure recompute -------------------------------------------------------------------------------------------


@dataclass
class Recomputed:
    tags: dict[str, TagValue]
    next_expiry: datetime | None
    history: list[TagHistoryEntry]
    evaluations: int  # instants evaluated (1, or more when an overdue person was caught up)


def _dt(ts: int | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


def _storable(value: Any) -> TagScalar | None:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, float):
        return round(value, 6)
    return value


def same_value(a: Any, b: Any) -> bool:
    """Equal and of the same kind: True is not 1 (Python says it is; a tag changing from 1 to true changed)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


@dataclass
class _Run:
    rules: TagRules
    person_id: str
    columns: dict[str, Any]
    scores: dict[str, float]
    events: list[EventRecord]
    cause: str
    state: dict[str, TagValue]
    history: list[TagHistoryEntry] = field(default_factory=list)

    def apply(self, name: str, value: TagScalar | None, expires_at: datetime | None, at: datetime) -> None:
        old = self.state.get(name)
        if value is None:
            if old is not None:
                del self.state[name]
                self.history.append(TagHistoryEntry(name, old.value, None, at, self.cause))
            return
        if old is not None and same_value(old.value, value):
            if old.expires_at != expires_at:
                self.state[name] = TagValue(value=value, since=old.since, expires_at=expires_at)
            return
        self.state[name] = TagValue(value=value, since=at, expires_at=expires_at)
        self.history.append(TagHistoryEntry(name, old.value if old else None, value, at, self.cause))

    def step(self, selection: Selection, at: datetime, stored_next: datetime | None) -> datetime | None:
        """Evaluate `selection` at `at`; return the earliest instant a real-time tag or audience changes next."""
        person = PersonRecord(
            person_id=self.person_id,
            columns=self.columns,
            tags={n: v.value for n, v in self.state.items()},
            scores=self.scores,
            events=self.events,
        )
        evaluator = RuleEvaluator(person, epoch(at))
        boundaries = self._tags(evaluator, selection, at) + self._audiences(evaluator, selection, at)
        if selection.full:
            self._drop_obsolete(at)
        else:
            # Tags and audiences not evaluated keep their own next change: the stored expiry bounds it (it was the
            # minimum over all of them, absent ones included, when last computed in full).
            boundaries += [
                v.expires_at
                for n, v in self.state.items()
                if v.expires_at is not None and self._tracked_unselected(n, selection)
            ]
            if stored_next is not None:
                boundaries.append(stored_next)
        return min((b for b in boundaries if b > at), default=None)

    def _tags(self, evaluator: RuleEvaluator, selection: Selection, at: datetime) -> list[datetime]:
        catalog = self.rules.catalog
        boundaries: list[datetime] = []
        for name in catalog.order:
            if name not in selection.tags:
                continue
            definition = catalog.definitions[name]
            tracked = name in self.rules.real_time
            old = self.state.get(name)
            if not definition.dynamic and old is not None:
                lapse = old.since + timedelta(days=definition.valid_days) if definition.valid_days else None
                if lapse is None or lapse > at:
                    if lapse is not None and tracked:
                        boundaries.append(lapse)
                    continue  # kept: the rules after it read the stored value
            computed = evaluator.tag(name, definition.rule)
            value = _storable(computed.value)
            next_change = _dt(computed.next_change)
            if not definition.dynamic and value is not None:
                # set (or set again after lapsing): valid for valid_days from now, or for good
                next_change = at + timedelta(days=definition.valid_days) if definition.valid_days else None
                if old is not None and same_value(old.value, value):
                    self.state[name] = TagValue(value=value, since=at, expires_at=next_change)
            self.apply(name, value, next_change, at)
            if tracked and next_change is not None:
                boundaries.append(next_change)
        return boundaries

    def _audiences(self, evaluator: RuleEvaluator, selection: Selection, at: datetime) -> list[datetime]:
        boundaries: list[datetime] = []
        for audience_id in self.rules.audience_order:
            if audience_id not in selection.audiences:
                continue
            computed = evaluator.audience(audience_id, self.rules.audiences[audience_id].condition)
            next_change = _dt(computed.next_change)
            self.apply(audience_tag(audience_id), True if computed.value else None, next_change, at)
            if next_change is not None:
                boundaries.append(next_change)
        return boundaries

    def _tracked_unselected(self, name: str, selection: Selection) -> bool:
        if name.startswith(AUDIENCE_PREFIX):
            return name.removeprefix(AUDIENCE_PREFIX) not in selection.audiences
        return name in self.rules.real_time and name not in selection.tags

    def _drop_obsolete(self, at: datetime) -> None:
        """Tags no definition yields any more (a renamed tag, a deleted audience) leave, with history."""
        for name in list(self.state):
            if name.startswith(AUDIENCE_PREFIX):
                obsolete = name.removeprefix(AUDIENCE_PREFIX) not in self.rules.audiences
            else:
                obsolete = name not in self.rules.catalog.definitions
            if obsolete:
                self.apply(name, None, None, at)


def recompute(
    rules: TagRules,
    selection: Selection,
    profile: Profile,
    events: list[EventRecord],
    now: datetime,
    cause: str,
) -> Recomputed:
    """The person's new tags, next expiry and history entries (pure: no I/O)."""
    run = _Run(
        rules=rules,
        person_id=profile.person_id,
        columns=columns_of(profile),
        scores=flat_scores(profile.scores),
        events=events,
        cause=cause,
        state=dict(profile.tags),
    )
    evaluations = 0
    stored_next = profile.next_tag_expiry
    if stored_next is not None and stored_next <= now:
        # Overdue: replay every predicted instant up to now, so time-driven changes carry their true instants.
        selection = selection | rules.select(SWEEP)
        at: datetime | None = stored_next
        while at is not None and at < now and evaluations < MAX_CATCH_UP_STEPS:
            at = run.step(selection, at, None)
            evaluations += 1
        if at is not None and at < now:
            log.warning("tag catch-up cut short at %s for %s", iso(at), profile.person_id)
        stored_next = None
    next_expiry = run.step(selection, now, stored_next)
    return Recomputed(tags=run.state, next_expiry=next_expiry, history=run.history, evaluations=evaluations + 1)


def event_records_of(events: Iterable[CanonicalEvent]) -> list[EventRecord]:
    """Evaluation records of a timeline, each event once (one event filed under two anchors counts once)."""
    seen: set[str] = set()
    out: list[EventRecord] = []
    for event in events:
        if event.dedupe_key not in seen:
            seen.add(event.dedupe_key)
            out.extend(event_records(event))
    out.sort(key=lambda r: (r.ts, r.event_id))
    return out
