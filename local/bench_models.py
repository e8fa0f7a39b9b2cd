"""`cdp bench --suite models`: training time per model kind, and the nightly score's speed and AWS cost per person.

A seeded brand (orders with line categories, page views, cart adds, a randomized SMS campaign) trains the four models
the nightly schedule scores (`topology.SCHEDULED_MODELS`) and an uplift model, in-process. Scoring runs the real
scoring function (`score_shard` through `ScoredPersons` and the tag engine, on the DynamoDB adapter) on the shared
metered runtime: the persons imported by identity's bulk path, tagged by a full tag refresh, the models promoted in
S3; a first pass (not billed) gives every tags item its scores and predictive tags, as any night after the first.
Then one pass with the four models together, and four passes of one model each, as the nightly schedule runs them
(`total_shards` shards, then the totals task).

Billing (`cdp_local.cost_model` list prices, per 1M persons, each pass scaled from its persons):
- DynamoDB: a shard's Scan reads every item of its segment (profiles, tags items, filed events, ...), eventually
  consistent, 4 KB per started chunk of each 1 MB page; the runtime's fast Scan bypasses the counter's read sizing, so
  the Scan is billed here from the table's items, page by page. A sharded scan reads each timeline again with one
  Query per identifier (billed by the counter). One write per person and pass (an UpdateItem of the scores, or the
  tag engine's PutItem of the tags item when a predictive tag reads a score), on the larger of the item before and
  after, per started KB: a pass of one model bills the whole tags item as a pass of four does.
- Lambda: requests and GB-s at the scoring function's memory, the duration modelled as the other suites do (the
  handler's CPU here scaled to Lambda's vCPU share, plus a latency per AWS call); S3 GETs of each model's pointer.
- Step Functions: 3 + shards state transitions per pass (BuildShards, the Map, one task per shard, Totals).
Fixed per-pass costs (transitions, pointers, the totals task) are scaled with the persons like the rest, which
overstates them for a brand larger than the run (at 2,000 persons the transitions are about 4% of a pass). Cold
starts (a nightly run's containers are new) are billed at the warm duration, as the other suites do.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from cdp import topology
from cdp.errors import InvalidInputError
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.models.artifact import ModelManifest, TrainedModel, unpack
from cdp.models.labels import PersonHistory
from cdp.models.requests import TrainRequest
from cdp.models.scoring import ScoreShardRequest, score_shard
from cdp.models.training import train_model
from cdp.profile.models import ModelScore, Profile
from cdp.profile.ports import MessageRecord, ProfileAnnotator, ProfileReader, TimelineEntry
from cdp_local import cost_model
from cdp_local.aws_costs import ApiCallCounter, OpUsage, merge_usage, usage_totals
from cdp_local.bench import Metric

Status = Callable[[str], None]
BRAND = "demo-brand"
CAMPAIGN = "spring_cakes"  # randomized: half treated (an SMS), half held out
SHARDS = 4  # as the nightly schedule scores
MIN_PERSONS = 200  # fewer leave too few rows of a class to train the classifiers on
CATEGORIES = ("bread", "cakes", "candles", "coffee", "tea", "cookies", "chocolate", "pastries")
FAVORITES = ("coffee", "cakes", "tea", "cookies", "chocolate", "pastries")
SCAN_PAGE_BYTES = 1_000_000  # a Scan page reads up to 1 MB of items (moto's limit, by its item size)
PASS_TRANSITIONS = 3  # BuildShards, ScoreShards (the Map), Totals; plus one Scoring task per shard


# ---- a seeded brand ----------------------------------------------------------------------------------------------


def phone(index: int) -> str:
    return f"+86139{index:08d}"


class _Person:
    """One person's timeline, each event through `parse_event`."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.events: list[CanonicalEvent] = []

    def add(self, event_type: str, at: datetime, source: str, **properties: Any) -> None:
        self.events.append(
            parse_event(
                {
                    "event_id": f"bm-{self.index}-{len(self.events)}",
                    "event_type": event_type,
                    "source": source,
                    "brand_id": BRAND,
                    "occurred_at": at.isoformat(),
                    "identifiers": [{"type": "phone", "value": phone(self.index)}],
                    "properties": properties,
                }
            )
        )


