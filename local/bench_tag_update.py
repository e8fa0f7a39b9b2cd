"""`cdp bench --suite tags` (real-time part): latency of tag_update per event, in-process, and of the pure evaluation.

Persons with realistic timelines (10-50 events over two years: identify, orders with lines, cart adds, page views,
message opens, reviews, points, coupons) are loaded through identity resolution into moto's DynamoDB (not timed),
with two dynamic audiences stored in S3. Then each timed event is resolved (not timed) and its profile.updated is
handed to the real tag_update handler as the SQS batch the bus rule delivers: SQS parsing, the engine's selection,
the profile and timeline reads, evaluation, the conditional tag + history write and the EventBridge publish, all
against moto in-process. On AWS each DynamoDB round trip is network-bound (single-digit ms) instead of moto's CPU.

The pure figures time the same work without I/O: selection, timeline -> event records, recompute.
"""

from __future__ import annotations

import json
import random
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cdp import topology
from cdp.identity.dynamodb import DynamoIdentityStore
from cdp.identity.history import import_history
from cdp.identity.service import resolve_event
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.observability import metrics
from cdp.org import load_org
from cdp.shared.ports import EventPublisher
from cdp.shared.time import utc_now
from cdp.tags.audience_rules import AudienceDefinition
from cdp.tags.catalog import bundled_catalog
from cdp.tags.recompute import event_records_of, recompute
from cdp.tags.selection import TagRules

Metric = dict[str, float | str]
Progress = Callable[[int, int], None]
BRAND = "demo-brand"
SAMPLES = Path(__file__).resolve().parents[1] / "events" / "canonical"
CATEGORIES = ("cake", "bread", "birthday_cake", "cookie", "drink", "air_conditioner")
# share of each event type among the timed (live) events: browsing dominates, orders are a minority
LIVE_MIX = (
    ("page_view", 35),
    ("add_to_cart", 15),
    ("order_placed", 15),
    ("message_opened", 10),
    ("points_changed", 8),
    ("coupon_claimed", 7),
    ("review_posted", 5),
    ("identify", 5),
)
AUDIENCES = (
    AudienceDefinition.model_validate(
        {
            "id": "dormant_high_value",
            "name": "Dormant high-value members",
            "kind": "dynamic",
            "include": {
                "all": [{"tag": "lifecycle", "eq": "dormant"}, {"tag": "spend_tier", "in": ["gold", "platinum"]}]
            },
        }
    ),
    AudienceDefinition.model_validate(
        {
            "id": "active_browsers",
            "name": "Browsed 5+ pages this week",
            "kind": "dynamic",
            "include": {"agg": "count", "event": "page_view", "within_days": 7, "gte": 5},
            "exclude": [{"tag": "purchased_last_7d", "eq": True}],
        }
    ),
)


class _NoBus(EventPublisher):
    def publish(self, events: Any, correlation_id: str) -> list[str]:
        return ["-"] * len(events)


def _samples() -> dict[str, dict[str, Any]]:
    return {t: json.loads((SAMPLES / f"{t}.v1.json").read_text()) for t, _ in LIVE_MIX}


