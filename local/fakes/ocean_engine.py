"""A fake Ocean Engine (巨量引擎) Marketing API on the loopback: the DMP data source calls `cdp.activation.ocean_engine`
makes.

Every call must carry the advertiser's token in the `Access-Token` header. Answers are HTTP 200 with `{code, message,
request_id, data}`; the codes are the fake's stand-ins as `cdp.activation.ocean_engine` reads them: no or an unknown
token 40105, a token `expire_token()` retired 40102, anything wrong with the request (the advertiser, the file's
signature, a line that is not a DmpData message, an id that does not match its dataType's format, an unknown file
path) 40001.

- `POST /open_api/2/dmp/data_source/file/upload/` multipart: `advertiser_id`, `file_signature` (MD5 of the file) and
  `file`: a zip of one text file, each line the base64 of a `DmpData` protobuf (repeated `IdItem {dataType = 2;
  id = 3}`, at most 10,000 per line), decoded here with a small protobuf reader of its own (not the adapter's
  encoder) and checked with the format patterns of Ocean Engine's own validation script -> `data.file_path`.
- `POST /open_api/2/dmp/data_source/create/` JSON `{advertiser_id, data_source_name (<= 30), description (<= 256),
  data_format: 0, file_storage_type: 0, file_paths (1-1000 of this advertiser's), data_source_type}` ->
  `data.data_source_id`. `data_source_ids(...)` is what a data source holds (for a test to check the hashes).

Error injection: `refuse_next(code, times)` (40100 too many requests, 50000 system error, ...), the base's
`fail_next(status, ...)` for raw HTTP, `delay_next(seconds)` for a client timeout.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cdp.shared.http import HttpAnswer
from cdp_local.fakes.forms import FormError, form_fields, text, unzip_one
from cdp_local.fakes.server import LoopbackFake

ACCESS_TOKEN = "fake-local-oceanengine-token-0001"  # noqa: S105 - a loopback fake's own token
ADVERTISER_ID = "1760312309087432"
UPLOAD = "/open_api/2/dmp/data_source/file/upload/"
CREATE = "/open_api/2/dmp/data_source/create/"
INVALID_REQUEST, TOKEN_EXPIRED, TOKEN_INVALID = 40001, 40102, 40105
# toutiao.dmp.IdItem.DataType -> the id's format (Ocean Engine's toutiao_dmp_validate.py patterns)
PATTERNS = {
    0: r"^[a-zA-Z0-9]{15}$",  # IMEI
    1: r"^[a-zA-Z0-9]{8}-[a-zA-Z0-9]{4}-[a-zA-Z0-9]{4}-[a-zA-Z0-9]{4}-[a-zA-Z0-9]{12}$",  # IDFA
    2: r"^\d+$",  # UID
    4: r"^[a-zA-Z0-9]{32}$",  # IMEI_MD5
    5: r"^[a-zA-Z0-9]{32}$",  # IDFA_MD5
    6: r"^[a-f0-9]{64}$",  # MOBILE_HASH_SHA256 (lower case, as the proto asks of every id)
    7: r"^([a-f0-9]{8}-){1}([a-f0-9]{4}-){3}[a-f0-9]{12}$",  # OAID
    8: r"^[a-zA-Z0-9]{32}$",  # OAID_MD5
}


@dataclass(frozen=True)
class DmpItem:
    data_type: int
    id: str


class _Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("a truncated varint")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message: varints as ints, length-delimited fields as bytes."""
    out: list[tuple[int, int | bytes]] = []
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            out.append((number, value))
        elif wire == 2:
            length, at = _varint(data, at)
            if at + length > len(data):
                raise ValueError("a truncated field")
            out.append((number, data[at : at + length]))
            at += length
        else:
            raise ValueError(f"wire type {wire} is not used by DmpData")
    return out


