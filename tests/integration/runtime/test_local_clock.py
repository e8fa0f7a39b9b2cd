"""The local runtime's clock: what every handler reads as now (`utc_now`). Firing a schedule at a later time moves it
there and it never runs back; the wall clock comes back when the runtime stops; signatures' replay windows keep
real time (`wire_now`)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer

from cdp import topology
from cdp.ingest.security import sign_cdp
from cdp.shared.time import utc_now, wire_now
from cdp_local.cli_campaign import duration_seconds
from cdp_local.http_server import LocalApiServer
from cdp_local.runtime import LocalRuntime
from cdp_local.runtime.clock import LocalClock
from tests.integration.runtime.recording import Recorder

TICK = topology.CAMPAIGN_TICK


def test_the_clock_moves_forward_only() -> None:
    clock = LocalClock()
    later = datetime.now(UTC) + timedelta(days=3)
    clock.advance_to(later)
    assert abs((clock() - later).total_seconds()) < 1
    clock.advance_to(later - timedelta(days=1))  # earlier: stays
    assert clock() >= later and clock.ahead_by > timedelta(days=2, hours=23)


def test_a_schedule_fired_days_ahead_moves_what_handlers_read_as_now(runtime: LocalRuntime) -> None:
    seen: list[datetime] = []

    def tick(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append(utc_now())  # what a handler stamps its writes with
        return {"started": []}

    assert TICK.target_function is not None
    runtime.override(TICK.target_function.key, tick)
    monday = datetime.now(UTC) + timedelta(days=3)
    runtime.fire_schedule(TICK.local_name, monday)
    # Then the handler ran at Monday's time, and so does everything after it; real time is kept for the wire
    assert seen and abs((seen[0] - monday).total_seconds()) < 5
    assert utc_now() >= monday and (utc_now() - wire_now()) > timedelta(days=2, hours=23)
    # And a tick fired at an earlier time runs as of then, the clock staying where it is
    runtime.fire_schedule(TICK.local_name, monday - timedelta(days=1))
    assert utc_now() >= monday


def test_the_wall_clock_is_back_once_the_runtime_stops() -> None:
    with LocalRuntime(state_machines=()) as rt:
        rt.override(TICK.target_function.key if TICK.target_function else "", Recorder(reply={"started": []}))
        rt.fire_schedule(TICK.local_name, datetime.now(UTC) + timedelta(days=30))
        assert utc_now() - wire_now() > timedelta(days=29)
    assert abs((utc_now() - wire_now()).total_seconds()) < 1


def _post(url: str, key: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=b"", headers={"x-api-key": key}, method="POST")  # noqa: S310 - local
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - local URL
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_tick_after_a_duration_counts_from_the_local_clock(runtime: LocalRuntime) -> None:
    assert TICK.target_function is not None
    runtime.override(TICK.target_function.key, Recorder(reply={"started": []}))
    runtime.clock.advance_to(datetime.now(UTC) + timedelta(days=7))
    with LocalApiServer(runtime, port=0) as server:
        base = f"{server.url}/_local/schedules/{TICK.local_name}"
        status, answer = _post(f"{base}?after=3660", runtime.admin_key)
        assert status == 200
        fired_at = datetime.fromisoformat(answer["at"])
        assert timedelta(days=7, minutes=60) < fired_at - wire_now() < timedelta(days=7, minutes=62)
        assert _post(f"{base}?after=-5", runtime.admin_key)[0] == 400
        assert _post(f"{base}?after=60&at=2026-12-07T10:00:00%2B08:00", runtime.admin_key) == (
            400,
            {"error": "invalid_request", "message": "give at or after, not both", "field": "after"},
        )


def test_the_cli_reads_a_duration_or_says_what_it_expects() -> None:
    assert [duration_seconds(d) for d in ("90s", "61m", "3h", "2d")] == [90, 3660, 10_800, 172_800]
    for bad in ("61", "m", "1.5h", "-2d", "2w"):
        with pytest.raises(typer.BadParameter, match="not a duration"):
            duration_seconds(bad)


def test_a_client_signing_with_real_time_is_let_in_after_the_clock_moved_ahead() -> None:
    # Given the real handlers, and the local clock two days ahead of the wall clock
    sale = (Path(__file__).resolve().parents[3] / "events" / "pos" / "sale.json").read_bytes()
    with LocalRuntime(state_machines=()) as rt:
        rt.clock.advance_to(datetime.now(UTC) + timedelta(days=2))

        def post(at: float) -> int:
            headers = {
                "content-type": "application/json",
                "x-cdp-signature": sign_cdp("local-pos-secret", sale, int(at)),
            }
            return rt.http("POST", "/v1/webhooks/pos/demo-pos", sale, headers).status

        # Then a POS signing with its own (real) clock is accepted; one signing with the simulated time is a replay
        assert post(time.time()) == 202
        assert post(utc_now().timestamp()) == 401
