"""`cdp bench --suite offers`: promotion evaluation latency, the budget ledger under contention, and what issuing and
redeeming an offer costs at AWS list prices.

- Evaluation: the sample catalog (`events/promotions/catalog.yaml`, 10 promotions) and a catalog of 40 (the sample's
  rules four times over) against the sample carts, in-process (`cdp.offers.promotions.evaluate`): p50/p95 per cart.
- Contention: 16 threads reserve 30 from one pool until it is spent, on the emulated table (moto serialises each
  request as DynamoDB applies it atomically): reserves per second here, whether the pool balanced, and how many
  transactions had to be tried again. On DynamoDB one item takes about 1,000 writes/s and transactions on one pool
  conflict before that; these figures say the ledger is correct under contention, not how fast AWS is.
- Cost: offers issued through the offer service and redeemed, on the offers table, billed per call as AWS bills them
  (item sizes, transactions at twice the write units): USD per 1M issues and per 1M redemptions.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from cdp_local import cost_model
from cdp_local.aws_costs import ApiCallCounter, OpUsage
from cdp_local.bench import Metric

REPO = Path(__file__).resolve().parents[1]
PROMOTIONS = REPO / "events" / "promotions"
BRAND = "demo-brand"
T0 = datetime(2026, 12, 8, 4, tzinfo=UTC)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * share) - 1)]


def evaluation_latency(rounds: int = 200) -> dict[str, Metric]:
    from cdp.offers.promotions import Cart, Promotion, evaluate

    raw = yaml.safe_load((PROMOTIONS / "catalog.yaml").read_text(encoding="utf-8"))
    shared = {"brand_id": raw["brand_id"], "currency": raw["currency"]}
    catalog = [Promotion.model_validate(shared | p) for p in raw["promotions"]]
    larger = [
        p.model_copy(update={"promotion_id": f"{p.promotion_id}-{n}", "group": f"{p.group}-{n}" if p.group else None})
        for n in range(4)
        for p in catalog
    ]
    carts = [Cart.model_validate(json.loads(p.read_text())["cart"]) for p in sorted((PROMOTIONS / "carts").glob("*"))]
    zone = ZoneInfo("Asia/Shanghai")
    out: dict[str, Metric] = {}
    for label, promotions in (("10", catalog), ("40", larger)):
        timings = []
        for _ in range(rounds):
            for cart in carts:
                t0 = time.perf_counter()
                evaluate(cart, promotions, zone, cart.at or T0, {"cashback-2026": 10_000})
                timings.append((time.perf_counter() - t0) * 1000)
        out[f"offers.evaluate_{label}_promotions_ms_p50"] = {
            "value": round(statistics.median(timings), 3),
            "unit": "ms per cart (in-process)",
        }
        out[f"offers.evaluate_{label}_promotions_ms_p95"] = {
            "value": round(_percentile(timings, 0.95), 3),
            "unit": "ms per cart (in-process)",
        }
    return out


def _table(session: Any) -> Any:
    from cdp import topology
    from cdp_local.runtime.core import create_table

    client = session.client("dynamodb", region_name="us-east-1")
    create_table(client, topology.OFFERS_TABLE)
    return client


def ledger_contention(workers: int = 16, amount: int = 30, pool_total: int = 30_000) -> dict[str, Metric]:
    import boto3
    from moto import mock_aws

    from cdp import topology
    from cdp.budgets.dynamodb import DynamoBudgetLedger
    from cdp.budgets.ledger import BudgetExhaustedError, BudgetPool
    from cdp_local.runtime.moto_atomic import atomic_dynamodb
    from cdp_local.runtime.moto_speedups import fast_transactions

    with mock_aws(), fast_transactions(), atomic_dynamodb():
        client = _table(boto3.session.Session())
        retries = [0]
        lock = threading.Lock()

        def slept(seconds: float) -> None:
            with lock:
                retries[0] += 1
            time.sleep(seconds)

        ledger = DynamoBudgetLedger(topology.OFFERS_TABLE.local_name, client=client, sleep=slept)
        ledger.define(BudgetPool(brand_id=BRAND, pool_id="flash", total_minor=pool_total, currency="CNY"))
        start = threading.Barrier(workers)
        won = [0] * workers

        def worker(w: int) -> None:
            start.wait()
            for i in range(10_000):
                try:
                    ledger.reserve(BRAND, f"w{w}-{i}", {"flash": amount}, T0)
                except BudgetExhaustedError:
                    return
                won[w] += 1

        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(worker, range(workers)))
        seconds = time.perf_counter() - t0
        balance = ledger.balance(BRAND, "flash")
    assert balance is not None
    reserved = sum(won)
    balanced = balance.reserved_minor == reserved * amount and balance.available_minor >= 0
    return {
        "offers.ledger_reserves_per_s_emulated": {"value": round(reserved / seconds, 1), "unit": f"{workers} workers"},
        "offers.ledger_reserves_won": {"value": reserved, "unit": f"of {pool_total // amount} that fit"},
        "offers.ledger_balanced_under_contention": {"value": int(balanced), "unit": "1: never overspent"},
        "offers.ledger_transactions_retried": {"value": retries[0], "unit": "TransactionConflict retries"},
    }


def issue_and_redeem_cost(persons: int = 200) -> dict[str, Metric]:
    import boto3
    from moto import mock_aws

    from cdp import topology
    from cdp.budgets.ledger import BudgetPool
    from cdp.ingest.events import parse_event
    from cdp.offers.catalog import Offer
    from cdp.offers.dynamodb import DynamoOfferStore
    from cdp.offers.service import OfferService
    from cdp.org import load_org
    from cdp.profile.models import Profile
    from cdp.shared.ports import EventPublisher

    class Quiet(EventPublisher):  # the issue's event is one PutEvents entry: billed below, not emulated
        def publish(self, events: Any, correlation_id: str) -> list[str]:
            return ["0" for _ in events]

    from cdp_local.runtime.moto_speedups import fast_transactions

    counter = ApiCallCounter()
    with mock_aws(), fast_transactions():
        session = boto3.session.Session()
        counter.install(session)
        client = _table(session)
        store = DynamoOfferStore(topology.OFFERS_TABLE.local_name, client=client)
        phones = [f"+86137{i:08d}" for i in range(persons)]
        people = _People(
            Profile(person_id=f"p{i}", brand_id=BRAND, created_at=T0, updated_at=T0, identifiers=[f"phone:{ph}"])
            for i, ph in enumerate(phones)
        )
        service = OfferService(store, store.budgets, people, Quiet(), load_org(), now=lambda: T0)  # type: ignore[arg-type]
        store.budgets.define(BudgetPool(brand_id=BRAND, pool_id="xmas", total_minor=10**9, currency="CNY"))
        offer = Offer.model_validate(
            yaml.safe_load((REPO / "events" / "offers" / "xmas_50_off_300.yaml").read_text(encoding="utf-8"))
            | {"budget_pools": ["xmas"], "stock": None}
        )
        store.define(offer, "bench", T0)
        counter.reset()
        codes = [service.issue_to(BRAND, offer.offer_id, f"p{i}", f"bench-{i}").entry.code for i in range(persons)]
        issued = counter.settled()
        counter.reset()
        for i, code in enumerate(codes):
            order = {
                "event_id": f"bench-order-{i}",
                "event_type": "order_placed",
                "source": "pos",
                "brand_id": BRAND,
                "occurred_at": (T0 + timedelta(days=1)).isoformat(),
                "identifiers": [{"type": "phone", "value": phones[i]}],
                "properties": {
                    "order_id": f"BENCH-{i}",
                    "lines": [{"sku": "CAKE", "quantity": 1, "unit_price_minor": 36800}],
                    "total_minor": 31800,
                    "currency": "CNY",
                    "coupon_code": code,
                },
            }
            service.redeem_from(parse_event(order))
        redeemed = counter.settled()
    counter.uninstall()
    return {
        **_priced("issue", issued, persons, extra_events=persons),
        **_priced("redemption", redeemed, persons, extra_events=0),
    }


def _priced(what: str, usage: dict[str, OpUsage], n: int, extra_events: int) -> dict[str, Metric]:
    totals: defaultdict[str, float] = defaultdict(float)
    for op in usage.values():
        for key, units in op.units.items():
            totals[key] += units
    totals["eventbridge_events"] += extra_events  # the coupon_issued event, one 64 KB chunk each
    usd = sum(cost_model.cost_usd(dict(totals)).values())
    return {
        f"offers.cost_per_1m_{what}s_usd": {
            "value": round(usd * 1_000_000 / n, 2),
            "unit": "USD: the offers table and the bus entry (the timeline's event bills as any event)",
        },
        f"offers.wru_per_{what}": {"value": round(totals.get("dynamodb_wru", 0.0) / n, 2), "unit": "wru"},
        f"offers.aws_calls_per_{what}": {"value": round(sum(u.calls for u in usage.values()) / n, 2), "unit": "calls"},
    }


class _People:
    """The persons offers are issued to (the offer service reads only `get`)."""

    def __init__(self, profiles: Any) -> None:
        self._by_id = {p.person_id: p for p in profiles}

    def get(self, person_id: str) -> Any:
        return self._by_id.get(person_id)


def loyalty_cost(persons: int = 200, orders_each: int = 3) -> dict[str, Metric]:
    """Orders earning points in the demo brand's `club` (the loyalty function's reads and its transaction), then a
    burn each: billed per call. The order's `loyalty.activity` entry and SQS delivery are added at one each per order
    (identity packs them per batch, so this is the upper bound); the `points_changed` event each order makes then
    bills through the pipeline as any event does (the ingest results' per-event figure), reported apart."""
    import boto3
    from moto import mock_aws

    from cdp import topology
    from cdp.identity.events import ResolvedOrder
    from cdp.ingest.ports import ApiClient
    from cdp.loyalty.dynamodb import DynamoAccountStore
    from cdp.loyalty.service import LoyaltyService, PointsRequest
    from cdp.org import load_org
    from cdp.profile.models import Profile
    from cdp.shared.ports import EventPublisher

    class Counted(EventPublisher):
        def __init__(self) -> None:
            self.events = 0

        def publish(self, events: Any, correlation_id: str) -> list[str]:
            self.events += sum(len(getattr(e, "events", [])) for e in events)
            return ["0" for _ in events]

    from cdp_local.runtime.moto_speedups import fast_transactions

    counter = ApiCallCounter()
    bus = Counted()
    with mock_aws(), fast_transactions():
        session = boto3.session.Session()
        counter.install(session)
        store = DynamoAccountStore(topology.OFFERS_TABLE.local_name, client=_table(session))
        people = _People(
            Profile(
                person_id=f"p{i}", brand_id=BRAND, created_at=T0, updated_at=T0, identifiers=[f"phone:+86137{i:08d}"]
            )
            for i in range(persons)
        )
        service = LoyaltyService(store, people, bus, load_org(), now=lambda: T0)  # type: ignore[arg-type]
        counter.reset()
        for n in range(orders_each):
            for i in range(persons):
                event = {
                    "event_id": f"bench-loyalty-{i}-{n}",
                    "event_type": "order_placed",
                    "source": "pos",
                    "brand_id": BRAND,
                    "occurred_at": (T0 + timedelta(days=n)).isoformat(),
                    "identifiers": [{"type": "phone", "value": f"+86137{i:08d}"}],
                    "properties": {
                        "order_id": f"BENCH-L-{i}-{n}",
                        "lines": [{"sku": "CAKE", "category": "pastry", "quantity": 1, "unit_price_minor": 36800}],
                        "total_minor": 36800,
                        "currency": "CNY",
                    },
                }
                service.on_order(ResolvedOrder(person_id=f"p{i}", anchor=f"phone:+86137{i:08d}", event=event))
        earned = counter.settled()
        events_per_order = bus.events / (persons * orders_each)
        counter.reset()
        staff = ApiClient("bench", frozenset({"loyalty:write"}))
        for i in range(persons):
            request = PointsRequest(brand_id=BRAND, person_id=f"p{i}", points=100, op_id=f"bench-burn-{i}")
            service.burn("club", request, staff)
        burned = counter.settled()
    counter.uninstall()
    orders = persons * orders_each
    out = _loyalty_priced("order", earned, orders, extra_entries=2 + events_per_order)
    out |= _loyalty_priced("burn", burned, persons, extra_entries=1)
    out["loyalty.events_per_order"] = {
        "value": round(events_per_order, 2),
        "unit": "canonical events each order adds (points_changed; level_changed and benefits when the level moves)",
    }
    return out


def _loyalty_priced(what: str, usage: dict[str, OpUsage], n: int, extra_entries: float) -> dict[str, Metric]:
    totals: defaultdict[str, float] = defaultdict(float)
    for op in usage.values():
        for key, units in op.units.items():
            totals[key] += units
    totals["eventbridge_events"] += extra_entries * n  # the activity entry and the events made, one chunk each
    totals["sqs_requests"] += (3 if what == "order" else 0) * n  # delivery, receive, delete (upper bound)
    totals["lambda_requests"] += (1 if what == "order" else 0) * n
    usd = sum(cost_model.cost_usd(dict(totals)).values())
    return {
        f"loyalty.cost_per_1m_{what}s_usd": {
            "value": round(usd * 1_000_000 / n, 2),
            "unit": "USD: accounts and operations in the offers table, the bus entries, the queue (not the events' "
            "own trip through the pipeline)",
        },
        f"loyalty.wru_per_{what}": {"value": round(totals.get("dynamodb_wru", 0.0) / n, 2), "unit": "wru"},
        f"loyalty.aws_calls_per_{what}": {
            "value": round(sum(u.calls for u in usage.values()) / n, 2),
            "unit": "calls",
        },
    }


def offers_benchmark(persons: int = 200, pool_total: int = 30_000, rounds: int = 200) -> dict[str, Metric]:
    return {
        **evaluation_latency(rounds),
        **ledger_contention(pool_total=pool_total),
        **issue_and_redeem_cost(persons),
        **loyalty_cost(persons),
    }
