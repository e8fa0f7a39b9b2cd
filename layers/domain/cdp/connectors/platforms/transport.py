"""The two HTTP transports of the platform clients: HTTPS to the real gateway, and recorded responses.

There is no sandbox account behind this code, so the local runtime and the tests use `RecordedTransport`: it
serves the recorded API responses under events/tmall/ (TOP: Tmall and Taobao shops) and events/jd/ and, like the
gateways, refuses a request whose signature is wrong (so signing is exercised on every local call).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cdp.connectors.platforms import jd, tmall
from cdp.connectors.platforms.ports import PlatformApiError
from cdp.connectors.sources import SourcesConfig
from cdp.ingest.security import same

TIMEOUT_S = 20.0
JD_BUSINESS = "360buy_param_json"


def https_transport(url: str, params: dict[str, str]) -> dict[str, Any]:
    """POST the parameters form-encoded (both gateways accept it) and decode the JSON answer."""
    if not url.startswith("https://"):
        raise PlatformApiError(f"refusing a non-HTTPS platform endpoint: {url}")
    data = urllib.parse.urlencode(params).encode()
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url, data=data, headers={"content-type": "application/x-www-form-urlencoded;charset=utf-8"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 - https only
            body = response.read()
    except (urllib.error.URLError, TimeoutError) as exc:
        raise PlatformApiError(f"{params.get('method')}: {url} unreachable: {exc}") from exc
    try:
        decoded = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlatformApiError(f"{params.get('method')}: the answer is not JSON: {exc}") from exc
    if not isinstance(decoded, dict):
        raise PlatformApiError(f"{params.get('method')}: the answer is not a JSON object")
    return decoded


class RecordedTransport:
    """Answers `{samples}/{tmall|jd}/{method}.json` (page n > 1: `{method}.page{n}.json`) to correctly signed calls."""

    def __init__(self, samples_dir: Path, secrets: Mapping[str, str]) -> None:
        self._dir = samples_dir
        self._secrets = dict(secrets)  # app key -> app secret
        self.calls: list[tuple[str, dict[str, str]]] = []

    @classmethod
    def for_sources(cls, samples_dir: Path, sources: SourcesConfig) -> RecordedTransport:
        return cls(samples_dir, {s.app_key: s.app_secret.get_secret_value() for s in sources.shops.values()})

    def __call__(self, url: str, params: dict[str, str]) -> dict[str, Any]:
        method = params.get("method", "")
        self.calls.append((method, dict(params)))
        secret = self._secrets.get(params.get("app_key", ""))
        is_jd = JD_BUSINESS in params
        if secret is None:
            return _error(is_jd, "29", "Invalid app Key")
        expected = (
            jd.jd_sign(params, secret) if is_jd else tmall.top_sign(params, secret, params.get("sign_method", ""))
        )
        if not same(expected, params.get("sign", "")):
            return _error(is_jd, "25", "Invalid signature")
        page = _page(params, is_jd)
        name = f"{method}.json" if page <= 1 else f"{method}.page{page}.json"
        path = self._dir / ("jd" if is_jd else "tmall") / name
        if not path.is_file():
            return _error(is_jd, "22", f"no recorded response {path.name}")
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return loaded


def _page(params: Mapping[str, str], is_jd: bool) -> int:
    if not is_jd:
        return int(params.get("page_no") or "1")
    business = json.loads(params[JD_BUSINESS])
    return int(business.get("page") or business.get("pageIndex") or 1)


def _error(is_jd: bool, code: str, message: str) -> dict[str, Any]:
    if is_jd:
        return {"error_response": {"code": code, "en_desc": message, "zh_desc": message}}
    return {"error_response": {"code": int(code), "msg": message, "request_id": "recorded"}}


def check_recorded(data: Any) -> None:
    """A recorded sample is one gateway answer: a single "{method}_response" (TOP) or "_responce" (JOS) object.
    (What the events/ sample test checks; the mapping tests check the records themselves.)"""
    keys = list(data) if isinstance(data, dict) else []
    if len(keys) != 1 or not keys[0].endswith(("_response", "_responce")) or not isinstance(data[keys[0]], dict):
        raise AssertionError(f"not a recorded TOP/JOS answer: top-level keys {keys}")
