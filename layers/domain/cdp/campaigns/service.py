"""Campaign steps as pure functions over injected ports: select the audience, check conversions, summarize.

Every step reads and writes JSON artifacts under `campaigns/{run_id}/` and returns only keys and counts, so the
state machine's state stays small however big the audience is. Person ids are always re-resolved through
`ProfileReader.get`, because a person selected on day 0 may have been merged into another by day 3.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cdp import topology
from cdp.audiences.store import AudienceStore
from cdp.campaigns.assignments import assignment_events
from cdp.campaigns.attribution import Attributed, Touchpoints, credit
from cdp.campaigns.measurement import Lift, compare, compare_means
from cdp.campaigns.models import (
    TOUCH1,
    TOUCH2,
    AudienceCounts,
    AudienceDocument,
    AudienceManifest,
    AudienceSource,
    BatchRef,
    CampaignCommand,
    CampaignRequest,
    CampaignSummary,
    CheckCommand,
    CheckResult,
    ConversionReport,
    Funnel,
    GroupOutcome,
    Member,
    ReleaseCommand,
    Selection,
    SelectResult,
    SendTally,
    SummarizeCommand,
    SummarizeResult,
    Touch,
    dump,
    funnel_step,
)
from cdp.campaigns.ports import ArtifactStore, OfferPlans
from cdp.campaigns.targeting import TargetingReport, ValidationSource, choose, common_version
from cdp.channels.contact import exclusion
from cdp.errors import CdpError, InvalidInputError, NotFoundError
from cdp.identifiers.link_rules import IdentityRules
from cdp.identifiers.model import DEFAULT_PHONE_REGION
from cdp.ingest.events import OrderPlacedEvent
from cdp.ingest.service import packed
from cdp.observability import logger
from cdp.org import BrandConfig, OrgDirectory
from cdp.profile.models import Profile
from cdp.profile.ports import MessageRecord, ProfileReader, TimelineEntry
from cdp.shared.money import format_money
from cdp.shared.ports import EventPublisher
from cdp.tags.evaluate import audience_tag

# ---- artifact keys ------------------------------------------------------------------------------------------

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+\-]{0,127}$")


def run_prefix(run_id: str) -> str:
    if not _RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise InvalidInputError(f"run_id {run_id!r} is not a safe key segment", location="run_id")
    return f"{topology.CAMPAIGNS_PREFIX}{run_id}/"


def audience_key(run_id: str) -> str:
    return f"{run_prefix(run_id)}audience.json"


def batch_key(run_id: str, step: str, index: int) -> str:
    return f"{run_prefix(run_id)}batches/{step}/{index:04d}.json"


def conversions_key(run_id: str, step: str) -> str:
    return f"{run_prefix(run_id)}conversions/{step}.json"


def sends_key(run_id: str, step: str) -> str:
    return f"{run_prefix(run_id)}sends/{step}.json"


def summary_key(run_id: str) -> str:
    return f"{run_prefix(run_id)}summary.json"


def derive_run_id(request: CampaignRequest, now: datetime, execution_name: str | None = None) -> str:
    """The explicit run_id, else one per execution (a retried Select finds its own artifacts), else per second."""
    if request.run_id:
        return request.run_id
    suffix = re.sub(r"[^A-Za-z0-9_.:+\-]", "-", execution_name) if execution_name else f"{now:%Y%m%dT%H%M%SZ}"
    return f"{request.campaign_id}-{suffix}"[:128]


# ---- selection ----------------------------------------------------------------------------------------------


def holdout_draw(run_id: str, person_id: str) -> float:
    """A uniform number in [0, 1) fixed by (run_id, person_id): the split is random yet reproducible."""
    digest = hashlib.sha256(f"{run_id}\x1f{person_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def rank_key(member: Member) -> tuple[bool, float, str]:
    """Score descending, unscored last, ties broken by person_id so the order never depends on scan order."""
    return (member.score is None, -(member.score or 0.0), member.person_id)


def eligible(request: CampaignRequest, profile: Profile) -> bool:
    return (
        profile.brand_id == request.brand_id
        and profile.merged_into is None
        and profile.has_consent(request.consent_channel)
        and request.audience.matches(profile)
    )


def message_plan(request: CampaignRequest, treatment: Sequence[Member]) -> int:
    """The worst case of the run's messages: every treated person's first send and, with a second touch, its
    reminder, each on its dearest channel."""
    first = sum(request.budget.cost_of(request.first_touch(m.variant)) for m in treatment)
    second = request.budget.cost_of(request.touch2) * len(treatment) if request.follow_up and request.touch2 else 0
    return first + second


def capacity(request: CampaignRequest) -> int:
    """Recipients the budget pays touch1 for, capped by max_recipients."""
    cost = request.budget.cost_of(request.touch1)
    cap = request.budget.amount_minor // cost
    return cap if request.max_recipients is None else min(cap, request.max_recipients)


def split_holdout(run_id: str, ranked: Sequence[Member], fraction: float) -> tuple[list[Member], list[Member]]:
    treatment: list[Member] = []
    holdout: list[Member] = []
    for m in ranked:
        (holdout if holdout_draw(run_id, m.person_id) < fraction else treatment).append(m)
    return treatment, holdout


def _chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _write_batches(store: ArtifactStore, run_id: str, step: str, person_ids: Sequence[str], size: int) -> list[str]:
    keys = []
    for i, chunk in enumerate(_chunks(person_ids, size)):
        key = batch_key(run_id, step, i)
        store.put_json(key, chunk)
        keys.append(key)
    return keys


def _selection(doc: AudienceDocument) -> SelectResult:
    m = doc.manifest
    # a run selected before batches carried their touch: every batch is the request's touch1
    batches = m.batches or [BatchRef(batch_key=k, touch=m.request.touch1) for k in m.batch_keys]
    return SelectResult(
        request=m.request,
        selection=Selection(
            run_id=m.run_id,
            batches=batches,
            counts=m.counts,
            sent_at=m.sent_at,
            audience_key=audience_key(m.run_id),
        ),
    )


class AudienceWiringError(CdpError):
    """The request names a stored audience but the campaign function was given no audience store."""


@dataclass
class _Candidates:
    """Who may be selected: every profile (scan), the live members of a dynamic audience, or a snapshot's members
    re-resolved through merges. `resolved` counts the distinct live persons the audience contributed."""

    profiles: Iterator[Profile]
    source: AudienceSource | None = None
    request: CampaignRequest | None = None  # the request with the snapshot it reads made explicit
    resolved: set[str] = field(default_factory=set)


def _scan(request: CampaignRequest, profiles: ProfileReader) -> Iterator[Profile]:
    for shard in range(request.scan_segments):
        yield from profiles.scan_shard(shard, request.scan_segments)


def _candidates(request: CampaignRequest, profiles: ProfileReader, audiences: AudienceStore | None) -> _Candidates:
    audience_id, snapshot_id = request.audience.audience_id, request.audience.snapshot_id
    if audience_id is None:
        return _Candidates(_scan(request, profiles))
    if audiences is None:
        raise AudienceWiringError(f"the request names audience {audience_id!r} but no audience store is configured")
    try:
        stored = audiences.get(audience_id)
    except NotFoundError as exc:
        raise InvalidInputError(f"no audience {audience_id!r}", "audience.audience_id") from exc
    kind = stored.definition.kind
    out = _Candidates(iter(()))
    if kind == "dynamic" and snapshot_id is None:  # the live membership, as tag_update keeps it
        tag = audience_tag(audience_id)

        def live() -> Iterator[Profile]:
            for profile in _scan(request, profiles):
                value = profile.tags.get(tag)
                if value is not None and value.value is True:
                    out.resolved.add(profile.person_id)
                    yield profile

        out.profiles = live()
        out.source = AudienceSource(audience_id=audience_id, kind=kind, version=stored.version, resolved=0)
        return out
    try:
        manifest = (
            audiences.snapshot(audience_id, snapshot_id) if snapshot_id else audiences.latest_snapshot(audience_id)
        )
    except NotFoundError as exc:
        raise InvalidInputError(str(exc), "audience.snapshot_id" if snapshot_id else "audience.audience_id") from exc

    def frozen() -> Iterator[Profile]:
        members = list(audiences.members(manifest))
        current = profiles.get_many(members)  # follows merged_into: a member merged since is selected as the survivor
        for person_id in members:
            profile = current.get(person_id)
            if profile is not None and not profile.dissolved:
                out.resolved.add(profile.person_id)
                yield profile

    out.profiles = frozen()
    out.source = AudienceSource(
        audience_id=audience_id,
        kind=kind,
        version=stored.version,
        snapshot_id=manifest.snapshot_id,
        snapshot_as_of=manifest.as_of,
        snapshot_count=manifest.count,
        resolved=0,
    )
    out.request = request.model_copy(
        update={"audience": request.audience.model_copy(update={"snapshot_id": manifest.snapshot_id})}
    )
    return out


@dataclass(frozen=True)
class SelectionPlan:
    """Who a run selects, before anything is written: eligible (ranked), the budget cut, and its split."""

    request: CampaignRequest
    source: AudienceSource | None
    pool: list[Member]
    selected: list[Member]
    treatment: list[Member]
    holdout: list[Member]
    excluded: int = 0  # matched, but in the brand's global control group or on a suppression list
    targeting: TargetingReport | None = None  # uplift targeting: which ranking chose, both rankings' expectations
    anchors: dict[str, str] = field(default_factory=dict)  # each pooled person's identifier their timeline is kept by


def plan_selection(
    request: CampaignRequest,
    profiles: ProfileReader,
    audiences: AudienceStore | None,
    brand: BrandConfig | None = None,
    validations: ValidationSource | None = None,
) -> SelectionPlan:
    """Scan (or read the named audience), filter, rank, cut to budget, split holdout (`request.run_id` seeds the
    split); `brand`: leave out whom its contact policy keeps from all marketing; `validations`: the uplift models'
    held-out comparisons, for targeting `auto`. Writes nothing: the select step and the dry run share it."""
    run_id = request.run_id
    if run_id is None:
        raise InvalidInputError("a selection needs the run id that seeds its holdout draw", "run_id")
    candidates = _candidates(request, profiles, audiences)
    request = candidates.request or request
    seen: set[str] = set()
    pool: list[Member] = []
    excluded = 0
    marketing = request.touch1.purpose == "marketing"
    targeting = request.targeting
    uplift_model = targeting.uplift_model if targeting is not None and targeting.ranking != "response" else None
    versions: list[str] = []
    anchors: dict[str, str] = {}
    rules = brand.rules if brand is not None else IdentityRules()
    for profile in candidates.profiles:
        if profile.person_id in seen or not eligible(request, profile):
            continue
        seen.add(profile.person_id)
        if brand is not None and marketing and exclusion(brand, profile) is not None:
            excluded += 1
            continue
        score = profile.scores.get(request.score_model)
        uplift = profile.scores.get(uplift_model) if uplift_model else None
        if uplift is not None:
            versions.append(uplift.model_version)
        if (anchor := rules.anchor(profile.identifiers)) is not None:
            anchors[profile.person_id] = anchor
        pool.append(
            Member(
                person_id=profile.person_id,
                score=score.score if score else None,
                uplift=uplift.score if uplift else None,
                p_treated=uplift.outputs.get("treated") if uplift else None,
            )
        )
    source = candidates.source
    if source is not None:
        source = source.model_copy(update={"resolved": len(candidates.resolved)})
    pool.sort(key=rank_key)
    report = None
    if targeting is not None and uplift_model is not None:
        cost = request.budget.cost_of(request.touch1)
        version = common_version(versions)
        selected, report = choose(pool, capacity(request), targeting, cost, rank_key, version, validations)
    else:
        selected = pool[: capacity(request)]
    treatment, holdout = split_holdout(run_id, selected, request.holdout_fraction)
    return SelectionPlan(request, source, pool, selected, treatment, holdout, excluded, report, anchors)


def select_audience(
    request: CampaignRequest,
    profiles: ProfileReader,
    store: ArtifactStore,
    now: datetime,
    execution_name: str | None = None,
    audiences: AudienceStore | None = None,
    brand: BrandConfig | None = None,
    plans: OfferPlans | None = None,
    validations: ValidationSource | None = None,
    publisher: EventPublisher | None = None,
) -> SelectResult:
    """Scan (or read the named audience), filter, rank, cut to budget, split holdout; reserve the run's catalog offers
    for every treated person (`plans`: their budget pools; a pool short fails the selection, nothing held); file each
    selected person's group on their timeline (`publisher`: `campaign_assigned` events on the bus); write
    audience.json and the touch1 batches."""
    run_id = derive_run_id(request, now, execution_name)
    key = audience_key(run_id)
    if store.exists(key):  # a retried Select must not draw a different audience for the same run
        logger.info("audience already selected", run_id=run_id)
        return _selection(AudienceDocument.model_validate(store.get_json(key)))

    plan = plan_selection(request.model_copy(update={"run_id": run_id}), profiles, audiences, brand, validations)
    request, source, pool, selected, treatment, holdout = (
        plan.request,
        plan.source,
        plan.pool,
        plan.selected,
        plan.treatment,
        plan.holdout,
    )
    if request.variants:  # each treated person's A/B/n arm, stable for the campaign
        treatment = [m.model_copy(update={"variant": request.variant_for(m.person_id)}) for m in treatment]
    batches: list[BatchRef] = []
    for variant in dict.fromkeys(m.variant for m in treatment):
        ids = [m.person_id for m in treatment if m.variant == variant]
        step = TOUCH1 if variant is None else f"{TOUCH1}-{variant}"
        keys = _write_batches(store, run_id, step, ids, request.batch_size)
        batches.extend(BatchRef(batch_key=k, touch=request.first_touch(variant)) for k in keys)
    offers_reserved = messages_reserved = 0
    if plans is not None and request.catalog_offers:  # before audience.json: a retried selection reserves again
        offers_reserved = plans.reserve(request.brand_id, run_id, request.catalog_offers, len(treatment), now)
    if plans is not None and request.budget.pool_id is not None:
        try:
            messages_reserved = plans.reserve_messages(
                request.brand_id, run_id, request.budget.pool_id, message_plan(request, treatment), now
            )
        except Exception:  # the offers' plans go back too: nothing held for a run that cannot start
            plans.release(request.brand_id, run_id, request.catalog_offers, now)
            raise
    counts = AudienceCounts(
        excluded_contact_policy=plan.excluded,
        eligible=len(pool),
        selected=len(selected),
        treatment=len(treatment),
        holdout=len(holdout),
        unscored=sum(1 for m in selected if m.score is None),
    )
    doc = AudienceDocument(
        manifest=AudienceManifest(
            run_id=run_id,
            request=request,
            audience=source,
            selected_at=now,
            sent_at=now,
            counts=counts,
            capacity=capacity(request),
            budget_reserved_minor=sum(request.budget.cost_of(request.first_touch(m.variant)) for m in treatment),
            offers_reserved_minor=offers_reserved,
            messages_reserved_minor=messages_reserved,
            currency=request.budget.currency,
            batch_keys=[b.batch_key for b in batches],
            batches=batches,
            targeting=plan.targeting,
        ),
        treatment=treatment,
        holdout=holdout,
    )
    if publisher is not None:  # before audience.json: a retried selection files the same events (ingest: once)
        groups = {"treatment": treatment, "holdout": holdout}
        region = brand.phone_region if brand is not None else DEFAULT_PHONE_REGION
        events = assignment_events(request, run_id, groups, plan.anchors, now, region)
        if events:
            publisher.publish(packed(events), f"{run_id}-assigned")
    # audience.json last: its presence means the batches are complete (the retry check above relies on it)
    store.put_json(key, dump(doc))
    logger.info(
        "audience selected",
        run_id=run_id,
        audience_id=source.audience_id if source else None,
        snapshot_id=source.snapshot_id if source else None,
        **counts.model_dump(),
    )
    return _selection(doc)


# ---- conversions --------------------------------------------------------------------------------------------


@dataclass
class _Measured:
    outcome: GroupOutcome
    non_converters: list[Profile] = field(default_factory=list)
    persons: set[str] = field(default_factory=set)
    amounts: list[int] = field(default_factory=list)  # each person's revenue in the window (0: bought nothing)
    attributed: Attributed = field(default_factory=Attributed)


MessagesOf = Callable[[str], Sequence[MessageRecord]]
DEFAULT_ATTRIBUTION_DAYS = 7  # the brand's `campaigns.attribution_window_days` when no org is given


@dataclass(frozen=True)
class Crediting:
    """How a group's orders are credited (`cdp.campaigns.attribution`): to this campaign or another."""

    campaign_id: str
    window: timedelta
    messages: MessagesOf | None = None


