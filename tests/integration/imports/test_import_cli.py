"""`cdp import run` end to end: its own in-process runtime, the state machine, the summary, saved rejects, drain."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cdp_local.cli import app

SAMPLES = Path(__file__).resolve().parents[3] / "events" / "files"


def test_import_run_reports_each_file_saves_rejects_and_fails_on_a_bad_file(tmp_path: Path) -> None:
    # Given the member and order samples, and a member file without its joined_at column
    bad = tmp_path / "members-no-date.csv"
    bad.write_text("member_card,phone\nM1,13800138000\n", encoding="utf-8")
    output = tmp_path / "out"
    # When they are imported in one run, then drained into profiles
    files = [str(SAMPLES / "members.csv"), str(SAMPLES / "orders.csv"), str(bad)]
    args = ["import", "run", *files, "--drain", "--output", str(output)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    # Then the good files are summarized with their rejects saved, the bad one fails the exit code with its reason
    assert result.exit_code == 1, result.output
    assert "missing required column(s): joined_at" in result.output
    assert "rejected rows by field" in result.output and "ignored columns: remark" in result.output
    saved = sorted(output.glob("*.rejects.csv"))
    assert len(saved) == 2 and len(list(output.glob("*.report.json"))) == 2
    assert sorted(len(p.read_text(encoding="utf-8-sig").splitlines()) - 1 for p in saved) == [4, 6]
    # And the drain turned the accepted rows into persons
    assert "persons touched" in result.output and "0 dead-lettered" in result.output
