"""What both ad platform adapters put on the wire: a multipart/form-data body with one file, a zip holding one text
file, and one POST whose JSON answer (`{"code": 0 | n, "message", "data": {...}}`, read safely: too long, not JSON,
not an object is an empty document) becomes its data or a typed refusal."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cdp.activation.ports import AdPlatformNoAnswer, AdPlatformRefused
from cdp.shared.http import MAX_ANSWER_BYTES, HttpTransport, HttpUnreachable


@dataclass(frozen=True)
class FilePart:
    field: str
    filename: str
    content: bytes
    content_type: str = "application/zip"


def multipart(fields: Mapping[str, str], file: FilePart, boundary: str | None = None) -> tuple[bytes, str]:
    """The body and its content-type header (RFC 7578): the text fields, then the file."""
    mark = boundary or f"cdp-{uuid.uuid4().hex}"
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{mark}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.write(value.encode("utf-8") + b"\r\n")
    out.write(
        f'--{mark}\r\nContent-Disposition: form-data; name="{file.field}"; filename="{file.filename}"\r\n'
        f"Content-Type: {file.content_type}\r\n\r\n".encode()
    )
    out.write(file.content + b"\r\n")
    out.write(f"--{mark}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={mark}"


def zipped(name: str, content: bytes) -> bytes:
    """A zip archive holding one deflated file (hex hashes compress to about half)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, content)
    return out.getvalue()


def document(raw: bytes) -> dict[str, Any]:
    """The answer's JSON object, or {} when it is none."""
    if len(raw) > MAX_ANSWER_BYTES:
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def integer_code(value: object) -> int | None:
    """A platform's `code`: an integer (some gateways send it as a string of digits); None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def short(text: object, secret: str = "", limit: int = 200) -> str:
    """A platform's message for an error: a string, without the token, short."""
    if not isinstance(text, str):
        return ""
    if secret:
        text = text.replace(secret, "***")
    return text.strip()[:limit]


@dataclass(frozen=True)
class PlatformApi:
    """One platform's POSTs: what did not arrive is refused for now (not reachable) or unknown (no answer: it may have
    been done), a code the platform means for now or for good (`transient`) a refusal named by `error_name`, with the
    platform's message (the first of `detail_keys` it gives) and never the token."""

    platform: str  # as an operator reads it: "Tencent Ads"
    transport: HttpTransport
    token: str
    transient: Callable[[int], bool]
    error_name: Callable[[int], str]
    detail_keys: tuple[str, ...] = ("message",)

    def post(self, url: str, headers: Mapping[str, str], body: bytes, what: str) -> dict[str, Any]:
        label = f"{self.platform} {what}"
        try:
            answer = self.transport("POST", url, headers, body)
        except HttpUnreachable as exc:
            reason = short(str(exc).removeprefix(f"{url}: ").replace(url, "the API"), self.token)
            if exc.sent is False:
                raise AdPlatformRefused(f"{label}: not reachable: {reason}", code="unreachable") from None
            raise AdPlatformNoAnswer(f"{label}: no answer (it may have been done): {reason}") from None
        doc = document(answer.body)
        code = integer_code(doc.get("code"))
        if code is None:
            if 200 <= answer.status < 300:
                raise AdPlatformNoAnswer(f"{label}: HTTP {answer.status} with an answer that is not the API's")
            permanent = not (answer.status in (408, 429) or answer.status >= 500)
            raise AdPlatformRefused(f"{label}: HTTP {answer.status}", code=f"http_{answer.status}", permanent=permanent)
        if code != 0:
            detail = short(next((doc[k] for k in self.detail_keys if doc.get(k)), None), self.token)
            text = f"{label} refused: code {code}" + (f" ({detail})" if detail else "")
            raise AdPlatformRefused(text, code=self.error_name(code), permanent=not self.transient(code))
        data = doc.get("data")
        return data if isinstance(data, dict) else {}

    def required(self, data: dict[str, Any], key: str, what: str) -> str:
        """`data[key]` as text; an answer of code 0 without it is no answer (the call may have been done)."""
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int | str) or str(value) == "":
            raise AdPlatformNoAnswer(f"{self.platform} {what}: code 0 without {key} (it may have been done)")
        return str(value)