def person_events(rng: random.Random, index: int, horizon: datetime) -> list[CanonicalEvent]:
    """Purchases BG/NBD-like (a Poisson rate while a customer, a dropout chance after each order; 12% high-value, 14%
    of the rest only browse), baskets around a favourite category, cart adds before some orders, page views in the
    last 120 days while a customer, and the randomized campaign 45 days back (30% of customers answer a delivery)."""
    person = _Person(index)
    high = rng.random() < 0.12
    joined = horizon - timedelta(days=rng.uniform(20, 730))
    customer = high or rng.random() >= 0.14
    rate = rng.gammavariate(4.0, 1 / 48) if high else rng.gammavariate(2.0, 1 / 90)
    dropout = rng.betavariate(1.0, 60.0) if high else rng.betavariate(2.0, 14.0)
    spend = rng.gammavariate(6.0, 25_000 / 6) if high else rng.gammavariate(6.0, 9_000 / 6)
    favorite = rng.choices(FAVORITES, weights=(3, 3, 2, 2, 2, 2))[0]
    responsive = customer and rng.random() < 0.3
    person.add("identify", joined, "crm", city=rng.choice(("Shanghai", "Beijing", "Hangzhou")))
    orders: list[datetime] = []
    stopped: datetime | None = None
    at = joined
    while customer and at <= horizon:
        orders.append(at)
        if rng.random() < dropout:
            stopped = at
            break
        at += timedelta(days=rng.expovariate(rate))
    sent = horizon - timedelta(days=45)
    if joined < sent - timedelta(days=7):
        treated = rng.random() < 0.5
        group = "treatment" if treated else "holdout"
        person.add("campaign_assigned", sent - timedelta(hours=1), "crm", campaign_id=CAMPAIGN, group=group)
        if treated:
            message = {"message_id": f"m-{index}", "channel": "sms", "campaign_id": CAMPAIGN, "status": "delivered"}
            person.add("message_delivered", sent, "sms", **message)
            if responsive and rng.random() < 0.45:
                orders.append(sent + timedelta(days=rng.uniform(0.5, 12)))
    previous: set[str] = set()
    for at in sorted(t for t in orders if t <= horizon):
        basket = {favorite} if rng.random() < 0.6 else set()
        if rng.random() < 0.45:
            basket.add("bread")
        if "cakes" in previous and rng.random() < 0.7:
            basket.add("candles")
        if rng.random() < 0.15:
            basket.add(rng.choice(CATEGORIES))
        basket = basket or {"bread"}
        unit = max(500, round(rng.gammavariate(8.0, spend / 8))) // len(basket)
        lines = [{"sku": f"sku-{c}", "category": c, "quantity": 1, "unit_price_minor": unit} for c in sorted(basket)]
        if rng.random() < 0.4:
            cart = {k: lines[0][k] for k in ("sku", "category", "quantity", "unit_price_minor")}
            person.add("add_to_cart", at - timedelta(hours=2), "mini_program", currency="CNY", **cart)
        order = {"order_id": f"o-{index}-{len(person.events)}", "lines": lines, "total_minor": unit * len(lines)}
        person.add("order_placed", at, "pos", currency="CNY", **order)
        previous = basket
    browse = 1.5 * rate if customer else 1 / 20
    end = min(horizon, stopped) if stopped else horizon
    at = max(joined, horizon - timedelta(days=120))
    while (at := at + timedelta(days=rng.expovariate(browse))) < end:
        person.add("page_view", at, "mini_program", url="https://shop.example.cn/menu")
    return sorted(person.events, key=lambda e: (e.occurred_at, e.event_id))


def brand_histories(persons: int, horizon: datetime, seed: int = 7) -> list[PersonHistory]:
    rng = random.Random(seed)
    out = []
    for index in range(persons):
        events = person_events(rng, index, horizon)
        profile = Profile(person_id=f"p{index}", brand_id=BRAND, created_at=events[0].occurred_at, updated_at=horizon)
        out.append(PersonHistory(profile, events))
    return out


# ---- training and scoring in-process -----------------------------------------------------------------------------


def scheduled_requests() -> dict[str, TrainRequest]:
    """The train inputs of the nightly schedule's models, by model name."""
    return {
        name: TrainRequest.model_validate({"model_name": name, **json.loads("{" + arguments + "}")})
        for name, arguments in topology.SCHEDULED_MODELS
    }


