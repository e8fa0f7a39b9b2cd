"""The offer catalog's rules: exactly one kind, a coupon's value and its worst case, validity windows, costs and
budget pools; the samples under events/offers are valid offers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from cdp.offers.catalog import Offer

SAMPLES = sorted((Path(__file__).resolve().parents[3] / "events" / "offers").glob("*.yaml"))
T0 = datetime(2026, 12, 6, tzinfo=UTC)


def raw(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "brand_id": "demo-brand",
        "offer_id": "c1",
        "name": "50 off 300",
        "currency": "CNY",
        "coupon": {"amount_off_minor": 5000, "threshold_minor": 30000},
        "validity": {"days": 14},
    }
    return base | changes


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_the_samples_are_valid_offers(path: Path) -> None:
    offer = Offer.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert offer.cost_minor > 0


@pytest.mark.parametrize(
    ("changes", "where", "message"),
    [
        ({"gift": {"sku": "MUG", "name": "Mug"}, "unit_cost_minor": 900}, (), "exactly one of coupon"),
        ({"coupon": None}, (), "exactly one of coupon"),
        ({"coupon": {"percent_off": 20}}, ("coupon",), "needs max_discount_minor"),
        ({"coupon": {"amount_off_minor": 5000, "percent_off": 20}}, ("coupon",), "exactly one of amount_off_minor"),
        ({"coupon": {"amount_off_minor": 50000, "threshold_minor": 30000}}, ("coupon",), "would pay the customer"),
        ({"coupon": {"percent_off": 120, "max_discount_minor": 1}}, ("coupon", "percent_off"), "less than or equal"),
        ({"validity": {}}, ("validity",), "ends_at, days, or both"),
        (
            {"validity": {"starts_at": "2026-12-10T00:00:00Z", "ends_at": "2026-12-01T00:00:00Z"}},
            ("validity",),
            "not after starts_at",
        ),
        ({"coupon": None, "points": {"points": 100, "program": "app"}}, (), "needs unit_cost_minor"),
        ({"budget_pools": ["a", "a"]}, (), "names a pool twice"),
        ({"budget_pools": ["Bad Pool"]}, ("budget_pools", 0), "String should match"),
        ({"offer_id": "Has Space"}, ("offer_id",), "String should match"),
        ({"stock": 0}, ("stock",), "greater than or equal to 1"),
        ({"coupon": {"amount_off_minor": 500, "codes": "external"}}, ("coupon",), "give both or neither"),
        (
            {"coupon": {"amount_off_minor": 500, "external": {"stock_id": "16000001"}}},
            ("coupon",),
            "give both or neither",
        ),
        (
            {"coupon": {"amount_off_minor": 500, "codes": "external", "external": {"stock_id": "not-digits"}}},
            ("coupon", "external", "stock_id"),
            "String should match",
        ),
        (
            {
                "coupon": {
                    "amount_off_minor": 500,
                    "codes": "external",
                    "code_prefix": "WX",
                    "external": {"stock_id": "16000001"},
                }
            },
            ("coupon",),
            "code_prefix does not apply",
        ),
    ],
)
def test_a_bad_offer_names_its_field(changes: dict[str, Any], where: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Offer.model_validate(raw(**changes))
    errors = caught.value.errors()
    assert any(e["loc"][: len(where)] == where and message in e["msg"] for e in errors), errors


def test_costs_default_to_the_worst_case_and_the_window_ends_at_the_earlier_bound() -> None:
    assert Offer.model_validate(raw()).cost_minor == 5000
    pct = Offer.model_validate(raw(coupon={"percent_off": 20, "max_discount_minor": 8000}))
    assert pct.cost_minor == 8000 and pct.kind == "coupon" and pct.has_codes
    cash = Offer.model_validate(raw(coupon=None, red_packet={"amount_minor": 888}))
    assert (cash.cost_minor, cash.kind, cash.has_codes) == (888, "red_packet", False)
    both = Offer.model_validate(raw(validity={"days": 14, "ends_at": "2026-12-10T00:00:00Z"}))
    assert both.validity.window(T0) == (T0, datetime(2026, 12, 10, tzinfo=UTC))
    later = Offer.model_validate(raw(validity={"days": 3, "starts_at": "2026-12-08T00:00:00Z"}))
    assert later.validity.window(T0) == (datetime(2026, 12, 8, tzinfo=UTC), datetime(2026, 12, 11, tzinfo=UTC))
