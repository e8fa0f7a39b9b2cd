"""Untrusted JSON, checked for what parsing and storing cannot survive, before any of that work is done.

Three limits come from what follows in the pipeline, not from taste:
- nesting depth: CPython's json and every recursive walk over the payload raise RecursionError near 1,000 levels,
  so the depth is counted on the raw bytes first (linear, no recursion) and a deep body is a 400 before parsing;
- numbers: DynamoDB holds 38 significant digits and magnitudes 1E-130..9.9E+125; JSON's NaN/Infinity are not JSON
  and EventBridge refuses them;
- strings: a lone UTF-16 surrogate (`"\\ud800"`) parses but cannot be encoded as UTF-8 by S3, DynamoDB or
  EventBridge.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal

from cdp.errors import InvalidInputError

MAX_JSON_DEPTH = 32  # the deepest canonical event is 5 levels; Segment payloads with nested properties ~10
MAX_DIGITS = 38  # DynamoDB numbers: up to 38 digits of precision
_TOO_MANY_DIGITS = 10**MAX_DIGITS
_MAX_MAGNITUDE = 9.9e125
_MIN_MAGNITUDE = 1e-130

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # the unrolled form: linear, no backtracking
_ONE_KIND = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def exceeds_depth(body: bytes, limit: int) -> bool:
    """Whether a JSON text nests arrays/objects deeper than `limit` (brackets inside strings do not count).

    Each pass deletes every innermost `[]` pair, which lowers the deepest nesting by exactly one, so `limit` passes
    of C-speed `bytes.replace` decide it: no recursion and no per-character Python loop. Brackets that do not
    balance (not JSON anyway) count as too deep.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b"", body).translate(_ONE_KIND, _NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"")
    return bool(brackets)


def check_utf8(body: bytes, field: str = "body") -> str:
    """The body as text. JSON between systems is UTF-8 (RFC 8259 section 8.1); json.loads would also guess UTF-16
    and UTF-32, whose bytes hide quotes and brackets from a byte-level scan, so anything else is refused."""
    if b"\x00" in body:  # UTF-16/32 text of ASCII characters is "valid UTF-8" full of NULs; JSON never holds one
        raise InvalidInputError(f"{field} holds NUL bytes: send JSON as UTF-8 (UTF-16 and UTF-32 are not read)", field)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{field} is not UTF-8: {exc.reason} at byte {exc.start}", field) from exc


def check_depth(body: bytes, limit: int = MAX_JSON_DEPTH, field: str = "body") -> None:
    """InvalidInputError when the body is not UTF-8 or nests deeper than `limit` (the scan is only sound on UTF-8,
    where no byte of a multi-byte character is a quote or a bracket)."""
    check_utf8(body, field)
    if exceeds_depth(body, limit):
        raise InvalidInputError(f"JSON nests deeper than {limit} levels (or its brackets do not balance)", field)


def _as_null(_name: str) -> None:
    return None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(
    body: bytes | str,
    field: str = "body",
    limit: int = MAX_JSON_DEPTH,
    constants: Literal["refuse", "null", "keep"] = "refuse",
) -> Any:
    """json.loads for untrusted input: depth checked first, every failure an InvalidInputError. NaN/Infinity are
    refused; `null` reads them as null (senders whose SDKs write them), `keep` as floats (rewriting what was
    archived, which must not change what it does not scrub)."""
    if isinstance(body, str):
        text, raw = body, body.encode("utf-8", "surrogatepass")
    else:
        text, raw = check_utf8(body, field), body
    if exceeds_depth(raw, limit):
        raise InvalidInputError(f"JSON nests deeper than {limit} levels (or its brackets do not balance)", field)
    try:
        constant = {"refuse": _no_constants, "null": _as_null, "keep": None}[constants]
        return json.loads(text, parse_constant=constant)  # text, never bytes: no encoding guessed
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"{field} is not valid JSON: {exc}", field) from exc


def storable_problems(value: Any, path: str = "") -> list[tuple[str, str]]:
    """(field path, problem) for every value S3, DynamoDB and EventBridge could not hold. Iterative: no recursion."""
    problems: list[tuple[str, str]] = []
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                key_text = str(key)
                if _has_surrogate(key_text):
                    problems.append((where or "body", "a key holds an unpaired UTF-16 surrogate (not valid Unicode)"))
                else:
                    stack.append((f"{where}.{key_text}" if where else key_text, child))
        elif isinstance(item, list):
            stack.extend((f"{where}.{i}" if where else str(i), child) for i, child in enumerate(item))
        else:
            problem = _scalar_problem(item)
            if problem:
                problems.append((where or "body", problem))
    return sorted(problems)


def _scalar_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return "holds an unpaired UTF-16 surrogate (not valid Unicode)" if _has_surrogate(value) else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return f"numbers are limited to {MAX_DIGITS} digits" if abs(value) >= _TOO_MANY_DIGITS else None
    if isinstance(value, float):
        return _float_problem(value)
    return None


def _float_problem(value: float) -> str | None:
    if not math.isfinite(value):
        return "must be a finite number"
    magnitude = abs(value)
    if magnitude and not _MIN_MAGNITUDE <= magnitude <= _MAX_MAGNITUDE:
        return "is outside the storable range (1E-130 to 9.9E+125)"
    return None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
