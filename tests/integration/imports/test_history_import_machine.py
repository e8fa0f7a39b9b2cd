"""The history import state machine on the local runtime: a brand's past events (with bad lines among them) dropped
under imports/history/ become persons, filed events, identifier records and tag history; live traffic then resolves on
top of them, and a second import into the same namespace is refused.

The runtime executes infra/statemachines/history_import.asl.json on moto Step Functions with the real handler.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from cdp import topology
from cdp.app.history_import import HistoryReport
from cdp.identity.dynamodb import DynamoIdentityStore
from cdp.identity.history import plan_history
from cdp.identity.service import resolve_event
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.org import load_org
from cdp.shared.time import utc_now
from cdp.tags.dynamodb import DynamoTagStore
from cdp.tags.history import as_of
from cdp_local.cli_import import ImportOutcome, progress_store, run_history
from cdp_local.demo.brand import generate_brand
from cdp_local.runtime import LocalRuntime
from tests.fakes.identity import NullPublisher

BRAND = load_org().brand("demo-brand")
BUCKET = topology.DATA_BUCKET_LOCAL_NAME

pytestmark = pytest.mark.xdist_group("imports")  # one runtime per process: the import modules run in turn


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return list(generate_brand(customers=60, seed=11).events)


def _bad_lines(good: dict[str, Any]) -> list[bytes]:
    other_brand = {**good, "event_id": "bad-brand", "brand_id": "other-brand"}
    platform = {**good, "event_id": "bad-source", "source": "cdp"}
    no_ids = {**good, "event_id": "bad-ids", "identifiers": []}
    return [
        b"{not json",
        json.dumps(other_brand).encode(),
        json.dumps(platform).encode(),
        json.dumps(no_ids).encode(),
        b"[1, 2]",
        json.dumps({**good, "event_id": "bad-nan"}).encode().replace(b"}", b', "x": NaN}', 1),
    ]


@pytest.fixture(scope="module")
def imported(events: list[dict[str, Any]]) -> Iterator[tuple[LocalRuntime, ImportOutcome, bytes]]:
    lines = [json.dumps(e, ensure_ascii=False).encode() for e in events]
    body = b"\n".join([*lines[:10], lines[3], *_bad_lines(events[0]), b"", *lines[10:]]) + b"\n"
    with LocalRuntime(state_machines={topology.HISTORY_IMPORT_MACHINE.key}) as rt:
        outcome = run_history(rt, body, BRAND.brand_id)
        yield rt, outcome, body


def test_every_line_is_accounted_for_and_bad_lines_are_rejected_with_their_field(
    imported: tuple[LocalRuntime, ImportOutcome, bytes], events: list[dict[str, Any]]
) -> None:
    rt, outcome, _ = imported
    assert outcome.status == "SUCCEEDED", outcome.error
    report = HistoryReport.model_validate(outcome.report)
    c = report.counts
    assert report.lines == len(events) + 1 + 6 == c.accepted + c.duplicates + c.rejected
    assert (c.accepted, c.duplicates, c.rejected) == (len(events), 1, 6)
    assert report.events_filed + report.unanchored == len(events)
    body = rt.client("s3").get_object(Bucket=BUCKET, Key=report.rejects_key)["Body"].read()
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert [(r["row"], r["field"]) for r in rows] == [
        ("12", "line"),
        ("13", "brand_id"),
        ("14", "source"),
        ("15", "identifiers"),
        ("16", "line"),
        ("17", "line"),
    ]
    assert "outside the writer's scope brand:demo-brand" in rows[1]["reason"]
    progress = progress_store(rt).get(report.import_id)
    assert progress is not None and progress.status == "succeeded" and progress.rows_done == report.lines


def test_persons_and_identifiers_are_the_bulk_resolution_with_folded_profiles(
    imported: tuple[LocalRuntime, ImportOutcome, bytes], events: list[dict[str, Any]]
) -> None:
    rt, outcome, _ = imported
    parsed = [parse_event(e) for e in events]
    expected = plan_history(parsed, BRAND)  # the same resolution, folded in one pass (no tags)
    store = DynamoIdentityStore(topology.PROFILES_TABLE.local_name, client=rt.client("dynamodb"))
    stored = store.load_persons([p.person_id for p in expected.profiles])
    assert len(stored) == len(expected.profiles) == HistoryReport.model_validate(outcome.report).persons
    for want in expected.profiles:
        got = stored[want.person_id]
        assert (got.identifiers, got.links, got.traits, got.consent) == (
            want.identifiers,
            want.links,
            want.traits,
            want.consent,
        )
        assert got.scoped_facts == want.scoped_facts
        assert got.tags, f"{want.person_id} has no tags"
    records = store.lookup_identifiers(BRAND.namespace, [r.key for r in expected.records])
    assert {k: r.person_id for k, r in records.items()} == {r.key: r.person_id for r in expected.records}
    # And every event is filed where live would file it: under its anchor, a shared identifier's included
    filed = store.events_anchored(BRAND.namespace, [r.key for r in expected.records])
    assert sorted((a, e.dedupe_key) for a, e in filed) == sorted((a, e.dedupe_key) for a, e in expected.filed)
    report = HistoryReport.model_validate(outcome.report)
    assert report.events_filed == len(expected.filed) and report.unanchored == len(events) - len(expected.filed)


def test_tag_history_reads_as_of_past_dates(
    imported: tuple[LocalRuntime, ImportOutcome, bytes], events: list[dict[str, Any]]
) -> None:
    rt, _, _ = imported
    tags = DynamoTagStore(topology.PROFILES_TABLE.local_name, client=rt.client("dynamodb"))
    parsed = sorted((parse_event(e) for e in events), key=lambda e: e.occurred_at)
    buyers = [e for e in parsed if e.event_type == "order_placed"]
    found = ((e, tags.person_for_identifier(BRAND.brand_id, i.key)) for e in buyers for i in e.identifiers)
    buyer, person = next((e, p) for e, p in found if p is not None)
    history = tags.tag_history(person)
    assert history and all(h.cause.startswith("history-import:") for h in history)
    assert min(h.at for h in history) < utc_now() - timedelta(days=30)  # stamped when it happened, not when imported
    before, after = buyer.occurred_at - timedelta(seconds=1), buyer.occurred_at + timedelta(seconds=1)
    assert tags.tags_as_of(person, after, ["rfm_frequency"]) != tags.tags_as_of(person, before, ["rfm_frequency"])
    assert tags.tags_as_of(person, utc_now()) == as_of(history, utc_now())


def test_a_live_redelivery_of_an_imported_event_is_not_applied_again(
    imported: tuple[LocalRuntime, ImportOutcome, bytes], events: list[dict[str, Any]]
) -> None:
    rt, _, _ = imported
    store = DynamoIdentityStore(topology.PROFILES_TABLE.local_name, client=rt.client("dynamodb"))
    event: CanonicalEvent = parse_event(events[0])
    outcome = resolve_event(event, store, NullPublisher())
    assert outcome.person_id is not None and not outcome.applied


def test_a_second_import_into_the_same_namespace_is_refused(
    imported: tuple[LocalRuntime, ImportOutcome, bytes],
) -> None:
    rt, _, body = imported
    again = run_history(rt, body, BRAND.brand_id, name="again.jsonl")
    assert again.status == "FAILED"
    assert again.error is not None and "already holds identifiers" in again.error
