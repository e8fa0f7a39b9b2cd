"""Promotion rules for the checkout: the sample carts under events/promotions/carts, each with the answer expected
(thresholds, every-multiple, groups, exclusivity, member-day doubling, channels, levels, time windows, budgets and
ties), plus the rules' own checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cdp.offers.promotions import Cart, Promotion, evaluate

EVENTS = Path(__file__).resolve().parents[3] / "events" / "promotions"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def catalog() -> dict[str, Promotion]:
    raw = yaml.safe_load((EVENTS / "catalog.yaml").read_text(encoding="utf-8"))
    shared = {"brand_id": raw["brand_id"], "currency": raw["currency"]}
    return {p["promotion_id"]: Promotion.model_validate(shared | p) for p in raw["promotions"]}


CARTS = sorted((EVENTS / "carts").glob("*.json"))


@pytest.mark.parametrize("path", CARTS, ids=lambda p: p.stem)
def test_each_sample_cart_gets_the_answer_expected(path: Path) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    promotions = [catalog()[pid] for pid in case["promotions"]]
    cart = Cart.model_validate(case["cart"])
    assert cart.at is not None
    answer = evaluate(cart, promotions, SHANGHAI, cart.at, case.get("budgets"))
    want = case["expected"]
    assert [a.promotion_id for a in answer.applied] == want["applied"], answer
    assert (answer.discount_minor, answer.payable_minor) == (want["discount_minor"], want["payable_minor"]), answer
    assert answer.cashback_minor == want.get("cashback_minor", 0), answer
    assert [a.promotion_id for a in answer.applied if a.doubled] == want.get("doubled", []), answer
    assert [a.gift.sku for a in answer.applied if a.gift] == want.get("gifts", []), answer
    reasons = {r.promotion_id: r.reason for r in answer.not_applied}
    for pid, fragment in want.get("not_applied", {}).items():
        assert fragment in reasons.get(pid, ""), (pid, reasons)
    # every promotion asked about is either applied or says why not
    assert {a.promotion_id for a in answer.applied} | set(reasons) == set(case["promotions"])


def test_the_answer_does_not_depend_on_the_catalogs_order() -> None:
    promotions = list(catalog().values())
    cart = Cart.model_validate(
        {
            "brand_id": "demo-brand",
            "currency": "CNY",
            "lines": [{"sku": "CAKE", "category": "cake", "unit_price_minor": 36800, "quantity": 1}],
            "member_level": "gold",
            "store_id": "sh01",
            "channel": "mini_program",
        }
    )
    at = datetime(2026, 12, 8, 4, tzinfo=UTC)
    first = evaluate(cart, promotions, SHANGHAI, at)
    assert evaluate(cart, list(reversed(promotions)), SHANGHAI, at) == first
    assert first.payable_minor + first.discount_minor == first.lines_total_minor


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"benefit": {"amount_off_minor": 5000, "percent_off": 10}}, "exactly one of amount_off_minor"),
        ({"benefit": {"percent_off": 10, "every": True}}, "`every` repeats an amount off"),
        ({"benefit": {"amount_off_minor": 100, "max_discount_minor": 5}}, "caps a percentage off"),
        ({"benefit": {"amount_off_minor": 100, "every": True}}, "`every` needs when.min_amount_minor"),
        ({"when": {"starts_at": "2026-12-09T00:00:00Z", "ends_at": "2026-12-01T00:00:00Z"}}, "not after"),
        ({"doubled_on": {"weekdays": [8]}}, "less than or equal to 7"),
        ({"promotion_id": "Bad Id"}, "String should match"),
    ],
)
def test_a_bad_rule_is_refused_with_its_reason(changes: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {
        "brand_id": "demo-brand",
        "promotion_id": "p1",
        "name": "p",
        "currency": "CNY",
        "benefit": {"amount_off_minor": 100},
    }
    with pytest.raises(ValidationError, match=message):
        Promotion.model_validate(base | changes)


def test_a_cart_of_another_brand_or_currency_gets_nothing() -> None:
    promotion = catalog()["xmas-only"]
    cart = Cart.model_validate(
        {"brand_id": "demo-brand", "currency": "USD", "lines": [{"sku": "A", "unit_price_minor": 100, "quantity": 1}]}
    )
    answer = evaluate(cart, [promotion], SHANGHAI, datetime(2026, 12, 22, tzinfo=UTC))
    assert answer.applied == [] and "in CNY" in answer.not_applied[0].reason


PROMOS = st.lists(
    st.tuples(
        st.integers(1, 5_000),  # amount off
        st.sampled_from([None, "a", "b"]),  # group
        st.booleans(),  # exclusive
        st.integers(0, 3_000),  # gift cost (0: an amount off instead of a gift)
    ),
    min_size=1,
    max_size=7,
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(rules=PROMOS)
def test_the_chosen_combination_is_the_best_of_all_combinations(rules: list[tuple[int, str | None, bool, int]]) -> None:
    # Given random promotions (amounts off or gifts, grouped, exclusive or stackable) on a cart they all apply to
    promotions = []
    for i, (amount, group, exclusive, gift_cost) in enumerate(rules):
        benefit: dict[str, Any] = (
            {"gift": {"sku": f"G{i}", "name": "g", "value_minor": amount, "cost_minor": gift_cost}}
            if gift_cost
            else {"amount_off_minor": amount}
        )
        promotions.append(
            Promotion.model_validate(
                {"brand_id": "b", "promotion_id": f"p{i}", "name": "p", "currency": "CNY", "benefit": benefit}
                | {"group": group, "exclusive": exclusive}
            )
        )
    lines = [{"sku": "A", "unit_price_minor": 100_000, "quantity": 1}]  # more than every discount together
    cart = Cart.model_validate({"brand_id": "b", "currency": "CNY", "lines": lines})
    answer = evaluate(cart, promotions, SHANGHAI, datetime(2026, 12, 8, tzinfo=UTC))
    # Then no compatible combination, found by trying them all, gives more (or the same for less)
    applied = {a.promotion_id: a for a in answer.applied}
    best = (answer.customer_benefit_minor, -answer.brand_cost_minor)
    assert applied  # every promotion applies alone, so something is chosen
    benefits = {p.promotion_id: _alone(cart, p) for p in promotions}
    for size in range(1, len(promotions) + 1):
        for combo in combinations(promotions, size):
            groups = [p.group for p in combo if p.group]
            if (size > 1 and any(p.exclusive for p in combo)) or len(groups) != len(set(groups)):
                continue
            value = (sum(benefits[p.promotion_id][0] for p in combo), -sum(benefits[p.promotion_id][1] for p in combo))
            assert value <= best, (combo, value, best)


def _alone(cart: Cart, promotion: Promotion) -> tuple[int, int]:
    [applied] = evaluate(cart, [promotion], SHANGHAI, datetime(2026, 12, 8, tzinfo=UTC)).applied
    return applied.customer_benefit_minor, applied.brand_cost_minor


def test_promotions_sharing_a_pool_share_what_it_has_left() -> None:
    def cashback(pid: str, amount: int) -> Promotion:
        return Promotion.model_validate(
            {"brand_id": "b", "promotion_id": pid, "name": pid, "currency": "CNY"}
            | {"benefit": {"cashback_minor": amount}, "budget_pool": "pool"}
        )

    cart = Cart.model_validate(
        {"brand_id": "b", "currency": "CNY", "lines": [{"sku": "A", "unit_price_minor": 10_000, "quantity": 1}]}
    )
    at = datetime(2026, 12, 8, tzinfo=UTC)
    answer = evaluate(cart, [cashback("c1", 80), cashback("c2", 70)], SHANGHAI, at, {"pool": 100})
    assert [a.promotion_id for a in answer.applied] == ["c1"] and answer.cashback_minor == 80
    assert "budget pool pool does not cover it beside c1" in answer.not_applied[0].reason
    both = evaluate(cart, [cashback("c1", 80), cashback("c2", 70)], SHANGHAI, at, {"pool": 150})
    assert both.cashback_minor == 150
