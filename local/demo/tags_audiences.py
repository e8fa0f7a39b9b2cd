"""The demo's tag and audience stage: the brand's audiences defined through the audience API, the nightly full tag
refresh, the batch evaluator (DuckDB over a Parquet export) checked against the real-time tags, and the static
audience the campaign targets frozen into a snapshot.

The dynamic audience is defined before any event arrives (as a brand would have it set up), so tag_update keeps its
membership current during ingest and publishes audience.entered / audience.exited. The static audience reads it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from cdp import topology
from cdp.profile import keys
from cdp.profile.dynamodb import PK, SK
from cdp.profile.models import Profile
from cdp.profile.ports import TimelineEntry
from cdp.shared.dynamo import from_item
from cdp.shared.time import utc_now
from cdp.tags.catalog import bundled_catalog
from cdp.tags.dynamodb import DynamoTagStore, history_entries
from cdp.tags.evaluate import audience_tag
from cdp.tags.ports import TagHistoryEntry
from cdp_local.demo.catalog import BRAND_ID
from cdp_local.runtime import LocalRuntime
from cdp_local.tags_batch import BatchTagEngine, export_histories

DYNAMIC_AUDIENCE_ID = "active_buyers"
STATIC_AUDIENCE_ID = "winter_cake_sms"
# The static audience excludes recent returns (events): sized and exported over one segment, one scan returns every
# profile with its filed events; 16 segments would read a timeline per person it does not rule out otherwise
AUDIENCE_SEGMENTS = 1

DYNAMIC_AUDIENCE: dict[str, Any] = {
    "id": DYNAMIC_AUDIENCE_ID,
    "name": "Active buyers",
    "description": "Bought before and not churned: growth, mature or dormant",
    "brand_id": BRAND_ID,
    "kind": "dynamic",
    "include": {"tag": "lifecycle", "in": ["growth", "mature", "dormant"]},
    "owner": "crm",
}

STATIC_AUDIENCE: dict[str, Any] = {
    "id": STATIC_AUDIENCE_ID,
    "name": "Winter cake SMS",
    "description": "Active buyers who opted in to SMS, minus anyone who returned something in the last 30 days",
    "brand_id": BRAND_ID,
    "kind": "static",
    "include": {"audience": DYNAMIC_AUDIENCE_ID, "eq": True},
    "exclude": [{"agg": "count", "event": "order_returned", "within_days": 30, "gte": 1}],
    "consent_channel": "sms",
    "owner": "marketing",
}


class AudienceStageFailed(Exception):
    """An audience API call of the demo did not answer as expected."""


def _call(rt: LocalRuntime, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    headers = {"x-api-key": rt.admin_key, "content-type": "application/json"}
    response = rt.http(method, path, json.dumps(body).encode() if body is not None else b"", headers)
    if response.status not in (200, 201):
        raise AudienceStageFailed(f"{method} {path} answered {response.status}: {response.body[:500]!r}")
    return json.loads(response.body)


def define_dynamic_audience(rt: LocalRuntime) -> dict[str, Any]:
    return dict(_call(rt, "POST", "/v1/audiences", DYNAMIC_AUDIENCE))


def tags_and_audiences(
    rt: LocalRuntime, store: DynamoTagStore, output: Path
) -> tuple[dict[str, Any], dict[str, dict[str, int]]]:
    """Full refresh, batch-vs-real-time agreement, audience membership, and the static snapshot; with the values
    per tag over the surviving persons as the refresh left them (nothing after it in this stage writes tags)."""
    started = time.perf_counter()
    now = utc_now().replace(microsecond=0)  # the batch evaluates at the instant the refresh starts
    refresh = rt.fire_schedule("cdp-nightly-tag-refresh").result
    rt.drain()
    refresh_s = time.perf_counter() - started
    histories = list(store.scan_with_timelines(0, 1))  # one read for the comparison, the export and the counts
    stored = {profile.person_id: profile for profile, _ in histories}
    batch = _batch_agreement(histories, stored, now, output / "tags-export")
    members = sum(1 for p in stored.values() if p.tags.get(audience_tag(DYNAMIC_AUDIENCE_ID)) is not None)
    moves = _membership_moves(rt, stored)
    _call(rt, "POST", "/v1/audiences", STATIC_AUDIENCE)
    size = _call(rt, "POST", f"/v1/audiences/{STATIC_AUDIENCE_ID}/size", {"segments": AUDIENCE_SEGMENTS})
    preview = _call(rt, "GET", f"/v1/audiences/{STATIC_AUDIENCE_ID}/preview?limit=5")
    snapshot = _call(rt, "POST", f"/v1/audiences/{STATIC_AUDIENCE_ID}/export", {"segments": AUDIENCE_SEGMENTS})
    stage = {
        "full_refresh": {**(refresh or {}), "seconds": round(refresh_s, 1)},
        "batch_vs_real_time": batch,
        "dynamic_audience": {
            "id": DYNAMIC_AUDIENCE_ID,
            "members": members,
            "entered_events": moves["entered"],
            "exited_events": moves["exited"],
        },
        "static_audience": {
            "id": STATIC_AUDIENCE_ID,
            "size_estimate": size.get("estimate"),
            "size_exact": size.get("exact"),
            "preview_members": len(preview.get("members", [])),
            "snapshot_id": snapshot.get("snapshot_id"),
            "snapshot_members": snapshot.get("count"),
        },
    }
    return stage, tag_counts(stored.values())


def tag_counts(profiles: Iterable[Profile]) -> dict[str, dict[str, int]]:
    """Values per tag over the persons (their tags items, as the scan read them with the persons)."""
    counts: dict[str, Counter[str]] = {}
    for profile in profiles:
        for name, tag in profile.tags.items():
            counts.setdefault(name, Counter())[str(tag.value)] += 1
    return {name: dict(sorted(c.items())) for name, c in sorted(counts.items())}


def _batch_agreement(
    histories: Sequence[tuple[Profile, Sequence[TimelineEntry]]], stored: dict[str, Any], now: datetime, directory: Path
) -> dict[str, Any]:
    """Every catalog tag evaluated again in batch (DuckDB SQL over the export) and compared with the stored value."""
    catalog = bundled_catalog()
    export = export_histories(histories, directory)
    with BatchTagEngine(directory) as engine:
        result = engine.evaluate_tags(catalog, now)
        rows = engine.tag_rows(result, sorted(stored))
    differ: Counter[str] = Counter()
    compared = 0
    for person_id, profile in stored.items():
        batch_row = rows.get(person_id, {})
        for name in catalog.order:
            tag = profile.tags.get(name)
            compared += 1
            if _norm(tag.value if tag else None) != _norm(batch_row.get(name)):
                differ[name] += 1
    return {
        "persons": export.persons,
        "event_rows": export.events,
        "export_seconds": round(export.seconds, 1),
        "tags": len(catalog.order),
        "batch_seconds": round(result.seconds, 2),
        "values_compared": compared,
        "values_agreeing": compared - sum(differ.values()),
        "disagreements_by_tag": dict(differ.most_common()),
    }


def _norm(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _membership_moves(rt: LocalRuntime, persons: Mapping[str, Profile]) -> Counter[str]:
    """audience.entered / audience.exited as the tag history of the surviving persons recorded them (one history
    entry per event): the changes their tags items carry (read with the persons) and one scan kept to the history
    items, not a query per person."""
    tag = audience_tag(DYNAMIC_AUDIENCE_ID)
    changes: dict[tuple[str, datetime], bool] = {}
    for profile in persons.values():
        pending = (TagHistoryEntry.from_fields(e) for e in profile.tags_pending)
        changes.update({(keys.person_pk(profile.person_id), e.at): e.new is not None for e in pending if e.tag == tag})
    surviving = {keys.person_pk(person_id) for person_id in persons}
    pages = (
        rt.client("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName=topology.PROFILES_TABLE.local_name,
            FilterExpression="begins_with(#sk, :history)",
            ExpressionAttributeNames={"#sk": SK},
            ExpressionAttributeValues={":history": {"S": keys.TAG_HISTORY_PREFIX}},
        )
    )
    for page in pages:
        for raw in page["Items"]:
            item = from_item(raw)
            if item[PK] in surviving:
                changes.update({(item[PK], e.at): e.new is not None for e in history_entries(item) if e.tag == tag})
    return Counter("entered" if entered else "exited" for entered in changes.values())