def parse_dmp_line(line: str) -> list[DmpItem]:
    """One line of a DMP file: base64 of DmpData -> its IdItems (dataType and id are required)."""
    try:
        raw = base64.b64decode(line, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not base64: {exc}") from exc
    items = []
    for number, value in _fields(raw):
        if number != 1 or not isinstance(value, bytes):
            raise ValueError("DmpData holds only idList (field 1)")
        fields = dict(_fields(value))
        data_type, identifier = fields.get(2), fields.get(3)
        if not isinstance(data_type, int) or not isinstance(identifier, bytes):
            raise ValueError("an IdItem without its dataType or id")
        items.append(DmpItem(data_type, identifier.decode("utf-8")))
    if len(items) > 10_000:
        raise ValueError("more than 10,000 ids on one line")
    return items


class FakeOceanEngine(LoopbackFake):
    name = "fake-ocean-engine"

    def __init__(self, port: int = 0, access_token: str = ACCESS_TOKEN, advertiser_id: str = ADVERTISER_ID) -> None:
        super().__init__(port)
        self.access_token = access_token
        self.advertiser_id = advertiser_id
        self._state = threading.Lock()
        self._expired: set[str] = set()
        self._refusals: list[tuple[int, str]] = []
        self._files: dict[str, list[DmpItem]] = {}
        self._sources: dict[str, dict[str, Any]] = {}
        self._source_ids = itertools.count(1_500_000_001)
        self.calls: list[str] = []

    # ---- what a test sets up and reads ----------------------------------------------------------------------

    def account(self, **changes: Any) -> dict[str, Any]:
        """The `ad_accounts.OceanEngineAccount` dict pointing at this fake."""
        return {"advertiser_id": self.advertiser_id, "access_token": self.access_token, "base_url": self.url, **changes}

    def expire_token(self) -> None:
        with self._state:
            self._expired.add(self.access_token)

    def refuse_next(self, code: int, message: str = "refused by the fake", times: int = 1) -> None:
        with self._state:
            self._refusals.extend([(code, message)] * times)

    @property
    def files(self) -> dict[str, list[DmpItem]]:
        with self._state:
            return {k: list(v) for k, v in self._files.items()}

    @property
    def data_sources(self) -> dict[str, dict[str, Any]]:
        with self._state:
            return {k: dict(v) for k, v in self._sources.items()}

    def data_source_ids(self, data_source_id: str) -> set[DmpItem]:
        source = self.data_sources[data_source_id]
        files = self.files
        return {item for path in source["file_paths"] for item in files[path]}

    # ---- the protocol -----------------------------------------------------------------------------------------

    def answer(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        with self._state:
            self.calls.append(path)
        try:
            token = headers.get("access-token", "")
            with self._state:
                if token in self._expired:
                    raise _Refused(TOKEN_EXPIRED, "access_token expired")
                if token != self.access_token:
                    raise _Refused(TOKEN_INVALID, "access_token invalid")
                if self._refusals:
                    raise _Refused(*self._refusals.pop(0))
            if method == "POST" and path == UPLOAD:
                data = self._upload(headers.get("content-type", ""), body)
            elif method == "POST" and path == CREATE:
                data = self._create(body)
            else:
                raise _Refused(INVALID_REQUEST, f"no interface {method} {path}")
        except _Refused as exc:
            return _json({"code": exc.code, "message": exc.message, "request_id": _request_id(), "data": {}})
        return _json({"code": 0, "message": "OK", "request_id": _request_id(), "data": data})

    def _upload(self, content_type: str, body: bytes) -> dict[str, Any]:
        try:
            fields = form_fields(content_type, body)
        except FormError as exc:
            raise _Refused(INVALID_REQUEST, str(exc)) from exc
        if text(fields, "advertiser_id") != self.advertiser_id:
            raise _Refused(INVALID_REQUEST, "advertiser_id is not this token's advertiser")
        if "file" not in fields:
            raise _Refused(INVALID_REQUEST, "file is required")
        content = fields["file"][0]
        if text(fields, "file_signature") != hashlib.md5(content, usedforsecurity=False).hexdigest():
            raise _Refused(INVALID_REQUEST, "file_signature is not the MD5 of the file")
        try:
            lines = unzip_one(content).decode("ascii").splitlines()
            items = [item for line in lines if line.strip() for item in parse_dmp_line(line.strip())]
        except (FormError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            raise _Refused(INVALID_REQUEST, f"the file is not a DMP file: {exc}") from exc
        bad = [i for i in items if i.data_type not in PATTERNS or not re.match(PATTERNS[i.data_type], i.id)]
        if not items or bad:
            raise _Refused(INVALID_REQUEST, f"{len(bad)} id(s) do not match their dataType's format, or none given")
        file_path = f"dmp/{self.advertiser_id}/{uuid.uuid4().hex}.zip"
        with self._state:
            self._files[file_path] = items
        return {"file_path": file_path}

    def _create(self, body: bytes) -> dict[str, Any]:
        try:
            request = json.loads(body)
        except ValueError as exc:
            raise _Refused(INVALID_REQUEST, "the body is not JSON") from exc
        if not isinstance(request, dict) or str(request.get("advertiser_id")) != self.advertiser_id:
            raise _Refused(INVALID_REQUEST, "advertiser_id is not this token's advertiser")
        name, paths = request.get("data_source_name"), request.get("file_paths")
        if not isinstance(name, str) or not 1 <= len(name) <= 30:
            raise _Refused(INVALID_REQUEST, "data_source_name must be 1 to 30 characters")
        if len(str(request.get("description", ""))) > 256:
            raise _Refused(INVALID_REQUEST, "description must be at most 256 characters")
        if request.get("data_format") != 0 or request.get("file_storage_type") != 0:
            raise _Refused(INVALID_REQUEST, "data_format and file_storage_type must be 0 (ProtocolBuffer, API)")
        with self._state:
            if not isinstance(paths, list) or not 1 <= len(paths) <= 1000 or not all(p in self._files for p in paths):
                raise _Refused(INVALID_REQUEST, "file_paths must be 1 to 1000 paths this advertiser uploaded")
            source_id = str(next(self._source_ids))
            self._sources[source_id] = {
                "name": name,
                "file_paths": list(paths),
                "data_source_type": request.get("data_source_type", "UID"),
            }
        return {"data_source_id": source_id}


def _request_id() -> str:
    return uuid.uuid4().hex[:24].upper()


def _json(document: dict[str, Any]) -> HttpAnswer:
    return HttpAnswer(200, json.dumps(document, ensure_ascii=False).encode(), {"content-type": "application/json"})
