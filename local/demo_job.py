"""`cdp demo`: the product's main job on the embedded local default.

A synthetic brand (with ground truth) goes through the real HTTP API, identity resolution, tags, the train and
score state machines and one campaign with a holdout, all on moto in-process; the figures land in
demo-output/summary.json and demo-output/report.html.

The brand's events arrive the way its channels would send them (`cdp_local.demo.channels`): Segment batches from the
app and the site, the mini-program's server, the official account's pushes, POS receipts, ad callbacks, push/SMS/SES
feedback and the Tmall/JD pulls; only what no connector can say goes to POST /v1/events. The summary counts each
connector's requests and events, and why events took /v1/events.
"""

from __future__ import annotations

import gc
import json
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from cdp import topology
from cdp.audiences.store import AudienceStore
from cdp.campaigns.lifecycle import parse_definition
from cdp.campaigns.service import capacity, plan_selection
from cdp.campaigns.targeting import ManifestValidations
from cdp.connectors.feedback_ses import CertificateFetcher, StaticCertificateFetcher, set_certificate_fetcher
from cdp.connectors.platforms import client_for
from cdp.connectors.platforms.aws import DynamoPullState, S3Rejects
from cdp.connectors.platforms.service import PullPorts, pull_shop
from cdp.connectors.platforms.transport import RecordedTransport
from cdp.connectors.sources import SourcesConfig, parse_sources
from cdp.ingest.aws import DynamoDedupeLedger, S3RawArchive
from cdp.ingest.events import CampaignAssignedEvent
from cdp.org import load_org
from cdp.shared.aws import EventBridgePublisher, S3ObjectStore
from cdp.shared.time import utc_now
from cdp.tags.dynamodb import DynamoTagStore
from cdp_local.cli_import import run_history
from cdp_local.demo.analytics import customer_analytics
from cdp_local.demo.api import DemoFailed, call_api
from cdp_local.demo.brand import SyntheticBrand, generate_brand
from cdp_local.demo.catalog import BRAND_ID
from cdp_local.demo.channels import (
    EVENTS,
    SNS_CERT_URL,
    ChannelEncoder,
    NativeRequest,
    PlatformBatch,
    SnsSigner,
    demo_sources,
)
from cdp_local.demo.journeys import run_journey_scenes
from cdp_local.demo.models import (
    RESPONSE_MODEL,
    UPLIFT_MODEL,
    TrainedModels,
    demo_models,
    model_headlines,
    targeting_truth,
)
from cdp_local.demo.offers import (
    COUPON_OFFER,
    coupons_by_key,
    define_offer,
    expire_unused,
    loyalty_summary,
    offers_summary,
    wallet_entries,
)
from cdp_local.demo.senders import DemoSenders
from cdp_local.demo.tags_audiences import STATIC_AUDIENCE_ID, define_dynamic_audience, tags_and_audiences
from cdp_local.demo.truth import event_keys
from cdp_local.runtime import LocalRuntime

INGEST_BATCH = 200  # events per window: each window's requests are sent, then the queues drained
MALFORMED_SHARE = 0.004  # real feeds carry junk: the demo sends some and shows it rejected with reasons
LIVE_DAYS = 21  # the brand's last 3 weeks stream live (every channel speaks in them); older events: one history import
RESENT_BATCHES = 3  # client retries: whole /v1/events batches sent twice must be accepted once
# and the first request (pull run) of every connector is sent twice too: each channel's dedupe is shown
# The follow-up delay: 3 days on AWS. Compressed here: the world's replies land in it, and the demo ends the wait
# (LocalRuntime.end_wait_state) once they are all processed; its seconds only bound it.
CAMPAIGN_WAIT_S = 120
SCORE_SHARDS = 1  # one scan returns every profile with its filed events; 4 shards would read timelines per person
PRECISION_TARGET, RECALL_TARGET = 0.995, 0.98  # identity targets: pairwise precision, recall on linkable pairs


@dataclass
class Execution:
    machine: str
    status: str
    seconds: float
    output: Any = None


@dataclass
class DemoState:
    brand: SyntheticBrand
    stages: dict[str, float] = field(default_factory=dict)
    executions: list[Execution] = field(default_factory=list)
    ingest: Counter[str] = field(default_factory=Counter)
    rejected_examples: list[dict[str, Any]] = field(default_factory=list)
    connectors: dict[str, Counter[str]] = field(default_factory=dict)  # connector -> requests, events_sent, ...
    routed_to_events: Counter[str] = field(default_factory=Counter)  # why events took /v1/events
    history: dict[str, Any] = field(default_factory=dict)  # the history import's report

    def tally(self) -> Tally:
        return Tally(self.ingest, self.connectors, self.rejected_examples)


