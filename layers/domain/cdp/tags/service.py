"""The real-time tag engine: recompute only what an event can change, expire windows on time, keep history, announce.

`TagEngine.refresh(person, trigger, now)`:
1. Select, before any read, the tags and dynamic audiences the trigger can change (`TagRules.select`). A canonical
   event type selects the real-time tags that read it (`TagCatalog.affected_by`: the tags reading those follow) and
   the audiences whose condition reads it or reads a selected tag; nothing selected -> no read at all (`skipped`).
   `identity_changed` and `sweep` select every real-time tag and audience; `all` (the nightly refresh) adds the
   batch-freshness tags; `scored:<model>` selects the tags and audiences that read that model's score.
2. Read the profile, and the timeline only when a selected rule aggregates events.
3. Evaluate in catalog order (`recompute`, pure). Tags not selected keep their stored values; static tags
   (`dynamic: false`) keep theirs until `valid_days` lapse; unchanged values keep `since`; each value's `expires_at`
   is its next change; the person's `next_tag_expiry` is the earliest next change of any real-time tag or audience
   (present or absent), so the hourly sweep comes back exactly when a window edge or threshold passes. A person
   whose `next_tag_expiry` has passed is first caught up: evaluated at each predicted instant up to now, so a change
   by time alone is recorded at the instant it happened, not when the sweep ran.
4. Write tags, next expiry and history entries in one conditional write (version check; a concurrent writer makes
   it re-read and recompute), skipped when nothing changed.
5. Publish `tags.changed`, the definition's `emits` event (e.g. `lifecycle.changed` with from/to) per change of that
   tag, and `audience.entered` / `audience.exited` per membership change. A redelivered trigger re-announces the
   changes its first attempt wrote (found by their `cause`), so a publish failing after the write is not lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from cdp import topology
from cdp.errors import ConflictError, RetryableError
from cdp.ingest.events import CanonicalEvent
from cdp.profile.models import ModelScore, Profile, TagValue
from cdp.profile.ports import MessageRecord, ProfileAnnotator, ProfileReader
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher
from cdp.shared.time import iso
from cdp.tags.audience_rules import AudienceDefinition
from cdp.tags.catalog import IDENTITY_CHANGED, TagCatalog
from cdp.tags.evaluate import RuleEvaluator, audience_tag
from cdp.tags.ports import DuePersons, DynamicAudiences, TagHistory, TagHistoryEntry, TagScalar, TagWriter
from cdp.tags.records import ATTRIBUTES, SOURCE_EVENT_TYPE, EventRecord, PersonRecord, epoch, event_records
from cdp.tags.records import profile_columns as columns_of
from cdp.tags.rules import Condition, Ref, rule_refs, walk_refs

log = logging.getLogger(__name__)

SWEEP = "sweep"  # every real-time tag and audience (the hourly sweep of due persons)
FULL_REFRESH = "all"  # also the batch-freshness tags (the nightly refresh)
SCORED_PREFIX = "scored:"
AUDIENCE_PREFIX = audience_tag("")
MAX_CATCH_UP_STEPS = 200  # predicted instants replayed for one overdue person before jumping to now
MAX_WRITE_ATTEMPTS = 3


def scored(model_name: str) -> str:
    """The trigger after a model scored a person: re-evaluates what reads that score (predictive tags)."""
    return f"{SCORED_PREFIX}{model_name}"


# ---- events -------------------------------------------------------------------------------------------------------


class TagChange(BaseModel):
    tag: str
    old: TagScalar | None
    new: TagScalar | None
    at: datetime | None = Field(default=None, description="when the value changed (a window edge may be earlier)")


class TagsChanged(Publishable):
    event_name: ClassVar[str] = topology.TAGS_CHANGED
    event_source: ClassVar[str] = topology.SOURCE_TAGS

    person_id: str
    changes: list[TagChange]
    at: datetime


class TagTransition(Publishable):
    """Published on every value change of a tag whose definition names an `emits` event (`lifecycle.changed`)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)
    event_name: ClassVar[str] = topology.LIFECYCLE_CHANGED
    event_source: ClassVar[str] = topology.SOURCE_TAGS

    person_id: str
    tag: str
    from_: TagScalar | None = Field(alias="from", description="the previous value (null: the tag was not set)")
    to: TagScalar | None = Field(description="the new value (null: the tag was removed)")
    at: datetime


