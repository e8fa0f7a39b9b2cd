"""Points programmes as the brand's configuration: a wrong rule is refused with its field path, and the pure rules
(points per line at the highest multiplier, months in the brand's zone, FIFO burns) do what the README says."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cdp.loyalty import accounts as rules
from cdp.loyalty.accounts import Account, InsufficientPointsError, OrderLineIn
from cdp.org import LoyaltyPolicy, LoyaltyProgram, OrgConfigError, parse_org

SHANGHAI = ZoneInfo("Asia/Shanghai")
CLUB: dict[str, Any] = {
    "system_of_record": "platform",
    "earn": {"points_per_unit": 1, "multipliers": [{"times": 2, "weekdays": ["wed"]}, {"times": 3, "skus": ["HUB"]}]},
    "expire_after_months": 12,
    "levels": [{"level": "basic", "qualifying_spend_minor": 0}, {"level": "gold", "qualifying_spend_minor": 100}],
}


def _org(programs: dict[str, Any]) -> str:
    import json

    return json.dumps({"brands": {"b": {"group_id": "g", "loyalty": {"programs": programs}}}})


@pytest.mark.parametrize(
    ("programs", "where", "says"),
    [
        ({"pos": {"system_of_record": "reported", "expire_after_months": 12}}, "programs.pos", "takes no rules"),
        ({"c": {**CLUB, "levels": [{"level": "gold", "qualifying_spend_minor": 5}]}}, "programs.c", "entry level"),
        (
            {"c": {**CLUB, "levels": [*CLUB["levels"], {"level": "x", "qualifying_spend_minor": 900}]}},
            "programs",
            "level_order",
        ),
        (
            {"c": {**CLUB, "converts_to": {"pos": [10, 1]}}, "pos": {"system_of_record": "reported"}},
            "converts_to.pos",
            "another programme",
        ),
        (
            {"c": {**CLUB, "earn": {"points_per_unit": 1, "multipliers": [{"times": 0.5}]}}},
            "multipliers.0.times",
            "greater than 1",
        ),
        (
            {"c": {**CLUB, "earn": {"points_per_unit": 1, "multipliers": [{"times": 2, "month_days": [32]}]}}},
            "month_days",
            "1..31",
        ),
        ({"c": {**CLUB, "system_of_record": "both"}}, "programs.c.system_of_record", "platform"),
    ],
)
def test_a_wrong_programme_is_refused_with_its_field_path(programs: dict[str, Any], where: str, says: str) -> None:
    with pytest.raises(OrgConfigError) as refused:
        parse_org(_org(programs), "org.json")
    assert where in str(refused.value) and says in str(refused.value)


def test_points_per_line_at_the_highest_multiplier_rounded_down_once() -> None:
    program = LoyaltyProgram.model_validate(CLUB)
    lines = [OrderLineIn("HUB", None, 10_050), OrderLineIn("CAKE", "pastry", 999)]
    wednesday, monday = date(2026, 12, 9), date(2026, 12, 7)
    assert rules.points_for(program, lines, None, monday, None) == 311  # 100.50 x 3 + 9.99 = 311.49
    assert rules.points_for(program, lines, None, wednesday, None) == 321  # the hub stays x3 (no stacking): 321.48


def test_months_are_the_brands_and_lots_expire_when_their_month_ends_there() -> None:
    program = LoyaltyProgram.model_validate(CLUB)
    late_on_the_31st = datetime(2026, 12, 31, 17, tzinfo=UTC)  # already January 1st in Shanghai
    change = rules.earn(
        Account(brand_id="b", program="c", person_id="p"), program, 10, 1_000, late_on_the_31st, SHANGHAI
    )
    assert change.account.lots == {"2028-01": 10} and change.account.spend == {"2027-01": 1_000}
    assert rules.expire(change.account, datetime(2028, 1, 31, 15, 59, tzinfo=UTC), SHANGHAI).points == 0
    assert rules.expire(change.account, datetime(2028, 1, 31, 16, tzinfo=UTC), SHANGHAI).points == -10


def test_burns_take_the_oldest_lot_first_and_never_more_than_the_balance() -> None:
    account = Account(
        brand_id="b", program="c", person_id="p", balance=30, lots={"2027-05": 10, "2027-01": 10, "never": 10}
    )
    spent = rules.burn(account, 15).account
    assert spent.lots == {"2027-05": 5, "never": 10} and spent.balance == 15
    with pytest.raises(InsufficientPointsError):
        rules.burn(spent, 16)


def test_the_policy_says_which_programmes_the_platform_keeps() -> None:
    policy = LoyaltyPolicy.model_validate({"programs": {"c": CLUB, "pos": {"system_of_record": "reported"}}})
    assert policy.kept_by_platform("c") and not policy.kept_by_platform("pos") and not policy.kept_by_platform(None)