@contextmanager
def _stage(state: DemoState, name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    state.stages[name] = round(time.perf_counter() - t0, 2)
    gc.freeze()  # see _collector_skips_what_stages_keep


@contextmanager
def _collector_skips_what_stages_keep() -> Iterator[None]:
    """What a stage leaves behind (moto's tables, queues and objects, the handlers' caches) lives until the demo
    ends: each stage's end moves it out of the cyclic collector's passes (`gc.freeze`), which otherwise walk all of
    it again and again (~1 s a full pass at 2,000 customers, several per stage). Objects made later are collected
    as usual, and everything is handed back to the collector when the runtime has closed."""
    try:
        yield
    finally:
        gc.unfreeze()


def malformed_copies(events: list[dict[str, Any]], share: float, seed: int) -> list[dict[str, Any]]:
    """Broken copies of real events (bad phone, naive timestamp, negative quantity, missing identifiers)."""
    rng = random.Random(seed)
    broken = []
    for i, original in enumerate(rng.sample(events, max(1, int(len(events) * share)))):
        event = json.loads(json.dumps(original))
        event["event_id"] = f"junk-{i:05d}"
        kind = i % 4
        if kind == 0:
            event["identifiers"] = [{"type": "phone", "value": "12345"}]
        elif kind == 1:
            event["occurred_at"] = event["occurred_at"][:19]
        elif kind == 2:
            event["identifiers"] = []
        else:
            event["event_type"] = "order_cancelled"
        broken.append(event)
    return broken


def _expire_offers(rt: LocalRuntime, brand_id: str, campaign: dict[str, Any]) -> None:
    """The schedule's tick a day past the coupons' validity expires the codes nobody used; then the offers' tally.
    After the journeys: they run in the campaign's week, where its SMS still counts against the caps."""
    expired = expire_unused(rt, campaign.pop("_sent_at"))
    orders = campaign.pop("_coupon_orders")
    campaign["offers"] = offers_summary(rt, brand_id, campaign["summary"], orders) | {"expired_by_the_tick": expired}


def run_demo(
    customers: int,
    seed: int,
    output: Path,
    progress: Progress,
    console: Console,
    min_auc: float = 0.5,
    runtime: LocalRuntime | None = None,
) -> dict[str, Any]:
    """The whole product on a synthetic brand; `runtime`: run it into a runtime that lives on (`cdp serve --demo`
    serves the demo's data), else into one of its own."""
    started = time.perf_counter()
    now = utc_now().replace(microsecond=0)
    task = progress.add_task("generate synthetic brand", total=1)
    brand = generate_brand(customers=customers, seed=seed, now=now)
    progress.update(task, completed=1)
    state = DemoState(brand=brand)
    state.stages["generate"] = round(time.perf_counter() - started, 2)
    with (
        _collector_skips_what_stages_keep(),
        nullcontext(runtime) if runtime is not None else LocalRuntime() as rt,
        DemoSenders(rt, _brand_id(brand)) as senders,
        _Channels(rt, senders.sources()) as channels,
    ):
        store = DynamoTagStore(topology.PROFILES_TABLE.local_name, client=rt.client("dynamodb"))
        define_dynamic_audience(rt)  # set up before any event: tag_update keeps its membership current
        with _stage(state, "ingest_identity_tags"):
            _ingest(channels, state, progress, seed, now)
        with _stage(state, "identity_scoring"):
            identity, resolved = _identity_report(rt, brand)
        with _stage(state, "identity_checks"):
            identity["bulk_vs_online"] = _bulk_agreement(brand, resolved)
            identity["profile_lookup_ms"] = _lookup_latency(rt, sorted(set(resolved.values())), seed)
        with _stage(state, "tag_sweep"):
            sweep = rt.fire_schedule("cdp-hourly-tag-sweep").result
            rt.drain()
        with _stage(state, "train"):
            models = _train_models(rt, state, progress, seed, min_auc)
        with _stage(state, "score"):  # every promoted model in one pass: each person's scores in one write
            payload = {"model_names": models.promoted, "total_shards": SCORE_SHARDS}
            _run_machine(rt, state, progress, "score", payload, timeout=900)
        with _stage(state, "tags_audiences"):
            task = progress.add_task("full tag refresh, batch check, audiences", total=1)
            tag_stage, tags = tags_and_audiences(rt, store, output)
            progress.update(task, completed=1)
        with _stage(state, "campaign"):
            campaign = _run_campaign(channels, state, store, progress, senders, seed)
        with _stage(state, "journeys"):
            task = progress.add_task("journeys: cart, birthday, cold snap", total=1)
            followers = senders.know_followers()  # WeChat knows who follows the official account
            journeys = run_journey_scenes(rt, _brand_id(brand), utc_now(), seed, senders.with_sms_templates)
            journeys["wechat_followers"] = followers
            journeys["provider_receipts"] = senders.post_receipts(seed + 1)
            journeys["message_status"] = senders.statuses(list(journeys["journeys"]))
            progress.update(task, completed=1)
        with _stage(state, "offers_expiry"):  # a week on: the local clock moves past the coupons' validity
            _expire_offers(rt, _brand_id(brand), campaign)
        with _stage(state, "analytics"):  # the warehouse export, then cohorts and campaigns' outcomes over it
            analytics = customer_analytics(rt, _brand_id(brand))
        outbox = _outbox_counts(rt)
    state.stages["total"] = round(time.perf_counter() - started, 2)
    summary = _summary(state, identity, tags, sweep, tag_stage, models, campaign, outbox, journeys, analytics)
    output.mkdir(parents=True, exist_ok=True)
    (output / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=False, default=str) + "\n")
    from cdp_local.report import write_report

    write_report(summary, output / "report.html")
    failed = [e for e in state.executions if e.status != "SUCCEEDED"]
    if failed:
        raise DemoFailed(f"state machine executions did not succeed: {[(e.machine, e.status) for e in failed]}")
    return summary


# ---- stages -------------------------------------------------------------------------------------------------


def _post(rt: LocalRuntime, batch: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    headers = {"content-type": "application/json", "x-api-key": rt.api_key}
    response = rt.http("POST", "/v1/events", json.dumps({"batch": batch}).encode(), headers)
    return response.status, json.loads(response.body)


@dataclass
class Tally:
    """Counts of one phase (the brand's history, or the world's replies): in all and per connector."""

    total: Counter[str]
    by_connector: dict[str, Counter[str]]
    rejected_examples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, connector: str, first: bool, events: int, result: dict[str, Any]) -> None:
        """One request's answer (`first`: not a resend); `result` holds accepted, duplicates and rejected."""
        rejected = result.get("rejected", [])
        per = self.by_connector.setdefault(connector, Counter())
        for counts in (per, self.total):
            counts["requests"] += 1
            counts["accepted"] += result.get("accepted", 0)
            counts["duplicates"] += result.get("duplicates", 0)
            counts["rejected"] += len(rejected) if first else 0
        per["events_sent"] += events if first else 0
        if first and len(self.rejected_examples) < 4:
            self.rejected_examples.extend(rejected[: 4 - len(self.rejected_examples)])


