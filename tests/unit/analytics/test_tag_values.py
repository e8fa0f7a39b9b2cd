"""The tag catalog's value distributions (`GET /v1/analytics/tags`): per tag, the brand's persons holding each value
in the last export, most held first, the long tail as `other`, shares of all the brand's persons."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from cdp.analytics.models import MAX_TAG_VALUES, Period
from cdp.warehouse.schema import PROFILES, TAGS, brand_prefix
from cdp_local.analytics import WarehouseAnalytics
from tests.unit.analytics.conftest import _write, write_export

PERIOD = Period(start=date(2026, 1, 1), end=date(2026, 1, 31))


def _tags(directory: Path, brand: str, rows: list[tuple[str, str, str]]) -> None:
    records = [{"person_id": p, "tag": t, "value": v, "value_type": "string"} for p, t, v in rows]
    with duckdb.connect() as con:
        _write(con, TAGS, records, directory / brand_prefix(TAGS, brand).split("/", 1)[1] / "part-0.parquet")


def test_each_tags_values_are_counted_over_the_brands_persons_with_the_tail_as_other(tmp_path: Path) -> None:
    # Given 30 persons of a brand: lifecycle mature for 12, growth for 6, none for the rest; a city for each, 25
    # cities (person i in city i % 25); an audience membership; and another brand's person who is mature too
    persons = [{"person_id": f"p{i}"} for i in range(30)]
    write_export(tmp_path, "b", persons, [])
    write_export(tmp_path, "other", [{"person_id": "x"}], [])
    rows = [(f"p{i}", "lifecycle", "mature") for i in range(12)] + [
        (f"p{i}", "lifecycle", "growth") for i in range(12, 18)
    ]
    rows += [(f"p{i}", "city", f"city-{i % 25:02d}") for i in range(30)]
    rows += [("p0", "audience:vip", "true")]
    _tags(tmp_path, "b", rows)
    _tags(tmp_path, "other", [("x", "lifecycle", "mature")])
    assert (tmp_path / brand_prefix(PROFILES, "b").split("/", 1)[1]).exists()
    # When the distributions are read
    with WarehouseAnalytics(tmp_path) as warehouse:
        found = warehouse.tag_values("b", PERIOD)
    by_tag: dict[str, list[tuple[str, int, float]]] = {}
    for r in found:
        by_tag.setdefault(r.tag, []).append((r.value, r.persons, r.share))
    # Then lifecycle is 12 mature and 6 growth of 30 (the other brand's person not counted), most held first
    assert by_tag["lifecycle"] == [("mature", 12, 0.4), ("growth", 6, 0.2)]
    # And city lists its 20 most held values (cities 00-04 hold 2 persons each, then by value), the other 5 as one
    cities = by_tag["city"]
    assert len(cities) == MAX_TAG_VALUES + 1
    assert [(c[0], c[1]) for c in cities[:5]] == [(f"city-{i:02d}", 2) for i in range(5)]
    assert cities[0][2] == pytest.approx(2 / 30)
    assert [c[0] for c in cities[5:MAX_TAG_VALUES]] == [f"city-{i:02d}" for i in range(5, MAX_TAG_VALUES)]
    assert cities[-1][0] == "other" and cities[-1][1] == 5
    assert sum(c[1] for c in cities) == 30
    # And audience memberships are not listed
    assert set(by_tag) == {"lifecycle", "city"}
