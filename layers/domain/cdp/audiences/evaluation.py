"""Online evaluation of an audience over the profile store (what the Lambda runs: no DuckDB, no export).

Profiles come from the parallel scan (`ProfileReader.scan_shard`); each becomes a `PersonRecord` (stored tags,
attributes, scores) and runs through the in-memory `RuleEvaluator`. Timelines are read only when the condition, or
an audience it references, aggregates events, and then only for a person whose verdict the events could change:
the condition is first decided without them, aggregates counting as unknown (three-valued logic), and a person it
already rules out (an include or a consent that fails) is not a member whatever the events say. A size or export
over the whole table as one segment (`segments` 1) reads no timeline at all: its one scan returns the filed events
with the profiles (`ProfileReader.scan_with_timelines`), held in memory, for a small table. Referenced
audiences are evaluated first, on the spot, in the same evaluator, so `{audience: x}` reads x's current condition
rather than a possibly stale membership tag.

Size estimates scan a random sample of the scan segments and extrapolate (cluster sampling): DynamoDB hashes items
to segments, so segments are near-equal random slices of the table.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cdp.audiences.models import AudienceDefinition, SegmentCount, Timings
from cdp.audiences.validation import walk
from cdp.ingest.events import CanonicalEvent
from cdp.masking import mask
from cdp.profile.models import Profile
from cdp.profile.ports import ProfileReader
from cdp.tags.evaluate import RuleEvaluator, aggregate, audience_tag, test
from cdp.tags.records import PersonRecord, epoch, person_record
from cdp.tags.rules import AllOf, AnyOf, Compare, Condition, NotOf, dump_condition

Clock = Callable[[], float]


@dataclass(frozen=True)
class AudiencePlan:
    """An audience with every audience it references (in evaluation order) and what evaluating it needs."""

    definition: AudienceDefinition
    version: int
    references: tuple[AudienceDefinition, ...] = ()
    reference_versions: dict[str, int] = field(default_factory=dict)

    @property
    def conditions(self) -> list[tuple[str, Condition]]:
        return [(d.id, d.condition()) for d in (*self.references, self.definition)]

    @property
    def needs_events(self) -> bool:
        return any(c.agg is not None for _, cond in self.conditions for c, _, _ in walk(cond, ""))

    @property
    def condition_hash(self) -> str:
        document = {audience_id: dump_condition(cond) for audience_id, cond in self.conditions}
        return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class _Tally:
    scan_s: float = 0.0
    timelines_s: float = 0.0
    evaluate_s: float = 0.0
    profiles: int = 0
    timelines: int = 0


@dataclass(frozen=True)
class Evaluated:
    member: bool
    record: PersonRecord
    evaluator: RuleEvaluator


class AudienceScanner:
    """Scans segments and evaluates the plan on each profile, timing each part."""

    def __init__(self, profiles: ProfileReader, plan: AudiencePlan, asof: datetime, clock: Clock = time.perf_counter):
        self._profiles = profiles
        self.plan = plan
        self._asof = epoch(asof)
        self._clock = clock
        self._conditions = plan.conditions
        self._brand = plan.definition.brand_id
        self._needs_events = plan.needs_events
        self._local = threading.local()  # one tally per thread: segments are scanned in parallel
        self._tallies: list[_Tally] = []
        self._lock = threading.Lock()
        self._started = clock()

    @property
    def _tally(self) -> _Tally:
        tally: _Tally | None = getattr(self._local, "tally", None)
        if tally is None:
            tally = self._local.tally = _Tally()
            with self._lock:
                self._tallies.append(tally)
        return tally

    @property
    def reads_timelines(self) -> bool:
        return self._needs_events

    def scan(self, segment: int, total: int) -> Iterator[Profile]:
        """The segment's profiles; of the audience's brand only, when it is bound to one (the others are read, as a
        scan reads everything, but neither counted nor evaluated: sizes and portraits are of the brand's customers)."""
        iterator = iter(self._profiles.scan_shard(segment, total))
        while True:
            started = self._clock()
            profile = next(iterator, None)
            self._tally.scan_s += self._clock() - started
            if profile is None:
                return
            if self._brand is not None and profile.brand_id != self._brand:
                continue
            self._tally.profiles += 1
            yield profile

    def evaluate(self, profile: Profile) -> Evaluated:
        events = []
        if self._needs_events:
            started = self._clock()
            record = person_record(profile, [])
            evaluator = RuleEvaluator(record, self._asof)
            ruled_out = decide_without_events(self._conditions, evaluator) is False
            self._tally.evaluate_s += self._clock() - started
            if ruled_out:  # not a member whatever the events say: no timeline read
                return Evaluated(False, record, evaluator)
            started = self._clock()
            events = [entry.event for entry in self._profiles.timeline(profile)]
            self._tally.timelines_s += self._clock() - started
            self._tally.timelines += 1
        return self._verdict(profile, events)

    def _verdict(self, profile: Profile, events: Sequence[CanonicalEvent]) -> Evaluated:
        started = self._clock()
        record = person_record(profile, events)
        evaluator = RuleEvaluator(record, self._asof)
        computed = None
        for audience_id, condition in self._conditions:
            computed = evaluator.audience(audience_id, condition)
        self._tally.evaluate_s += self._clock() - started
        return Evaluated(computed is not None and computed.value is True, record, evaluator)

    def evaluated(self, segment: int, total: int) -> Iterator[tuple[Profile, Evaluated]]:
        """The segment's profiles, each with its verdict. The whole table in one segment, for a condition that
        aggregates events: one scan returns the profiles with their filed events (`scan_with_timelines`, which an
        adapter reads in bulk and holds in memory: a small table) instead of a timeline read per person."""
        if total > 1 or not self._needs_events:
            for profile in self.scan(segment, total):
                yield profile, self.evaluate(profile)
            return
        iterator = iter(self._profiles.scan_with_timelines(0, 1))
        while True:
            started = self._clock()
            history = next(iterator, None)
            self._tally.scan_s += self._clock() - started
            if history is None:
                return
            profile, timeline = history
            if self._brand is not None and profile.brand_id != self._brand:
                continue
            self._tally.profiles += 1
            self._tally.timelines += 1
            yield profile, self._verdict(profile, [entry.event for entry in timeline])

    def count(self, segment: int, total: int) -> SegmentCount:
        profiles = members = 0
        for _, evaluated in self.evaluated(segment, total):
            profiles += 1
            members += evaluated.member
        return SegmentCount(segment=segment, profiles=profiles, members=members)

    def member_ids(self, total: int, workers: int, *, tagged: bool) -> set[str]:
        """Every member's person id over all segments (tagged: by membership tag, else by evaluation)."""
        pick = self.tagged_members if tagged else self.members

        def segment_ids(segment: int) -> set[str]:
            return {p.person_id for p in pick(segment, total)}

        with ThreadPoolExecutor(max_workers=max(1, min(workers, total)), thread_name_prefix="audience-scan") as pool:
            return set().union(*pool.map(segment_ids, range(total)))

    def members(self, segment: int, total: int) -> Iterator[Profile]:
        for profile, evaluated in self.evaluated(segment, total):
            if evaluated.member:
                yield profile

    def tagged_members(self, segment: int, total: int) -> Iterator[Profile]:
        """Dynamic audiences: the persons whose membership tag (kept by tag_update) is true."""
        tag = audience_tag(self.plan.definition.id)
        for profile in self.scan(segment, total):
            value = profile.tags.get(tag)
            if value is not None and value.value is True:
                yield profile

    def timings(self) -> Timings:
        with self._lock:
            tallies = list(self._tallies)
        return Timings(
            total_ms=_ms(self._clock() - self._started),
            scan_ms=_ms(sum(t.scan_s for t in tallies)),
            timelines_ms=_ms(sum(t.timelines_s for t in tallies)),
            evaluate_ms=_ms(sum(t.evaluate_s for t in tallies)),
            profiles=sum(t.profiles for t in tallies),
            timelines_read=sum(t.timelines for t in tallies),
        )


def decide_without_events(conditions: Sequence[tuple[str, Condition]], evaluator: RuleEvaluator) -> bool | None:
    """The last condition's verdict as far as it is decided without events (None: the events decide it).

    Kleene's three-valued logic: a test on an aggregate is unknown, every other test is evaluated as usual (the
    evaluator's record needs no events for them); `all` is false when any part is false, `any` true when any part
    is true, `not` keeps unknown. A known verdict is the one the full evaluation gives, whatever the events are.
    `conditions` are evaluated in order, as by the scanner: an `{audience: x}` test reads x's verdict when x came
    earlier, else (as the evaluator does) the stored membership tag."""
    known: dict[str, bool | None] = {}
    verdict: bool | None = None
    for audience_id, condition in conditions:
        verdict = known[audience_id] = _three_valued(condition, evaluator, known)
    return verdict


def _three_valued(c: Condition, evaluator: RuleEvaluator, known: dict[str, bool | None]) -> bool | None:
    if isinstance(c, AllOf | AnyOf):
        parts = [_three_valued(x, evaluator, known) for x in (c.all if isinstance(c, AllOf) else c.any)]
        decisive = isinstance(c, AnyOf)  # the value one part alone decides: true for any, false for all
        if decisive in parts:
            return decisive
        return None if None in parts else not decisive
    if isinstance(c, NotOf):
        inner = _three_valued(c.not_, evaluator, known)
        return None if inner is None else not inner
    if c.agg is not None:
        return None
    if c.audience is not None and c.audience in known:
        value = known[c.audience]
        return None if value is None else test(c, value)
    return evaluator.condition(c).value is True


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


# ---- preview ------------------------------------------------------------------------------------------------

PREVIEW_TRAITS = ("name", "gender", "city", "member_level")


def preview_traits(profile: Profile, record: PersonRecord, asof: datetime) -> dict[str, str | int | None]:
    """A few key traits; the name is masked (PII), the birthday shows as an age only."""
    traits: dict[str, str | int | None] = {}
    for name in PREVIEW_TRAITS:
        value = getattr(profile.traits, name)
        traits[name] = mask(value, name) if isinstance(value, str) else value
    traits["age"] = record.attribute("age", epoch(asof))
    return traits


def _label(compare: Compare) -> str:
    if compare.agg is None:
        return f"{compare.subject}:{getattr(compare, compare.subject)}"
    where = ",".join(f"{k}={v}" for k, v in sorted(compare.where.items()))
    return compare.describe() + (f" where {where}" if where else "")


def read_values(plan: AudiencePlan, evaluated: Evaluated, asof: datetime) -> dict[str, Any]:
    """The values the audience's own condition reads, for this person (masked where PII)."""
    record, evaluator = evaluated.record, evaluated.evaluator
    at = epoch(asof)
    out: dict[str, Any] = {}
    for compare, _, _ in walk(plan.definition.condition(), ""):
        label = _label(compare)
        if label in out:
            continue
        value: Any
        if compare.tag is not None:
            value = record.tags.get(compare.tag)
        elif compare.attr is not None:
            value = record.attribute(compare.attr, at)
        elif compare.score is not None:
            value = record.scores.get(compare.score)
        elif compare.audience is not None:
            computed = evaluator.audiences.get(compare.audience)
            value = bool(computed.value) if computed is not None else None
        else:
            value = aggregate(compare, record.events, at).value
        out[label] = mask(value, compare.attr) if isinstance(value, str) else value
    return out


# ---- size estimate -------------------------------------------------------------------------------------------

# Student's t, two-sided 95% (0.975 quantile), by degrees of freedom; beyond 30 the next lower tabulated df is
# used (slightly wider, never narrower, than the exact interval).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_T975_TAIL = ((40, 2.042), (60, 2.021), (120, 2.000))


def t_quantile(df: int) -> float:
    if df < 1:
        raise ValueError("degrees of freedom must be >= 1")
    if df <= len(_T975):
        return _T975[df - 1]
    for upper, value in _T975_TAIL:
        if df <= upper:
            return value
    return 1.980


@dataclass(frozen=True)
class Extrapolation:
    estimate: int
    low: int
    high: int
    population: int
    method: str


def extrapolate(total_segments: int, sample: Sequence[SegmentCount]) -> Extrapolation:
    """Cluster sampling without replacement: N = T * mean(members per segment), variance
    T^2 (1 - s/T) var(members) / s, 95% interval with Student's t (s - 1 df). When no sampled profile is a member
    the interval is [0, rule of three]: 3 / profiles scanned of the estimated population."""
    s = len(sample)
    if s == 0:
        raise ValueError("no segment was scanned")
    members = [c.members for c in sample]
    profiles = [c.profiles for c in sample]
    observed = sum(members)
    population = round(total_segments * sum(profiles) / s)
    estimate = total_segments * observed / s
    if s >= total_segments:
        return Extrapolation(observed, observed, observed, sum(profiles), "exact: every segment scanned")
    if observed == 0:
        scanned = sum(profiles)
        high = math.ceil(3 * population / scanned) if scanned else 0
        return Extrapolation(0, 0, high, population, f"{s} of {total_segments} segments; none matched: rule of three")
    if s == 1:
        return Extrapolation(round(estimate), observed, max(observed, population), population, "1 segment: no interval")
    mean = observed / s
    variance = sum((m - mean) ** 2 for m in members) / (s - 1)
    standard_error = math.sqrt(total_segments**2 * (1 - s / total_segments) * variance / s)
    half = t_quantile(s - 1) * standard_error
    low = max(observed, math.floor(estimate - half))
    high = max(low, math.ceil(estimate + half))
    method = f"{s} of {total_segments} segments extrapolated, 95% interval (Student's t, {s - 1} df)"
    return Extrapolation(round(estimate), low, high, population, method)