def _orders_in_window(
    profiles: ProfileReader, profile: Profile, since: datetime, until: datetime
) -> tuple[list[OrderPlacedEvent], list[TimelineEntry]]:
    last = profile.facts.last_order_at
    if last is None or last <= since:  # the facts say there is no newer order: skip the timeline read
        return [], []
    timeline = profiles.timeline(profile)
    orders = [
        e.event for e in timeline if isinstance(e.event, OrderPlacedEvent) and since < e.event.occurred_at <= until
    ]
    return orders, timeline


def measure_group(
    members: Sequence[Member],
    profiles: ProfileReader,
    since: datetime,
    until: datetime,
    currency: str,
    exclude: set[str] | None = None,
    crediting: Crediting | None = None,
) -> _Measured:
    """Converted = at least one order_placed in (since, until]. Members merged into one person count once. With
    `crediting`, each order is also credited to a campaign (only buyers' records are read)."""
    exclude = exclude or set()
    measured = _Measured(GroupOutcome(size=0, converted=0, revenue_minor=0))
    size = converted = revenue = other = 0
    current = profiles.get_many(m.person_id for m in members)  # batched reads, merges followed as by get
    for member in members:
        profile = current.get(member.person_id)
        if profile is None:  # erased or unknown: stays in the denominator, cannot convert
            size += 1
            measured.amounts.append(0)
            continue
        if profile.person_id in measured.persons or profile.person_id in exclude:
            continue
        measured.persons.add(profile.person_id)
        size += 1
        orders, timeline = _orders_in_window(profiles, profile, since, until)
        spent = sum(o.properties.total_minor for o in orders if o.properties.currency == currency)
        measured.amounts.append(spent)
        if orders:
            converted += 1
            revenue += spent
            other += sum(1 for o in orders if o.properties.currency != currency)
            if crediting is not None:
                sent = crediting.messages(profile.person_id) if crediting.messages else ()
                touches = Touchpoints.of(timeline, sent)
                earned = [(o, credit(o, touches, crediting.window)) for o in orders]
                measured.attributed.add(earned, crediting.campaign_id, currency)
        else:
            measured.non_converters.append(profile)
    measured.outcome = GroupOutcome(size=size, converted=converted, revenue_minor=revenue, orders_other_currency=other)
    return measured


