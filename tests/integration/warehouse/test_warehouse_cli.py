"""`cdp export warehouse` against a served runtime: the server runs the export, the command copies the Parquet next
to you, and DuckDB over those files counts what was ingested."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cdp_local.cli import app
from cdp_local.http_server import LocalApiServer
from cdp_local.runtime import LocalRuntime
from tests.integration.warehouse.helpers import event, person_of, post, query

pytestmark = pytest.mark.xdist_group("warehouse")  # one runtime per process

BRAND = "cli-brand"


@pytest.fixture(scope="module")
def served() -> Iterator[LocalApiServer]:
    with LocalRuntime(state_machines=set()) as rt, LocalApiServer(rt, port=0) as server:
        yield server


def cdp(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_export_warehouse_copies_parquet_that_counts_what_was_ingested(served: LocalApiServer, tmp_path: Path) -> None:
    # Given 4 customers' orders, carts, page views and custom actions on a few days
    today = datetime.now(UTC).date()
    kinds = ("order_placed", "add_to_cart", "page_view", "custom", "page_view", "order_placed")
    posted = [
        event(f"cli-{n}", BRAND, today - timedelta(days=n % 3), f"1350000000{n % 4}", kind)
        for n, kind in enumerate(kinds * 3)
    ]
    post(served.runtime, posted)
    persons = {person_of(served.runtime, BRAND, f"1350000000{n}") for n in range(4)}
    # When `cdp export warehouse` runs for the brand
    output = tmp_path / "warehouse-output"
    code, out = cdp("export", "warehouse", "--brand", BRAND, "--output", str(output), "--url", served.url)
    # Then it succeeds and says what it wrote, and DuckDB over the copied files finds every event by type and every
    # person once
    assert code == 0, out
    assert "warehouse exported" in out and f"{BRAND}: 4 profiles" in out, out
    by_type = dict(query(output, "SELECT event_type, count(*) FROM events WHERE brand_id = ? GROUP BY 1", [BRAND]))
    assert by_type == dict(Counter(kinds * 3))
    assert {r[0] for r in query(output, "SELECT person_id FROM profiles WHERE brand_id = ?", [BRAND])} == persons
    assert query(output, "SELECT count(DISTINCT dt) FROM events WHERE brand_id = ?", [BRAND]) == [(3,)]
    # And the JSON form gives the run's report; a second run replaces the files instead of adding to them
    code, out = cdp("export", "warehouse", "--brand", BRAND, "--output", str(output), "--url", served.url, "--json")
    assert code == 0, out
    answer = json.loads(out)
    assert answer["report"]["brands"][BRAND]["profiles"] == 4 and answer["files"] == len(
        list(output.rglob("*.parquet"))
    )
    assert query(output, "SELECT count(*) FROM events WHERE brand_id = ?", [BRAND]) == [(len(posted),)]


def test_a_bad_since_is_refused_before_anything_runs(served: LocalApiServer, tmp_path: Path) -> None:
    code, out = cdp("export", "warehouse", "--since", "yesterday", "--output", str(tmp_path), "--url", served.url)
    assert code == 2 and "YYYY-MM-DD" in out