@cache
def transition_event(event_name: str) -> type[TagTransition]:
    """The TagTransition class published under a definition's `emits` name."""
    if event_name == topology.LIFECYCLE_CHANGED:
        return TagTransition
    return type(f"TagTransition_{event_name.replace('.', '_')}", (TagTransition,), {"event_name": event_name})


class AudienceEntered(Publishable):
    event_name: ClassVar[str] = topology.AUDIENCE_ENTERED
    event_source: ClassVar[str] = topology.SOURCE_TAGS

    audience_id: str
    person_id: str
    at: datetime


class AudienceExited(Publishable):
    event_name: ClassVar[str] = topology.AUDIENCE_EXITED
    event_source: ClassVar[str] = topology.SOURCE_TAGS

    audience_id: str
    person_id: str
    at: datetime


def announcements(
    person_id: str, changes: Sequence[TagHistoryEntry], catalog: TagCatalog, now: datetime
) -> list[Publishable]:
    """What a set of recorded changes announces on the bus."""
    if not changes:
        return []
    out: list[Publishable] = [
        TagsChanged(
            person_id=person_id,
            changes=[TagChange(tag=c.tag, old=c.old, new=c.new, at=c.at) for c in changes],
            at=now,
        )
    ]
    for c in changes:
        if c.tag.startswith(AUDIENCE_PREFIX):
            audience_id = c.tag.removeprefix(AUDIENCE_PREFIX)
            if c.old is None and c.new is not None:
                out.append(AudienceEntered(audience_id=audience_id, person_id=person_id, at=c.at))
            elif c.new is None and c.old is not None:
                out.append(AudienceExited(audience_id=audience_id, person_id=person_id, at=c.at))
            continue
        definition = catalog.definitions.get(c.tag)
        if definition is not None and definition.emits:
            out.append(
                transition_event(definition.emits)(person_id=person_id, tag=c.tag, from_=c.old, to=c.new, at=c.at)
            )
    return out


# ---- what a trigger can change ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AudienceRule:
    definition: AudienceDefinition
    condition: Condition
    triggers: frozenset[str]  # event types (and scored:<model>) that can change the membership
    reads_tags: frozenset[str]
    reads_audiences: frozenset[str]
    reads_events: bool


@dataclass(frozen=True)
class Selection:
    tags: frozenset[str] = frozenset()
    audiences: frozenset[str] = frozenset()
    full: bool = False  # every real-time tag and every audience: the next expiry is exact, obsolete tags go

    @property
    def empty(self) -> bool:
        return not self.tags and not self.audiences

    def __or__(self, other: Selection) -> Selection:
        return Selection(self.tags | other.tags, self.audiences | other.audiences, self.full or other.full)


def _ref_triggers(ref: Ref) -> set[str]:
    if ref.attr is not None:
        return set(ATTRIBUTES[ref.attr].changed_by)
    if ref.agg is not None:
        return {SOURCE_EVENT_TYPE.get(e, e) for e in ref.event or []}
    if ref.score is not None:
        return {scored(ref.score)}
    return set()


