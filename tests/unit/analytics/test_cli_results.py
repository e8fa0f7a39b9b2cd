"""`cdp results` over the export of `conftest.py`: the JSON is the reports' rows, the tables show the same numbers,
and a wrong directory or brand is a usage error."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import click
from typer.testing import CliRunner

from cdp_local.cli import app
from cdp_local.cli_export import warehouse as export_warehouse
from cdp_local.cli_results import DEFAULT_WAREHOUSE
from tests.unit.analytics.conftest import BRAND

runner = CliRunner()
PERIOD = ["--start", "2026-01-01", "--end", "2026-04-30"]


def _run(*args: str) -> click.testing.Result:
    return runner.invoke(app, ["results", *args], env={"COLUMNS": "200"})


def test_every_report_as_json_and_as_a_table(warehouse: Path) -> None:
    where = ["--warehouse", str(warehouse), "--brand", BRAND, *PERIOD]
    # cohorts: the rows of the hand-computed table (test_reports), e.g. the January cohort's four months
    result = _run("cohorts", *where, "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["brand"] == BRAND and answer["period"] == {"start": "2026-01-01", "end": "2026-04-30"}
    january = [(r["month_offset"], r["customers"]) for r in answer["rows"] if r["cohort"] == "2026-01"]
    assert january == [(0, 2), (1, 1), (2, 0), (3, 1)]
    table = _run("cohorts", *where).output
    assert "2026-01" in table and "1 (50%)" in table and "M3" in table

    # by acquisition channel, a cell not everyone is observed at shows customers/observed
    assert "0/1 (0%)" in _run("cohorts", *where, "--by", "channel").output

    repeat = _run("repeat", *where, "--json")
    assert [r["customers"] for r in json.loads(repeat.output)["rows"]] == [5, 3, 2, 0, 0]
    assert "median time from the first to the second order: 23 days" in _run("repeat", *where).output

    lifecycle = json.loads(_run("lifecycle", *where, "--json").output)
    assert {"month": "2026-03", "from_stage": "dormant", "to_stage": "growth", "persons": 1} in lifecycle["flows"]
    assert {"month": "2026-04", "stage": "introduction", "persons": 2} in lifecycle["stages"]
    assert "dormant" in _run("lifecycle", *where).output

    channels = json.loads(_run("channels", *where, "--json").output)["rows"]
    assert [(r["key"], r["reached"], r["converted"], r["lost"]) for r in channels] == [
        ("email", 4, 2, 0),
        ("push", 2, 1, 0),
        ("sms", 3, 2, 1),
    ]
    by_campaign = json.loads(_run("channels", *where, "--by", "campaign", "--json").output)["rows"]
    assert {r["key"] for r in by_campaign} == {None, "c1", "c2"}  # messages of no campaign are a row of their own
    assert "c1" in _run("channels", *where, "--by", "campaign").output  # (the table wraps at the terminal's width)


def test_the_programme_against_the_global_control_group(warehouse: Path) -> None:
    where = ["--warehouse", str(warehouse), "--brand", BRAND, *PERIOD]
    result = _run("programme", *where, "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    # the hand-computed rows (test_reports.PROGRAMME) and their lift (test_programme_lift)
    assert [(r["group"], r["persons"], r["buyers"], r["revenue_minor"]) for r in answer["rows"]] == [
        ("global_control", 3, 1, 25_000),
        ("marketed", 5, 4, 75_000),
    ]
    assert round(answer["lift"]["incremental_revenue_minor"], 2) == 33_333.33
    table = _run("programme", *where).output
    # marketed: 4/5 = 80.0%, 15,000 per person; control 1/3 = 33.3%, 8,333 per person; +33,333 incremental
    assert "80.0%" in table and "33.3%" in table and "15,000" in table and "8,333" in table
    assert "incremental revenue of the programme: +33,333" in table and "too few persons to conclude" in table


def test_the_period_defaults_to_the_brands_history(warehouse: Path) -> None:
    result = _run("repeat", "--warehouse", str(warehouse), "--brand", BRAND, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["period"] == {"start": "2025-01-01", "end": "2026-05-03"}


def test_usage_errors_name_what_to_fix(warehouse: Path, tmp_path: Path) -> None:
    nothing = _run("cohorts", "--warehouse", str(tmp_path))
    assert nothing.exit_code == 2 and "cdp export warehouse" in nothing.output
    two_brands = _run("cohorts", "--warehouse", str(warehouse))
    assert two_brands.exit_code == 2 and "name one" in two_brands.output
    backwards = _run(
        "cohorts", "--warehouse", str(warehouse), "--brand", BRAND, "--start", "2026-05-01", "--end", "2026-04-30"
    )
    assert backwards.exit_code == 2 and "before it starts" in backwards.output


def test_the_default_directory_is_where_the_export_copies_its_files() -> None:
    option = inspect.signature(export_warehouse).parameters["output"].default
    assert option.default == DEFAULT_WAREHOUSE
