"""Audience packages: define, validate, size, preview and export, over injected ports.

Who may call: a key holding `audiences:read` (list, get, validate, estimate, size, preview, snapshots) or
`audiences:write` (define, delete, export). A key without an org-hierarchy scope sees every audience; a key that
holds whole brands (a brand or a group) sees, defines and sizes only audiences bound to one of its brands
(`brand_id`, which it fills in when the key holds one brand), whose condition admits only that brand's customers.
A store's or a dealer's key holds no whole brand: 403.
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
    ValidationIssue,
    ValidationReport,
)
from cdp.audiences.store import AudienceStore
from cdp.audiences.validation import AudienceInvalidError, Checked, checked, closure, references, validate
from cdp.errors import CdpError, ConflictError, ForbiddenError, InvalidInputError, NotFoundError
from cdp.ingest.auth import AUDIENCES_READ_SCOPE, AUDIENCES_WRITE_SCOPE, authorize
from cdp.ingest.ports import ApiClient
from cdp.observability import logger
from cdp.org import OrgDirectory, ScopeRef
from cdp.profile.models import Profile
from cdp.profile.ports import ProfileReader
from cdp.shared.time import utc_now
from cdp.tags.audience_rules import AudienceDefinition
from cdp.tags.catalog import TagCatalog

MAX_PREVIEW = 100
SCAN_WORKERS = 4  # segments read at once (DynamoDB parallel scan: the reads overlap)
OTHER = "other"
SINGLE_SCAN_MAX_PROFILES = 3_000  # a condition over events, on a table this small: one scan with the filed events

Survey = TypeVar("Survey")


class AudienceInUseError(CdpError):
    """The audience is referenced by others (409 at the edge): change or delete those first."""


@dataclass(frozen=True)
class AudienceAccess:
    """Which audiences a caller may see and define: every one (no org scope), or those bound to a brand it holds."""

    scope: ScopeRef
    org: OrgDirectory | None = None
    name: str = "the caller"

    @property
    def everything(self) -> bool:
        return self.scope == ScopeRef()

    def sees(self, definition: AudienceDefinition) -> bool:
        if self.everything:
            return True
        brand = definition.brand_id
        return brand is not None and self.org is not None and self.scope.holds_brand(self.org, brand)

    def bind(self, raw: object) -> object:
        """The definition as this caller may save it: bound to its brand when it holds exactly one and names none."""
        if self.everything or not isinstance(raw, dict):
            return raw
        named = raw.get("brand_id")
        if named is None and self.scope.brand_id is not None:
            return {**raw, "brand_id": self.scope.brand_id}
        if named is None:
            raise AudienceInvalidError(
                [ValidationIssue(field="brand_id", message=f"name the brand: {self.name} holds {self.scope.label}")]
            )
        if isinstance(named, str) and not (self.org is not None and self.scope.holds_brand(self.org, named)):
            raise ForbiddenError(f"{self.name} is limited to {self.scope.label}, not brand {named}")
        return raw


EVERYTHING = AudienceAccess(ScopeRef())
"""Trusted callers inside the deployment (the demo, the tests): every audience."""


def authorize_audiences(client: ApiClient, *, write: bool, org: OrgDirectory | None = None) -> AudienceAccess:
    authorize(client, AUDIENCES_WRITE_SCOPE if write else AUDIENCES_READ_SCOPE)
    scope = client.org_scope
    if scope.dealer_id or scope.store_id:
        raise ForbiddenError(
            f"audiences hold whole brands' customers; the key of {client.name} is limited to {scope.label}: use a "
            "key of the brand"
        )
    return AudienceAccess(scope, org, f"the key of {client.name}")


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

    def _visible(self, access: AudienceAccess) -> dict[str, AudienceDefinition]:
        return {k: d for k, d in self._store.definitions().items() if access.sees(d)}

    def _stored(self, audience_id: str, access: AudienceAccess) -> StoredAudience:
        stored = self._store.get(audience_id)
        if not access.sees(stored.definition):  # another brand's audience is not there, for this caller
            raise NotFoundError(f"no audience {audience_id!r}")
        return stored

    def _checked(self, raw: object, access: AudienceAccess) -> Checked:
        """Checked against the audiences the caller sees; an id another brand's audience holds is refused."""
        bound = access.bind(raw)
        result = checked(bound, self._catalog(), self._visible(access))
        taken = self._store.definitions().get(result.definition.id)
        if taken is not None and not access.sees(taken):
            raise ConflictError(f"audience id {result.definition.id!r} is taken: choose another id")
        return result

    def validate(self, raw: object, access: AudienceAccess = EVERYTHING) -> ValidationReport:
        return validate(access.bind(raw), self._catalog(), self._visible(access))

    def define(self, raw: object, access: AudienceAccess = EVERYTHING) -> StoredAudience:
        result = self._checked(raw, access)
        stored = self._store.put(result.definition, self._now())
        logger.info("audience defined", audience_id=stored.definition.id, version=stored.version)
        return stored

    def get(self, audience_id: str, access: AudienceAccess = EVERYTHING) -> StoredAudience:
        return self._stored(audience_id, access)

    def list(self, access: AudienceAccess = EVERYTHING) -> AudienceList:
        return AudienceList(
            audiences=[
                AudienceSummary(
                    id=s.definition.id,
                    name=s.definition.name,
                    brand_id=s.definition.brand_id,
                    kind=s.definition.kind,
                    version=s.version,
                    owner=s.definition.owner,
                    updated_at=s.updated_at,
                )
                for s in self._store.list()
                if access.sees(s.definition)
            ]
        )

    def delete(self, audience_id: str, access: AudienceAccess = EVERYTHING) -> StoredAudience:
        stored = self._stored(audience_id, access)
        readers = sorted(d.id for d in self._store.definitions().values() if audience_id in references(d))
        if readers:
            raise AudienceInUseError(
                f"audience {audience_id!r} is referenced by {', '.join(readers)}: change those first"
            )
        tombstone = self._store.delete(stored.definition.id, self._now())
        logger.info("audience deleted", audience_id=audience_id, version=tombstone.version)
        return tombstone

    def plan(self, audience_id: str, access: AudienceAccess = EVERYTHING) -> AudiencePlan:
        stored = self._stored(audience_id, access)
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

    def size(self, audience_id: str, request: SizeRequest, access: AudienceAccess = EVERYTHING) -> SizeEstimate:
        plan = self.plan(audience_id, access)
        as_of = self._now()
        scanner = AudienceScanner(self._profiles, plan, as_of, self._clock)
        request = self._one_scan_if_small(scanner, request)
        sample = self._sample(scanner, request, audience_id, scanner.count, lambda c: c.profiles)
        estimate = self._size_estimate(scanner, request, sample, as_of)
        logger.info("audience sized", audience_id=audience_id, estimate=estimate.estimate, segments=len(sample))
        return estimate

    def _one_scan_if_small(self, scanner: AudienceScanner, request: SizeRequest) -> SizeRequest:
        """A condition over events on a small table is read in one scan that returns the filed events with the
        profiles (no timeline read per person); the table is small when one segment's profiles, counted, say so."""
        if not scanner.reads_timelines or request.segments == 1 or request.sample_segments is not None:
            return request
        counted = sum(1 for _ in self._profiles.scan_shard(0, request.segments))
        if counted * request.segments > SINGLE_SCAN_MAX_PROFILES:
            return request
        return request.model_copy(update={"segments": 1})

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

    def estimate(self, request: EstimateRequest, access: AudienceAccess = EVERYTHING) -> AudienceEstimate:
        """One sampled scan answers the size, the members' portrait against all customers on the same profiles,
        and the first members: what a builder shows while the marketer edits the condition."""
        known = self._visible(access)
        result = self._checked(request.definition, access)
        draft = result.definition
        catalog = self._catalog()
        for i, tag in enumerate(request.portrait):
            if tag not in catalog.definitions:
                raise InvalidInputError(f"portrait: unknown tag {tag!r}", f"portrait[{i}]")
        saved = {s.definition.id: s.version for s in self._store.list() if access.sees(s.definition)}
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

        sizing = self._one_scan_if_small(scanner, request.size)
        sample = self._sample(scanner, sizing, draft.id, survey, lambda s: s.profiles)
        size = self._size_estimate(scanner, sizing, [s.count for s in sample], as_of)
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

    def preview(self, audience_id: str, limit: int, segments: int = 16, access: AudienceAccess = EVERYTHING) -> Preview:
        if not 1 <= limit <= MAX_PREVIEW:
            raise InvalidInputError(f"limit must be between 1 and {MAX_PREVIEW}", "limit")
        plan = self.plan(audience_id, access)
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

    def export(self, audience_id: str, request: ExportRequest, access: AudienceAccess = EVERYTHING) -> SnapshotManifest:
        """Freeze the members into a snapshot: a static audience is evaluated on every profile now; a dynamic one
        takes the persons whose membership tag is true (as tag_update keeps it)."""
        plan = self.plan(audience_id, access)
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

    def snapshots(self, audience_id: str, access: AudienceAccess = EVERYTHING) -> SnapshotList:
        """Newest first; a deleted audience's snapshots stay listed (campaigns that used them can be audited)."""
        found = [m for m in self._store.snapshots(audience_id) if access.sees(m.definition)]
        if not found:
            self._stored(audience_id, access)  # unknown (or not the caller's) is a 404, known without exports empty
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
