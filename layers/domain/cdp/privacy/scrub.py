"""Pure helpers that remove a person from documents: JSON artifacts, raw request bodies, other persons' records."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable
from typing import Any

from cdp.errors import InvalidInputError
from cdp.shared.safe_json import loads as safe_loads

ERASED = "[erased]"


ARCHIVED_JSON_DEPTH = 200  # bodies archived before ingest bounded nesting at 32; the walkers below recurse per level


def archived_json(body: bytes | str) -> Any:
    """An archived body or stored document as JSON, read as it was written (NaN kept); InvalidInputError when it is
    not JSON or nests past what the walkers can recurse through."""
    return safe_loads(body, "body", limit=ARCHIVED_JSON_DEPTH, constants="keep")


def prune(
    value: Any,
    *,
    drop_element: Callable[[Any], bool],
    drop_entry: Callable[[str, Any], bool],
    scrub_text: Callable[[str], tuple[str, int]],
) -> tuple[Any, int]:
    """`value` walked whole: list elements where `drop_element` holds and object entries where `drop_entry` holds are
    removed, every other string goes through `scrub_text`; and how many things were removed or rewritten."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, list | dict):
        count = 0

        def keep(element: Any) -> Any:
            nonlocal count
            clean, n = prune(element, drop_element=drop_element, drop_entry=drop_entry, scrub_text=scrub_text)
            count += n
            return clean

        if isinstance(value, list):
            kept = [keep(e) for e in value if not drop_element(e)]
            return kept, count + len(value) - len(kept)
        out = {k: keep(e) for k, e in value.items() if not drop_entry(k, e)}
        return out, count + len(value) - len(out)
    return value, 0


def drop_values(value: Any, erased: Collection[str]) -> tuple[Any, int]:
    """`value` without any reference to an erased string, and how many entries were removed.

    A list element or an object entry is removed whole when it is an erased string, or an object holding one
    directly (a row such as `{"person_id": ..., "score": ...}`, a message to the person); an object entry also when
    its key is an erased string. Any other string that contains one (a rule text, a failure message) has it masked
    as `[erased]`. Everything else is kept and searched recursively.
    """
    return prune(
        value,
        drop_element=lambda e: _names(e, erased),
        drop_entry=lambda k, e: k in erased or _names(e, erased),
        scrub_text=lambda text: _mask(text, erased),
    )


def _mask(text: str, erased: Collection[str]) -> tuple[str, int]:
    masked = text
    for needle in erased:
        if needle and needle in masked:
            masked = masked.replace(needle, ERASED)
    return masked, int(masked != text)


def _names(element: Any, erased: Collection[str]) -> bool:
    if isinstance(element, str):
        return element in erased
    if isinstance(element, dict):
        return any(isinstance(v, str) and v in erased for v in element.values())
    return False


def mentions(body: bytes, needles: Iterable[str]) -> bool:
    """Whether any needle occurs in the bytes (a cheap filter before parsing a document)."""
    return any(n.encode() in body for n in needles if n)


def scrub_json(body: bytes, erased: Collection[str]) -> tuple[bytes | None, int]:
    """A JSON document without the erased rows: (new body, rows removed). None: the document is about the person
    (it names them directly, or nothing is left without them) or cannot be parsed, so it must be deleted whole."""
    try:
        document = archived_json(body)
    except InvalidInputError:
        return None, 0
    if _names(document, erased):
        return None, 0
    clean, removed = drop_values(document, erased)
    out = json.dumps(clean, separators=(",", ":"), ensure_ascii=False).encode()
    if clean in ({}, []) or mentions(out, erased):
        return None, removed
    return out, removed


def scrub_raw_body(body: bytes, dedupe_keys: Collection[str]) -> tuple[bytes | None, int]:
    """A raw ingest body (one event or `{"batch": [...]}`) without the events whose dedupe key
    (`{brand_id}#{source}#{event_id}`) is given: (new body, events removed); None when nothing of the body is left."""
    try:
        payload = archived_json(body)
    except InvalidInputError:
        return body, 0
    if isinstance(payload, dict) and isinstance(payload.get("batch"), list):
        items: list[Any] = payload["batch"]
        kept = [item for item in items if _dedupe_key(item) not in dedupe_keys]
        removed = len(items) - len(kept)
        if not kept:
            return None, removed
        if not removed:
            return body, 0
        return json.dumps({**payload, "batch": kept}, separators=(",", ":"), ensure_ascii=False).encode(), removed
    if _dedupe_key(payload) in dedupe_keys:
        return None, 1
    return body, 0


def _dedupe_key(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    return f"{item.get('brand_id')}#{item.get('source')}#{item.get('event_id')}"