def _load_audience(store: ArtifactStore, run_id: str) -> AudienceDocument:
    try:
        return AudienceDocument.model_validate(store.get_json(audience_key(run_id)))
    except NotFoundError as exc:
        raise InvalidInputError(f"campaign run {run_id!r} has no audience", location="run_id") from exc


def _measure_both(
    doc: AudienceDocument, profiles: ProfileReader, now: datetime, crediting: Crediting | None = None
) -> tuple[_Measured, _Measured, datetime]:
    m = doc.manifest
    window_end = m.sent_at + timedelta(seconds=m.request.conversion_window_seconds)
    until = min(now, window_end)
    treated = measure_group(doc.treatment, profiles, m.sent_at, until, m.currency, crediting=crediting)
    # a holdout member merged into a treated person got the message: they count as treated only
    held = measure_group(doc.holdout, profiles, m.sent_at, until, m.currency, exclude=treated.persons)
    return treated, held, window_end


def _tally(results: Iterable[SendTally]) -> SendTally:
    total = SendTally()
    for r in results:
        total = total + r
    return total


def check_conversions(
    run_id: str,
    profiles: ProfileReader,
    store: ArtifactStore,
    now: datetime,
    step: str = TOUCH2,
    touch1_results: Sequence[SendTally] = (),
) -> CheckResult:
    """Who converted since the send; write the follow-up batches for treatment non-converters."""
    doc = _load_audience(store, run_id)
    request = doc.manifest.request
    touch1 = _tally(touch1_results)
    store.put_json(sends_key(run_id, TOUCH1), dump(touch1))

    treated, held, window_end = _measure_both(doc, profiles, now)
    follow_up: list[str] = []
    if request.follow_up and request.touch2 is not None:
        follow_up = [p.person_id for p in treated.non_converters if p.has_consent(request.touch2.channel)]
    keys = _write_batches(store, run_id, step, follow_up, request.batch_size)
    report = ConversionReport(
        run_id=run_id,
        step=step,
        checked_at=now,
        window_end=window_end,
        treatment=treated.outcome,
        holdout=held.outcome,
        follow_up_persons=len(follow_up),
        follow_up_batch_keys=keys,
    )
    store.put_json(conversions_key(run_id, step), dump(report))
    logger.info(
        "conversions checked",
        run_id=run_id,
        treatment_converted=treated.outcome.converted,
        holdout_converted=held.outcome.converted,
        follow_up=len(follow_up),
    )
    return CheckResult(
        run_id=run_id,
        step=step,
        batches=[BatchRef(batch_key=k) for k in keys],
        treatment_converted=treated.outcome.converted,
        holdout_converted=held.outcome.converted,
        follow_up_persons=len(follow_up),
        touch1=touch1,
        report_key=conversions_key(run_id, step),
    )


