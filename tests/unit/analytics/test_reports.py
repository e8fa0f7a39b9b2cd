"""Every number of every report, over the export of `conftest.py`, against tables computed by hand (the comments
show the working). The reports run as DuckDB SQL over the Parquet files, as `cdp results` runs them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest

from cdp.analytics.models import AnalyticsError, Period
from cdp.warehouse.parquet import literal
from cdp_local.analytics import WarehouseAnalytics, WarehouseDataError
from tests.unit.analytics.conftest import BRAND, EVENT_ROWS, OTHER_BRAND, PROFILE_ROWS, write_export

# January to April 2026: months 0..3 (2026-01 .. 2026-04)
PERIOD = Period(start=date(2026, 1, 1), end=date(2026, 4, 30))


@pytest.fixture(scope="module")
def analytics(warehouse: Path) -> Iterator[WarehouseAnalytics]:
    with WarehouseAnalytics(warehouse) as opened:
        yield opened


def test_the_export_holds_two_brands_decoded_from_their_paths(analytics: WarehouseAnalytics) -> None:
    # the brand's path segment is brand_id=outlet%3Ash; DuckDB reads it back as the brand id
    assert analytics.brands() == sorted([BRAND, OTHER_BRAND])
    assert analytics.brand(BRAND) == BRAND
    with pytest.raises(WarehouseDataError, match="holds 2 brands"):
        analytics.brand(None)
    with pytest.raises(WarehouseDataError, match="no brand"):
        analytics.brand("nobody")


def test_the_default_period_is_the_brands_whole_history(analytics: WarehouseAnalytics) -> None:
    # first order: G on 2025-01-10 -> from 2025-01-01; last event: F's order on 2026-05-03
    assert analytics.default_period(BRAND) == Period(start=date(2025, 1, 1), end=date(2026, 5, 3))


def test_a_directory_without_an_export_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WarehouseDataError, match="cdp export warehouse"):
        WarehouseAnalytics(tmp_path)


def test_an_export_without_events_gives_empty_reports(tmp_path: Path) -> None:
    # Given a brand whose profiles were exported but no event yet (the events table has no file)
    write_export(tmp_path, BRAND, PROFILE_ROWS[:2], [])
    with WarehouseAnalytics(tmp_path) as empty:
        # Then there is no default period to take, and a named one holds no customer; A and B (first seen on
        # 2025-12-20 and 2026-01-20) stand in introduction at January's end
        with pytest.raises(WarehouseDataError, match="no event"):
            empty.default_period(BRAND)
        assert empty.cohorts(BRAND, PERIOD) == [] and empty.channels(BRAND, PERIOD) == []
        assert [r.customers for r in empty.repeat(BRAND, PERIOD, max_orders=1)] == [0]
        stages, _ = empty.lifecycle(BRAND, Period(start=date(2026, 1, 1), end=date(2026, 1, 31)))
        assert [(r.month, r.stage, r.persons) for r in stages] == [("2026-01", "introduction", 2)]


# ---- cohorts ------------------------------------------------------------------------------------------------------


# (cohort, cohort_size, month_offset, observed, customers, share) over PERIOD, max_offset 12: the working is in
# the tests below (the analytics API's tests check its rows against these too)
COHORTS_BY_MONTH = [
    ("2026-01", 2, 0, 2, 2, 1.0),
    ("2026-01", 2, 1, 2, 1, 0.5),
    ("2026-01", 2, 2, 2, 0, 0.0),
    ("2026-01", 2, 3, 2, 1, 0.5),
    ("2026-02", 1, 0, 1, 1, 1.0),
    ("2026-02", 1, 1, 1, 1, 1.0),
    ("2026-02", 1, 2, 1, 0, 0.0),
    ("2026-03", 2, 0, 2, 2, 1.0),
    ("2026-03", 2, 1, 2, 1, 0.5),
]
COHORTS_BY_CHANNEL = [
    ("app", 1, 0, 1, 1, 1.0),
    ("app", 1, 1, 1, 0, 0.0),
    ("oceanengine", 1, 0, 1, 1, 1.0),
    ("oceanengine", 1, 1, 1, 1, 1.0),
    ("oceanengine", 1, 2, 1, 0, 0.0),
    ("oceanengine", 1, 3, 1, 1, 1.0),
    ("tmall", 1, 0, 1, 1, 1.0),
    ("tmall", 1, 1, 1, 0, 0.0),
    ("tmall", 1, 2, 1, 0, 0.0),
    ("tmall", 1, 3, 1, 0, 0.0),
    ("web", 2, 0, 2, 2, 1.0),
    ("web", 2, 1, 2, 2, 1.0),
    ("web", 2, 2, 1, 0, 0.0),
]


def _cells(rows: list) -> list[tuple[str, int, int, int, int, float]]:
    return [(r.cohort, r.cohort_size, r.month_offset, r.observed, r.customers, r.share) for r in rows]


def test_cohort_retention_by_first_order_month(analytics: WarehouseAnalytics) -> None:
    rows = analytics.cohorts(BRAND, PERIOD, "month", max_offset=12)
    # First order ever in the period: A (Jan 5), B (Jan 20), C (Feb 3), F (Mar 31 23:00), H (Mar 10). D's and G's
    # first orders are in 2025: no cohort. A's return on Feb 12 removes no order; F's May order is after the period;
    # the other brand's order of an "A" on Mar 5 is not this A's.
    # 2026-01 {A, B}: M0 both; M1 (Feb) A; M2 (Mar) nobody; M3 (Apr) A.
    # 2026-02 {C}:    M0 C; M1 (Mar 15) C; M2 (Apr) nobody.
    # 2026-03 {F, H}: M0 both; M1 (Apr) H (Apr 2); F's next order is in May, outside the period.
    # The offsets stop at April, the period's last month (max_offset 12 is not reached); no cohort in April.
    assert _cells(rows) == COHORTS_BY_MONTH


def test_cohort_offsets_stop_at_max_offset(analytics: WarehouseAnalytics) -> None:
    rows = analytics.cohorts(BRAND, PERIOD, "month", max_offset=1)
    assert [(r.cohort, r.month_offset) for r in rows] == [
        ("2026-01", 0),
        ("2026-01", 1),
        ("2026-02", 0),
        ("2026-02", 1),
        ("2026-03", 0),
        ("2026-03", 1),
    ]


def test_cohort_retention_by_acquisition_channel(analytics: WarehouseAnalytics) -> None:
    rows = analytics.cohorts(BRAND, PERIOD, "channel", max_offset=12)
    # Channels: A oceanengine (its ad click on Jan 1 came before the first order); B tmall (tencent-ads came on
    # Feb 1, after the Jan 20 order: the first order's source); C web; F app; H web.
    # Month index of the first order: A 0, B 0, C 1, H 2, F 2; a member is observed at offset k while index + k <= 3.
    # app {F}:         M0 1/1; M1 (Apr) 0/1.
    # oceanengine {A}: M0 1, M1 1 (Feb), M2 0, M3 1 (Apr).
    # tmall {B}:       M0 1, then 0, 0, 0.
    # web {C, H}:      M0 2/2; M1 C (Mar 15) and H (Apr 2): 2/2; M2 only C is observed (H's index 2 + 2 > 3) and
    #                  did not buy in April: 0/1. M3: nobody observed, so no row.
    assert _cells(rows) == COHORTS_BY_CHANNEL


def test_a_period_starting_mid_month_reads_the_orders_from_its_first_day(analytics: WarehouseAnalytics) -> None:
    # From Jan 10: A's first order (Jan 5) is before the period, so A is no new customer; B (Jan 20) is.
    rows = analytics.cohorts(BRAND, Period(start=date(2026, 1, 10), end=date(2026, 2, 28)), "month")
    # 2026-01 {B}: M0 1, M1 0. 2026-02 {C}: M0 1.
    assert _cells(rows) == [
        ("2026-01", 1, 0, 1, 1, 1.0),
        ("2026-01", 1, 1, 1, 0, 0.0),
        ("2026-02", 1, 0, 1, 1, 1.0),
    ]


# ---- repeat purchases ---------------------------------------------------------------------------------------------


def test_the_repeat_purchase_curve(analytics: WarehouseAnalytics) -> None:
    rows = analytics.repeat(BRAND, PERIOD, max_orders=5)
    # New customers: A, B, C, F, H (5). Orders by Apr 30: A 3, B 1, C 3, F 1 (May's is later), H 2.
    # >= 1: 5 (100%); >= 2: A, C, H (60%); >= 3: A, C (40%); >= 4 and >= 5: nobody.
    # Days from the first to the second order (UTC calendar days): A Jan 5 23:30 -> Feb 10 00:30 = 36 (35.04 days
    # elapsed, but 36 calendar days); C Feb 3 -> Feb 25 = 22; H Mar 10 -> Apr 2 = 23. Median of 22, 23, 36: 23.
    assert [(r.orders_at_least, r.customers, r.buyers, r.share) for r in rows] == [
        (1, 5, 5, 1.0),
        (2, 3, 5, 0.6),
        (3, 2, 5, 0.4),
        (4, 0, 5, 0.0),
        (5, 0, 5, 0.0),
    ]
    assert {r.median_days_to_second for r in rows} == {23.0}


def test_the_median_of_an_even_count_is_the_mean_of_the_middle_two(analytics: WarehouseAnalytics) -> None:
    rows = analytics.repeat(BRAND, Period(start=date(2026, 1, 1), end=date(2026, 2, 28)), max_orders=2)
    # New customers in Jan-Feb: A, B, C. By Feb 28: A 2 (Jan 5, Feb 10), B 1, C 2 (Feb 3, Feb 25).
    # Gaps: A 36, C 22 -> median (22 + 36) / 2 = 29.
    assert [(r.orders_at_least, r.customers, r.buyers) for r in rows] == [(1, 3, 3), (2, 2, 3)]
    assert rows[0].share == 1.0 and rows[1].share == pytest.approx(2 / 3)
    assert {r.median_days_to_second for r in rows} == {29.0}


def test_a_period_with_no_new_customer_has_an_empty_curve(analytics: WarehouseAnalytics) -> None:
    # May 2026: F's second order only; nobody's first order
    rows = analytics.repeat(BRAND, Period(start=date(2026, 5, 1), end=date(2026, 5, 31)), max_orders=2)
    assert [(r.orders_at_least, r.customers, r.buyers, r.share, r.median_days_to_second) for r in rows] == [
        (1, 0, 0, 0.0, None),
        (2, 0, 0, 0.0, None),
    ]


# ---- lifecycle ----------------------------------------------------------------------------------------------------

# Stages at each instant (orders before it; dormant: last order <= instant - 90 days, churned: - 365 days):
#
#   instant          A        B        C        D        E      F        G        H        I
#   2026-01-01 (T0)  intro    -        -        dormant  intro  -        dormant  -        -
#     D: last 2025-10-01 <= 2025-10-03 (T0 - 90 d); G: last 2025-01-10 > 2025-01-01 (T0 - 365 d), so dormant only
#   2026-02-01 (T1)  growth   growth   -        dormant  intro  -        churned  -        -
#     C was first seen at 2026-02-01 00:00, not before T1; G: 2025-01-10 <= 2025-02-01 (T1 - 365 d)
#   2026-03-01 (T2)  growth   growth   growth   dormant  intro  -        churned  -        -
#     A: 2 orders (the return removes none); D: 2025-10-01 <= 2025-12-01
#   2026-04-01 (T3)  growth   growth   mature   growth   intro  growth   churned  growth   -
#     C: 3 orders, the last on Mar 15; D ordered on Mar 2; F on Mar 31 23:00
#   2026-05-01 (T4)  mature   dormant  mature   growth   intro  growth   churned  growth   intro
#     A: 3 orders, the last Apr 20; B: last Jan 20 <= Jan 31 (T4 - 90 d); F: the May order is not before T4;
#     I: no first_seen_at, created Apr 15


def test_lifecycle_stages_at_each_months_end(analytics: WarehouseAnalytics) -> None:
    stages, _ = analytics.lifecycle(BRAND, PERIOD)
    assert [(r.month, r.stage, r.persons) for r in stages] == [
        ("2026-01", "churned", 1),  # G
        ("2026-01", "dormant", 1),  # D
        ("2026-01", "growth", 2),  # A, B
        ("2026-01", "introduction", 1),  # E
        ("2026-02", "churned", 1),  # G
        ("2026-02", "dormant", 1),  # D
        ("2026-02", "growth", 3),  # A, B, C
        ("2026-02", "introduction", 1),  # E
        ("2026-03", "churned", 1),  # G
        ("2026-03", "growth", 5),  # A, B, D, F, H
        ("2026-03", "introduction", 1),  # E
        ("2026-03", "mature", 1),  # C
        ("2026-04", "churned", 1),  # G
        ("2026-04", "dormant", 1),  # B
        ("2026-04", "growth", 3),  # D, F, H
        ("2026-04", "introduction", 2),  # E, I
        ("2026-04", "mature", 2),  # A, C
    ]


def test_lifecycle_flows_month_over_month(analytics: WarehouseAnalytics) -> None:
    _, flows = analytics.lifecycle(BRAND, PERIOD)
    assert [(r.month, r.from_stage, r.to_stage, r.persons) for r in flows] == [
        # January: T0 -> T1
        ("2026-01", None, "growth", 1),  # B, new
        ("2026-01", "dormant", "churned", 1),  # G
        ("2026-01", "dormant", "dormant", 1),  # D
        ("2026-01", "introduction", "growth", 1),  # A
        ("2026-01", "introduction", "introduction", 1),  # E
        # February: T1 -> T2
        ("2026-02", None, "growth", 1),  # C, new
        ("2026-02", "churned", "churned", 1),  # G
        ("2026-02", "dormant", "dormant", 1),  # D
        ("2026-02", "growth", "growth", 2),  # A, B
        ("2026-02", "introduction", "introduction", 1),  # E
        # March: T2 -> T3
        ("2026-03", None, "growth", 2),  # F, H, new
        ("2026-03", "churned", "churned", 1),  # G
        ("2026-03", "dormant", "growth", 1),  # D, won back
        ("2026-03", "growth", "growth", 2),  # A, B
        ("2026-03", "growth", "mature", 1),  # C
        ("2026-03", "introduction", "introduction", 1),  # E
        # April: T3 -> T4
        ("2026-04", None, "introduction", 1),  # I, new
        ("2026-04", "churned", "churned", 1),  # G
        ("2026-04", "growth", "dormant", 1),  # B
        ("2026-04", "growth", "growth", 3),  # D, F, H
        ("2026-04", "growth", "mature", 1),  # A
        ("2026-04", "introduction", "introduction", 1),  # E
        ("2026-04", "mature", "mature", 1),  # C
    ]


def test_the_flows_into_each_stage_add_up_to_the_stage_counts(analytics: WarehouseAnalytics) -> None:
    stages, flows = analytics.lifecycle(BRAND, PERIOD)
    into: dict[tuple[str, str], int] = {}
    for flow in flows:
        into[(flow.month, flow.to_stage)] = into.get((flow.month, flow.to_stage), 0) + flow.persons
    assert into == {(r.month, r.stage): r.persons for r in stages}


# ---- channels and campaigns ---------------------------------------------------------------------------------------

# Deliveries in Jan-Apr 2026 and what followed within 30 days (orders read through May 30, 30 days past the period):
#
#   sms c1    A Jan 2:  no order before; Jan 5 is A's first order ever                          -> acquired, converted
#             D Feb 20: last order 2025-10-01; Mar 2 within 30 days, 152 days after the previous -> activated, converted
#             B Mar 25: last order Jan 20 (< 90 days before: active); no order by Apr 24; Jan 20 is
#                       90 days before Apr 20, inside the window: B turned dormant without ordering -> lost
#   email c2  C Feb 20: Feb 25 and Mar 15 within 30 days, each < 90 days after the previous      -> retained, converted
#             E Feb 20: no order                                                                 -> (reached only)
#             A Apr 15: Apr 20, 69 days after Feb 10                                             -> retained, converted
#             D Mar 20: last order Mar 2 (active); no order by Apr 19, but Mar 2 + 90 days is May 31,
#                       after the window: not lost                                               -> (reached only)
#             H's delivery on Dec 31 is before the period: H is not reached
#   push --   F Apr 10: May 3 (after the period, within the window), 33 days after Mar 31       -> retained, converted
#             G Jan 15: last order 2025-01-10 (churned, not active): nothing                     -> (reached only)
#             H Mar 5 bounced: no delivery, so H's first order on Mar 10 is nobody's acquisition
#   E's sms click is no delivery; the other brand's X (sms c1 Jan 2, first order Jan 3) is another brand's.

CHANNELS = [
    # key, reached, acquired, activated, retained, converted, lost
    ("email", 4, 0, 0, 2, 2, 0),
    ("push", 2, 0, 0, 1, 1, 0),
    ("sms", 3, 1, 1, 0, 2, 1),
]


def _outcomes(rows: list) -> list[tuple[str | None, int, int, int, int, int, int]]:
    return [(r.key, r.reached, r.acquired, r.activated, r.retained, r.converted, r.lost) for r in rows]


def test_outcomes_per_message_channel(analytics: WarehouseAnalytics) -> None:
    assert _outcomes(analytics.channels(BRAND, PERIOD, "channel", window_days=30)) == CHANNELS


def test_outcomes_per_campaign(analytics: WarehouseAnalytics) -> None:
    # c1 is all the sms, c2 all the email; the push messages belong to no campaign (listed last)
    assert _outcomes(analytics.channels(BRAND, PERIOD, "campaign", window_days=30)) == [
        ("c1", 3, 1, 1, 0, 2, 1),
        ("c2", 4, 0, 0, 2, 2, 0),
        (None, 2, 0, 0, 1, 1, 0),
    ]


def test_a_shorter_window_changes_what_follows_a_delivery(analytics: WarehouseAnalytics) -> None:
    # 7 days: A Jan 2 -> Jan 5 still acquired; D Feb 20 -> Mar 2 (10 days) no longer activated, and D was not active
    # (lapsed) so not lost; B: Jan 20 is not 90 days old by Apr 1, so not lost; C Feb 20 -> Feb 25 retained; A Apr 15
    # -> Apr 20 retained; F Apr 10 -> May 3 (23 days) not retained; D Mar 20: not lost.
    assert _outcomes(analytics.channels(BRAND, PERIOD, "channel", window_days=7)) == [
        ("email", 4, 0, 0, 2, 2, 0),
        ("push", 2, 0, 0, 0, 0, 0),
        ("sms", 3, 1, 0, 0, 1, 0),
    ]


def test_a_person_can_count_under_several_outcomes_of_one_channel(analytics: WarehouseAnalytics) -> None:
    # A window of 120 days: sms A Jan 2 -> Jan 5 (first: acquired), Feb 10 (36 days after Jan 5: retained);
    # D Feb 20 -> Mar 2 (won back: activated); B Mar 25: no order by Jul 23 and Jan 20 + 90 days falls inside: lost.
    # email: C retained; A Apr 15 -> Apr 20 retained; D Mar 20: no order by Jul 18, Mar 2 + 90 days inside: lost.
    # push: F Apr 10 -> May 3 retained; G nothing.
    assert _outcomes(analytics.channels(BRAND, PERIOD, "channel", window_days=120)) == [
        ("email", 4, 0, 0, 2, 2, 1),
        ("push", 2, 0, 0, 1, 1, 0),
        ("sms", 3, 1, 1, 1, 2, 1),
    ]


def test_reports_refuse_parameters_out_of_bounds(analytics: WarehouseAnalytics) -> None:
    with pytest.raises(AnalyticsError, match="window_days"):
        analytics.channels(BRAND, PERIOD, "channel", window_days=0)
    with pytest.raises(AnalyticsError, match="max_orders"):
        analytics.repeat(BRAND, PERIOD, max_orders=0)
    with pytest.raises(AnalyticsError, match="before it starts"):
        Period(start=date(2026, 2, 1), end=date(2026, 1, 31))
    with pytest.raises(AnalyticsError, match="between 1970-01-01 and 2099-12-31"):
        Period(start=date(2026, 1, 1), end=date(9999, 12, 31))
    with pytest.raises(AnalyticsError, match="more than 240 months"):
        Period(start=date(2000, 1, 1), end=date(2026, 1, 31))


# ---- the programme against the global control group -----------------------------------------------------------------

# January to April (orders before May 1; every person known by then: I was created Apr 15):
#   global_control  C: Feb 3 100.00, Feb 25 100.00, Mar 15 50.00 = 25_000; E: none; G: 2025 only
#                   -> 3 persons, 1 buyer, 3 orders, 25_000; squares 25_000^2 = 625_000_000
#   marketed        A: Jan 5, Feb 10 (the Feb 12 return does not remove it), Apr 20 250.00 = 45_000; B 10_000;
#                   D 10_000 (Mar 2; Oct 1 is before); F 10_000 (Mar 31 23:00; May 3 is after); I: none
#                   -> 5 persons, 4 buyers, 6 orders, 75_000; squares 45_000^2 + 3 x 10_000^2 = 2_325_000_000
#   H has no global_control (not known): in neither group, so H's two orders count nowhere; the other brand's A
#   (order Mar 5) is another brand's.
PROGRAMME = [
    # group, persons, buyers, orders, revenue_minor, revenue_squares
    ("global_control", 3, 1, 3, 25_000, 625_000_000.0),
    ("marketed", 5, 4, 6, 75_000, 2_325_000_000.0),
]


def _programme(rows: list) -> list[tuple[str, int, int, int, int, float]]:
    return [(r.group, r.persons, r.buyers, r.orders, r.revenue_minor, r.revenue_squares) for r in rows]


def test_the_programme_against_the_global_control_group(analytics: WarehouseAnalytics) -> None:
    assert _programme(analytics.programme(BRAND, PERIOD)) == PROGRAMME


def test_the_programme_counts_persons_known_by_the_periods_end(analytics: WarehouseAnalytics) -> None:
    # January to March: I (created Apr 15) is not known yet; A's Apr 20 order is after the period
    #   marketed: A 20_000, B, D, F 10_000 each -> 4 persons, 4 buyers, 5 orders, 50_000; squares 4e8 + 3e8
    rows = analytics.programme(BRAND, Period(start=date(2026, 1, 1), end=date(2026, 3, 31)))
    assert _programme(rows) == [
        ("global_control", 3, 1, 3, 25_000, 625_000_000.0),
        ("marketed", 4, 4, 5, 50_000, 700_000_000.0),
    ]


def test_the_programme_has_both_groups_even_when_empty(tmp_path: Path) -> None:
    # Given a brand whose profiles hold no global_control at all (every row NULL) and no event
    write_export(tmp_path, BRAND, [{k: v for k, v in p.items() if k != "global_control"} for p in PROFILE_ROWS], [])
    with WarehouseAnalytics(tmp_path) as empty:
        # Then nobody is in either group, and both rows are there
        assert _programme(empty.programme(BRAND, PERIOD)) == [
            ("global_control", 0, 0, 0, 0, 0.0),
            ("marketed", 0, 0, 0, 0, 0.0),
        ]


def test_profiles_written_before_the_column_existed_read_as_not_known(tmp_path: Path) -> None:
    # Given an older export: its profiles file has no global_control column at all
    write_export(tmp_path, BRAND, PROFILE_ROWS, EVENT_ROWS)
    (profiles,) = tmp_path.glob("profiles/*/part-0.parquet")
    with duckdb.connect() as con:
        con.execute("CREATE TABLE old AS SELECT * EXCLUDE (global_control) FROM read_parquet(?)", [str(profiles)])
        profiles.unlink()
        con.execute(f"COPY old TO {literal(str(profiles))} (FORMAT PARQUET)")
    with WarehouseAnalytics(tmp_path) as old:
        # Then the column reads as NULL: every person is unknown, and the other reports read the file as before
        assert _programme(old.programme(BRAND, PERIOD)) == [
            ("global_control", 0, 0, 0, 0, 0.0),
            ("marketed", 0, 0, 0, 0, 0.0),
        ]
        assert [r.customers for r in old.repeat(BRAND, PERIOD, max_orders=5)] == [5, 3, 2, 0, 0]
