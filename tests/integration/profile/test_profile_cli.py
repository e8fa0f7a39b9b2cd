"""`cdp profile ...` and `cdp identity merge|unmerge|unbind|review|quarantine` over HTTP against a LocalApiServer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from cdp_local.cli import app
from cdp_local.http_server import LocalApiServer
from cdp_local.runtime import LocalRuntime
from cdp_local.runtime.environment import STORE_API_KEY

BRAND = "demo-brand"


def _event(n: int, event_type: str, identifiers: list[dict[str, str]], **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"cli-{n}",
        "event_type": event_type,
        "source": fields.pop("source", "app"),
        "brand_id": BRAND,
        "occurred_at": f"2026-03-{n:02d}T10:00:00+08:00",
        "identifiers": identifiers,
        **fields,
    }


@pytest.fixture(scope="module")
def server() -> Iterator[LocalApiServer]:
    """A runtime with two persons (an app member with points, a dealer member), served on an ephemeral port."""
    phone, card = {"type": "phone", "value": "13811110001"}, {"type": "member_card", "value": "MC-CLI-1"}
    events = [
        _event(1, "identify", [phone, {"type": "device_id", "value": "cli-dev-1"}], properties={"name": "Zhao Min"}),
        _event(2, "points_changed", [phone], properties={"delta": 300, "program": "app", "reason": "purchase"}),
        _event(3, "identify", [card], source="pos", store_id="sh01", properties={"member_level": "gold"}),
        _event(4, "points_changed", [card], source="pos", store_id="sh01",
               properties={"delta": 1_000, "program": "dealer-sh01", "reason": "purchase"}),
    ]  # fmt: skip
    with LocalRuntime(state_machines=()) as rt:
        headers = {"content-type": "application/json", "x-api-key": rt.api_key}
        assert rt.http("POST", "/v1/events", json.dumps({"batch": events}).encode(), headers).status == 202
        rt.drain()
        with LocalApiServer(rt, port=0) as served:
            yield served


def _cdp(server: LocalApiServer, *args: str, key: str | None = None) -> Any:
    options = ["--url", server.url] + (["--api-key", key] if key else [])
    return CliRunner().invoke(app, [*args, *options], catch_exceptions=False)


def _person(server: LocalApiServer, identifier: str) -> str:
    result = _cdp(server, "profile", "show", "--identifier", identifier, "--brand", BRAND, "--json")
    assert result.exit_code == 0, result.output
    return str(json.loads(result.output)["person_id"])


def test_profile_show_prints_the_profile_by_identifier_and_by_id(server: LocalApiServer) -> None:
    # When the profile is shown by a local phone number, then by its id
    pid = _person(server, "phone:138 1111 0001")
    shown = _cdp(server, "profile", "show", pid)
    # Then the table names the person, the identifiers and the points
    assert shown.exit_code == 0, shown.output
    assert pid in shown.output and "+8613811110001" in shown.output and "Zhao Min" in shown.output
    assert "brand points: 300" in shown.output
    timeline = _cdp(server, "profile", "timeline", pid, "--limit", "1")
    assert timeline.exit_code == 0 and "next page: --cursor" in timeline.output


def test_identity_merge_preview_merge_and_unmerge_from_the_cli(server: LocalApiServer) -> None:
    a, b = _person(server, "phone:13811110001"), _person(server, "member_card:MC-CLI-1")
    # When a merge is previewed
    preview = _cdp(server, "identity", "merge", a, b, "--reason", "same person", "--dry-run")
    # Then it shows the converted points and writes nothing
    assert preview.exit_code == 0, preview.output
    assert "preview (nothing written)" in preview.output and "400 (" in preview.output
    assert _person(server, "member_card:MC-CLI-1") == b
    # When it is applied and undone
    merged = _cdp(server, "identity", "merge", a, b, "--reason", "same person", "--json")
    assert merged.exit_code == 0, merged.output
    survivor = json.loads(merged.output)["persons"][0]["person_id"]
    loser = ({a, b} - {survivor}).pop()
    undone = _cdp(server, "identity", "unmerge", survivor, loser, "--reason", "two people")
    # Then both are back
    assert undone.exit_code == 0, undone.output
    assert {_person(server, "phone:13811110001"), _person(server, "member_card:MC-CLI-1")} == {a, b}


def test_edit_review_quarantine_and_clear_errors(server: LocalApiServer) -> None:
    pid = _person(server, "phone:13811110001")
    # An edit prints the actor and the new value
    edited = _cdp(server, "profile", "edit", pid, "--set", "city=Hangzhou", "--consent", "sms=no", "--reason", "call")
    assert edited.exit_code == 0, edited.output
    assert "by local-admin" in edited.output and "Hangzhou" in edited.output
    # A quarantined device goes to the review queue
    quarantined = _cdp(server, "identity", "quarantine", "device_id:cli-dev-1", "--brand", BRAND, "--reason", "iPad")
    assert quarantined.exit_code == 0, quarantined.output
    review = _cdp(server, "identity", "review", "--brand", BRAND)
    assert review.exit_code == 0 and "device_id:cli-dev-1" in review.output
    # Errors come back with their status and field, and exit non-zero
    unknown = _cdp(server, "profile", "show", "--identifier", "fax:123", "--brand", BRAND)
    assert unknown.exit_code == 1 and "400" in unknown.output and "field: type" in unknown.output
    assert _cdp(server, "profile", "show", "nobody").exit_code == 1
    forbidden = _cdp(server, "profile", "edit", pid, "--set", "city=X", key=STORE_API_KEY)
    assert forbidden.exit_code == 1 and "profiles:write" in forbidden.output


def test_export_and_erase_from_the_cli(server: LocalApiServer, tmp_path: Any) -> None:
    pid = _person(server, "member_card:MC-CLI-1")
    out = tmp_path / "export.json"
    exported = _cdp(server, "profile", "export", pid, "--output", str(out))
    assert exported.exit_code == 0, exported.output
    assert json.loads(out.read_text())["person_id"] == pid
    erased = _cdp(server, "profile", "erase", pid, "--yes")
    assert erased.exit_code == 0, erased.output
    assert "identifiers_suppressed" in erased.output
    assert _cdp(server, "profile", "show", pid).exit_code == 1
