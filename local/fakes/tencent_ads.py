"""A fake Tencent Ads Marketing API on the loopback: the customer-file audience calls `cdp.activation.tencent_ads`
makes, under `/v1.3/`.

Every call must carry `access_token`, `timestamp` and `nonce` in its query string. The fake answers as the API does,
HTTP 200 with `{code, message, message_cn, data}`: a missing one is code 12000; an unknown token 11002; a token
`expire_token()` retired 11000 (what an expired OAuth token gets); then, as the fake's own stand-ins for the API's
parameter errors (their exact numbers are not relied on): a timestamp more than 300 s from the fake's clock 12001, a
nonce used before or longer than 32 characters 12002, anything else wrong with the request (the account, the
audience, the id type, the file) 12004.

- `POST /v1.3/custom_audiences/add` JSON `{account_id, name (1-32 bytes), description (<= 100 bytes), type:
  CUSTOMER_FILE}` -> `data.audience_id`.
- `POST /v1.3/custom_audience_files/add` multipart: `account_id`, `audience_id` (one of this account's),
  `user_id_type` (the API's enum; a HASH_* / SHA256_* type needs every line to be 32 / 64 hex characters),
  `operation_type` (APPEND or REDUCE, default APPEND) and `file` (txt, or a zip of one txt: one id per line) ->
  `data.custom_audience_file_id`. What each file held is kept (`files`, `audience_ids(...)`), so a test checks the
  hashes that arrived.

Error injection: `refuse_next(code, times)` answers an API code (10000 busy, 11017 minute limit, 11018 day limit,
...) before anything is done; the base's `fail_next(status, ...)` answers raw HTTP (a 502 from the gateway) and
`delay_next(seconds)` answers late (a client timeout).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cdp.shared.http import HttpAnswer
from cdp.shared.time import utc_now
from cdp_local.fakes.forms import FormError, form_fields, text, unzip_one
from cdp_local.fakes.server import LoopbackFake

ACCESS_TOKEN = "fake-local-tencent-ads-token-0001"  # noqa: S105 - a loopback fake's own token
ACCOUNT_ID = "25610"
PREFIX = "/v1.3"
MISSING_PARAMETER, TOKEN_EXPIRED, TOKEN_INVALID = 12000, 11000, 11002
BAD_TIMESTAMP, BAD_NONCE, INVALID_REQUEST = 12001, 12002, 12004  # the fake's stand-ins (see the docstring)
USER_ID_TYPES = frozenset(
    {
        "HASH_IDFA",
        "HASH_IMEI",
        "HASH_MOBILE_PHONE",
        "IDFA",
        "IMEI",
        "WX_OPENID",
        "WX_UNIONID",
        "WECHAT_OPENID",
        "SALTED_HASH_IMEI",
        "SALTED_HASH_IDFA",
        "OAID",
        "HASH_OAID",
        "SHA256_MOBILE_PHONE",
        "MD5_SHA256_IMEI",
        "MD5_SHA256_IDFA",
        "MD5_SHA256_OAID",
        "CAID",
    }
)
_HEX32 = re.compile(r"^[0-9A-Fa-f]{32}$")
_HEX64 = re.compile(r"^[0-9A-Fa-f]{64}$")


@dataclass(frozen=True)
class AudienceFile:
    file_id: int
    audience_id: int
    user_id_type: str
    operation_type: str
    ids: tuple[str, ...]


class _Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class FakeTencentAds(LoopbackFake):
    name = "fake-tencent-ads"

    def __init__(
        self,
        port: int = 0,
        access_token: str = ACCESS_TOKEN,
        account_id: str = ACCOUNT_ID,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__(port)
        self.access_token = access_token
        self.account_id = account_id
        self._clock = clock
        self._state = threading.Lock()
        self._expired: set[str] = set()
        self._nonces: set[str] = set()
        self._refusals: list[tuple[int, str]] = []
        self._audiences: dict[int, dict[str, Any]] = {}
        self._files: list[AudienceFile] = []
        self._audience_ids = itertools.count(2_837_392)
        self._file_ids = itertools.count(1_000_001)
        self.calls: list[str] = []  # the paths called, oldest first

    # ---- what a test sets up and reads ----------------------------------------------------------------------

    def account(self, **changes: Any) -> dict[str, Any]:
        """The `ad_accounts.TencentAdsAccount` dict pointing at this fake."""
        return {"account_id": self.account_id, "access_token": self.access_token, "base_url": self.base_url, **changes}

    @property
    def base_url(self) -> str:
        return f"{self.url}{PREFIX}"

    def expire_token(self) -> None:
        """The current token answers 11000 from now on (an OAuth token past its 24 hours)."""
        with self._state:
            self._expired.add(self.access_token)

    def refuse_next(self, code: int, message: str = "refused by the fake", times: int = 1) -> None:
        with self._state:
            self._refusals.extend([(code, message)] * times)

    @property
    def audiences(self) -> dict[int, dict[str, Any]]:
        with self._state:
            return {k: dict(v) for k, v in self._audiences.items()}

    @property
    def files(self) -> list[AudienceFile]:
        with self._state:
            return list(self._files)

    def audience_ids(self, audience_id: int | str) -> set[str]:
        """The ids an audience holds now: its APPEND files minus its REDUCE files (lower case)."""
        held: set[str] = set()
        for f in self.files:
            if f.audience_id == int(audience_id):
                ids = {i.lower() for i in f.ids}
                held = held - ids if f.operation_type == "REDUCE" else held | ids
        return held

    # ---- the protocol -----------------------------------------------------------------------------------------

    def answer(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        parts = urlsplit(path)
        with self._state:
            self.calls.append(parts.path)
        try:
            if method != "POST":
                raise _Refused(INVALID_REQUEST, f"{method} is not allowed here")
            self._global(parse_qs(parts.query))
            with self._state:
                if self._refusals:
                    raise _Refused(*self._refusals.pop(0))
            if parts.path == f"{PREFIX}/custom_audiences/add":
                data = self._create(body)
            elif parts.path == f"{PREFIX}/custom_audience_files/add":
                data = self._file(headers.get("content-type", ""), body)
            else:
                raise _Refused(INVALID_REQUEST, f"no interface {parts.path}")
        except _Refused as exc:
            return _json({"code": exc.code, "message": exc.message, "message_cn": exc.message, "data": {}})
        return _json({"code": 0, "message": "", "message_cn": "", "data": data})

    def _global(self, query: dict[str, list[str]]) -> None:
        values = {k: (query.get(k) or [""])[0] for k in ("access_token", "timestamp", "nonce")}
        if not all(values.values()):
            raise _Refused(
                MISSING_PARAMETER, "Your request is missing a required parameter (access_token, timestamp, nonce)"
            )
        with self._state:
            if values["access_token"] in self._expired:
                raise _Refused(TOKEN_EXPIRED, "Access token is expired.")
            if values["access_token"] != self.access_token:
                raise _Refused(TOKEN_INVALID, "Access token is invalid.")
            if not values["timestamp"].isdigit() or abs(int(values["timestamp"]) - self._clock().timestamp()) > 300:
                raise _Refused(BAD_TIMESTAMP, "timestamp is more than 300 seconds away")
            if len(values["nonce"]) > 32 or values["nonce"] in self._nonces:
                raise _Refused(BAD_NONCE, "The nonce has been used before (or is longer than 32 characters)")
            self._nonces.add(values["nonce"])

    def _create(self, body: bytes) -> dict[str, Any]:
        try:
            request = json.loads(body)
        except ValueError as exc:
            raise _Refused(INVALID_REQUEST, "the body is not JSON") from exc
        if not isinstance(request, dict) or str(request.get("account_id")) != self.account_id:
            raise _Refused(INVALID_REQUEST, "account_id is not this token's account")
        name, description = request.get("name"), request.get("description", "")
        if not isinstance(name, str) or not 1 <= len(name.encode()) <= 32:
            raise _Refused(INVALID_REQUEST, "name must be 1 to 32 bytes")
        if not isinstance(description, str) or len(description.encode()) > 100:
            raise _Refused(INVALID_REQUEST, "description must be at most 100 bytes")
        if request.get("type") != "CUSTOMER_FILE":
            raise _Refused(INVALID_REQUEST, "type must be CUSTOMER_FILE here")
        with self._state:
            audience_id = next(self._audience_ids)
            self._audiences[audience_id] = {"name": name, "description": description, "type": "CUSTOMER_FILE"}
        return {"audience_id": audience_id}

    def _file(self, content_type: str, body: bytes) -> dict[str, Any]:
        try:
            fields = form_fields(content_type, body)
            content = unzip_one(fields["file"][0]) if "file" in fields else None
        except FormError as exc:
            raise _Refused(INVALID_REQUEST, str(exc)) from exc
        if text(fields, "account_id") != self.account_id:
            raise _Refused(INVALID_REQUEST, "account_id is not this token's account")
        audience = text(fields, "audience_id") or ""
        with self._state:
            known = audience.isdigit() and int(audience) in self._audiences
        if not known:
            raise _Refused(INVALID_REQUEST, f"audience_id {audience!r} is not one of this account's audiences")
        id_type = text(fields, "user_id_type") or ""
        if id_type not in USER_ID_TYPES:
            raise _Refused(INVALID_REQUEST, f"user_id_type {id_type!r} is not in the enum")
        operation = text(fields, "operation_type") or "APPEND"
        if operation not in ("APPEND", "REDUCE"):
            raise _Refused(INVALID_REQUEST, "operation_type must be APPEND or REDUCE")
        if content is None:
            raise _Refused(INVALID_REQUEST, "file is required")
        ids = tuple(line.strip() for line in content.decode("utf-8", "replace").splitlines() if line.strip())
        pattern = _HEX64 if id_type.startswith("SHA256") else _HEX32 if "HASH" in id_type else None
        if not ids or (pattern is not None and not all(pattern.match(i) for i in ids)):
            raise _Refused(INVALID_REQUEST, f"the file holds no ids, or lines that are not {id_type} values")
        with self._state:
            file_id = next(self._file_ids)
            self._files.append(AudienceFile(file_id, int(audience), id_type, operation, ids))
        return {"custom_audience_file_id": file_id}


def _json(document: dict[str, Any]) -> HttpAnswer:
    return HttpAnswer(200, json.dumps(document, ensure_ascii=False).encode(), {"content-type": "application/json"})
