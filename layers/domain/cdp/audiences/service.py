"""Audience packages: define, validate, size, preview and export, over injected ports.

Who may call: audience routes read every profile of the deployment (sizes, previews, exports span brands and
stores), so they need a key without an org-hierarchy scope, holding `audiences:read` (list, get, validate, size,
preview, snapshots) or `audiences:write` (define, delete, export).
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from cdp.audiences.evaluation import (
    AudiencePlan,
    AudienceScanner,
    Clock,
    extrapolate,
    preview_traits,
    read_values,
)
from cdp.audiences.models import (
    MAX_PORTRAIT_VALUES,
    AudienceEstimate,
    AudienceList,
    AudienceSummary,
    EstimateRequest,
    ExportRequest,
    Portrait,
    PortraitDimension,
    PortraitValue,
    Preview,
    PreviewMember,
    SegmentCount,
    SizeEstimate,
    SizeRequest,
    SnapshotList,
    SnapshotManifest,
    StoredAudience,
    ValidationReport,
)
from cdp.audiences.store import AudienceStore
from cdp.audiences.validation import checked, closure, references, validate
from cdp.errors import CdpError, ForbiddenError, InvalidInputError
from cdp.ingest.auth import AUDIENCES_READ_SCOPE, AUDIENCES_WRITE_SCOPE, authorize
from cdp.ingest.ports import ApiClient
from cdp.observability import logger
from cdp.org import ScopeRef
from cdp.profile.models import Profile
from cdp.profile.ports import ProfileReader
from cdp.shared.time import utc_now
from cdp.tags.catalog import TagCatalog

MAX_PREVIEW = 100
SCAN_WORKERS = 4  # segments read at once (DynamoDB parallel scan: the reads overlap)
OTHER = "other"

Survey = TypeVar("Survey")


class AudienceInUseError(CdpError):
    """The audience is referenced by others (409 at the edge): change or delete those first."""


def authorize_audiences(client: ApiClient, *, write: bool) -> ApiClient:
    authorize(client, AUDIENCES_WRITE_SCOPE if write else AUDIENCES_READ_SCOPE)
    if client.org_scope != ScopeRef():
        raise ForbiddenError(
            f"audiences read every profile of the deployment; the key of {client.name} is limited to "
            f"{client.org_scope.label}: use a key without an org scope"
        )
    return client


def snapshot_id_for(as_of: datetime) -> str:
    """The export second, then the microsecond in 5 hex digits (so two exports in one second sort in order) and 3
    random ones (so two at the same instant do not collide)."""
    return f"{as_of:%Y%m%dT%H%M%SZ}-{as_of.microsecond:05x}{uuid.uuid4().hex[:3]}"


class AudienceService:
    def __init__(
        self,
        store: AudienceStore,
        profiles: ProfileReader,
        catalog: Callable[[], TagCatalog],
        now: Callable[[], datetime] = utc_now,
        clock: Clock = time.perf_counter,
        workers: int = SCAN_WORKERS,
    ) -> None:
        self._store = store
        self._profiles = profiles
        self._catalog = catalog
        self._now = now
        self._clock = clock
        self._workers = workers

    # ---- definitions ------------------------------------------------------------------------------------------

    def validate(self, raw: object) -> ValidationReport:
        return validate(raw, self._catalog(), self._store.definitions())

    def define(self, raw: object) -> StoredAudience:
        result = checked(raw, self._catalog(), self._store.definitions())
        stored = self._store.put(result.definition, self._now())
        logger.info("audience defined", audience_id=stored.definition.id, version=stored.version)
        return stored

    def get(self, audience_id: str) -> StoredAudience:
        return self._store.get(audience_id)

    def list(self) -> AudienceList:
        return AudienceList(
            audiences=[
                AudienceSummary(
                    id=s.definition.id,
                    name=s.definition.name,
                    kind=s.definition.kind,
                    version=s.version,
                    owner=s.definition.owner,
                    updated_at=s.updated_at,
                )
                for s in self._store.list()
            ]
        )

    def delete(self, audience_id: str) -> StoredAudience:
        stored = self._store.get(audience_id)
        readers = sorted(d.id for d in self._store.definitions().values() if audience_id in references(d))
        if readers:
            raise AudienceInUseError(
                f"audience {audience_id!r} is referenced by {', '.join(readers)}: change those first"
            )
        tombstone = self._store.delete(stored.definition.id, self._now())
        logger.info("audience deleted", audience_id=audience_id, version=tombstone.version)
        return tombstone

    def plan(self, audience_id: str) -> AudiencePlan:
        stored = self._store.get(audience_id)
        everything = self._store.list()
        known = {s.definition.id: s.definition for s in everything}
        versions = {s.definition.id: s.version for s in everything}
        refs = closure(stored.definition, known)
        return AudiencePlan(
            definition=stored.definition,
            version=stored.version,
            references=tuple(refs),
            reference_versions={d.id: versions[d.id] for d in refs},
        )

    # ---- size ---------------------------------------------------------------------------------------------------

    def size(self, audience_id: str, request: SizeRequest) -> SizeEstimate:
        plan = self.plan(audience_id)
        as_of = self._now()
        scanner = AudienceScanner(self._profiles, plan, as_of, self._clock)
        sample = self._sample(scanner, request, audience_id, scanner.count, lambda c: c.profiles)
        estimate = self._size_estimate(scanner, request, sample, as_of)
        logger.info("audience sized", audience_id=audience_id, estimate=estimate.estimate, segments=len(sample))
        return estimate

    def _sample(
        self,
        scanner: AudienceScanner,
        request: SizeRequest,
        seed_text: str,
        survey: Callable[[int, int], Survey],
        profiles_of: Callable[[Survey], int],
    ) -> Sequence[Survey]:
        """Survey a random sample of the scan segments: the first one, then as many more as the request asks for
        (in parallel; the reads overlap)."""
        total = request.segments
        seed = request.seed if request.seed is not None else int(hashlib.sha256(seed_text.encode()).hexdigest(), 16)
        order = list(range(total))
        random.Random(seed).shuffle(order)
        first = survey(order[0], total)
        rest = order[1 : self._segments_to_scan(request, total, profiles_of(first))]
        if self._workers <= 1 or len(rest) <= 1:
            return [first, *(survey(s, total) for s in rest)]
        with ThreadPoolExecutor(max_workers=min(self._workers, len(rest)), thread_name_prefix="audience-scan") as pool:
            return [first, *pool.map(lambda s: survey(s, total), rest)]

    def _size_estimate(
        self, scanner: AudienceScanner, request: SizeRequest, sample: Sequence[SegmentCount], as_of: datetime
    ) -> SizeEstimate:
        total = request.segments
        result = extrapolate(total, sample)
        exact = len(sample) == total
        return SizeEstimate(
            audience_id=scanner.plan.definition.id,
            version=scanner.plan.version,
            as_of=as_of,
            exact=exact,
            estimate=result.estimate,
            low=result.low,
            high=result.high,
            confidence=None if exact else 0.95,
            method=result.method,
            members_counted=sum(c.members for c in sample),
            profiles_scanned=sum(c.profiles for c in sample),
            population_estimate=result.population,
            segments_total=total,
            segments_scanned=len(sample),
            sample=sorted(sample, key=lambda c: c.segment),
            read_timelines=scanner.reads_timelines,
            timings=scanner.timings(),
        )

    # ---- estimate: size, portrait and preview of a definition as it stands (not saved) ----------------------

    def estimate(self, request: EstimateRequest) -> AudienceEstimate:
        """One sampled scan answers the size, the members' portrait against all customers on the same profiles,
        and the first members: what a builder shows while the marketer edits the condition."""
        known = self._store.definitions()
        result = checked(request.definition, self._catalog(), known)
        draft = result.definition
        catalog = self._catalog()
        for i, tag in enumerate(request.portrait):
            if tag not in catalog.definitions:
                raise InvalidInputError(f"portrait: unknown tag {tag!r}", f"portrait[{i}]")
        saved = {s.definition.id: s.version for s in self._store.list()}
        refs = closure(draft, known)
        plan = AudiencePlan(
            definition=draft,
            version=saved.get(draft.id, 0),
            references=tuple(refs),
            reference_versions={d.id: saved[d.id] for d in refs if d.id in saved},
        )
        as_of = self._now()
        scanner = AudienceScanner(self._profiles, plan, as_of, self._clock)
        tags = tuple(dict.fromkeys(request.portrait))

        def survey(segment: int, total: int) -> _SegmentSurvey:
            out = _SegmentSurvey(segment, tags)
            for profile, evaluated in scanner.evaluated(segment, total):
                out.add(profile, evaluated.member)
                if evaluated.member and len(out.preview) < request.preview:
                    member = PreviewMember(
                        person_id=profile.person_id,
                        brand_id=profile.brand_id,
                        traits=preview_traits(profile, evaluated.record, as_of),
                        reads=read_values(plan, evaluated, as_of),
                    )
                    out.preview.append(member)
            return out

        sample = self._sample(scanner, request.size, draft.id, survey, lambda s: s.profiles)
        size = self._size_estimate(scanner, request.size, [s.count for s in sample], as_of)
        logger.info("audience estimated", audience_id=draft.id, estimate=size.estimate, segments=len(sample))
        return AudienceEstimate(
            audience_id=draft.id,
            saved_version=saved.get(draft.id),
            report=result.report,
            size=size,
            portrait=_portrait(tags, sample),
            preview=[m for s in sample for m in s.preview][: request.preview],
        )

    @staticmethod
    def _segments_to_scan(request: SizeRequest, total: int, first_profiles: int) -> int:
        """Explicit sample size, else everything when small, else about `exact_below` profiles' worth (>= 2)."""
        if request.sample_segments is not None:
            return min(request.sample_segments, total)
        if first_profiles * total <= request.exact_below:
            return total
        return min(total, max(2, -(-request.exact_below // max(first_profiles, 1))))

    # ---- preview ------------------------------------------------------------------------------------------------

    def preview(self, audience_id: str, limit: int, segments: int = 16) -> Preview:
        if not 1 <= limit <= MAX_PREVIEW:
            raise InvalidInputError(f"limit must be between 1 and {MAX_PREVIEW}", "limit")
        plan = self.plan(audience_id)
        as_of = self._now()
        scanner = AudienceScanner(self._profiles, plan, as_of, self._clock)
        members: list[PreviewMember] = []
        complete = True
        for segment in range(segments):
            for profile in scanner.scan(segment, segments):
                evaluated = scanner.evaluate(profile)
                if not evaluated.member:
                    continue
                members.append(
                    PreviewMember(
                        person_id=profile.person_id,
                        brand_id=profile.brand_id,
                        traits=preview_traits(profile, evaluated.record, as_of),
                        reads=read_values(plan, evaluated, as_of),
                    )
                )
                if len(members) >= limit:
                    complete = False
                    break
            if not complete:
                break
        timings = scanner.timings()
        return Preview(
            audience_id=audience_id,
            version=plan.version,
            as_of=as_of,
            limit=limit,
            members=members,
            profiles_scanned=timings.profiles,
            complete=complete,
            read_timelines=scanner.reads_timelines,
            timings=timings,
        )

    # ---- export and snapshots -------------------------------------------------------------------------------------

    def export(self, audience_id: str, request: ExportRequest) -> SnapshotManifest:
        """Freeze the members into a snapshot: a static audience is evaluated on every profile now; a dynamic one
        takes the persons whose membership tag is true (as tag_update keeps it)."""
        plan = self.plan(audience_id)
        as_of = self._now()
        scanner = AudienceScanner(self._profiles, plan, as_of, self._clock)
        dynamic = plan.definition.kind == "dynamic"

        draft = SnapshotManifest(
            audience_id=audience_id,
            snapshot_id=snapshot_id_for(as_of),
            kind=plan.definition.kind,
            definition=plan.definition,
            version=plan.version,
            references=plan.reference_versions,
            source="membership_tags" if dynamic else "evaluated",
            as_of=as_of,
            created_at=as_of,
            count=0,
            member_keys=[],
            condition_hash=plan.condition_hash,
            catalog_version=self._catalog().version,
            segments=request.segments,
            profiles_scanned=0,
        )
        members = sorted(scanner.member_ids(request.segments, self._workers, tagged=dynamic))
        manifest = self._store.write_snapshot(
            draft.model_copy(update={"profiles_scanned": scanner.timings().profiles, "created_at": self._now()}),
            members,
        )
        logger.info(
            "audience exported", audience_id=audience_id, snapshot_id=manifest.snapshot_id, count=manifest.count
        )
        return manifest

    def snapshots(self, audience_id: str) -> SnapshotList:
        """Newest first; a deleted audience's snapshots stay listed (campaigns that used them can be audited)."""
        found = self._store.snapshots(audience_id)
        if not found:
            self._store.get(audience_id)  # an unknown audience is a 404, a known one without exports an empty list
        return SnapshotList(audience_id=audience_id, snapshots=found)


@dataclass
class _SegmentSurvey:
    """One segment's counts: members, and each portrait tag's values among members and among every profile."""

    segment: int
    tags: tuple[str, ...]
    profiles: int = 0
    members: int = 0
    customers_by: dict[str, Counter[str | None]] = field(default_factory=dict)
    members_by: dict[str, Counter[str | None]] = field(default_factory=dict)
    preview: list[PreviewMember] = field(default_factory=list)

    def add(self, profile: Profile, member: bool) -> None:
        self.profiles += 1
        self.members += member
        for tag in self.tags:
            held = profile.tags.get(tag)
            value = None if held is None else _text(held.value)
            self.customers_by.setdefault(tag, Counter())[value] += 1
            if member:
                self.members_by.setdefault(tag, Counter())[value] += 1

    @property
    def count(self) -> SegmentCount:
        return SegmentCount(segment=self.segment, profiles=self.profiles, members=self.members)


def _text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _portrait(tags: Sequence[str], sample: Sequence[_SegmentSurvey]) -> Portrait:
    members = sum(s.members for s in sample)
    customers = sum(s.profiles for s in sample)
    dimensions = []
    for tag in tags:
        everyone: Counter[str | None] = Counter()
        chosen: Counter[str | None] = Counter()
        for s in sample:
            everyone.update(s.customers_by.get(tag, Counter()))
            chosen.update(s.members_by.get(tag, Counter()))
        named = sorted((v for v in everyone if v is not None), key=lambda v: (-everyone[v], v))
        shown: list[str | None] = list(named[:MAX_PORTRAIT_VALUES])
        rest = named[MAX_PORTRAIT_VALUES:]
        rows = [(v, chosen[v], everyone[v]) for v in shown]
        if rest:
            rows.append((OTHER, sum(chosen[v] for v in rest), sum(everyone[v] for v in rest)))
        if everyone[None]:
            rows.append((None, chosen[None], everyone[None]))
        dimensions.append(PortraitDimension(tag=tag, values=[_share(v, m, c, members, customers) for v, m, c in rows]))
    return Portrait(members=members, customers=customers, dimensions=dimensions)


def _share(value: str | None, members: int, customers: int, members_total: int, customers_total: int) -> PortraitValue:
    members_share = members / members_total if members_total else 0.0
    customers_share = customers / customers_total if customers_total else 0.0
    return PortraitValue(
        value=value,
        members=members,
        customers=customers,
        members_share=round(members_share, 6),
        customers_share=round(customers_share, 6),
        index=round(100 * members_share / customers_share, 1) if customers_share else None,
    )