def train_all(
    histories: list[PersonHistory], now: datetime
) -> tuple[dict[str, tuple[bytes, ModelManifest]], dict[str, Metric]]:
    """Each scheduled model and an uplift model trained on the histories, timed (uplift left out when the campaign's
    cells are too small to train on)."""
    requests = {request.kind: request for request in scheduled_requests().values()}
    requests["uplift"] = TrainRequest(
        model_name="spring_uplift", kind="uplift", campaign_ids=[CAMPAIGN], window_days=14
    )
    trained: dict[str, tuple[bytes, ModelManifest]] = {}
    out: dict[str, Metric] = {}
    for kind, request in requests.items():
        started = time.perf_counter()
        try:
            blob, manifest = train_model(request, histories, now)
        except InvalidInputError as exc:
            if kind != "uplift":
                raise
            out["models.train_skipped.uplift"] = {"value": 1, "unit": exc.message[:120]}
            continue
        seconds = time.perf_counter() - started
        trained[request.model_name] = (blob, manifest)
        out[f"models.train_seconds.{kind}"] = {"value": round(seconds, 2), "unit": f"s for {len(histories)} persons"}
        out[f"models.artifact_kb.{kind}"] = {"value": round(len(blob) / 1024, 1), "unit": "KB (joblib, compressed)"}
        out[f"models.train_accepted.{kind}"] = {"value": int(manifest.accepted), "unit": "1: passed its evaluation"}
    return trained, out


class _Histories(ProfileReader):
    """The histories as a reader, sharded by position: no I/O."""

    def __init__(self, histories: Sequence[PersonHistory]) -> None:
        self._histories = histories
        self._by_id = {h.profile.person_id: h for h in histories}

    def scan_with_timelines(self, shard: int, total_shards: int) -> Iterator[tuple[Profile, list[TimelineEntry]]]:
        for profile in self.scan_shard(shard, total_shards):
            yield profile, self.timeline(profile)

    def get(self, person_id: str) -> Profile | None:
        found = self._by_id.get(person_id)
        return found.profile if found is not None else None

    def scan_shard(self, shard: int, total_shards: int) -> Iterator[Profile]:
        return (h.profile for h in self._histories[shard::total_shards])

    def timeline(self, profile: Profile) -> list[TimelineEntry]:
        anchor = f"phone:{profile.person_id}"
        return [TimelineEntry(anchor=anchor, event=e) for e in self._by_id[profile.person_id].events]

    def person_for_identifier(self, brand_id: str, identifier_key: str) -> str | None:
        person_id = identifier_key.removeprefix("phone:")
        return person_id if identifier_key.startswith("phone:") and person_id in self._by_id else None


class _Discard(ProfileAnnotator):
    """Counts the score writes a scoring run makes (the scores themselves are dropped)."""

    def __init__(self) -> None:
        self.written = 0
        self._messages: dict[str, list[MessageRecord]] = {}

    def put_score(self, person_id: str, model_name: str, score: ModelScore) -> None:
        self.written += 1

    def put_model_scores(self, person_id: str, scores: Mapping[str, ModelScore]) -> None:
        self.written += 1

    def record_message(self, record: MessageRecord) -> None:
        self._messages.setdefault(record.person_id, []).append(record)

    def messages(self, person_id: str) -> list[MessageRecord]:
        return list(self._messages.get(person_id, []))


def score_in_process(models: Mapping[str, TrainedModel], histories: list[PersonHistory], now: datetime) -> float:
    """Seconds for `score_shard` over every person (one shard) with `models`, reading and writing nothing."""
    from cdp.observability import logger

    request = ScoreShardRequest(model_names=list(models), shard=0, total_shards=1)
    level = logger.log_level
    logger.setLevel("WARNING")  # the shard's summary line: what the function logs, not the bench's output
    try:
        started = time.perf_counter()
        result = score_shard(request, models, _Histories(histories), _Discard(), now)
        seconds = time.perf_counter() - started
    finally:
        logger.setLevel(level)
    if result.scored != len(histories):
        raise RuntimeError(f"scored {result.scored} of {len(histories)} persons")
    return seconds


# ---- scoring on the metered runtime --------------------------------------------------------------------------------


def _table() -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    from cdp_local.runtime.environment import REGION

    backend = dynamodb_backends[os.environ.get("MOTO_ACCOUNT_ID", DEFAULT_ACCOUNT_ID)][REGION]
    return backend.get_table(topology.PROFILES_TABLE.local_name)


