"""`cdp import run` end to end against a served runtime: the files go to the running server, its state machine runs
them, the CLI prints the totals and saves the rejects, and the rows stay in that server (before, the command ran a
runtime of its own and the imported persons vanished with it)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cdp import topology
from cdp_local.cli import app
from cdp_local.http_server import LocalApiServer
from cdp_local.runtime import LocalRuntime

SAMPLES = Path(__file__).resolve().parents[3] / "events" / "files"

# One runtime per process: the import tests share a worker and run module after module.
pytestmark = pytest.mark.xdist_group("imports")


@pytest.fixture(scope="module")
def served() -> Iterator[LocalApiServer]:
    # port 0: a free port, so a developer's own `cdp serve` on 8787 is never hit
    with LocalRuntime(state_machines={topology.IMPORT_MACHINE.key}) as rt, LocalApiServer(rt, port=0) as server:
        yield server


def cdp(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_import_run_lands_rows_in_the_served_runtime_saves_rejects_and_fails_on_a_bad_file(
    served: LocalApiServer, tmp_path: Path
) -> None:
    # Given the member and order samples, and a member file without its joined_at column
    bad = tmp_path / "members-no-date.csv"
    bad.write_text("member_card,phone\nM1,13800138000\n", encoding="utf-8")
    output = tmp_path / "out"
    files = [str(SAMPLES / "members.csv"), str(SAMPLES / "orders.csv"), str(bad)]
    # When they are imported into the running server
    code, out = cdp("import", "run", *files, "--brand", "demo-brand", "--output", str(output), "--url", served.url)
    # Then the good files are summarized with their rejects saved, the bad one fails the exit code with its reason
    assert code == 1, out
    assert "missing required column(s): joined_at" in out
    assert "rejected rows by field" in out and "ignored columns: remark" in out
    saved = sorted(output.glob("*.rejects.csv"))
    assert len(saved) == 2 and len(list(output.glob("*.report.json"))) == 2
    assert sorted(len(p.read_text(encoding="utf-8-sig").splitlines()) - 1 for p in saved) == [4, 6]
    # And a member of the file is a profile of that server, with the order of orders.csv (same member card)
    code, out = cdp(
        "profile", "show", "--identifier", "phone:13800138001", "--brand", "demo-brand", "--json", "--url", served.url
    )
    assert code == 0, out
    view = json.loads(out)
    assert "member_card:M20240001" in {i["key"] for i in view["identifiers"]}
    assert view["activity"]["order_count"] >= 1


def test_a_second_import_of_the_same_file_is_all_duplicates(served: LocalApiServer, tmp_path: Path) -> None:
    # Given members.jsonl imported once; When the same file is imported again into the same server
    args = ("import", "run", str(SAMPLES / "members.jsonl"), "--output", str(tmp_path), "--url", served.url)
    first, _ = cdp(*args)
    code, out = cdp(*args)
    # Then both succeed and the second run's report counts the accepted rows as duplicates (the server kept them)
    assert (first, code) == (0, 0), out
    reports = [json.loads(p.read_text()) for p in tmp_path.glob("*.report.json")]
    assert sorted(r["counts"]["duplicates"] for r in reports) == [0, 4]


def _post(url: str, key: str) -> int:
    request = urllib.request.Request(url, data=b"a,b\n", method="POST", headers={"x-api-key": key})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_local_import_route_takes_the_admin_key_and_a_plain_file_name(served: LocalApiServer) -> None:
    # Given the local route (it writes to the bucket as IAM would on AWS)
    route = f"{served.url}/_local/imports?brand=demo-brand&kind=members"
    # When it is called with the ingest key, or with a name that is a path
    # Then it refuses both, and an unknown import id is a 404
    assert _post(f"{route}&name=m.csv", served.runtime.api_key) == 401
    assert _post(f"{route}&name=..%2Fm.csv", served.runtime.admin_key) == 400
    assert (
        _post(f"{served.url}/_local/imports?brand=demo-brand&kind=coupons&name=m.csv", served.runtime.admin_key) == 400
    )
    request = urllib.request.Request(  # noqa: S310
        f"{served.url}/_local/imports/file-import-nope", headers={"x-api-key": served.runtime.admin_key}
    )
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(request, timeout=30)  # noqa: S310
    assert missing.value.code == 404
