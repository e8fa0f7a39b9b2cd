"""The demo's calls to the local runtime's HTTP API, and how a stage of the demo fails."""

from __future__ import annotations

import json
from typing import Any

from cdp_local.runtime import LocalRuntime


class DemoFailed(Exception):
    """A stage of the demo did not complete; the message says which and why."""


def call_api(rt: LocalRuntime, method: str, path: str, body: Any = None) -> Any:
    """A call to the runtime's HTTP API with the administrator key, as a marketer's tool makes it; a 3xx-5xx fails."""
    headers = {"content-type": "application/json", "x-api-key": rt.admin_key}
    response = rt.http(method, path, json.dumps(body).encode() if body is not None else b"", headers)
    if response.status >= 300:
        raise DemoFailed(f"{method} {path} answered {response.status}: {response.body[:500]!r}")
    return json.loads(response.body)
