"""API Gateway HTTP API (payload format 2.0) emulation: route matching, the Lambda event, the response mapping."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from cdp import topology
from cdp.shared.time import utc_now
from cdp.topology import FunctionSpec
from cdp_local.runtime.environment import ACCOUNT_ID

_TEXT_TYPES = ("application/json", "text/", "application/x-www-form-urlencoded", "application/xml", "+json")


class HttpResponse(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: FunctionSpec

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.method not in (method, "ANY"):
            return None
        # `{name}` captures one segment, `{name+}` the rest of the path, as API Gateway does
        pattern = re.sub(r"\\\{(\w+)\\\+\\\}", r"(?P<\1>.+)", re.escape(self.path))
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", pattern)
        found = re.fullmatch(pattern, path)
        return found.groupdict() if found else None


def routes() -> tuple[Route, ...]:
    """The HTTP API's routes, from `cdp.topology.API_ROUTES` ((method, path, function key), ...)."""
    declared = getattr(topology, "API_ROUTES", (("POST", "/v1/events", topology.INGEST.key),))
    return tuple(Route(m.upper(), p, topology.FUNCTIONS_BY_KEY[k]) for m, p, k in declared)


def match_route(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for route in routes():
        params = route.match(method.upper(), path)
        if params is not None:
            return route, params
    return None


def _is_text(content_type: str) -> bool:
    return any(t in content_type.lower() for t in _TEXT_TYPES)


def build_event(
    route: Route,
    path_params: Mapping[str, str],
    method: str,
    raw_path: str,
    raw_query: str,
    body: bytes,
    headers: Mapping[str, str],
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """The event API Gateway sends to a Lambda integration with payload format 2.0."""
    lowered: dict[str, str] = {}
    for name, value in headers.items():  # repeated headers are comma-joined in 2.0
        key = name.lower()
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    cookies = [c.strip() for c in lowered.pop("cookie", "").split(";") if c.strip()]
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    text = _is_text(lowered.get("content-type", "application/json"))
    encoded_body: str | None = None
    if body:
        try:
            encoded_body = body.decode("utf-8") if text else None
        except UnicodeDecodeError:
            encoded_body = None
        if encoded_body is None:
            text = False
            encoded_body = base64.b64encode(body).decode("ascii")
    now = utc_now()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": lowered,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": "local",
            "domainName": lowered.get("host", "localhost"),
            "domainPrefix": lowered.get("host", "localhost").split(".")[0],
            "http": {
                "method": method.upper(),
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": bool(body) and not text,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_params:
        event["pathParameters"] = dict(path_params)
    if encoded_body is not None:
        event["body"] = encoded_body
    return event


def to_response(payload: Any) -> HttpResponse:
    """Map a 2.0 Lambda result to HTTP: a dict with statusCode is taken as is; anything else is a 200 JSON body."""
    if isinstance(payload, dict) and "statusCode" in payload:
        headers = {str(k).lower(): str(v) for k, v in (payload.get("headers") or {}).items()}
        for name, values in (payload.get("multiValueHeaders") or {}).items():
            headers[str(name).lower()] = ",".join(map(str, values))
        if payload.get("cookies"):
            headers["set-cookie"] = ", ".join(payload["cookies"])
        raw = payload.get("body")
        if raw is None:
            body = b""
        elif payload.get("isBase64Encoded"):
            body = base64.b64decode(raw)
        else:
            body = raw.encode("utf-8") if isinstance(raw, str) else json.dumps(raw).encode("utf-8")
        return HttpResponse(int(payload["statusCode"]), headers, body)
    return HttpResponse(200, {"content-type": "application/json"}, json.dumps(payload).encode("utf-8"))


def error_response(status: int, message: str) -> HttpResponse:
    return HttpResponse(status, {"content-type": "application/json"}, json.dumps({"message": message}).encode())
