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
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import reduce

from cdp.errors import ConflictError, RetryableError
from cdp.profile.models import ModelScore, Profile
from cdp.profile.ports import MessageRecord, ProfileAnnotator, ProfileReader, TimelineEntry
from cdp.shared.ports import DeferredPublisher, EventPublisher
from cdp.shared.time import iso
from cdp.tags.announcements import announcements
from cdp.tags.catalog import TagCatalog
from cdp.tags.ports import DuePersons, DynamicAudiences, TagHistory, TagHistoryEntry, TagWriter
from cdp.tags.recompute import event_records_of, recompute
from cdp.tags.selection import AUDIENCE_PREFIX, FULL_REFRESH, SWEEP, Selection, TagRules, scored

log = logging.getLogger(__name__)

MAX_WRITE_ATTEMPTS = 3
REFRESH_READ_BATCH = 100  # profiles read at once when the tags of many scored persons follow their scores
PUBLISH_BATCH = 100  # persons refreshed by a batch job (sweep, scoring) whose announcements are published together


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
    def reader(self) -> ProfileReader:
        return self._reader

    @property
    def publisher(self) -> EventPublisher:
        return self._publisher

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

    def persons_to_read(self, changes: Iterable[tuple[str, str]]) -> set[str]:
        """Of (person id, trigger) changes, the persons whose change can move a tag or audience: an event type no
        rule reads costs no read at all."""
        rules = self.rules()
        return {person for person, trigger in changes if not rules.select(trigger).empty}

    def refresh(
        self,
        person_id: str,
        trigger: str | Sequence[str],
        now: datetime,
        *,
        cause: str | None = None,
        redelivered: bool = False,
        profile: Profile | None = None,
        correlation_id: str | None = None,
        timeline: Sequence[TimelineEntry] | None = None,
        publisher: EventPublisher | None = None,  # e.g. a batch's DeferredPublisher (default: the engine's)
    ) -> RefreshOutcome:
        """`trigger`: one, or several changes of the person at once (a batch's events of one person: one read, one
        evaluation, one write). `profile` (and its `timeline`, read with it): the state the first attempt
        evaluates, when the caller read it already (a sweep's scan); a conflicting writer makes the next attempt
        read both afresh."""
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # history keys have milliseconds
        triggers = sorted({trigger} if isinstance(trigger, str) else set(trigger))
        if not triggers:
            raise ValueError("a refresh needs a trigger")
        trigger = "+".join(triggers)
        cause = cause or f"{trigger}:{iso(now)}"
        rules = self.rules()
        selection = reduce(operator.or_, (rules.select(t) for t in triggers))
        if selection.empty:  # (a redelivery too: the first attempt skipped as well, it wrote nothing)
            return RefreshOutcome(person_id=person_id, trigger=trigger, skipped=True)
        outcome = RefreshOutcome(person_id=person_id, trigger=trigger, found=False)
        for attempt in range(1, MAX_WRITE_ATTEMPTS + 1):
            first = profile is not None and attempt == 1
            current = profile if first else self._reader.get(person_id)
            if current is None or current.dissolved:
                break
            try:
                outcome = self._apply(
                    rules, selection, current, now, cause, trigger, attempt, timeline if first else None
                )
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
        brand = current.brand_id if current is not None else None
        events = announcements(subject, changes, rules.catalog, now, brand)
        if events:
            (publisher or self._publisher).publish(events, correlation_id or cause)
        return replace(outcome, published=len(events))

    def refresh_with_score(
        self,
        profile: Profile,
        scores: Mapping[str, ModelScore],
        now: datetime,
        *,
        publisher: EventPublisher | None = None,
    ) -> RefreshOutcome:
        """New scores (model -> score) and the tags and audiences reading them, in one write: the scores are applied
        to `profile` (as the scorer read it) and the tag write sets them too, under the same version check.
        ConflictError when the person changed since: the caller then writes the scores alone and refreshes as usual
        (`refresh`)."""
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # history keys have milliseconds
        triggers = [scored(model_name) for model_name in sorted(scores)]
        trigger = triggers[0] if len(triggers) == 1 else "+".join(triggers)
        cause = f"{trigger}:{iso(now)}"
        rules = self.rules()
        selection = rules.select(triggers[0])
        for other in triggers[1:]:
            selection = selection | rules.select(other)
        updated = profile.model_copy(update={"scores": {**profile.scores, **scores}})
        outcome = self._apply(rules, selection, updated, now, cause, trigger, 1, scores=scores)
        events = announcements(outcome.person_id, list(outcome.changes), rules.catalog, now, profile.brand_id)
        if events:
            (publisher or self._publisher).publish(events, cause)
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
        timeline: Sequence[TimelineEntry] | None = None,
        scores: Mapping[str, ModelScore] | None = None,
    ) -> RefreshOutcome:
        overdue = profile.next_tag_expiry is not None and profile.next_tag_expiry <= now
        effective = selection | rules.select(SWEEP) if overdue else selection
        needs_events = rules.needs_events(effective)
        if needs_events and timeline is None:
            timeline = self._reader.timeline(profile)
        events = event_records_of(e.event for e in timeline or ()) if needs_events else []
        result = recompute(rules, selection, profile, events, now, cause)
        wrote = bool(scores) or result.tags != profile.tags or result.next_expiry != profile.next_tag_expiry
        if wrote:
            self._writer.write_tags(
                profile.person_id,
                profile.tags_version,
                result.tags,
                result.next_expiry,
                result.history,
                scores=profile.scores,  # the whole map: the write replaces the tags item
                pending=[TagHistoryEntry.from_fields(entry) for entry in profile.tags_pending],
            )
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

    A person that fails (a store error, repeated write conflicts) is counted and skipped: their expiry stays in the
    past, so the next sweep takes them again. The announcements of every `PUBLISH_BATCH` persons are published
    together (PutEvents packs ten a call) once those persons are written; a failed publish raises PublishError and
    fails the run: the changes already written are not announced again (a failed publish after a person's write was
    counted and skipped before, and not announced again either)."""
    report = SweepReport()
    cause = f"{FULL_REFRESH if full else SWEEP}:{iso(now)}"
    persons: Iterator[tuple[str, Profile | None, list[TimelineEntry] | None]]
    if not full:
        persons = ((pid, None, None) for pid in list(due.due_for_tag_refresh(now, shard, total_shards)))
    elif engine.rules().needs_events(engine.rules().select(FULL_REFRESH)):  # every timeline: read with the scan
        persons = ((p.person_id, p, t) for p, t in reader.scan_with_timelines(shard, total_shards))
    else:
        persons = ((p.person_id, p, None) for p in reader.scan_shard(shard, total_shards))
    deferred = DeferredPublisher()
    for done, (person_id, profile, timeline) in enumerate(persons, start=1):
        try:
            outcome = engine.refresh(
                person_id,
                FULL_REFRESH if full else SWEEP,
                now,
                cause=cause,
                profile=profile,
                correlation_id=cause,
                timeline=timeline,
                publisher=deferred,
            )
        except (ConflictError, RetryableError) as exc:
            report.failed += 1
            report.failed_ids.append(person_id)
            if on_error:
                on_error(person_id, exc)
        else:
            report.refreshed += 1
            report.changed += bool(outcome.changes)
            report.changes += len(outcome.changes)
        if done % PUBLISH_BATCH == 0:
            deferred.flush(engine.publisher)
    deferred.flush(engine.publisher)
    return report


# ---- predictive tags after scoring --------------------------------------------------------------------------------


class ScoredPersons(ProfileAnnotator):
    """Wraps the scorer's annotator and notes who got a score, so their predictive tags can follow.

    With an `engine`, a batch of scores (`put_scores`, the profiles as the scorer read them) is written together with
    the tags and audiences reading them, one version-checked write per person, and the batch's announcements are
    published together after its writes (a failed publish raises and fails the shard). A person changed since the
    read gets the score alone and is noted, like every `put_score`, for `refresh_scored`.

    `keep_changes`: also keep the changes themselves in `changed` (with `refresh_scored`'s): one person scored on
    demand says which tags moved; a shard only counts them."""

    def __init__(
        self,
        inner: ProfileAnnotator,
        engine: TagEngine | None = None,
        now: datetime | None = None,
        *,
        keep_changes: bool = False,
    ) -> None:
        self._inner = inner
        self._engine = engine
        self._now = now
        self.scored: dict[str, set[str]] = {}  # model -> person ids whose tags must still follow their score
        self.changes = 0  # tag changes written with the scores
        self.changed: list[TagHistoryEntry] | None = [] if keep_changes else None

    def note(self, changes: Sequence[TagHistoryEntry]) -> None:
        if self.changed is not None:
            self.changed.extend(changes)

    def put_scores(self, scored_profiles: Sequence[tuple[Profile, Mapping[str, ModelScore]]]) -> None:
        engine, now = self._engine, self._now
        models = {name for _, scores in scored_profiles for name in scores}
        if engine is None or now is None or all(engine.rules().select(scored(m)).empty for m in models):
            super().put_scores(scored_profiles)  # nothing reads the scores: they are written alone
            return
        deferred = DeferredPublisher()
        for profile, scores in scored_profiles:
            try:
                outcome = engine.refresh_with_score(profile, scores, now, publisher=deferred)
            except ConflictError:
                self.put_model_scores(profile.person_id, scores)  # moved since the read: scores, then refresh
                continue
            self.changes += len(outcome.changes)
            self.note(outcome.changes)
        deferred.flush(engine.publisher)

    def put_score(self, person_id: str, model_name: str, score: ModelScore) -> None:
        self.put_model_scores(person_id, {model_name: score})

    def put_model_scores(self, person_id: str, scores: Mapping[str, ModelScore]) -> None:
        self._inner.put_model_scores(person_id, scores)
        for model_name in scores:
            self.scored.setdefault(model_name, set()).add(person_id)

    def record_message(self, record: MessageRecord) -> None:
        self._inner.record_message(record)

    def messages(self, person_id: str) -> list[MessageRecord]:
        return self._inner.messages(person_id)


def refresh_scored(engine: TagEngine, scored_persons: ScoredPersons, now: datetime) -> int:
    """Re-evaluate the tags and audiences reading the scores just written; returns the number of changes.

    Each chunk's announcements are published together once its persons are written; a failed publish raises
    (PublishError) and fails the shard, as a failed publish after a person's write did before."""
    changes = 0
    deferred = DeferredPublisher()
    for model_name, person_ids in sorted(scored_persons.scored.items()):
        trigger = scored(model_name)
        if engine.rules().select(trigger).empty:
            continue  # nothing reads this model: no extra read per person
        ordered = sorted(person_ids)
        for start in range(0, len(ordered), REFRESH_READ_BATCH):  # the profiles read in batches, scores included
            chunk = ordered[start : start + REFRESH_READ_BATCH]
            profiles = engine.reader.get_many(chunk)
            for person_id in chunk:
                profile = profiles.get(person_id)
                if profile is None or profile.person_id != person_id:
                    profile = None  # gone or merged since it was scored: let the engine read it (it follows merges)
                outcome = engine.refresh(person_id, trigger, now, profile=profile, publisher=deferred)
                changes += len(outcome.changes)
                scored_persons.note(outcome.changes)
            deferred.flush(engine.publisher)
    return changes