# ---- summary ------------------------------------------------------------------------------------------------


def scale(amount: int, numerator: int, denominator: int) -> int:
    """amount * numerator / denominator in integers, rounded half away from zero (money never becomes a float)."""
    q = (abs(amount) * numerator * 2 + denominator) // (2 * denominator)
    return q if amount >= 0 else -q


def _by_channel(tally: SendTally, touch: Touch | None) -> dict[str, int]:
    if tally.by_channel:
        return {k: v for k, v in tally.by_channel.items() if v}
    # a send result without a per-channel split: every sent message went out on the touch's channel
    return {touch.channel: tally.sent} if touch is not None and tally.sent else {}


def _cost(by_channel: dict[str, int], prices: dict[str, int]) -> int:
    return sum(count * prices.get(channel, 0) for channel, count in by_channel.items())


def _variant_lifts(
    doc: AudienceDocument, profiles: ProfileReader, now: datetime, held: GroupOutcome
) -> dict[str, Lift]:
    """Each A/B/n arm's treated persons against the whole holdout (the arms' own rates side by side)."""
    m = doc.manifest
    until = min(now, m.sent_at + timedelta(seconds=m.request.conversion_window_seconds))
    out: dict[str, Lift] = {}
    for arm in m.request.variants:
        members = [p for p in doc.treatment if p.variant == arm.name]
        outcome = measure_group(members, profiles, m.sent_at, until, m.currency).outcome
        out[arm.name] = compare(outcome.converted, outcome.size, held.converted, held.size)
    return out


