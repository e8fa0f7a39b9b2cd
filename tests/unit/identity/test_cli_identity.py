"""`cdp identity bulk-resolve` end to end on small files, and the benchmark's synthetic history (shape, not speed)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from typer.testing import CliRunner

from cdp.identity.bulk import resolve_links
from cdp_local.bench_identity import synthetic_links
from cdp_local.cli import app

runner = CliRunner()


def test_bulk_resolve_links_prints_the_summary_and_writes_the_result(tmp_path: Path) -> None:
    # Given a links file of one person (phone, device, e-mail) and a tablet shared by three phones
    links = tmp_path / "links.csv"
    rows = ["a,b", "phone:+8613800138001,device_id:d1", "email:ann@example.cn,device_id:d1"]
    rows += [f"phone:+861390000000{n},device_id:tablet" for n in range(3)]
    links.write_text("\n".join(rows) + "\n")
    out = tmp_path / "persons.csv"
    # When it is resolved from the command line
    result = runner.invoke(
        app, ["identity", "bulk-resolve", str(links), "--namespace", "brand-1", "--output", str(out)]
    )
    # Then the summary shows 4 persons and 1 hub, and every identifier has its row
    assert result.exit_code == 0, result.output
    assert "Bulk identity resolution" in result.output
    assert re.search(r"│ persons\s+│\s+4 │", result.output) and re.search(r"│ hubs\s+│\s+1 │", result.output)
    with out.open() as handle:
        written = {r["identifier"]: r for r in csv.DictReader(handle)}
    assert len(written) == 7 and written["device_id:tablet"]["hub"] == "true"
    assert written["phone:+8613800138001"]["person_id"] == written["email:ann@example.cn"]["person_id"]


def test_bulk_resolve_events_reports_bad_lines_by_number(tmp_path: Path) -> None:
    # Given an events file whose second line has an invalid phone number
    events = tmp_path / "history.jsonl"
    good = {"identifiers": [{"type": "phone", "value": "13800138001"}, {"type": "device_id", "value": "d1"}]}
    bad = {"identifiers": [{"type": "phone", "value": "12"}]}
    events.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    # When it is resolved as events
    args = ["identity", "bulk-resolve", str(events), "--format", "events", "--namespace", "b", "--output"]
    result = runner.invoke(app, [*args, str(tmp_path / "out.csv")])
    # Then it succeeds for the good line and names the bad one
    assert result.exit_code == 0, result.output
    assert "1 rejected" in result.output and "line 2, identifiers.0" in result.output


def test_bulk_resolve_refuses_a_file_without_the_link_columns(tmp_path: Path) -> None:
    links = tmp_path / "links.csv"
    links.write_text("from,to\nphone:+8613800138001,device_id:d1\n")
    result = runner.invoke(app, ["identity", "bulk-resolve", str(links), "--namespace", "b"])
    assert result.exit_code == 2 and "columns a and b" in result.output


def test_synthetic_history_has_the_shape_the_benchmark_claims() -> None:
    # Given a small synthetic history
    data = synthetic_links(20_000, seed=3)
    # When it is resolved
    result = resolve_links(data.a, data.b, namespace="bench").summary
    # Then it has the requested links, blocked junk, shared devices that become hubs, and about the true persons
    # (a junk value replacing a person's only device link can split off a fragment)
    assert result.links == 20_000 and data.blocked_links > 0
    assert data.shared_devices * 0.9 <= result.hubs <= data.shared_devices
    assert data.persons <= result.persons <= data.persons * 1.02
