"""The real handlers on the runtime: a real HTTP POST becomes a profile through ingest -> bus -> identity_merge."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from cdp import topology
from cdp.profile.keys import PROFILE_SK
from cdp_local.http_server import LocalApiServer
from cdp_local.runtime import LocalRuntime


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - local URL
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - local URL
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _identify(event_id: str, phone: str) -> dict[str, object]:
    return {
        "event_id": event_id,
        "event_type": "identify",
        "source": "app",
        "brand_id": "brand-1",
        "occurred_at": "2026-03-01T10:00:00+08:00",
        "identifiers": [{"type": "phone", "value": phone}],
        "properties": {"name": "Ann"},
    }


def test_posted_events_become_profiles_through_the_real_handlers(runtime: LocalRuntime) -> None:
    # Given the runtime serving HTTP with the real ingest, identity_merge and tag_update handlers
    body = json.dumps({"batch": [_identify("rt-1", "13800138001"), _identify("rt-2", "13800138002")]}).encode()
    with LocalApiServer(runtime, port=0) as server:
        # When a client posts two identify events with the local API key, and one with a wrong key
        status, answer = _post(
            f"{server.url}/v1/events", body, {"content-type": "application/json", "x-api-key": runtime.api_key}
        )
        denied, _ = _post(f"{server.url}/v1/events", body, {"content-type": "application/json", "x-api-key": "nope"})
    # Then both were accepted, the wrong key was refused
    assert (status, answer["accepted"]) == (202, 2)
    assert denied == 401
    # And by the time the reply came, two profiles existed and nothing was dead-lettered
    items = runtime.client("dynamodb").scan(TableName=topology.PROFILES_TABLE.local_name)["Items"]
    assert sum(1 for i in items if i[topology.PROFILES_TABLE.sort_key]["S"] == PROFILE_SK) == 2
    assert runtime.dlq_messages(topology.IDENTITY_QUEUE) == []
    assert runtime.dlq_messages(topology.TAG_QUEUE) == []


def test_each_runtime_cold_starts_the_handlers() -> None:
    # Given a runtime with one API key that has served a request (the ingest handler caches its keyring)
    body = json.dumps(_identify("cold-1", "13800138009")).encode()
    with LocalRuntime(state_machines=(), api_key="first-key") as first:
        assert first.http("POST", "/v1/events", body, {"x-api-key": "first-key"}).status == 202
    # When a second runtime starts with another key
    with LocalRuntime(state_machines=(), api_key="second-key") as second:
        # Then its handlers load afresh: the new key works, the old one is unknown
        assert second.http("POST", "/v1/events", body, {"x-api-key": "second-key"}).status == 202
        assert second.http("POST", "/v1/events", body, {"x-api-key": "first-key"}).status == 401