def _per_conversion(cost: int, incremental: float | None) -> int | None:
    return round(cost / incremental) if incremental is not None and incremental >= 1 else None


def _funnel(doc: AudienceDocument, touch1: SendTally, touch2: SendTally, treated: _Measured) -> Funnel:
    counts = doc.manifest.counts
    steps = {TOUCH1: funnel_step(touch1)}
    if doc.manifest.request.follow_up:
        steps[TOUCH2] = funnel_step(touch2)
    return Funnel(
        eligible=counts.eligible,
        excluded_contact_policy=counts.excluded_contact_policy,
        selected=counts.selected,
        treatment=counts.treatment,
        holdout=counts.holdout,
        steps=steps,
        offers_redeemed=treated.attributed.coupon_orders,
        purchased=treated.attributed.persons,
        credited_orders=treated.attributed.orders,
        credited_revenue_minor=treated.attributed.revenue_minor,
        converted_any=treated.outcome.converted,
    )


def _display(
    currency: str,
    costs: tuple[int, int, int | None],
    t: GroupOutcome,
    h: GroupOutcome,
    incremental: int | None,
    credited: Attributed,
) -> dict[str, str]:
    cost, offer_cost, per_conversion = costs
    amounts = {
        "cost": cost,
        "offer_cost": offer_cost,
        "cost_per_incremental_conversion": per_conversion,
        "treatment_revenue": t.revenue_minor,
        "holdout_revenue": h.revenue_minor,
        "incremental_revenue": incremental,
        "credited_revenue": credited.revenue_minor,
        "discounts": credited.discounts_minor,
        "revenue_per_treated_person": scale(t.revenue_minor, 1, t.size) if t.size else None,
        "revenue_per_holdout_person": scale(h.revenue_minor, 1, h.size) if h.size else None,
    }
    return {name: format_money(value, currency) for name, value in amounts.items() if value is not None}


