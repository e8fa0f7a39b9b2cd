"""Budget pools on the offers table under moto: reserve all or nothing across pools, commit in parts once per
operation, release what was not spent, charge at once, top up; a pool is never overspent by parallel workers, and
over random sequences of issue / redeem / expire / fail (with retries) every pool balances and nothing counts twice."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from pydantic import ValidationError

from cdp import topology
from cdp.budgets.dynamodb import DynamoBudgetLedger
from cdp.budgets.ledger import BudgetExhaustedError, BudgetPool, HoldError
from cdp.errors import ConflictError
from cdp_local.runtime.core import create_table
from cdp_local.runtime.moto_atomic import atomic_dynamodb

BRAND = "bakery"
T0 = datetime(2026, 12, 6, tzinfo=UTC)


def pool(pool_id: str, total: int, **scope: Any) -> BudgetPool:
    return BudgetPool(brand_id=BRAND, pool_id=pool_id, total_minor=total, currency="CNY", **scope)


@pytest.fixture
def ledger() -> Iterator[DynamoBudgetLedger]:
    with mock_aws(), atomic_dynamodb():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, topology.OFFERS_TABLE)
        yield DynamoBudgetLedger(topology.OFFERS_TABLE.local_name, client=client)


def amounts(ledger: DynamoBudgetLedger, pool_id: str) -> tuple[int, int, int]:
    found = ledger.balance(BRAND, pool_id)
    assert found is not None
    return found.available_minor, found.reserved_minor, found.committed_minor


def test_a_coupon_is_reserved_from_the_campaign_and_the_store_then_redeemed_or_expired(
    ledger: DynamoBudgetLedger,
) -> None:
    ledger.define(pool("xmas", 10_000, campaign_id="xmas_cakes", form="coupon"))
    ledger.define(pool("sh01", 3_000, store_id="sh01"))
    # When two 50-yuan coupons are issued for store sh01
    for issue in ("c1", "c2"):
        ledger.reserve(BRAND, issue, {"xmas": 5_000 // 2, "sh01": 1_000}, T0)
    assert amounts(ledger, "xmas") == (5_000, 5_000, 0) and amounts(ledger, "sh01") == (1_000, 2_000, 0)
    # Then one is redeemed (committed) and the other expires (released)
    ledger.commit(BRAND, "c1", "order-77", {"xmas": 2_500, "sh01": 1_000}, T0)
    released = ledger.release(BRAND, "c2", T0)
    assert released.released == {"xmas": 2_500, "sh01": 1_000}
    assert amounts(ledger, "xmas") == (7_500, 0, 2_500) and amounts(ledger, "sh01") == (2_000, 0, 1_000)
    # and a retried redemption or expiry changes nothing
    ledger.commit(BRAND, "c1", "order-77", {"xmas": 2_500, "sh01": 1_000}, T0)
    ledger.release(BRAND, "c2", T0)
    assert amounts(ledger, "xmas") == (7_500, 0, 2_500)


def test_a_reserve_is_all_or_nothing_and_names_the_pool_short(ledger: DynamoBudgetLedger) -> None:
    ledger.define(pool("xmas", 10_000))
    ledger.define(pool("sh01", 500))
    with pytest.raises(BudgetExhaustedError, match="sh01: 1000 asked, 500 available") as caught:
        ledger.reserve(BRAND, "c1", {"xmas": 1_000, "sh01": 1_000}, T0)
    assert caught.value.pool_id == "sh01"
    assert amounts(ledger, "xmas") == (10_000, 0, 0)  # nothing taken from the pool that had enough
    with pytest.raises(BudgetExhaustedError, match="nope: 1 asked, it does not exist"):
        ledger.reserve(BRAND, "c2", {"nope": 1}, T0)
    assert ledger.hold(BRAND, "c1") is None


def test_a_journey_reserves_its_worst_case_spends_part_and_releases_the_rest(ledger: DynamoBudgetLedger) -> None:
    ledger.define(pool("cart", 1_000, form="message"))
    ledger.reserve(BRAND, "cart:p1:e1", {"cart": 15}, T0)  # three SMS at 5
    ledger.commit(BRAND, "cart:p1:e1", "e1-s1", {"cart": 5}, T0)
    with pytest.raises(HoldError, match="less left than committed"):
        ledger.commit(BRAND, "cart:p1:e1", "e1-s2", {"cart": 11}, T0)
    with pytest.raises(HoldError, match="less left than committed"):
        ledger.commit(BRAND, "cart:p1:e1", "e1-s3", {"other": 1}, T0)
    hold = ledger.release(BRAND, "cart:p1:e1", T0)  # the person bought: the two reminders are not needed
    assert (hold.state, hold.spent, hold.released) == ("closed", {"cart": 5}, {"cart": 10})
    assert amounts(ledger, "cart") == (995, 0, 5)
    with pytest.raises(HoldError, match="is closed"):
        ledger.commit(BRAND, "cart:p1:e1", "e1-s4", {"cart": 5}, T0)


def test_the_same_hold_asked_twice_is_held_once_and_other_claims_under_its_id_are_refused(
    ledger: DynamoBudgetLedger,
) -> None:
    ledger.define(pool("xmas", 1_000))
    first = ledger.reserve(BRAND, "run-1", {"xmas": 600}, T0)
    assert ledger.reserve(BRAND, "run-1", {"xmas": 600}, T0) == first
    with pytest.raises(HoldError, match="exists with other claims"):
        ledger.reserve(BRAND, "run-1", {"xmas": 100}, T0)
    ledger.charge(BRAND, "sms-msg-9", {"xmas": 5}, T0)
    ledger.charge(BRAND, "sms-msg-9", {"xmas": 5}, T0)
    assert amounts(ledger, "xmas") == (395, 600, 5)


def test_top_ups_count_once_and_bad_claims_are_refused_with_the_field(ledger: DynamoBudgetLedger) -> None:
    ledger.define(pool("xmas", 1_000))
    with pytest.raises(ConflictError, match="exists"):
        ledger.define(pool("xmas", 5))
    ledger.top_up(BRAND, "xmas", 500, "po-1")
    balance = ledger.top_up(BRAND, "xmas", 500, "po-1")
    assert (balance.total_minor, balance.pool.total_minor) == (1_500, 1_000)
    with pytest.raises(HoldError, match="does not exist"):
        ledger.top_up(BRAND, "nope", 5, "po-2")
    with pytest.raises(ValidationError) as caught:
        ledger.reserve(BRAND, "h", {"xmas": 0}, T0)
    assert caught.value.errors()[0]["loc"] == ("xmas",)
    with pytest.raises(ValidationError):
        ledger.reserve(BRAND, "h", {"Bad Pool": 5}, T0)
    with pytest.raises(ValidationError):
        ledger.reserve(BRAND, "h", {}, T0)


def test_parallel_workers_never_overspend_a_pool(ledger: DynamoBudgetLedger) -> None:
    # Given a pool of 1,000 and 16 workers each reserving 30 ten times, all at once
    ledger.define(pool("flash", 1_000))
    start = threading.Barrier(16)
    won: list[str] = []

    def worker(w: int) -> None:
        start.wait()
        for i in range(10):
            with contextlib.suppress(BudgetExhaustedError):
                won.append(ledger.reserve(BRAND, f"w{w}-{i}", {"flash": 30}, T0).hold_id)

    with ThreadPoolExecutor(16) as pool_:
        list(pool_.map(worker, range(16)))
    # Then exactly 33 coupons fit (33 x 30 = 990) and the pool balances
    assert len(won) == 33
    assert amounts(ledger, "flash") == (10, 990, 0)


# ---- a property: random issue / redeem / expire / fail sequences, with retries --------------------------------------

PLAN = "plan"  # the oracle's key for the plan's roll-up
OPS = st.lists(
    st.tuples(
        st.sampled_from(["issue", "redeem", "expire", "fail", "charge", "plan", "carve", "close_plan"]),
        st.integers(0, 2),  # which hold
        st.integers(1, 400),  # an amount
        st.booleans(),  # delivered again (a retry after a timeout)
    ),
    min_size=3,
    max_size=30,
)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_every_pool_balances_and_nothing_counts_twice(ledger: DynamoBudgetLedger, ops: list[Any]) -> None:
    run = f"r{uuid.uuid4().hex[:8]}"  # the fixture's table is shared by the examples: each its own pools
    a, b = f"{run}-a", f"{run}-b"
    ledger.define(pool(a, 1_000))
    ledger.define(pool(b, 600))
    committed = {a: 0, b: 0}  # the oracle: each redemption and charge counted once, when it first goes through
    applied: set[str] = set()
    committed[PLAN] = 0  # what the holds carved from the plan committed, rolled up on the plan
    for kind, which, n, again in ops:
        for _ in range(1 + again):
            with contextlib.suppress(BudgetExhaustedError, HoldError):
                _apply(ledger, run, kind, f"{run}-h{which}", n, (a, b), committed, applied)
    holds = [ledger.hold(BRAND, f"{run}-h{i}") for i in range(3)] + [ledger.hold(BRAND, f"{run}-plan")]
    for pool_id, total in ((a, 1_000), (b, 600)):
        available, reserved, spent = amounts(ledger, pool_id)
        assert available >= 0 and reserved >= 0
        assert available + reserved + spent == total
        assert spent == committed[pool_id]
        assert reserved == sum(h.left.get(pool_id, 0) for h in holds if h is not None and h.state == "open")
    plan = ledger.hold(BRAND, f"{run}-plan")
    assert (plan.carved_spent_minor if plan else 0) == committed[PLAN]


def _apply(
    ledger: DynamoBudgetLedger,
    run: str,
    kind: str,
    hold_id: str,
    n: int,
    pools: tuple[str, str],
    committed: dict[str, int],
    applied: set[str],
) -> None:
    """One operation of the sequence; `committed` counts each redemption and charge once, when it first goes
    through (the oracle)."""
    a, b = pools
    if kind == "issue":
        ledger.reserve(BRAND, hold_id, {a: n, b: n // 2 + 1}, T0)
    elif kind == "redeem":
        hold = ledger.commit(BRAND, hold_id, f"o{n}", {a: 1 + n % 3}, T0)
        if f"{hold_id}/o{n}" not in applied:
            applied.add(f"{hold_id}/o{n}")
            committed[a] += 1 + n % 3
            committed[PLAN] += 1 + n % 3 if hold.plan_id else 0
    elif kind in ("expire", "fail"):
        ledger.release(BRAND, hold_id, T0)
    elif kind == "plan":  # a campaign run reserves its whole plan (one plan per example)
        ledger.reserve(BRAND, f"{run}-plan", {a: 50 * (n % 5 + 1)}, T0)
    elif kind == "carve":  # a coupon issued for the run takes its share of the plan
        ledger.carve(BRAND, f"{run}-plan", hold_id, {a: n % 40 + 1}, T0)
    elif kind == "close_plan":  # the run ends: what the plan has left goes back
        ledger.release(BRAND, f"{run}-plan", T0)
    else:
        ledger.charge(BRAND, f"{run}-charge{n}", {b: n % 7 + 1}, T0)
        if f"charge{n}" not in applied:
            applied.add(f"charge{n}")
            committed[b] += n % 7 + 1


def test_a_percentage_coupon_settles_for_its_real_discount_once(ledger: DynamoBudgetLedger) -> None:
    ledger.define(pool("pct", 10_000))
    ledger.reserve(BRAND, "c1", {"pct": 5_000}, T0)  # 20% off, at most 50 yuan
    hold = ledger.settle(BRAND, "c1", {"pct": 3_200}, T0)  # the order's eligible lines took 32 yuan off
    assert (hold.spent, hold.released) == ({"pct": 3_200}, {"pct": 1_800})
    assert ledger.settle(BRAND, "c1", {"pct": 3_200}, T0) == hold  # the redemption delivered again
    assert amounts(ledger, "pct") == (6_800, 0, 3_200)
    ledger.reserve(BRAND, "c2", {"pct": 5_000}, T0)
    with pytest.raises(HoldError, match="less left than committed"):
        ledger.settle(BRAND, "c2", {"pct": 5_001}, T0)


def test_a_run_reserves_its_plan_and_each_coupon_takes_its_share_without_moving_the_pool(
    ledger: DynamoBudgetLedger,
) -> None:
    ledger.define(pool("xmas", 1_000))
    # the run reserves 3 coupons of 200 at selection
    ledger.reserve(BRAND, "plan-r1", {"xmas": 600}, T0)
    assert amounts(ledger, "xmas") == (400, 600, 0)
    # two coupons are carved from the plan (a retry counts once): the pool does not move
    ledger.carve(BRAND, "plan-r1", "c1", {"xmas": 200}, T0)
    ledger.carve(BRAND, "plan-r1", "c1", {"xmas": 200}, T0)
    ledger.carve(BRAND, "plan-r1", "c2", {"xmas": 200}, T0)
    assert amounts(ledger, "xmas") == (400, 600, 0)
    plan = ledger.hold(BRAND, "plan-r1")
    assert plan is not None and plan.left == {"xmas": 200} and plan.carved == {"xmas": 400}
    # more than the plan has left is refused, naming the plan
    with pytest.raises(BudgetExhaustedError, match="plan plan-r1: 300 asked of pool xmas, 200 left"):
        ledger.carve(BRAND, "plan-r1", "c3", {"xmas": 300}, T0)
    # one coupon is redeemed for 150, the other expires; the run ends and the plan's rest goes back
    ledger.settle(BRAND, "c1", {"xmas": 150}, T0)
    ledger.settle(BRAND, "c1", {"xmas": 150}, T0)  # delivered again
    ledger.release(BRAND, "c2", T0)
    closed = ledger.release(BRAND, "plan-r1", T0)
    assert closed.released == {"xmas": 200}
    assert closed.carved_spent_minor == 150  # what the run's coupons cost, read from the plan alone
    assert amounts(ledger, "xmas") == (850, 0, 150)
    with pytest.raises(HoldError, match="closed"):
        ledger.carve(BRAND, "plan-r1", "c4", {"xmas": 1}, T0)
    # a retry of a carve made before the plan closed is the hold made; a hold of another plan is not
    assert ledger.carve(BRAND, "plan-r1", "c2", {"xmas": 200}, T0).plan_id == "plan-r1"
    ledger.reserve(BRAND, "plan-r2", {"xmas": 100}, T0)
    with pytest.raises(HoldError, match="another plan"):
        ledger.carve(BRAND, "plan-r2", "c2", {"xmas": 200}, T0)


def test_a_runs_message_batches_are_paid_from_its_plan_and_without_a_plan_from_the_pool(
    ledger: DynamoBudgetLedger,
) -> None:
    from cdp.budgets.ledger import message_plan_id
    from cdp.channels.spending import PlanSpending

    # Given a message pool of 1,000 and a run that reserved its worst case of 600 at selection
    ledger.define(pool("sms", 1_000, form="message"))
    ledger.reserve(BRAND, message_plan_id("run-1"), {"sms": 600}, T0)
    spending = PlanSpending(ledger, now=lambda: T0)
    # When two batches' attempts pay what they sent (250 and 100), and the run ends
    spending.spend(BRAND, "run-1", "sms", 250, "msg:a1")
    spending.spend(BRAND, "run-1", "sms", 100, "msg:a2")
    spending.spend(BRAND, "run-1", "sms", 100, "msg:a2")  # the same attempt asked again: once
    assert amounts(ledger, "sms") == (400, 250, 350)
    ledger.release(BRAND, message_plan_id("run-1"), T0)
    # Then the pool spent 350 and got the rest back
    assert amounts(ledger, "sms") == (650, 0, 350)
    # And a batch of a run whose plan is gone (released meanwhile) is charged to the pool itself, never past it
    spending.spend(BRAND, "run-1", "sms", 50, "msg:late")
    spending.spend(BRAND, "run-2", "sms", 5_000, "msg:too-much")  # refused: logged, not counted
    assert amounts(ledger, "sms") == (600, 0, 400)