class TagRules:
    """The catalog and the dynamic audiences, prepared once for selection and evaluation."""

    def __init__(self, catalog: TagCatalog, audiences: Sequence[AudienceDefinition] = ()) -> None:
        self.catalog = catalog
        self.audience_definitions = tuple(audiences)
        defs = catalog.definitions
        self.real_time = frozenset(n for n, d in defs.items() if d.freshness == "real_time")
        self.tag_reads_events = {n: any(r.agg is not None for r in rule_refs(d.rule)) for n, d in defs.items()}
        readers: dict[str, set[str]] = {n: set() for n in defs}
        score_readers: dict[str, set[str]] = {}
        for name, d in defs.items():
            for ref in rule_refs(d.rule):
                if ref.tag is not None and ref.tag in readers:
                    readers[ref.tag].add(name)
                if ref.score is not None:
                    score_readers.setdefault(ref.score, set()).add(name)
        self._readers = readers
        self._score_readers = {m: self._with_readers(names) for m, names in score_readers.items()}
        self.audiences = self._prepare(audiences)
        self.audience_order = list(self.audiences)
        self._all = Selection(frozenset(defs), frozenset(self.audiences), full=True)
        self._real_time = Selection(self.real_time, frozenset(self.audiences), full=True)
        self._by_trigger: dict[str, Selection] = {}

    def _with_readers(self, names: Iterable[str]) -> frozenset[str]:
        """The tags and every tag that reads them, transitively."""
        out: set[str] = set()
        pending = list(names)
        while pending:
            name = pending.pop()
            if name not in out:
                out.add(name)
                pending.extend(self._readers.get(name, ()))
        return frozenset(out)

    def _prepare(self, audiences: Sequence[AudienceDefinition]) -> dict[str, AudienceRule]:
        """Audience rules in evaluation order (an audience after the dynamic audiences it reads)."""
        raw: dict[str, AudienceRule] = {}
        for definition in sorted(audiences, key=lambda a: a.id):
            if definition.kind != "dynamic":
                continue
            condition = definition.condition()
            refs = [compare for compare, _ in walk_refs(condition)]
            triggers: set[str] = set()
            for ref in refs:
                triggers |= _ref_triggers(ref)
                if ref.tag is not None and ref.tag in self.catalog.triggers:
                    triggers |= self.catalog.triggers[ref.tag]
            raw[definition.id] = AudienceRule(
                definition=definition,
                condition=condition,
                triggers=frozenset(triggers),
                reads_tags=frozenset(r.tag for r in refs if r.tag is not None),
                reads_audiences=frozenset(r.audience for r in refs if r.audience is not None),
                reads_events=any(r.agg is not None for r in refs),
            )
        ordered: dict[str, AudienceRule] = {}
        visiting: set[str] = set()

        def visit(audience_id: str) -> None:
            if audience_id in ordered or audience_id in visiting:  # a cycle reads the stored membership instead
                return
            visiting.add(audience_id)
            rule = raw[audience_id]
            for dep in sorted(rule.reads_audiences):
                if dep in raw:
                    visit(dep)
            visiting.discard(audience_id)
            # an audience reading another one can change whenever that one can
            extra: set[str] = set()
            for dep in rule.reads_audiences:
                if dep in ordered:
                    extra |= ordered[dep].triggers
            ordered[audience_id] = replace(rule, triggers=rule.triggers | extra) if extra else rule

        for audience_id in raw:
            visit(audience_id)
        return ordered

    def select(self, trigger: str) -> Selection:
        """What `trigger` can change (cached per trigger)."""
        selection = self._by_trigger.get(trigger)
        if selection is None:
            selection = self._select(trigger)
            self._by_trigger[trigger] = selection
        return selection

    def _select(self, trigger: str) -> Selection:
        if trigger == FULL_REFRESH:
            return self._all
        if trigger in (SWEEP, IDENTITY_CHANGED):
            return self._real_time
        if trigger.startswith(SCORED_PREFIX):
            tags = self._score_readers.get(trigger.removeprefix(SCORED_PREFIX), frozenset())
        else:
            tags = frozenset(self.catalog.affected_by(trigger))
        audiences: set[str] = set()
        for audience_id, rule in self.audiences.items():  # in order: an audience reading a selected one follows
            if trigger in rule.triggers or rule.reads_tags & tags or rule.reads_audiences & audiences:
                audiences.add(audience_id)
        return Selection(tags, frozenset(audiences))

    def needs_events(self, selection: Selection) -> bool:
        return any(self.tag_reads_events.get(t, False) for t in selection.tags) or any(
            self.audiences[a].reads_events for a in selection.audiences
        )


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
        scores={name: s.score for name, s in profile.scores.items()},
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


