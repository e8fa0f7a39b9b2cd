"""The console as `cdp serve` serves it: `/` leads to `/console/`, the static assets of the `cdp_console` package
(the same files the stack deploys to S3 behind CloudFront), `/console/config.json` telling the page how to sign in,
and `POST /console/sign-in` signing a user of the local users file in (`cdp_local.console_users`).

Every API call the page makes goes to the same origin with the user's ID token, as on AWS (where CloudFront sends
`/v1/*` to the HTTP API).
"""

from __future__ import annotations

import json
import mimetypes
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cdp.errors import AuthenticationError
from cdp_local.console_users import load_users, local_issuer

LocalAnswer = tuple[int, dict[str, str], bytes]
CONSOLE_PREFIX = "/console/"
_HEADERS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    # the page loads nothing from elsewhere (it works offline) and talks to its own origin only
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
}


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


def _json(status: int, body: Any) -> LocalAnswer:
    return status, {"content-type": "application/json", **_HEADERS}, json.dumps(body).encode()


def _asset(name: str) -> LocalAnswer:
    root = resources.files("cdp_console")
    parts = [p for p in name.split("/") if p]
    if not parts or any(p in (".", "..") or p.startswith(".") or "\\" in p for p in parts):
        return _json(404, {"error": "not_found", "message": f"no console file {name!r}"})
    found = root.joinpath(*parts)
    if not found.is_file() or parts[-1].endswith(".py"):
        return _json(404, {"error": "not_found", "message": f"no console file {name!r}"})
    kind = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
        kind += "; charset=utf-8"
    return 200, {"content-type": kind, **_HEADERS}, found.read_bytes()


def console_request(method: str, path: str, body: bytes, users_file: Path) -> LocalAnswer:
    """`/` and everything under `/console/`."""
    raw_path = path.partition("?")[0]
    if raw_path == "/":
        return 302, {"location": CONSOLE_PREFIX, **_HEADERS}, b""
    name = raw_path[len(CONSOLE_PREFIX) :] if raw_path.startswith(CONSOLE_PREFIX) else ""
    if method == "POST" and name == "sign-in":
        return _sign_in(body, users_file)
    if method not in ("GET", "HEAD"):
        return _json(405, {"error": "method_not_allowed", "message": f"{method} {raw_path}: the console is read"})
    if name == "config.json":
        return _json(200, {"auth": {"kind": "local", "sign_in": f"{CONSOLE_PREFIX}sign-in"}, "api": ""})
    return _asset(name or "index.html")


def _sign_in(body: bytes, users_file: Path) -> LocalAnswer:
    try:
        request = SignIn.model_validate_json(body)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = ".".join(map(str, error["loc"])) or "body"
        return _json(400, {"error": "invalid_input", "field": field, "message": error["msg"]})
    try:
        return _json(200, local_issuer().sign_in(load_users(users_file), request.username, request.password))
    except AuthenticationError as exc:
        return _json(401, {"error": "unauthorized", "message": str(exc)})
