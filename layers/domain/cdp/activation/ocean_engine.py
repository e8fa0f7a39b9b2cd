"""Ocean Engine (巨量引擎) Marketing API: DMP data sources (数据源), the subset an activation needs.

Every call sends the advertiser's OAuth token in the `Access-Token` header; every answer is JSON `{code, message,
request_id, data}` with `code` 0 for success.

1. `POST {base}/open_api/2/dmp/data_source/file/upload/` (multipart/form-data): `advertiser_id`, `file` and
   `file_signature` (the MD5 of the file's bytes) -> `data.file_path` (valid 14 days). The file is the DMP format: a
   zip holding a text file whose every line is the base64 of one `DmpData` protobuf message (proto2, package
   toutiao.dmp) of at most 10,000 `IdItem {dataType = 2; id = 3}`; here each item is `MOBILE_HASH_SHA256` (6): the
   SHA-256 of the 11-digit mainland mobile number, lowercase hex (`cdp.activation.hashing`). The two messages are
   encoded by hand below (`id_item`, `dmp_line`): field 2 a varint, field 3 a length-delimited string, field 1 of
   DmpData a length-delimited IdItem; optional `timestamp` and `tags` are left out.
2. `POST {base}/open_api/2/dmp/data_source/create/` (JSON): `{advertiser_id, data_source_name (<= 30 characters),
   description (<= 256), data_format: 0 (ProtocolBuffer), file_storage_type: 0 (API), file_paths (<= 1000),
   data_source_type: "UID"}` -> `data.data_source_id`.

The platform then builds the data source's default audience asynchronously (dmp/data_source/read shows it);
publishing it (dmp/custom_audience/publish) and pushing it to other advertisers are not done here, nor are updates
of an existing data source (dmp/data_source/update) and the OAuth token refresh. Files are at most 200,000 ids (our
choice: ~19 MB of base64 text before zipping; the platform's own limit on the upload is not relied on).

Error codes: `code` 0 is success. The return-code list below is as recalled from Ocean Engine's public page and not
confirmed against it here (the documentation was not reachable from this repository's sources): 40100 and 40110
(request rate limits) and any 5xxxx (system errors) -> refused for now; 40102-40107 (the access token expired,
missing or invalid) -> `credentials_rejected`; any other code -> for good, `oceanengine_{code}`. No readable answer:
HTTP 429 or 5xx -> for now; a 2xx -> no answer (it may have been done).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from cdp.activation.hashing import phone_sha256
from cdp.activation.ports import AdPlatform, PlatformName
from cdp.activation.wire import FilePart, PlatformApi, multipart, zipped
from cdp.connectors.ad_accounts import OceanEngineAccount
from cdp.shared.http import HttpTransport, urllib_transport

UPLOAD_PATH = "/open_api/2/dmp/data_source/file/upload/"
CREATE_PATH = "/open_api/2/dmp/data_source/create/"
ID_TYPE = "MOBILE_HASH_SHA256"
DATA_TYPE_MOBILE_HASH_SHA256 = 6
IDS_PER_LINE = 10_000
MAX_IDS_PER_FILE = 200_000
MAX_FILES = 1000
MAX_NAME = 30
MAX_DESCRIPTION = 256

TRANSIENT = frozenset({40100, 40110})
CREDENTIALS = frozenset(range(40102, 40108))


def transient(code: int) -> bool:
    return code in TRANSIENT or 50000 <= code <= 59999


def error_name(code: int) -> str:
    return "credentials_rejected" if code in CREDENTIALS else f"oceanengine_{code}"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def id_item(data_type: int, identifier: str) -> bytes:
    """`IdItem {required DataType dataType = 2; required string id = 3}` in the protobuf wire format."""
    raw = identifier.encode("utf-8")
    return b"\x10" + _varint(data_type) + b"\x1a" + _varint(len(raw)) + raw


def dmp_line(data_type: int, identifiers: Sequence[str]) -> str:
    """One line of a DMP file: base64 of `DmpData {repeated IdItem idList = 1}`."""
    if len(identifiers) > IDS_PER_LINE:
        raise ValueError(f"a DmpData line holds at most {IDS_PER_LINE} ids")
    message = b"".join(b"\x0a" + _varint(len(item)) + item for item in (id_item(data_type, i) for i in identifiers))
    return base64.b64encode(message).decode("ascii")


def dmp_file(data_type: int, identifiers: Sequence[str]) -> bytes:
    """The text of a DMP file: one line per 10,000 ids."""
    lines = [dmp_line(data_type, identifiers[i : i + IDS_PER_LINE]) for i in range(0, len(identifiers), IDS_PER_LINE)]
    return ("\n".join(lines) + "\n").encode("ascii")


class OceanEngine(AdPlatform):
    name: PlatformName = "ocean_engine"
    id_type = ID_TYPE

    def __init__(
        self,
        account: OceanEngineAccount,
        transport: HttpTransport | None = None,
        max_ids_per_file: int = MAX_IDS_PER_FILE,
    ) -> None:
        self._account = account
        self._token = account.access_token.get_secret_value()
        self._base = account.base_url.rstrip("/")
        self._api = PlatformApi(
            "Ocean Engine", transport or urllib_transport(account.timeout_s), self._token, transient, error_name
        )
        self.max_ids_per_file = max_ids_per_file

    def identifier(self, e164: str) -> str | None:
        return phone_sha256(e164)

    def create_audience(self, name: str, description: str) -> str | None:
        return None  # the data source is created from the uploaded files at the end

    def upload(self, audience_ref: str | None, hashes: Sequence[str]) -> str:
        if not 0 < len(hashes) <= self.max_ids_per_file:
            raise ValueError(f"a file holds 1 to {self.max_ids_per_file} ids, not {len(hashes)}")
        content = zipped("dmp.txt", dmp_file(DATA_TYPE_MOBILE_HASH_SHA256, hashes))
        fields = {
            "advertiser_id": self._account.advertiser_id,
            "file_signature": hashlib.md5(content, usedforsecurity=False).hexdigest(),
        }
        body, content_type = multipart(fields, FilePart("file", "dmp.zip", content))
        data = self._call(UPLOAD_PATH, body, content_type, "data source file upload")
        return self._text(data, "file_path", "data source file upload")

    def complete(self, audience_ref: str | None, file_refs: Sequence[str], name: str, description: str) -> str:
        if not 0 < len(file_refs) <= MAX_FILES:
            raise ValueError(f"a data source is created from 1 to {MAX_FILES} files, not {len(file_refs)}")
        body = {
            "advertiser_id": int(self._account.advertiser_id),
            "data_source_name": name[:MAX_NAME],
            "description": description[:MAX_DESCRIPTION],
            "data_format": 0,
            "file_storage_type": 0,
            "file_paths": list(file_refs),
            "data_source_type": "UID",
        }
        raw = json.dumps(body, ensure_ascii=False).encode()
        data = self._call(CREATE_PATH, raw, "application/json", "data source create")
        return self._text(data, "data_source_id", "data source create")

    def _call(self, path: str, body: bytes, content_type: str, what: str) -> dict[str, Any]:
        headers = {
            "access-token": self._token,
            "content-type": content_type,
            "accept": "application/json",
            "user-agent": "cdp-activation/1",
        }
        return self._api.post(f"{self._base}{path}", headers, body, what)

    def _text(self, data: dict[str, Any], key: str, what: str) -> str:
        return self._api.required(data, key, what)