# ---- the engine (ports injected) ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefreshOutcome:
    person_id: str
    trigger: str
    skipped: bool = False  # nothing the trigger can change: no read at all
    found: bool = True
    read_events: bool = False
    wrote: bool = False
    changes: tuple[TagHistoryEntry, ...] = ()
    published: int = 0
    attempts: int = 0

    @property
    def audience_changes(self) -> int:
        return sum(1 for c in self.changes if c.tag.startswith(AUDIENCE_PREFIX))


class TagEngine:
    """`catalog`: a catalog, or a provider of the current one (the brand's catalog in S3, cached)."""

    def __init__(
        self,
        catalog: TagCatalog | Callable[[], TagCatalog],
        audiences: DynamicAudiences,
        reader: ProfileReader,
        writer: TagWriter,
        history: TagHistory,
        publisher: EventPublisher,
    ) -> None:
        self._catalog = catalog if callable(catalog) else (lambda: catalog)
        self._audiences = audiences
        self._reader = reader
        self._writer = writer
        self._history = history
        self._publisher = publisher
        self._rules: TagRules | None = None

    @property
    def catalog(self) -> TagCatalog:
        return self.rules().catalog

    def rules(self) -> TagRules:
        """Rebuilt only when the catalog or the audience definitions change (the providers return the same
        objects until they reload)."""
        catalog = self._catalog()
        definitions = self._audiences.definitions()
        current = self._rules
        if (
            current is None
            or current.catalog is not catalog
            or (current.audience_definitions is not definitions and current.audience_definitions != tuple(definitions))
        ):
            current = TagRules(catalog, definitions)
            self._rules = current
        return current

    def refresh(
        self,
        person_id: str,
        trigger: str,
        now: datetime,
        *,
        cause: str | None = None,
        redelivered: bool = False,
        profile: Profile | None = None,
        correlation_id: str | None = None,
    ) -> RefreshOutcome:
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # history keys have milliseconds
        cause = cause or f"{trigger}:{iso(now)}"
        rules = self.rules()
        selection = rules.select(trigger)
        if selection.empty:  # (a redelivery too: the first attempt skipped as well, it wrote nothing)
            return RefreshOutcome(person_id=person_id, trigger=trigger, skipped=True)
        outcome = RefreshOutcome(person_id=person_id, trigger=trigger, found=False)
        for attempt in range(1, MAX_WRITE_ATTEMPTS + 1):
            current = profile if profile is not None and attempt == 1 else self._reader.get(person_id)
            if current is None or current.dissolved:
                break
            try:
                outcome = self._apply(rules, selection, current, now, cause, trigger, attempt)
                break
            except ConflictError:
                if attempt == MAX_WRITE_ATTEMPTS:
                    raise
                log.info("tag write conflict for %s, recomputing (attempt %d)", person_id, attempt)
        subject = outcome.person_id
        changes = list(outcome.changes)
        if redelivered:
            # The first attempt may have written and then failed to publish: announce what it wrote again.
            seen = {(c.tag, c.at) for c in changes}
            changes += [c for c in self._history.tag_history(subject, cause=cause) if (c.tag, c.at) not in seen]
            changes.sort(key=lambda c: (c.at, c.tag))
        events = announcements(subject, changes, rules.catalog, now)
        if events:
            self._publisher.publish(events, correlation_id or cause)
        return replace(outcome, published=len(events))

    def _apply(
        self,
        rules: TagRules,
        selection: Selection,
        profile: Profile,
        now: datetime,
        cause: str,
        trigger: str,
        attempt: int,
    ) -> RefreshOutcome:
        overdue = profile.next_tag_expiry is not None and profile.next_tag_expiry <= now
        effective = selection | rules.select(SWEEP) if overdue else selection
        needs_events = rules.needs_events(effective)
        events = event_records_of(e.event for e in self._reader.timeline(profile)) if needs_events else []
        result = recompute(rules, selection, profile, events, now, cause)
        wrote = result.tags != profile.tags or result.next_expiry != profile.next_tag_expiry
        if wrote:
            self._writer.write_tags(profile.person_id, profile.version, result.tags, result.next_expiry, result.history)
        return RefreshOutcome(
            person_id=profile.person_id,
            trigger=trigger,
            read_events=needs_events,
            wrote=wrote,
            changes=tuple(result.history),
            attempts=attempt,
        )