def scan_read_units(total_shards: int) -> tuple[float, int]:
    """RRU and pages of a parallel Scan of the profiles table in `total_shards` segments, as DynamoDB bills it: each
    page (1 MB of items read, in key order) eventually consistent, its items' summed size per started 4 KB."""
    table = _table()
    rru, pages = 0.0, 0
    for segment in range(total_shards):
        partitions = sorted(
            (hash_key.value, partition)
            for hash_key, partition in table.items.items()
            if partition and next(iter(partition.values())).is_within_segment((segment, total_shards))
        )
        page_moto = page_billed = 0
        for _, partition in partitions:
            for item in sorted(partition.values(), key=lambda i: i.range_key.value):
                size = item.size()
                if page_moto + size > SCAN_PAGE_BYTES:
                    rru += cost_model.read_units(page_billed, consistent=False)
                    pages += 1
                    page_moto = page_billed = 0
                page_moto += size
                page_billed += cost_model.item_size(item.attrs)
        rru += cost_model.read_units(page_billed, consistent=False)  # the last page (or an empty one)
        pages += 1
    return rru, pages


def _score_pass(rt: Any, counter: ApiCallCounter, names: list[str], shards: int) -> tuple[dict[str, OpUsage], float]:
    """One run of the score machine's work: a Scoring task per shard, then Totals; its usage, the Scan billed from the
    table, the state transitions added; and the shards' wall seconds."""
    counter.reset()
    results = []
    started = time.perf_counter()
    for shard in range(shards):
        request = {"model_names": names, "total_shards": shards, "shard": shard}
        results.append(rt.invoke(topology.SCORING.key, request))
    wall = time.perf_counter() - started
    summary = {"action": "summarize", "model_names": names, "total_shards": shards, "results": results}
    rt.invoke(topology.SCORING.key, summary)
    usage = counter.settled()
    scan = usage.setdefault("dynamodb.Scan", OpUsage())
    scan.units["dynamodb_rru"] = scan_read_units(shards)[0]
    usage["states.StateTransition"] = OpUsage(0)
    usage["states.StateTransition"].units["stepfunctions_transitions"] = PASS_TRANSITIONS + shards
    return usage, wall


def _usd(usage: Mapping[str, OpUsage]) -> dict[str, float]:
    return {k: v for k, v in cost_model.cost_usd(dict(usage_totals(dict(usage)))).items() if v}


def _per_person(prefix: str, usage: Mapping[str, OpUsage], persons: int) -> dict[str, Metric]:
    out: dict[str, Metric] = {}
    totals = usage_totals(dict(usage))
    for key in ("dynamodb_rru", "dynamodb_wru", "lambda_gb_seconds"):
        unit = cost_model.PRICES[key].short
        out[f"{prefix}.{unit}_per_person"] = {"value": round(totals.get(key, 0.0) / persons, 4), "unit": unit}
    for op in ("dynamodb.Scan", "dynamodb.Query"):
        rru = usage[op].units.get("dynamodb_rru", 0.0) if op in usage else 0.0
        out[f"{prefix}.rru_per_person.{op.split('.')[1]}"] = {"value": round(rru / persons, 4), "unit": "rru"}
    writes = sum(usage[op].calls for op in ("dynamodb.UpdateItem", "dynamodb.PutItem") if op in usage)
    out[f"{prefix}.writes_per_person"] = {"value": round(writes / persons, 3), "unit": "UpdateItem + PutItem"}
    return out


