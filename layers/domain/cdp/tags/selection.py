"""What a trigger can change: the tags and dynamic audiences to re-evaluate for an event type, a sweep, a full
refresh or a new score (selected before any read, so an event no rule reads costs nothing)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from cdp.tags.audience_rules import AudienceDefinition
from cdp.tags.catalog import IDENTITY_CHANGED, TagCatalog
from cdp.tags.evaluate import audience_tag
from cdp.tags.records import ATTRIBUTES, SOURCE_EVENT_TYPE
from cdp.tags.rules import Condition, Ref, rule_refs, walk_refs

SWEEP = "sweep"  # every real-time tag and audience (the hourly sweep of due persons)
FULL_REFRESH = "all"  # also the batch-freshness tags (the nightly refresh)
SCORED_PREFIX = "scored:"
AUDIENCE_PREFIX = audience_tag("")


def score_model(score_name: str) -> str:
    """The model behind a score name a rule reads (`clv.p_alive` is written by model `clv`)."""
    return score_name.partition(".")[0]


def scored(model_name: str) -> str:
    """The trigger after a model scored a person: re-evaluates what reads that score (predictive tags)."""
    return f"{SCORED_PREFIX}{model_name}"


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
        return {scored(score_model(ref.score))}
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
                    score_readers.setdefault(score_model(ref.score), set()).add(name)
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