# ---- sweep and nightly refresh ------------------------------------------------------------------------------------


@dataclass
class SweepReport:
    refreshed: int = 0
    changed: int = 0
    changes: int = 0
    failed: int = 0
    failed_ids: list[str] = field(default_factory=list)


def sweep(
    engine: TagEngine,
    due: DuePersons,
    reader: ProfileReader,
    now: datetime,
    *,
    full: bool = False,
    shard: int = 0,
    total_shards: int = 1,
    on_error: Callable[[str, Exception], None] | None = None,
) -> SweepReport:
    """Refresh every due person (all real-time tags), or with `full` every person (batch tags too).

    A person that fails (a store or bus error, repeated write conflicts) is counted and skipped: their expiry stays
    in the past, so the next sweep takes them again."""
    report = SweepReport()
    cause = f"{FULL_REFRESH if full else SWEEP}:{iso(now)}"
    persons: Iterator[tuple[str, Profile | None]] = (
        ((p.person_id, p) for p in reader.scan_shard(shard, total_shards))
        if full
        else ((pid, None) for pid in list(due.due_for_tag_refresh(now, shard, total_shards)))
    )
    for person_id, profile in persons:
        try:
            outcome = engine.refresh(
                person_id, FULL_REFRESH if full else SWEEP, now, cause=cause, profile=profile, correlation_id=cause
            )
        except (ConflictError, RetryableError) as exc:
            report.failed += 1
            report.failed_ids.append(person_id)
            if on_error:
                on_error(person_id, exc)
            continue
        report.refreshed += 1
        report.changed += bool(outcome.changes)
        report.changes += len(outcome.changes)
    return report


# ---- predictive tags after scoring --------------------------------------------------------------------------------


class ScoredPersons(ProfileAnnotator):
    """Wraps the scorer's annotator and notes who got a score, so their predictive tags can follow."""

    def __init__(self, inner: ProfileAnnotator) -> None:
        self._inner = inner
        self.scored: dict[str, set[str]] = {}  # model -> person ids

    def put_tags(self, person_id: str, tags: Mapping[str, TagValue], next_expiry: datetime | None) -> None:
        self._inner.put_tags(person_id, tags, next_expiry)

    def put_score(self, person_id: str, model_name: str, score: ModelScore) -> None:
        self._inner.put_score(person_id, model_name, score)
        self.scored.setdefault(model_name, set()).add(person_id)

    def record_message(self, record: MessageRecord) -> None:
        self._inner.record_message(record)

    def messages(self, person_id: str) -> list[MessageRecord]:
        return self._inner.messages(person_id)


def refresh_scored(engine: TagEngine, scored_persons: ScoredPersons, now: datetime) -> int:
    """Re-evaluate the tags and audiences reading the scores just written; returns the number of changes."""
    changes = 0
    for model_name, person_ids in sorted(scored_persons.scored.items()):
        trigger = scored(model_name)
        if engine.rules().select(trigger).empty:
            continue  # nothing reads this model: no extra read per person
        for person_id in sorted(person_ids):
            changes += len(engine.refresh(person_id, trigger, now).changes)
    return changes