class _Channels:
    """Sends the brand's events the way its channels would (`cdp_local.demo.channels`) and tallies the answers.

    For the run, the brand's own WeChat apps join the runtime's sources secret (before any request, so the ingest
    function reads them), the runtime serves the demo's SNS signing certificate (SES feedback through SNS), and a
    directory holds the recorded Tmall/JD answers each pull run reads. The first request (or pull run) of every
    connector is sent twice: each channel shows its dedupe.
    """

    def __init__(self, rt: LocalRuntime, providers: dict[str, Any]) -> None:
        self.rt = rt
        self._sources_json = json.dumps({**demo_sources(rt.write_key), **providers})
        self.sources: SourcesConfig = parse_sources(self._sources_json)
        ses = self.sources.ses
        self.signer = SnsSigner(ses.topic_arns[0], utc_now()) if ses else None
        self.encoder = ChannelEncoder(self.sources, rt.write_key, sns=self.signer)
        # the world's replies land seconds after a send: whole-second marketplace times could precede it
        self.unpulled = ChannelEncoder(self.sources, rt.write_key, sns=self.signer, pull_platforms=False)
        self.reasons: Counter[str] = Counter()  # why events took /v1/events (the brand's history)
        self.resent: set[str] = set()
        self.pull_runs = 0
        self._previous_fetcher: CertificateFetcher | None = None
        self._recorded = Path(tempfile.mkdtemp(prefix="cdp-demo-platforms-"))

    def __enter__(self) -> _Channels:
        self.rt.client("secretsmanager").put_secret_value(
            SecretId=topology.SOURCES_SECRET_LOCAL_NAME, SecretString=self._sources_json
        )
        if self.signer is not None:
            self._previous_fetcher = set_certificate_fetcher(StaticCertificateFetcher({SNS_CERT_URL: self.signer.pem}))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous_fetcher is not None:
            set_certificate_fetcher(self._previous_fetcher)
        shutil.rmtree(self._recorded, ignore_errors=True)

    def send(
        self,
        events: list[dict[str, Any]],
        tally: Tally,
        *,
        canonical: list[dict[str, Any]] | None = None,
        resend_events: bool = False,
        history: bool = True,
    ) -> None:
        """One window: `events` through their channels; `canonical` and what no channel says to /v1/events."""
        encoded = (self.encoder if history else self.unpulled).encode(events, utc_now())
        if history:
            self.reasons.update(encoded.reasons)
        fallback = [*(canonical or []), *encoded.fallback]
        for start in range(0, len(fallback), INGEST_BATCH):
            self._post_events(fallback[start : start + INGEST_BATCH], tally, twice=resend_events)
        for request in encoded.requests:
            self._request(request, tally)
        for batch in encoded.pulls:
            self._pull(batch, tally)

    def _twice(self, connector: str) -> bool:
        first = connector not in self.resent
        self.resent.add(connector)
        return first

    def _post_events(self, batch: list[dict[str, Any]], tally: Tally, twice: bool) -> None:
        for attempt in range(2 if twice else 1):
            status, body = _post(self.rt, batch)
            if status >= 500:
                raise DemoFailed(f"ingest answered {status}: {body}")
            tally.add(EVENTS, attempt == 0, len(batch), body)

    def _request(self, request: NativeRequest, tally: Tally) -> None:
        for attempt in range(2 if self._twice(request.connector) else 1):
            response = self.rt.http(request.method, request.path, request.body, request.headers)
            if response.status >= 500 or response.status in (401, 403, 404, 413):
                raise DemoFailed(
                    f"{request.connector} {request.route_path} answered {response.status}: {response.body!r}"
                )
            if response.headers.get("content-type", "").startswith("application/json"):
                body = json.loads(response.body)
            else:  # WeChat's "success" names no counts: an answered push is accepted, its resend a duplicate
                body = {"duplicates" if attempt else "accepted": len(request.events)}
            tally.add(request.connector, attempt == 0, len(request.events), body)

    def _pull(self, batch: PlatformBatch, tally: Tally) -> None:
        """Pull runs of the shop (the platform_pull function's domain service) over the demo's recorded answers;
        a rerun reads the same answers again, so all it finds are duplicates."""
        batch.write(self._recorded)
        shop = self.sources.shops[batch.shop_id]
        for attempt in range(2 if self._twice(batch.platform) else 1):
            self.pull_runs += 1
            client = client_for(shop, RecordedTransport.for_sources(self._recorded, self.sources))
            run_id = f"demo-pull-{self.pull_runs:05d}"
            with self.rt.lock:
                summary = pull_shop(batch.shop_id, shop, client, self._pull_ports(), utc_now(), run_id)
            # a pull writes its rejects (field and reason per record) to S3 rather than answering them
            reject = {"event_id": None, "errors": [{"field": "record", "message": f"see {summary.rejects_key}"}]}
            result = {"accepted": summary.accepted, "duplicates": summary.duplicates}
            tally.add(
                batch.platform, attempt == 0, len(batch.events), {**result, "rejected": [reject] * summary.rejected}
            )

    def _pull_ports(self) -> PullPorts:
        rt, org = self.rt, load_org()
        bucket, ledger = topology.DATA_BUCKET_LOCAL_NAME, topology.LEDGER_TABLE.local_name
        return PullPorts(
            archive=S3RawArchive(bucket, rt.client("s3")),
            ledger=DynamoDedupeLedger(ledger, rt.client("dynamodb")),
            publisher=EventBridgePublisher(topology.EVENT_BUS_LOCAL_NAME, rt.client("events")),
            region_of=lambda brand: org.brands[brand].phone_region if brand and brand in org.brands else "CN",
            state=DynamoPullState(ledger, rt.client("dynamodb")),
            rejects=S3Rejects(bucket, rt.client("s3")),
        )