class _Events:
    """Canonical events of synthetic persons (one phone each), from the canonical samples."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.samples = _samples()
        self.n = 0

    def make(self, event_type: str, person: int, at: datetime) -> CanonicalEvent:
        self.n += 1
        raw = json.loads(json.dumps(self.samples[event_type]))
        raw.update(
            event_id=f"bt-{person}-{self.n}",
            brand_id=BRAND,
            occurred_at=at.isoformat(),
            identifiers=[{"type": "phone", "value": f"+86137{person:08d}"}],
        )
        raw.pop("store_id", None)
        props = raw["properties"]
        if event_type == "order_placed":
            lines: list[dict[str, Any]] = []
            total = 0
            for _ in range(self.rng.randint(1, 3)):
                quantity, price = self.rng.randint(1, 3), self.rng.randrange(1_000, 60_000, 100)
                category = self.rng.choice(CATEGORIES)
                lines.append(
                    {"sku": f"SKU-{category}", "category": category, "quantity": quantity, "unit_price_minor": price}
                )
                total += quantity * price
            props.update(order_id=f"BO-{person}-{self.n}", lines=lines, total_minor=total)
            props.pop("coupon_id", None)
            raw["store_id"] = self.rng.choice(("sh01", "bj02"))
        elif event_type == "add_to_cart":
            props.update(category=self.rng.choice(CATEGORIES))
        elif event_type == "identify":
            props.update(city=self.rng.choice(("Shanghai", "Beijing", "Hangzhou")), name=f"Bench {person}")
        elif event_type in ("message_opened", "coupon_claimed"):
            props.update(campaign_id=f"cmp-{self.rng.randrange(5)}")
            if event_type == "message_opened":
                props.update(message_id=f"msg-{self.n}", channel=self.rng.choice(("push", "sms", "email")))
        return parse_event(raw)

    def history(self, person: int, now: datetime) -> list[CanonicalEvent]:
        """10-50 events over the last two years: an identify first, then a mix weighted to browsing and orders."""
        count = self.rng.randint(10, 50)
        start = now - timedelta(days=self.rng.randint(60, 730))
        span = (now - timedelta(hours=1) - start).total_seconds()
        times = sorted(start + timedelta(seconds=self.rng.uniform(0, span)) for _ in range(count - 1))
        types = self.rng.choices([t for t, _ in LIVE_MIX], weights=[w for _, w in LIVE_MIX], k=count - 1)
        later = [self.make(t, person, at) for t, at in zip(types, times, strict=True)]
        return [self.make("identify", person, start), *later]


def _sqs_event(person_id: str, event_type: str) -> dict[str, Any]:
    body = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": topology.PROFILE_UPDATED,
        "source": topology.SOURCE_IDENTITY,
        "account": "123456789012",
        "time": utc_now().isoformat(),
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "metadata": {
                "event_name": topology.PROFILE_UPDATED,
                "event_source": topology.SOURCE_IDENTITY,
                "event_version": "1",
                "correlation_id": f"bench-{uuid.uuid4().hex[:8]}",
            },
            "data": {
                "person_id": person_id,
                "brand_id": BRAND,
                "event_id": "e",
                "event_type": event_type,
                "version": 1,
            },
        },
    }
    now_ms = str(int(time.time() * 1000))
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "bench",
                "body": json.dumps(body),
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now_ms,
                    "SenderId": "bench",
                    "ApproximateFirstReceiveTimestamp": now_ms,
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{topology.TAG_QUEUE.local_name}",
                "awsRegion": "us-east-1",
            }
        ]
    }


def _percentiles(samples: list[float]) -> dict[str, float]:
    if len(samples) < 2:
        value = round(samples[0], 3) if samples else 0.0
        return {"p50": value, "p95": value, "p99": value, "mean": value}
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "p50": round(cuts[49], 3),
        "p95": round(cuts[94], 3),
        "p99": round(cuts[98], 3),
        "mean": round(statistics.fmean(samples), 3),
    }


def run_realtime_bench(
    events: int = 2000, persons: int | None = None, seed: int = 7, progress: Progress | None = None
) -> dict[str, Metric]:
    """Time `events` live events through tag_update (after loading ~events/10 persons with their histories)."""
    from cdp.audiences.store import AudienceStore
    from cdp.shared.aws import S3ObjectStore
    from cdp_local.aws_costs import ApiCallCounter
    from cdp_local.runtime import LocalLambdaContext, LocalRuntime

    rng = random.Random(seed)
    gen = _Events(rng)
    population = persons or max(20, events // 10)
    spec = topology.TAG_UPDATE
    with LocalRuntime(state_machines=()) as rt:
        counter = ApiCallCounter()
        counter.install()  # before the handler makes its clients (on its first call)
        store = DynamoIdentityStore(topology.PROFILES_TABLE.local_name, client=rt.client("dynamodb"))
        objects = S3ObjectStore(topology.DATA_BUCKET_LOCAL_NAME, rt.client("s3"))
        for definition in AUDIENCES:
            AudienceStore(objects).put(definition, utc_now())
        now = utc_now()
        load_started = time.perf_counter()
        history = [e for person in range(population) for e in gen.history(person, now)]
        import_history(history, load_org().brand(BRAND), store)  # the bulk path: same store shape as live resolution
        ids = {p: store.person_for_identifier(BRAND, f"phone:+86137{p:08d}") or "" for p in range(population)}
        loaded = len(history)
        load_s = time.perf_counter() - load_started

        # steady state before timing: every person tagged once (the nightly full refresh), not timed
        tagged = rt.invoke(topology.TAG_SWEEP.key, {"full": True})
        if tagged.get("failed") or tagged.get("refreshed") != population:
            raise RuntimeError(f"tagging the loaded persons failed: {tagged}")
        handler = rt.router.resolve(spec)
        rules = TagRules(bundled_catalog(), AUDIENCES)
        warm = gen.make("page_view", 0, utc_now())
        resolve_event(warm, store, _NoBus())
        handler(_sqs_event(ids[0], "identify"), LocalLambdaContext(spec))  # cold start: catalog, audiences, clients

        latency_ms: list[float] = []
        evaluated_ms: list[float] = []
        skipped_ms: list[float] = []
        pure_ms: list[float] = []
        pure_evaluated_ms: list[float] = []
        calls: Counter[str] = Counter()
        evaluated_calls: Counter[str] = Counter()
        skipped = 0
        types = rng.choices([t for t, _ in LIVE_MIX], weights=[w for _, w in LIVE_MIX], k=events)
        for i, event_type in enumerate(types):
            person = rng.randrange(population)
            event = gen.make(event_type, person, utc_now() - timedelta(seconds=1))
            person_id = resolve_event(event, store, _NoBus()).person_id or ids[person]
            # the same work without I/O, on the state the handler is about to read
            profile = store.get(person_id)
            timeline = [e.event for e in store.timeline(profile)] if profile else []
            at = utc_now()
            t0 = time.perf_counter()
            selection = rules.select(event_type)
            if profile is not None and not selection.empty:
                recompute(rules, selection, profile, event_records_of(timeline), at, "bench")
            pure = (time.perf_counter() - t0) * 1000
            # the handler, counted
            sqs = _sqs_event(person_id, event_type)
            counter.reset()
            t1 = time.perf_counter()
            result = handler(sqs, LocalLambdaContext(spec))
            elapsed = (time.perf_counter() - t1) * 1000
            metrics.clear_metrics()  # what publishing does on Lambda; with metrics disabled Powertools keeps them
            if result.get("batchItemFailures"):
                raise RuntimeError(f"tag_update failed for a {event_type} event: {result}")
            made = Counter(counter.calls)
            calls.update(made)
            latency_ms.append(elapsed)
            pure_ms.append(pure)
            if selection.empty:
                skipped += 1
                skipped_ms.append(elapsed)
            else:
                evaluated_ms.append(elapsed)
                pure_evaluated_ms.append(pure)
                evaluated_calls.update(made)
            if progress:
                progress(i + 1, events)
        counter.uninstall()

    evaluated = events - skipped
    unit = "ms (in-process, moto included)"
    out: dict[str, Metric] = {
        "tag_update.events": {"value": events, "unit": "timed events"},
        "tag_update.persons": {"value": population, "unit": "persons"},
        "tag_update.history_events": {"value": loaded, "unit": "events loaded before timing (10-50 per person)"},
        "tag_update.load_seconds": {"value": round(load_s, 1), "unit": "s (bulk history import, not timed)"},
        "tag_update.skipped_share": {
            "value": round(skipped / events, 3),
            "unit": "share of events no tag or audience reads (no AWS call)",
        },
        "tag_update.aws_calls_per_event": {"value": round(sum(calls.values()) / events, 3), "unit": "calls"},
        "tag_update.aws_calls_per_evaluated_event": {
            "value": round(sum(evaluated_calls.values()) / max(1, evaluated), 3),
            "unit": "calls",
        },
    }
    for operation, count in sorted(calls.items()):
        out[f"tag_update.calls.{operation}"] = {"value": round(count / events, 3), "unit": "per event"}
    figures = (
        ("latency_ms", latency_ms, unit),
        ("evaluated_latency_ms", evaluated_ms, unit),
        ("skipped_latency_ms", skipped_ms, "ms (handler only: nothing read)"),
        ("pure_ms", pure_ms, "ms (selection + records + recompute, no I/O)"),
        ("pure_evaluated_ms", pure_evaluated_ms, "ms (no I/O, evaluated events only)"),
    )
    for name, samples, what in figures:
        for stat, value in _percentiles(samples).items():
            out[f"tag_update.{name}.{stat}"] = {"value": value, "unit": what}
    return out


if __name__ == "__main__":  # pragma: no cover - a manual run: python -m cdp_local.bench_tag_update [events]
    import sys

    figures = run_realtime_bench(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
    for key, metric in figures.items():
        print(f"{key:55} {metric['value']:>10} {metric['unit']}")