def score_on_runtime(
    histories: list[PersonHistory],
    trained: Mapping[str, tuple[bytes, ModelManifest]],
    names: list[str],
    shards: int = SHARDS,
    status: Status | None = None,
) -> dict[str, Metric]:
    from cdp.identity.dynamodb import DynamoIdentityStore
    from cdp.identity.history import import_history
    from cdp.models.store import S3ModelStore
    from cdp.org import load_org
    from cdp_local.bench import metered_runtime

    persons = len(histories)
    say = status or (lambda _: None)
    counter = ApiCallCounter()
    with metered_runtime(counter) as (rt, _):
        say(f"models: importing {persons:,} persons, a full tag refresh")
        store = DynamoIdentityStore(topology.PROFILES_TABLE.local_name, client=rt.client("dynamodb"))
        import_history([e for h in histories for e in h.events], load_org().brand(BRAND), store)
        refreshed = rt.invoke(topology.TAG_SWEEP.key, {"full": True})
        if refreshed.get("failed") or refreshed.get("refreshed") != persons:
            raise RuntimeError(f"tagging the imported persons failed: {refreshed}")
        models = S3ModelStore(topology.DATA_BUCKET_LOCAL_NAME, rt.client("s3"))
        for name in names:
            blob, manifest = trained[name]
            models.save(blob, manifest)
            models.promote(name, manifest.version, manifest.trained_at)  # accepted or not: the bench scores it
        say("models: a first pass (scores and predictive tags in place, not billed)")
        _score_pass(rt, counter, names, shards)
        say(f"models: {len(names)} models in one pass")
        together, wall = _score_pass(rt, counter, names, shards)
        lambda_ms = list(counter.lambda_ms.get(topology.SCORING.key, []))
        alone: dict[str, dict[str, OpUsage]] = {}
        for name in names:
            say(f"models: {name} alone")
            alone[name], _ = _score_pass(rt, counter, [name], shards)
        _, pages = scan_read_units(shards)

    scale = 1_000_000 / persons
    usd = _usd(together)
    each = {name: sum(_usd(usage).values()) * scale for name, usage in alone.items()}
    one_pass, four_passes = sum(usd.values()) * scale, sum(each.values())
    shard_ms = sum(lambda_ms[:shards])  # the shards' billed duration (the totals task is the last)
    ms_per_person = shard_ms / persons
    out: dict[str, Metric] = {
        "models.score_persons_per_s": {
            "value": round(persons / wall, 1),
            "unit": f"persons/s, {len(names)} models in one pass (moto in-process, wall)",
        },
        "models.lambda_billed_ms_per_person": {
            "value": round(ms_per_person, 2),
            "unit": f"ms at {topology.SCORING.memory_mb} MB (modelled)",
        },
        "models.persons_per_shard_in_timeout": {
            "value": math.floor(topology.SCORING.timeout_s * 1000 / ms_per_person) if ms_per_person else 0,
            "unit": f"persons one shard scores within the function's {topology.SCORING.timeout_s} s",
        },
        "models.scan_pages": {"value": pages, "unit": f"1 MB pages over {shards} segments, per pass"},
        "models.usd_per_1m_persons_scored": {
            "value": round(one_pass, 4),
            "unit": f"USD, {len(names)} models in one pass ({', '.join(names)})",
        },
        "models.usd_per_1m_persons_scored_one_model_per_pass": {
            "value": round(four_passes, 4),
            "unit": f"USD, {len(names)} passes of one model each",
        },
        "models.one_model_per_pass_cost_ratio": {
            "value": round(four_passes / one_pass, 2) if one_pass else 0.0,
            "unit": f"x the one pass of {len(names)}",
        },
    }
    for key, value in sorted(usd.items()):
        out[f"models.usd_per_1m_persons_scored.{key}"] = {"value": round(value * scale, 4), "unit": "USD"}
    for name, value in each.items():
        out[f"models.usd_per_1m_persons_scored_alone.{name}"] = {"value": round(value, 4), "unit": "USD, one pass"}
    out |= _per_person("models.one_pass", together, persons)
    out |= _per_person("models.one_model_per_pass", merge_usage(*alone.values()), persons)
    return out


# ---- the suite -----------------------------------------------------------------------------------------------------


def models_benchmark(persons: int = 2000, seed: int = 7, status: Status | None = None) -> dict[str, Metric]:
    say = status or (lambda _: None)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    horizon = now - timedelta(hours=1)
    say(f"models: generating {persons:,} persons")
    histories = brand_histories(persons, horizon, seed)
    events = sum(len(h.events) for h in histories)
    say("models: training each kind")
    trained, out = train_all(histories, now)
    out["models.persons"] = {"value": persons, "unit": "persons"}
    out["models.events_per_person"] = {"value": round(events / persons, 1), "unit": "events"}
    names = [name for name, _ in topology.SCHEDULED_MODELS]
    loaded = {name: unpack(*trained[name]) for name in names}
    say("models: scoring in-process")
    seconds = score_in_process(loaded, histories, now)
    out["models.score_persons_per_s_in_process"] = {
        "value": round(persons / seconds, 1),
        "unit": f"persons/s, {len(names)} models, no I/O (one core)",
    }
    for name in names:
        alone = score_in_process({name: loaded[name]}, histories, now)
        out[f"models.score_ms_per_1k_persons.{name}"] = {
            "value": round(alone * 1000 / persons * 1000, 1),
            "unit": "ms per 1,000 persons, no I/O",
        }
    return out | score_on_runtime(histories, trained, names, status=status)


if __name__ == "__main__":  # pragma: no cover - `python -m cdp_local.bench_models [persons]`
    import sys

    figures = models_benchmark(int(sys.argv[1]) if len(sys.argv) > 1 else 2000, status=print)
    for key, metric in figures.items():
        print(f"{key:60} {metric['value']:>12} {metric['unit']}")