def split_history(events: list[dict[str, Any]], now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the past, bulk-imported; the last LIVE_DAYS, streamed through the channels), each in time order."""
    cut = now - timedelta(days=LIVE_DAYS)
    past = [e for e in events if datetime.fromisoformat(e["occurred_at"]) < cut]
    recent = [e for e in events if datetime.fromisoformat(e["occurred_at"]) >= cut]
    return past, recent


def _import_history(rt: LocalRuntime, state: DemoState, past: list[dict[str, Any]], progress: Progress) -> None:
    """The brand's past as a JSONL file dropped under imports/history/ and run by the history import machine."""
    body = b"".join(json.dumps(e, ensure_ascii=False).encode() + b"\n" for e in past)
    task = progress.add_task("history import: S3 -> Step Functions (bulk OneID, tag replay)", total=len(past))
    t0 = time.perf_counter()
    outcome = run_history(
        rt, body, BRAND_ID, "demo-history.jsonl", lambda p: progress.update(task, completed=p.rows_done)
    )
    report = outcome.report or {}
    state.executions.append(
        Execution("history-import", outcome.status, round(time.perf_counter() - t0, 2), report or outcome.error)
    )
    if outcome.status != "SUCCEEDED":
        raise DemoFailed(f"history import ended {outcome.status}: {outcome.error}")
    progress.update(task, completed=len(past))
    state.history = report


def _ingest(channels: _Channels, state: DemoState, progress: Progress, seed: int, now: datetime) -> None:
    past, events = split_history(list(state.brand.events), now)
    _import_history(channels.rt, state, past, progress)
    gc.freeze()  # the imported history lives on: see _collector_skips_what_stages_keep
    junk = malformed_copies(list(state.brand.events), MALFORMED_SHARE, seed)
    rng = random.Random(seed)
    for bad in junk:  # spread through the feed, as they would be
        events.insert(rng.randrange(len(events)), bad)
    windows = [events[i : i + INGEST_BATCH] for i in range(0, len(events), INGEST_BATCH)]
    resend = set(rng.sample(range(len(windows)), min(RESENT_BATCHES, len(windows))))
    junk_ids = {e["event_id"] for e in junk}  # canonical junk: it goes to /v1/events as it is
    task = progress.add_task(f"last {LIVE_DAYS} days live: channels -> ingest -> OneID -> tags", total=len(events))
    tally = state.tally()
    for n, window in enumerate(windows):
        channels.send(
            [e for e in window if e["event_id"] not in junk_ids],
            tally,
            canonical=[e for e in window if e["event_id"] in junk_ids],
            resend_events=n in resend,
        )
        state.ingest["dead_lettered"] += channels.rt.drain().dead_lettered
        progress.update(task, advance=len(window))
    state.routed_to_events = channels.reasons
    state.ingest["sent"] = len(events)
    state.ingest["malformed_sent"] = len(junk)


def _identity_report(rt: LocalRuntime, brand: SyntheticBrand) -> tuple[dict[str, Any], dict[str, str]]:
    """Score the resolution against the ground truth: identifier key -> the surviving person that holds it.

    The identifier records of every key the brand's events carry are read by key (BatchGetItem, no table scan),
    then the persons they name, merges followed; each surviving person contributes all its identifiers."""
    from cdp.identity.dynamodb import DynamoIdentityStore

    store = DynamoIdentityStore(topology.PROFILES_TABLE.local_name, client=rt.client("dynamodb"))
    wanted = set(brand.truth) | brand.shared_identifiers
    for event in brand.events:
        wanted.update(event_keys(event))
    records = store.lookup_identifiers(store.namespace_of(BRAND_ID), sorted(wanted))
    quarantined = sum(1 for record in records.values() if record.shared)
    # the person items alone (identity's reads): the tags items hold nothing this report counts
    persons = store.current_persons({r.person_id for r in records.values() if r.person_id}, annotations=False)
    resolved = {key: person.person_id for person in persons.values() for key in person.identifiers}
    scores = brand.score(resolved)
    report = {
        "persons_true": brand.counts.persons,
        "persons_resolved": len(persons),
        "persons_over_limit": sum(1 for person in persons.values() if person.over_limit),
        "identifiers_indexed": len(resolved),
        "identifiers_quarantined": quarantined,
        "shared_identifiers_true": len(brand.shared_identifiers),
        "pairwise": scores.model_dump(),
        "targets_met": scores.all.precision >= PRECISION_TARGET and scores.linkable.recall >= RECALL_TARGET,
    }
    return report, resolved


def _bulk_agreement(brand: SyntheticBrand, resolved: dict[str, str]) -> dict[str, Any]:
    """Resolve the same events offline in bulk and compare the persons with what the online path built."""
    from cdp.identity.bulk import resolve_events
    from cdp.org import load_org

    rules = load_org().brand(BRAND_ID).rules
    keys = [[k for k in event_keys(e) if k not in rules.blocked_values] for e in brand.events]
    started = time.perf_counter()
    bulk = resolve_events(keys, namespace=load_org().brand(BRAND_ID).namespace, rules=rules)
    seconds = time.perf_counter() - started
    online: dict[str, set[str]] = {}
    for key, person in resolved.items():
        online.setdefault(person, set()).add(key)
    online_sets = {frozenset(v) for v in online.values()}
    bulk_sets = {p for p in bulk.persons() if p}
    return {
        "persons_bulk": len(bulk_sets),
        "persons_online": len(online_sets),
        "identical_persons": len(bulk_sets & online_sets),
        "agree": bulk_sets == online_sets,
        "hubs_bulk": len(bulk.hubs()),
        "events": len(keys),
        "seconds": round(seconds, 3),
    }