def _load_tally(store: ArtifactStore, key: str) -> SendTally:
    return SendTally.model_validate(store.get_json(key)) if store.exists(key) else SendTally()


def release_plans(run_id: str, store: ArtifactStore, now: datetime, plans: OfferPlans | None) -> list[str]:
    """The catalog offers whose plans the failed run gave back (none: it reserved none, or its selection never
    finished)."""
    key = audience_key(run_id)
    if plans is None or not store.exists(key):
        return []
    request = _load_audience(store, run_id).manifest.request
    if request.catalog_offers or request.budget.pool_id:
        plans.release(request.brand_id, run_id, request.catalog_offers, now)
    return [*request.catalog_offers, *(["messages"] if request.budget.pool_id else [])]


def summarize(
    run_id: str,
    profiles: ProfileReader,
    store: ArtifactStore,
    now: datetime,
    touch2_results: Sequence[SendTally] = (),
    plans: OfferPlans | None = None,
    org: OrgDirectory | None = None,
    messages: MessagesOf | None = None,
) -> SummarizeResult:
    """Treatment vs holdout: conversion and revenue per person with their intervals, incremental revenue (int minor
    units), cost and ROI (defined beside it), the funnel from the audience to the orders credited to the campaign
    (`cdp.campaigns.attribution`). The run's offer plans give back what their coupons did not take (`plans`)."""
    doc = _load_audience(store, run_id)
    request = doc.manifest.request
    if plans is not None and (request.catalog_offers or request.budget.pool_id):
        plans.release(request.brand_id, run_id, request.catalog_offers, now)
    touch1 = _load_tally(store, sends_key(run_id, TOUCH1))
    touch2 = _tally(touch2_results)
    store.put_json(sends_key(run_id, TOUCH2), dump(touch2))
    days = org.brand(request.brand_id).campaigns.attribution_window_days if org else DEFAULT_ATTRIBUTION_DAYS
    crediting = Crediting(request.campaign_id, timedelta(days=days), messages)
    treated, held, _ = _measure_both(doc, profiles, now, crediting)
    t, h = treated.outcome, held.outcome

    prices: dict[str, int] = {str(k): v for k, v in request.budget.cost_per_message_minor.items()}
    ch1, ch2 = _by_channel(touch1, request.touch1), _by_channel(touch2, request.touch2)
    by_channel = {c: ch1.get(c, 0) + ch2.get(c, 0) for c in sorted({*ch1, *ch2})}
    cost1, cost2 = _cost(ch1, prices), _cost(ch2, prices)
    offers = plans.spent(request.brand_id, run_id, request.catalog_offers) if plans and request.catalog_offers else []
    offer_cost = sum(o.spent_minor for o in offers if o.in_cost)
    cost = cost1 + cost2 + offer_cost

    has_holdout = h.size > 0
    expected_t_revenue = scale(h.revenue_minor, t.size, h.size) if has_holdout else None
    incremental_revenue = t.revenue_minor - expected_t_revenue if expected_t_revenue is not None else None
    incremental_conversions = t.converted - h.converted * t.size / h.size if has_holdout else None
    per_conversion = _per_conversion(cost, incremental_conversions)
    summary = CampaignSummary(
        run_id=run_id,
        campaign_id=request.campaign_id,
        currency=request.budget.currency,
        summarized_at=now,
        treatment=t,
        holdout=h,
        treatment_rate=round(t.rate, 6),
        holdout_rate=round(h.rate, 6),
        absolute_lift=round(t.rate - h.rate, 6) if has_holdout else None,
        incremental_conversions=round(incremental_conversions, 2) if incremental_conversions is not None else None,
        revenue_per_person_treatment_minor=scale(t.revenue_minor, 1, t.size) if t.size else 0,
        revenue_per_person_holdout_minor=scale(h.revenue_minor, 1, h.size) if has_holdout else None,
        incremental_revenue_minor=incremental_revenue,
        conversion_lift=compare(t.converted, t.size, h.converted, h.size) if has_holdout else None,
        variants=_variant_lifts(doc, profiles, now, h) if request.variants and has_holdout else {},
        messages={TOUCH1: touch1, TOUCH2: touch2},
        messages_by_channel=by_channel,
        cost_minor=cost,
        touch1_cost_minor=cost1,
        touch2_cost_minor=cost2,
        offer_cost_minor=offer_cost,
        offers=offers,
        budget_minor=request.budget.amount_minor,
        roi=round((incremental_revenue - cost) / cost, 4) if cost and incremental_revenue is not None else None,
        cost_per_incremental_conversion_minor=per_conversion,
        revenue_lift=compare_means(treated.amounts, held.amounts, request.budget.currency) if has_holdout else None,
        attribution=treated.attributed,
        funnel=_funnel(doc, touch1, touch2, treated),
        display=_display(
            request.budget.currency, (cost, offer_cost, per_conversion), t, h, incremental_revenue, treated.attributed
        ),
    )
    store.put_json(summary_key(run_id), dump(summary))
    logger.info("campaign summarized", run_id=run_id, cost_minor=cost, incremental_revenue_minor=incremental_revenue)
    return SummarizeResult(
        run_id=run_id,
        summary_key=summary_key(run_id),
        treatment=t.size,
        holdout=h.size,
        treatment_converted=t.converted,
        holdout_converted=h.converted,
        incremental_revenue_minor=incremental_revenue,
        cost_minor=cost,
        roi=summary.roi,
    )


# ---- one entry point for the Lambda ---------------------------------------------------------------------------


def run_command(
    command: CampaignCommand,
    profiles: ProfileReader,
    store: ArtifactStore,
    now: datetime,
    audiences: AudienceStore | None = None,
    org: OrgDirectory | None = None,
    plans: OfferPlans | None = None,
    validations: ValidationSource | None = None,
    publisher: EventPublisher | None = None,
    messages: MessagesOf | None = None,
) -> dict[str, Any]:
    """Dispatch one state machine step; returns the JSON the state machine keeps (keys and counts only)."""
    if isinstance(command, CheckCommand):
        return dump(check_conversions(command.run_id, profiles, store, now, command.step, command.touch1_results))
    if isinstance(command, SummarizeCommand):
        return dump(summarize(command.run_id, profiles, store, now, command.touch2_results, plans, org, messages))
    if isinstance(command, ReleaseCommand):
        return {"run_id": command.run_id, "released": release_plans(command.run_id, store, now, plans)}
    brand = org.brand(command.request.brand_id) if org is not None and command.request.brand_id else None
    request, execution = command.request, command.execution_name
    return dump(
        select_audience(request, profiles, store, now, execution, audiences, brand, plans, validations, publisher)
    )
