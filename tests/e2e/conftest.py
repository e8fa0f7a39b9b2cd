"""End-to-end fixtures: ONE local runtime (moto in-process, real handlers) shared by every test in tests/e2e.

The runtime is package-scoped and all e2e tests run on one xdist worker (group "e2e"), so it starts once and is
torn down when the last e2e test has run (integration tests on the same worker never see it). State persists from
test to test: use unique event ids, identifiers and campaign ids in each test.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from cdp_local.runtime import DrainReport, HttpResponse, LocalRuntime

_HERE = Path(__file__).resolve().parent
API_KEYS_FILE = _HERE / "api_keys.json"  # scoped keys for the isolation tests, loaded the way `cdp serve` loads them


@pytest.hookimpl(tryfirst=True)  # before xdist reads the group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.xdist_group("e2e"))


@pytest.fixture(scope="package")
def runtime() -> Iterator[LocalRuntime]:
    """The whole stack, started once for tests/e2e (every resource, every state machine whose ASL exists)."""
    with LocalRuntime(api_keys_file=str(API_KEYS_FILE)) as rt:
        yield rt


@pytest.fixture
def api_headers(runtime: LocalRuntime) -> dict[str, str]:
    return {"content-type": "application/json", "x-api-key": runtime.api_key}


PostEvents = Callable[..., tuple[HttpResponse, DrainReport]]


@pytest.fixture
def post_events(runtime: LocalRuntime, api_headers: dict[str, str]) -> PostEvents:
    """POST canonical events to /v1/events (one dict, or a list sent as {"batch": [...]}) and drain the queues.

    Returns the HTTP response and the drain report; a test asserts on both (e.g. `report.dead_lettered == 0`).
    """

    def post(events: Mapping[str, Any] | list[Mapping[str, Any]], headers: Mapping[str, str] | None = None) -> Any:
        body = {"batch": list(events)} if isinstance(events, list) else dict(events)
        response = runtime.http("POST", "/v1/events", json.dumps(body).encode(), {**api_headers, **(headers or {})})
        return response, runtime.drain()

    return post


def put_on_bus(
    runtime: LocalRuntime,
    event: Mapping[str, Any] | list[Mapping[str, Any]],
    correlation_id: str = "e2e",
) -> None:
    """Publish `event` (a list: packed in one entry, as ingest publishes) as event.received, bypassing ingest's
    checks: for events no consumer can process, to exercise dead letters. One event alone goes as an entry of
    the form published before packing."""
    from cdp import topology

    detail = {
        "metadata": {
            "event_name": topology.EVENT_RECEIVED,
            "event_source": topology.SOURCE_INGEST,
            "event_version": "1",
            "correlation_id": correlation_id,
        },
        "data": (
            {"brand_id": event[0].get("brand_id"), "events": [dict(e) for e in event]}
            if isinstance(event, list)
            else {"event": dict(event)}
        ),
    }
    entry = {
        "Source": topology.SOURCE_INGEST,
        "DetailType": topology.EVENT_RECEIVED,
        "Detail": json.dumps(detail),
        "EventBusName": topology.EVENT_BUS_LOCAL_NAME,
    }
    runtime.client("events").put_events(Entries=[entry])