def _lookup_latency(rt: LocalRuntime, person_ids: list[str], seed: int, samples: int = 200) -> dict[str, float]:
    """GET /v1/profiles/{id} through the emulated HTTP API for a sample of persons (moto included)."""
    picks = random.Random(seed).sample(person_ids, min(samples, len(person_ids)))
    headers = {"x-api-key": rt.admin_key}
    timings: list[float] = []
    for person_id in picks:
        started = time.perf_counter()
        response = rt.http("GET", f"/v1/profiles/{person_id}", headers=headers)
        timings.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            raise DemoFailed(f"profile lookup of {person_id} answered {response.status}: {response.body!r}")
    timings.sort()
    return {
        "samples": len(timings),
        "p50": round(timings[len(timings) // 2], 1),
        "p95": round(timings[int(len(timings) * 0.95) - 1], 1),
    }


def _train_models(rt: LocalRuntime, state: DemoState, progress: Progress, seed: int, min_auc: float) -> TrainedModels:
    """Every kind in one batch through the train machine (one read of the histories). The response model is
    required (the campaign ranks by it); another kind's version that does not pass its evaluation, or that this
    brand's data cannot train, is reported with why and left out of scoring."""
    batch = {"models": demo_models(seed, min_auc)}
    result = _run_machine(rt, state, progress, "train", batch, timeout=900)
    results = {r["model_name"]: r for r in result["batch"]["results"]}
    untrained = {f["model_name"]: f["error"] for f in result["batch"]["failures"]}
    promoted = [p["model_name"] for p in result["promotions"] if p["promoted"]]
    headlines = model_headlines(rt, {name: r["version"] for name, r in results.items()}, min_auc)
    if RESPONSE_MODEL not in promoted:
        line = next((h for h in headlines if h.model_name == RESPONSE_MODEL), None)
        why = "; ".join(line.notes) if line is not None else untrained.get(RESPONSE_MODEL, "not trained")
        raise DemoFailed(
            f"the response model (the campaign ranks by it) was not promoted: {why}. A small brand gives it few rows, "
            "so its held-out AUC is noisy: use more customers (default 2000) or --min-auc 0."
        )
    response = results[RESPONSE_MODEL]["metrics"]["held_out"]
    return TrainedModels(headlines, promoted, response, untrained)


def _run_machine(
    rt: LocalRuntime, state: DemoState, progress: Progress, machine: str, payload: dict[str, Any], timeout: float
) -> Any:
    task = progress.add_task(f"state machine: {machine}", total=1)
    t0 = time.perf_counter()
    arn = rt.start_execution(machine, payload)
    status, result = rt.wait_execution(arn, timeout=timeout)
    state.executions.append(Execution(machine, status, round(time.perf_counter() - t0, 2), result))
    progress.update(task, completed=1)
    if status != "SUCCEEDED":
        raise DemoFailed(f"{machine} ended {status}: {result}; task error: {_task_failure(rt, arn)}")
    return result


def _task_failure(rt: LocalRuntime, arn: str) -> str:
    """The underlying task error (Fail states carry a generic cause; the history keeps the real one)."""
    events = rt.client("stepfunctions").get_execution_history(executionArn=arn, maxResults=1000)["events"]
    for event in reversed(events):
        details = event.get("taskFailedEventDetails") or event.get("lambdaFunctionFailedEventDetails")
        if details:
            return f"{details.get('error')}: {str(details.get('cause'))[:500]}"
    return "none recorded"


DEMO_CAMPAIGN = "demo_winter_cake"


def campaign_definition(brand_id: str) -> dict[str, Any]:
    """The bakery's SMS campaign as a marketer defines it (POST /v1/campaigns): budget for ~250 messages, ranked as
    the uplift model's held-out comparison decides, an e-mail follow-up to those who have not bought, 20% holdout."""
    offer = {"offer_id": COUPON_OFFER}  # a catalog coupon: each recipient's own code, reserved from its pool
    return {
        "campaign_id": DEMO_CAMPAIGN,
        "brand_id": brand_id,
        "name": "Winter cake coupon",
        # the static audience package frozen by the tags stage (it reads the dynamic one)
        "audience": {"audience_id": STATIC_AUDIENCE_ID, "require_consent_channel": "sms"},
        "score_model": RESPONSE_MODEL,
        # who gets it: ranked by expected incremental profit when the uplift model's held-out comparison says that
        # beats response ranking at this reach (a 20 CNY coupon, ~50 CNY margin on an extra cake order)
        "targeting": {"ranking": "auto", "uplift_model": UPLIFT_MODEL, "margin_minor": 5000, "offer_cost_minor": 2000},
        "steps": [
            {
                "send": {
                    "channel": "sms",
                    "template": {
                        "body": "{{ traits.name or 'Hi' }}, 20 CNY off a cake over 100 with {{ offer.code }} this week."
                    },
                    "offer": offer,
                }
            },
            {"wait": {"minutes": CAMPAIGN_WAIT_S // 60}},
            {
                "send": {
                    "channel": "email",
                    "template": {
                        "subject": "Your 20 CNY cake coupon is waiting",
                        "body": "{{ traits.name or 'Hello' }}, {{ offer.code }} still takes 20 CNY off any cake.",
                    },
                    "offer": offer,
                    "to": "not_converted",
                }
            },
        ],
        # ~250 messages for ~800 eligible: who gets them matters (a budget that reaches everyone needs no ranking)
        "budget": {"amount_minor": 1250, "currency": "CNY", "cost_per_message_minor": {"sms": 5, "email": 1}},
        "holdout": 0.2,
        "conversion_window_days": 14,
    }


def _run_campaign(
    channels: _Channels, state: DemoState, store: DynamoTagStore, progress: Progress, senders: DemoSenders, seed: int
) -> dict[str, Any]:
    task = progress.add_task("state machine: campaign", total=3)
    rt, brand = channels.rt, state.brand
    t0 = time.perf_counter()
    # as a marketer does it: the campaign defined and started through the campaign API (version 1, a manual run)
    brand_id = _brand_id(brand)
    define_offer(rt, brand_id, DEMO_CAMPAIGN)
    definition = senders.with_sms_templates(campaign_definition(brand_id))
    call_api(rt, "POST", "/v1/campaigns", definition)
    truth = _targeting_truth(rt, store, brand, definition)
    started = call_api(rt, "POST", f"/v1/campaigns/{DEMO_CAMPAIGN}/start?brand_id={brand_id}", {})
    run_id = started["run"]["run_id"]
    arn = f"{rt.state_machine_arns['campaign'].replace(':stateMachine:', ':execution:')}:{run_id}"
    replies = Tally(Counter(), {})
    receipts: dict[str, int] = {}
    audience = None
    coupon_orders: Counter[str] = Counter()
    sent_at = utc_now()
    try:
        waiting = rt.wait_state_entered(arn, timeout=600)  # touch1 is out: the follow-up wait has begun
        progress.update(task, completed=1)
        audience = _s3_json(rt, f"{topology.CAMPAIGNS_PREFIX}{run_id}/audience.json")
        if waiting:  # the provider reports on the first touch's SMS within seconds
            receipts = senders.post_receipts(seed)
        if waiting and audience is not None:
            sent_at = datetime.fromisoformat(audience["manifest"]["sent_at"].replace("Z", "+00:00"))
            coupon_orders = _world_replies(channels, replies, brand, store, audience, sent_at)
    finally:
        # every reply is in and processed (or the demo is failing): the compressed follow-up delay is over
        rt.end_wait_state(arn)
    progress.update(task, completed=2)
    status, result = rt.wait_execution(arn, timeout=600)
    state.executions.append(Execution("campaign", status, round(time.perf_counter() - t0, 2), result))
    progress.update(task, completed=3)
    if status != "SUCCEEDED":
        raise DemoFailed(f"campaign ended {status}: {result}; task error: {_task_failure(rt, arn)}")
    summary = _s3_json(rt, result["summary_key"]) or {}
    rt.drain()  # SES's delivery events of the follow-up e-mails, the run's assignments on their way to the timelines
    return {
        "run_id": run_id,
        "summary": summary,
        "provider_receipts": receipts,
        "message_status": senders.statuses([DEMO_CAMPAIGN]),
        "offers": {},  # once the codes nobody used have expired (`_expire_offers`, after this week's journeys)
        "_sent_at": sent_at,
        "_coupon_orders": coupon_orders,
        "loyalty": loyalty_summary(rt, brand_id),
        "world_orders_posted": replies.total["events_sent"] if replies.total else 0,
        "world_orders_by_connector": _connector_table(replies.by_connector),
        "audience": _audience_view(audience),
        "assignments_filed": _assignments_filed(store, audience or {}),
        "targeting": {**((audience or {}).get("manifest", {}).get("targeting") or {}), "truth": truth},
    }


def _assignments_filed(store: DynamoTagStore, audience: dict[str, Any]) -> dict[str, int]:
    """The run's groups as its persons' timelines now hold them (`campaign_assigned`): what the next uplift model
    learns from."""
    campaign_id = audience.get("manifest", {}).get("request", {}).get("campaign_id")
    selected = [m["person_id"] for group in ("treatment", "holdout") for m in audience.get(group, [])]
    filed: Counter[str] = Counter()
    for profile in store.get_many(selected).values():
        groups = {
            entry.event.properties.group
            for entry in store.timeline(profile)
            if isinstance(entry.event, CampaignAssignedEvent) and entry.event.properties.campaign_id == campaign_id
        }
        filed.update(groups)
    return {"treatment": filed["treatment"], "holdout": filed["holdout"], "selected": len(selected)}


def _targeting_truth(
    rt: LocalRuntime, store: DynamoTagStore, brand: SyntheticBrand, raw: dict[str, Any]
) -> dict[str, Any]:
    """The run's own selection inputs (audience, consent, contact policy, scores), then both rankings at its budget
    judged by the world's true uplift: what no marketer can see, and what the held-out validation estimates."""
    definition = parse_definition(raw)
    request = definition.to_request(f"{definition.campaign_id}-truth")
    objects = S3ObjectStore(topology.DATA_BUCKET_LOCAL_NAME, rt.client("s3"))
    org_brand = load_org().brand(definition.brand_id)
    plan = plan_selection(request, store, AudienceStore(objects), org_brand, ManifestValidations(objects))
    assert request.targeting is not None
    keys_of = _keys_by_person(store, [m.person_id for m in plan.pool])
    cost = request.budget.cost_of(request.touch1)
    return targeting_truth(plan.pool, capacity(request), request.targeting, cost, brand.world, keys_of)


def _brand_id(brand: SyntheticBrand) -> str:
    return str(brand.events[0]["brand_id"])


def _s3_json(rt: LocalRuntime, key: str) -> Any:
    s3 = rt.client("s3")
    try:
        body = s3.get_object(Bucket=topology.DATA_BUCKET_LOCAL_NAME, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return json.loads(body)


def _contact_keys(store: DynamoTagStore, person_ids: list[str]) -> list[str]:
    """The identifiers the world knows each selected person by (the platform's ids mean nothing to it)."""
    return [key for keys in _keys_by_person(store, person_ids).values() for key in keys]


def _keys_by_person(store: DynamoTagStore, person_ids: list[str]) -> dict[str, list[str]]:
    profiles = store.get_many(person_ids)  # BatchGetItem rounds, merges followed as by get
    out: dict[str, list[str]] = {}
    for pid in person_ids:
        profile = profiles.get(pid)
        if profile is not None:
            out[pid] = [k for k in profile.identifiers if k.startswith(("phone:", "email:", "member_card:"))]
    return out


def _world_replies(
    channels: _Channels,
    tally: Tally,
    brand: SyntheticBrand,
    store: DynamoTagStore,
    audience: dict[str, Any],
    sent_at: datetime,
) -> Counter[str]:
    """Orders the hidden response model produces after the first touch, for treatment and holdout alike; treated
    buyers use the coupon the message carried on some orders (at the till, in the mini-program, in the app). Returns
    the orders that carried a code, by source.

    The 14-day response window is compressed into the seconds the state machine waits: each order keeps its
    relative position in the window, so it lands after the send and before the check, as it would on AWS.
    """
    treated_ids = [m["person_id"] for m in audience["treatment"]]
    keys_of = _keys_by_person(store, treated_ids)
    treated = [key for pid in treated_ids for key in keys_of.get(pid, [])]
    holdout = _contact_keys(store, [m["person_id"] for m in audience["holdout"]])
    coupons = coupons_by_key(wallet_entries(channels.rt, _brand_id(brand)), keys_of)
    campaign_id = audience["manifest"]["request"]["campaign_id"]
    orders = brand.world.respond(treated, holdout, "sms", campaign_id, sent_at, coupons=coupons)
    with_code = Counter(o["source"] for o in orders if o["properties"].get("coupon_code"))
    window = timedelta(days=14).total_seconds()
    elapsed = max(1.0, (utc_now() - sent_at).total_seconds())
    for order in orders:
        at = datetime.fromisoformat(order["occurred_at"].replace("Z", "+00:00"))
        fraction = min(1.0, max(0.0, (at - sent_at).total_seconds() / window))
        order["occurred_at"] = (sent_at + timedelta(seconds=0.01 + fraction * elapsed)).isoformat()
    for start in range(0, len(orders), INGEST_BATCH):
        channels.send(orders[start : start + INGEST_BATCH], tally, history=False)
        if tally.total["rejected"]:
            raise DemoFailed(f"the world's orders were rejected: {tally.rejected_examples}")
        channels.rt.drain()
    tally.total["events_sent"] = len(orders)
    return with_code


def _audience_view(audience: dict[str, Any] | None) -> dict[str, Any]:
    if audience is None:
        return {}
    manifest = audience["manifest"]
    return {
        "counts": manifest["counts"],
        "capacity": manifest["capacity"],
        "budget_reserved_minor": manifest["budget_reserved_minor"],
        "source": manifest.get("audience"),  # the stored audience (and snapshot) the run selected from
    }


def _outbox_counts(rt: LocalRuntime) -> dict[str, int]:
    counts: Counter[str] = Counter()
    paginator = rt.client("s3").get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=topology.DATA_BUCKET_LOCAL_NAME, Prefix=topology.OUTBOX_PREFIX):
        for obj in page.get("Contents", []):
            counts[obj["Key"].split("/")[1]] += 1
    return dict(counts)


# ---- summary ------------------------------------------------------------------------------------------------


def _summary(
    state: DemoState,
    identity: dict[str, Any],
    tags: dict[str, dict[str, int]],
    sweep: Any,
    tag_stage: dict[str, Any],
    models: TrainedModels,
    campaign: dict[str, Any],
    outbox: dict[str, int],
    journeys: dict[str, Any],
    analytics: dict[str, Any],
) -> dict[str, Any]:
    brand = state.brand
    connectors = _connector_table(state.connectors)
    response = next(h for h in models.headlines if h.model_name == RESPONSE_MODEL)
    targeting = campaign.get("targeting") or {}
    truth = targeting.get("truth") or {}
    summary_c = campaign.get("summary", {})
    pair = identity["pairwise"]
    bulk = identity["bulk_vs_online"]
    history = state.history
    imported = history.get("counts", {})
    headline = {
        "events accepted (history import + live)": (
            f"{imported.get('accepted', 0) + state.ingest['accepted']} ({imported.get('accepted', 0)} + "
            f"{state.ingest['accepted']})"
        ),
        "history import (lines, persons, tag history entries, seconds)": (
            f"{history.get('lines')} lines, {history.get('persons')} persons, "
            f"{history.get('tag_history_entries')} entries, {_history_seconds(state)} s"
        ),
        "events accepted by connector": ", ".join(
            f"{'/v1/events' if name == EVENTS else name} {c['accepted']}" for name, c in connectors.items()
        ),
        "events rejected (malformed, live)": state.ingest["rejected"],
        "duplicate events ignored": state.ingest["duplicates"],
        "persons (truth / resolved)": f"{identity['persons_true']} / {identity['persons_resolved']}",
        "identity pairwise precision": _fmt(pair["all"]["precision"]),
        "identity pairwise recall (all / linkable)": (
            f"{_fmt(pair['all']['recall'])} / {_fmt(pair['linkable']['recall'])}"
        ),
        "identity targets (precision >= 0.995, linkable recall >= 0.98)": "met"
        if identity["targets_met"]
        else "MISSED",
        "shared identifiers quarantined (found / truly shared)": (
            f"{identity['identifiers_quarantined']} / {identity['shared_identifiers_true']}"
        ),
        "bulk resolution of the same events agrees with online": (
            f"{bulk['agree']} ({bulk['identical_persons']} of {bulk['persons_online']} persons identical, "
            f"{bulk['seconds']} s)"
        ),
        "profile lookup p50 / p95 (ms, moto included)": (
            f"{identity['profile_lookup_ms']['p50']} / {identity['profile_lookup_ms']['p95']}"
        ),
        **_tag_headline(tag_stage),
        "response model AUC (held-out, 95%)": _interval(response.value, response.interval),
        "models: held-out metric / baseline": "; ".join(
            f"{h.model_name} {_fmt(h.value)} / {_fmt(h.baseline_value)}{'' if h.accepted else ' (not promoted)'}"
            for h in models.headlines
        )
        + "".join(f"; {name} not trained (too few rows)" for name in models.untrained),
        "campaign ranking (decided on held-out randomized persons)": (
            f"{targeting.get('used')}: {targeting.get('reason')}" if targeting else "n/a"
        ),
        "true incremental orders at equal budget, uplift vs response ranking": (
            f"{truth.get('true_incremental_orders_uplift_ranking')} vs "
            f"{truth.get('true_incremental_orders_response_ranking')} (difference {truth.get('difference')}, "
            f"95% {truth.get('difference_95')})"
            if "difference" in truth
            else truth.get("verdict", "n/a")
        ),
        "messages sent by channel": summary_c.get("messages_by_channel"),
        "campaign messages by status (provider receipts)": _status_line(campaign.get("message_status") or {}),
        "journey messages by status": _status_line(journeys.get("message_status") or {}),
        "conversion treatment / holdout": (
            f"{_pct(summary_c.get('treatment_rate'))} / {_pct(summary_c.get('holdout_rate'))}"
        ),
        **_offers_headline(campaign),
        "journeys: entered / sent / stopped by a frequency cap": "; ".join(
            f"{cid} {sum(j['entered'].values())} / {j['messages'].get('sent', 0)} / "
            f"{j['messages'].get('suppressed_frequency_cap', 0)}"
            for cid, j in journeys["journeys"].items()
        ),
        "state machine executions": ", ".join(f"{e.machine}={e.status}" for e in state.executions),
        "total seconds": state.stages.get("total"),
    }
    return {
        "headline": headline,
        "generated_at": utc_now().isoformat(),
        "brand": brand.counts.model_dump(),
        "history_import": history,
        "ingest": dict(state.ingest),
        "connectors": connectors,
        "routed_to_events": dict(state.routed_to_events.most_common()),
        "rejected_examples": state.rejected_examples,
        "identity": identity,
        "tags": tags,
        "tag_sweep": sweep,
        "tags_and_audiences": tag_stage,
        "model": {"name": RESPONSE_MODEL, "held_out": models.response_held_out},
        "models": [h.model_dump(mode="json") for h in models.headlines],
        "models_scored": models.promoted,
        "models_not_trained": models.untrained,
        "campaign": campaign,
        "journeys": journeys,
        "analytics": analytics,
        "messages_by_channel": summary_c.get("messages_by_channel", {}),
        "outbox_objects_by_channel": outbox,
        "conversion": {
            "treatment_rate": summary_c.get("treatment_rate"),
            "holdout_rate": summary_c.get("holdout_rate"),
            "absolute_lift": summary_c.get("absolute_lift"),
            "incremental_revenue_minor": summary_c.get("incremental_revenue_minor"),
            "roi": summary_c.get("roi"),
            "roi_definition": summary_c.get("roi_definition"),
            "cost_per_incremental_conversion_minor": summary_c.get("cost_per_incremental_conversion_minor"),
            "funnel": summary_c.get("funnel"),
            "attribution": summary_c.get("attribution"),
            "revenue_per_person": summary_c.get("revenue_lift"),
            "money": summary_c.get("display"),
        },
        "executions": [e.__dict__ for e in state.executions],
        "stage_seconds": state.stages,
    }


def _status_line(by_channel: dict[str, dict[str, int]]) -> str:
    return "; ".join(
        f"{channel}: " + ", ".join(f"{status} {n}" for status, n in sorted(statuses.items(), key=lambda kv: -kv[1]))
        for channel, statuses in sorted(by_channel.items())
    )


def _offers_headline(campaign: dict[str, Any]) -> dict[str, str]:
    offers, loyalty = campaign.get("offers") or {}, campaign.get("loyalty") or {}
    if not offers:
        return {}
    pool = offers["pool"]
    levels = ", ".join(f"{level} {n}" for level, n in loyalty.get("members_by_level", {}).items())
    return {
        f"coupons issued / redeemed / expired ({offers['coupon']})": (
            f"{offers['issued']} / {offers['redeemed']} / {offers['expired']}"
        ),
        "coupon pool spent / available / total (CNY)": (
            f"{pool['committed_minor'] / 100:,.2f} / {pool['available_minor'] / 100:,.2f} / "
            f"{pool['total_minor'] / 100:,.2f}"
        ),
        "campaign ROI (its summary's definition: discounts are already out of the revenue)": str(
            (campaign.get("summary") or {}).get("roi")
        ),
        "club loyalty: members, points earned, by level": (
            f"{loyalty.get('members', 0)}, {loyalty.get('points_earned', 0):,}, {levels}"
        ),
    }


def _history_seconds(state: DemoState) -> float | None:
    return next((e.seconds for e in state.executions if e.machine == "history-import"), None)


def _tag_headline(stage: dict[str, Any]) -> dict[str, str]:
    batch, dynamic, static = stage["batch_vs_real_time"], stage["dynamic_audience"], stage["static_audience"]
    return {
        "tags: batch (DuckDB SQL) agrees with real-time": (
            f"{batch['values_agreeing']} of {batch['values_compared']} values ({batch['tags']} tags, "
            f"{batch['persons']} persons, {batch['batch_seconds']} s)"
        ),
        "dynamic audience members (entered / exited events)": (
            f"{dynamic['id']}: {dynamic['members']} ({dynamic['entered_events']} / {dynamic['exited_events']})"
        ),
        "static audience snapshot (size estimate)": (
            f"{static['id']}: {static['snapshot_members']} members ({static['size_estimate']})"
        ),
    }


def _connector_table(by_connector: dict[str, Counter[str]]) -> dict[str, dict[str, int]]:
    """Per connector (POST /v1/events included as "events"): what was sent and what ingest made of it."""
    fields = ("requests", "events_sent", "accepted", "duplicates", "rejected")
    rows = {name: {f: counts[f] for f in fields} for name, counts in by_connector.items()}
    return dict(sorted(rows.items(), key=lambda item: (-item[1]["accepted"], item[0])))


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _interval(value: float, interval: tuple[float, float] | None) -> str:
    return _fmt(value) + (f" [{_fmt(interval[0])}, {_fmt(interval[1])}]" if interval else "")


def _pct(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, float) else "n/a"
