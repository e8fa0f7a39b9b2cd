"""Tencent Ads (腾讯广告) Marketing API v1.3: customer-file audiences (客户文件人群), the subset an activation needs.

Every call carries the global parameters in its query string: `access_token` (the OAuth token of the account),
`timestamp` (unix seconds; the API allows 300 s of clock error) and `nonce` (at most 32 characters, unique per call).
Every answer is JSON `{code, message, message_cn, data}`: `code` 0 is success, anything else an error.

1. `POST {base}/custom_audiences/add` (JSON): `{account_id, name, description, type: "CUSTOMER_FILE"}` ->
   `data.audience_id`. The name is at most 32 bytes, the description 100.
2. `POST {base}/custom_audience_files/add` (multipart/form-data): `account_id`, `audience_id`, `user_id_type`
   (`HASH_MOBILE_PHONE`: MD5 of the 11-digit mainland mobile number, `cdp.activation.hashing`), `operation_type`
   APPEND and `file`: a zip of one text file, one hash per line (the platform takes txt, csv or a zip of them up to
   100 MB compressed; 1,000,000 hashes make about 33 MB of text, ~18 MB zipped) -> `data.custom_audience_file_id`.

The platform then matches the file asynchronously (custom_audiences/get shows the audience's status and size); this
adapter does not wait for it. Not implemented: REDUCE files, other id types (see `hashing` for why), the OAuth token
refresh (the brand's token service writes the current token into the sources secret) and custom_audiences/get.

Error codes (the API's return-code table, checked 2026-12):
  10000 system busy, 10001 maintenance, 11008/11016/11017/11019 request rate limits, 30000-30099 system exceptions
  (Tencent's own advice: retry 1-3 times)                                        -> refused for now
  11000 token expired, 11002 invalid, 11004 malformed, 11005 empty, 11007 client_id invalid -> `credentials_rejected`
  11014 API outside the token's scope                                            -> `not_allowed`
  11018 the day's request quota                                                  -> `quota_exceeded` (for good today)
  any other code (12xxx request parameters, 31xxx business rules, ...)            -> for good, `tencent_{code}`
  no readable answer with HTTP 429 or 5xx: for now; with a 2xx: no answer (the platform may have done it)

The access token rides in the URL: no error message or log line ever carries the URL or the token.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from cdp.activation.hashing import phone_md5
from cdp.activation.ports import AdPlatform, PlatformName
from cdp.activation.wire import FilePart, PlatformApi, multipart, zipped
from cdp.connectors.ad_accounts import TencentAdsAccount
from cdp.shared.http import HttpTransport, urllib_transport
from cdp.shared.time import utc_now

CREATE_PATH = "/custom_audiences/add"
FILE_PATH = "/custom_audience_files/add"
ID_TYPE = "HASH_MOBILE_PHONE"
MAX_IDS_PER_FILE = 1_000_000
MAX_NAME_BYTES = 32
MAX_DESCRIPTION_BYTES = 100

TRANSIENT = frozenset({10000, 10001, 11008, 11016, 11017, 11019})
CREDENTIALS = frozenset({11000, 11002, 11004, 11005, 11007})
PERMANENT: Mapping[int, str] = {11014: "not_allowed", 11018: "quota_exceeded"}


def transient(code: int) -> bool:
    return code in TRANSIENT or 30000 <= code <= 30099


def error_name(code: int) -> str:
    if code in CREDENTIALS:
        return "credentials_rejected"
    return PERMANENT.get(code, f"tencent_{code}")


def clip(text: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes, cut on a character boundary."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def _nonce() -> str:
    return uuid.uuid4().hex  # 32 characters


class TencentAds(AdPlatform):
    name: PlatformName = "tencent_ads"
    id_type = ID_TYPE

    def __init__(
        self,
        account: TencentAdsAccount,
        transport: HttpTransport | None = None,
        clock: Callable[[], datetime] = utc_now,
        nonce: Callable[[], str] = _nonce,
        max_ids_per_file: int = MAX_IDS_PER_FILE,
    ) -> None:
        self._account = account
        self._token = account.access_token.get_secret_value()
        self._base = account.base_url.rstrip("/")
        self._api = PlatformApi(
            "Tencent Ads",
            transport or urllib_transport(account.timeout_s),
            self._token,
            transient,
            error_name,
            detail_keys=("message_cn", "message"),
        )
        self._clock = clock
        self._nonce = nonce
        self.max_ids_per_file = max_ids_per_file

    def identifier(self, e164: str) -> str | None:
        return phone_md5(e164)

    def create_audience(self, name: str, description: str) -> str | None:
        body = {
            "account_id": int(self._account.account_id),
            "name": clip(name, MAX_NAME_BYTES),
            "description": clip(description, MAX_DESCRIPTION_BYTES),
            "type": "CUSTOMER_FILE",
        }
        data = self._call(CREATE_PATH, json.dumps(body, ensure_ascii=False).encode(), "application/json", "create")
        return self._id(data, "audience_id", "create")

    def upload(self, audience_ref: str | None, hashes: Sequence[str]) -> str:
        if audience_ref is None:
            raise ValueError("a Tencent Ads file goes to an audience created first")
        if not 0 < len(hashes) <= self.max_ids_per_file:
            raise ValueError(f"a file holds 1 to {self.max_ids_per_file} ids, not {len(hashes)}")
        text = ("\n".join(hashes) + "\n").encode()
        fields = {
            "account_id": self._account.account_id,
            "audience_id": audience_ref,
            "user_id_type": ID_TYPE,
            "operation_type": "APPEND",
        }
        body, content_type = multipart(fields, FilePart("file", "audience.zip", zipped("audience.txt", text)))
        data = self._call(FILE_PATH, body, content_type, f"file upload to audience {audience_ref}")
        return self._id(data, "custom_audience_file_id", "file upload")

    def complete(self, audience_ref: str | None, file_refs: Sequence[str], name: str, description: str) -> str:
        if audience_ref is None:
            raise ValueError("a Tencent Ads activation completes the audience it created")
        return audience_ref  # the files are matched into the audience by the platform; nothing more to ask

    # ---- one call ------------------------------------------------------------------------------------------------

    def _call(self, path: str, body: bytes, content_type: str, what: str) -> dict[str, Any]:
        query = {"access_token": self._token, "timestamp": str(int(self._clock().timestamp())), "nonce": self._nonce()}
        headers = {"content-type": content_type, "accept": "application/json", "user-agent": "cdp-activation/1"}
        return self._api.post(f"{self._base}{path}?{urlencode(query)}", headers, body, what)

    def _id(self, data: dict[str, Any], key: str, what: str) -> str:
        return self._api.required(data, key, what)
