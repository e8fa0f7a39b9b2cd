"""The emulated HTTP API: API Gateway v2 events in, HTTP responses out; the server on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from typing import Any

from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model

from cdp import topology
from cdp_local.http_server import LocalApiServer
from cdp_local.runtime import LocalRuntime
from tests.integration.runtime.recording import Recorder

ACCEPTED = {"statusCode": 202, "headers": {"Content-Type": "application/json"}, "body": '{"accepted":1}'}


def test_http_builds_a_payload_v2_event_for_the_ingest_route(runtime: LocalRuntime) -> None:
    # Given the ingest function records its events
    ingest = Recorder(reply=ACCEPTED)
    runtime.override(topology.INGEST.key, ingest)
    # When a request goes through the emulated HTTP API
    status, headers, body = runtime.http(
        "POST", "/v1/events?dry=1&tag=a&tag=b", b'{"x": 1}', {"Content-Type": "application/json", "X-Api-Key": "k"}
    )
    # Then the handler's response is mapped back
    assert (status, headers["content-type"], json.loads(body)) == (202, "application/json", {"accepted": 1})
    # And the event is a valid HTTP API 2.0 event with the route key, lower-cased headers and the raw body
    event = ingest.events[0]
    parsed = APIGatewayProxyEventV2Model.model_validate(event)
    assert parsed.routeKey == "POST /v1/events"
    assert parsed.rawPath == "/v1/events"
    assert parsed.rawQueryString == "dry=1&tag=a&tag=b"
    assert parsed.queryStringParameters == {"dry": "1", "tag": "a,b"}
    assert parsed.headers is not None and parsed.headers["x-api-key"] == "k"
    assert parsed.requestContext.http.method == "POST"
    assert event["requestContext"]["http"]["sourceIp"] == "127.0.0.1"
    assert (event["body"], event["isBase64Encoded"]) == ('{"x": 1}', False)


def test_binary_bodies_are_base64_encoded(runtime: LocalRuntime) -> None:
    ingest = Recorder(reply=ACCEPTED)
    runtime.override(topology.INGEST.key, ingest)
    # When a gzip body is posted / Then the handler gets it base64-encoded, as API Gateway does
    runtime.http("POST", "/v1/events", b"\x1f\x8b\x00\xff", {"content-type": "application/gzip"})
    assert ingest.events[0]["isBase64Encoded"] is True
    assert base64.b64decode(ingest.events[0]["body"]) == b"\x1f\x8b\x00\xff"


def test_unknown_route_is_404_and_a_crashing_handler_is_500(runtime: LocalRuntime) -> None:
    # Given an ingest handler that raises
    def boom(event: Any, context: Any) -> None:
        raise RuntimeError("bug")

    runtime.override(topology.INGEST.key, boom)
    # Then an unknown route is 404 without calling anything, and the crash is API Gateway's 500
    assert runtime.http("GET", "/nowhere").status == 404
    assert runtime.http("POST", "/v1/events", b"{}", {}).status == 500


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - local URL
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - local URL
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_server_answers_a_real_post_and_drains_before_replying(runtime: LocalRuntime) -> None:
    # Given ingest publishes each posted body to the bus, and identity_merge records what reaches it
    def ingest(event: dict[str, Any], context: Any) -> dict[str, Any]:
        runtime.client("events").put_events(
            Entries=[
                {
                    "Source": topology.SOURCE_INGEST,
                    "DetailType": topology.EVENT_RECEIVED,
                    "Detail": event["body"],
                    "EventBusName": topology.EVENT_BUS_LOCAL_NAME,
                }
            ]
        )
        return ACCEPTED

    merge = Recorder(reply={"batchItemFailures": []})
    runtime.override(topology.INGEST.key, ingest)
    runtime.override(topology.IDENTITY_MERGE.key, merge)
    # When a real HTTP client posts to the server on an ephemeral port
    with LocalApiServer(runtime, port=0) as server:
        assert server.url.startswith("http://127.0.0.1:")
        status, body = _post(f"{server.url}/v1/events", b'{"hello": "world"}', {"Content-Type": "application/json"})
        missing, _ = _post(f"{server.url}/v2/nothing", b"{}", {})
    # Then it got the handler's answer, and the event was consumed before the reply
    assert (status, json.loads(body)) == (202, {"accepted": 1})
    assert missing == 404
    records = [r for e in merge.events for r in e["Records"]]
    assert [json.loads(r["body"])["detail"] for r in records] == [{"hello": "world"}]


def test_background_drainer_catches_up(runtime: LocalRuntime) -> None:
    # Given ingest publishes and identity_merge records, with a background drainer
    def ingest(event: dict[str, Any], context: Any) -> dict[str, Any]:
        runtime.client("events").put_events(
            Entries=[
                {
                    "Source": topology.SOURCE_INGEST,
                    "DetailType": topology.EVENT_RECEIVED,
                    "Detail": "{}",
                    "EventBusName": topology.EVENT_BUS_LOCAL_NAME,
                }
            ]
        )
        return ACCEPTED

    merge = Recorder(reply={"batchItemFailures": []})
    runtime.override(topology.INGEST.key, ingest)
    runtime.override(topology.IDENTITY_MERGE.key, merge)
    with LocalApiServer(runtime, port=0, drain="background") as server:
        assert _post(f"{server.url}/v1/events", b"{}", {"Content-Type": "application/json"})[0] == 202
        # When we wait a little / Then the drainer delivered the event
        for _ in range(100):
            if merge.calls:
                break
            time.sleep(0.05)
    assert len(merge.calls) == 1
