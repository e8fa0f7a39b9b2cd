"""Erasure and export against the emulated tables and bucket (moto): a person ingested through the real ingest path,
resolved, messaged and put in a campaign is erased everywhere, stays erased on re-ingest, and can be exported."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.campaigns.s3 import S3ArtifactStore
from cdp.channels.adapters import OutboxChannel
from cdp.channels.ledger import DynamoSendLedger
from cdp.channels.messages import DynamoMessageLog
from cdp.channels.models import OutboundMessage, message_id_for
from cdp.channels.ports import LoggedMessage, SendKey
from cdp.errors import NotFoundError
from cdp.identity.dynamodb import DynamoIdentityStore
from cdp.identity.service import resolve_event
from cdp.ingest.aws import DynamoDedupeLedger, S3RawArchive
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.ingest.service import EventsReceived, ingest
from cdp.privacy.aws import PrivacyPorts, privacy_ports
from cdp.privacy.models import ErasureReceipt, PersonErased
from cdp.privacy.service import erase_person, export_person, identifier_hash
from cdp.profile import keys
from cdp.profile.models import ModelScore, TagValue
from cdp.profile.ports import MessageRecord
from cdp.shared.dynamo import to_item
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher
from cdp.tags.dynamodb import DynamoTagStore
from cdp.tags.ports import TagHistoryEntry
from cdp_local.runtime.core import create_table

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
BRAND = "demo-brand"
BUCKET = topology.DATA_BUCKET_LOCAL_NAME
PROFILES = topology.PROFILES_TABLE.local_name
LEDGER = topology.LEDGER_TABLE.local_name
OFFERS = topology.OFFERS_TABLE.local_name
CAMPAIGN, RUN = "spring-sale", "spring-sale-run-1"

# Ann's identifiers, and the strings that must not survive her erasure anywhere (raw and normalized forms)
PHONE = {"type": "phone", "value": "13800138000"}
DEVICE = {"type": "device_id", "value": "DEV-ANN-1"}
EMAIL = {"type": "email", "value": "Ann.Lee@Example.com"}
OPENID = {"type": "wechat_openid", "value": "oANN123", "scope": "wx-oa"}
ANN_STRINGS = ("13800138000", "dev-ann-1", "ann.lee@example.com", "oann123", "ann lee")
BOB_PHONE = {"type": "phone", "value": "13900139000"}


class RecordingPublisher(EventPublisher):
    def __init__(self) -> None:
        self.published: list[Publishable] = []

    def publish(self, events: Sequence[Publishable], correlation_id: str) -> list[str]:
        self.published.extend(events)
        return [str(i) for i in range(len(events))]

    def received(self) -> list[CanonicalEvent]:
        return [ev for e in self.published if isinstance(e, EventsReceived) for ev in e.events]

    def erased(self) -> list[PersonErased]:
        return [e for e in self.published if isinstance(e, PersonErased)]


@dataclass
class World:
    db: Any
    s3: Any
    store: DynamoIdentityStore
    ports: PrivacyPorts
    bus: RecordingPublisher

    def post(self, request_id: str, body: dict[str, Any], minutes: int = 0) -> None:
        """One HTTP request through the real ingest path (raw archive, dedupe ledger), then identity resolution."""
        publisher = RecordingPublisher()
        result = ingest(
            json.dumps(body).encode(),
            request_id,
            T0 + timedelta(minutes=minutes),
            S3RawArchive(BUCKET, client=self.s3),
            DynamoDedupeLedger(LEDGER, client=self.db),
            publisher,
        )
        assert not result.rejected, result.rejected
        for event in publisher.received():
            resolve_event(event, self.store, self.bus)

    def erase(self, person_id: str) -> ErasureReceipt:
        p = self.ports
        return erase_person(person_id, "privacy-officer", p.records, p.archive, p.ledger, p.offers, p.publisher, now=T0)

    @property
    def deps(self) -> tuple[DynamoIdentityStore, RecordingPublisher]:
        return self.store, self.bus

    def person_of(self, identifier: dict[str, str]) -> str | None:
        key = parse_event(_event("probe", "identify", [identifier], {})).identifiers[0].key
        return self.store.person_for_identifier(BRAND, key)


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        db = boto3.client("dynamodb")
        for spec in topology.TABLES:
            create_table(db, spec)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})  # as on AWS
        bus = RecordingPublisher()
        ports = privacy_ports(PROFILES, LEDGER, BUCKET, "cdp-bus", OFFERS, dynamodb=db, s3=s3)
        ports = PrivacyPorts(ports.records, ports.archive, ports.ledger, ports.offers, bus)
        yield World(db, s3, DynamoIdentityStore(PROFILES, client=db), ports, bus)


def _event(event_id: str, event_type: str, identifiers: list[dict[str, str]], props: dict[str, Any], n: int = 0):
    return {
        "event_id": event_id,
        "event_type": event_type,
        "source": "app",
        "brand_id": BRAND,
        "occurred_at": (T0 + timedelta(minutes=n)).isoformat(),
        "identifiers": identifiers,
        "properties": props,
    }


ORDER = {
    "order_id": "o-1",
    "lines": [{"sku": "CAKE-1", "category": "cake", "quantity": 1, "unit_price_minor": 26800}],
    "total_minor": 26800,
    "currency": "CNY",
}


def _ann_and_bob(world: World) -> tuple[str, str]:
    """Ann: an identify (phone + device) and Bob's identify in one batch, points on e-mail + OpenID (a second person
    then), and an order on e-mail + device that merges the two; a message, a campaign, tags, a score, an edit."""
    world.post(
        "req-1",
        {
            "batch": [
                _event("e-identify", "identify", [PHONE, DEVICE], {"name": "Ann Lee", "city": "Shanghai"}, 1),
                _event("e-bob", "identify", [BOB_PHONE], {"name": "Bob"}, 2),
            ]
        },
    )
    world.post(
        "req-2",
        _event("e-points", "points_changed", [EMAIL, OPENID], {"delta": 300, "program": "app", "reason": "bonus"}, 3),
    )
    world.post("req-3", _event("e-order", "order_placed", [EMAIL, DEVICE], ORDER, 4), minutes=90)
    ann, bob = world.person_of(PHONE), world.person_of(BOB_PHONE)
    assert ann and bob and ann != bob

    store = world.store
    tags = DynamoTagStore(topology.PROFILES_TABLE.local_name, client=world.db)
    growth = TagHistoryEntry(tag="lifecycle", old=None, new="growth", at=T0, cause="test")
    tags.write_tags(ann, 0, {"lifecycle": TagValue(value="growth", since=T0)}, None, [growth])
    store.put_score(ann, "response", ModelScore(score=0.7, model_version="v1", scored_at=T0))
    outbox = OutboxChannel(BUCKET, client=world.s3, clock=lambda: T0)
    ledger = DynamoSendLedger(LEDGER, client=world.db)
    for pid, address in ((ann, "+8613800138000"), (bob, "+8613900139000")):
        message_id = message_id_for(CAMPAIGN, "touch1", pid)
        claim = ledger.claim(SendKey(CAMPAIGN, "touch1", pid), message_id, RUN, T0)
        message = OutboundMessage(
            message_id=message_id,
            campaign_id=CAMPAIGN,
            run_id=RUN,
            step="touch1",
            channel="sms",
            person_id=pid,
            address=address,
            body="Hi, 20% off cakes this week",
            created_at=T0,
        )
        receipt = outbox.send(message)
        assert claim.attempt_id
        ledger.mark_sent(SendKey(CAMPAIGN, "touch1", pid), claim.attempt_id, receipt.provider_id, T0)
        store.record_message(MessageRecord(pid, message_id, CAMPAIGN, "touch1", "sms", T0, receipt.provider_id, "sent"))
        logged = LoggedMessage(message_id, BRAND, pid, CAMPAIGN, RUN, "touch1", "sms", "sent", T0, "wechat", f"w-{pid}")
        DynamoMessageLog(LEDGER, client=world.db).record([logged])  # its lifecycle item and provider-id pointer
    artifacts = S3ArtifactStore(BUCKET, client=world.s3)
    members = [{"person_id": ann, "score": 0.7}, {"person_id": bob, "score": 0.4}]
    artifacts.put_json(f"campaigns/{RUN}/audience.json", {"manifest": {"run_id": RUN}, "treatment": members})
    artifacts.put_json(f"campaigns/{RUN}/batches/touch1/0000.json", [ann, bob])
    edit = {"pk": keys.person_pk(ann), "sk": keys.edit_sk(T0, "edit-1"), "actor": "crm", "traits": {"city": "Suzhou"}}
    world.db.put_item(TableName=PROFILES, Item=to_item(edit))
    return ann, bob


def _scan(world: World, table: str) -> list[dict[str, Any]]:
    """Every item, a person item's compressed body opened (so a search of its text sees what it holds)."""
    pages = world.db.get_paginator("scan").paginate(TableName=table)
    items = [item for page in pages for item in page["Items"]]
    for item in items:
        if "B" in item.get("data", {}):
            item["data"] = {"S": zlib.decompress(item["data"]["B"]).decode()}
    return items


def _objects(world: World) -> dict[tuple[str, str], str]:
    """Every version of every object in the bucket: (key, version id) -> its text."""
    out: dict[tuple[str, str], str] = {}
    for page in world.s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET):
        for version in page.get("Versions", []):
            body = world.s3.get_object(Bucket=BUCKET, Key=version["Key"], VersionId=version["VersionId"])["Body"]
            out[(version["Key"], version["VersionId"])] = body.read().decode()
    return out


def _mentions(text: str, needles: Sequence[str]) -> list[str]:
    low = text.lower()
    return [n for n in needles if n.lower() in low]


def test_erasure_removes_every_trace_and_keeps_everyone_else(world: World) -> None:
    # Given Ann (two persons merged into one) and Bob, with events, a message, a campaign, tags, a score and an edit
    ann, bob = _ann_and_bob(world)
    profile = world.store.get(ann)
    assert profile is not None and len(profile.merged_from) == 1 and len(profile.identifiers) == 4
    ann_ids = (ann, *profile.merged_from)
    needles = (*ann_ids, *ANN_STRINGS)

    # When Ann is erased
    receipt = world.erase(ann)

    # Then no item of either table names her ids or any of her identifier values (the receipt names only her ids)
    for table in (PROFILES, LEDGER):
        for item in _scan(world, table):
            text = json.dumps(item)
            if item["pk"]["S"].startswith("ERASURE#"):
                assert not _mentions(text, ANN_STRINGS), item
            else:
                assert not _mentions(text, needles), item
    # and no version of any object in the bucket does
    objects = _objects(world)
    assert objects and not [key for key, text in objects.items() if _mentions(text, needles)]
    # and Bob is untouched: his person, his raw event, his campaign rows, his outbox message and send record
    assert world.person_of(BOB_PHONE) == bob
    assert [t.event.event_id for t in world.store.timeline(world.store.get(bob))] == ["e-bob"]  # type: ignore[arg-type]
    texts = "\n".join(objects.values())
    assert texts.count(bob) == 3 and "e-bob" in texts
    assert DynamoSendLedger(LEDGER, client=world.db).record(SendKey(CAMPAIGN, "touch1", bob)) is not None
    bob_message = message_id_for(CAMPAIGN, "touch1", bob)
    assert list(DynamoMessageLog(LEDGER, client=world.db).get_many([bob_message])) == [bob_message]

    # And the receipt lists what was erased, with identifiers only as hashes
    keys_ = sorted(profile.identifiers)
    assert receipt.person_id == ann and receipt.merged_person_ids == list(profile.merged_from)
    assert receipt.identifiers_suppressed == sorted(identifier_hash(k) for k in keys_)
    assert receipt.identifier_records == receipt.identifiers_suppressed
    assert receipt.filed_events == [f"{BRAND}#app#e-{kind}" for kind in ("identify", "order", "points")]
    assert receipt.profile_items == [f"{ann}/PROFILE"]
    assert receipt.merged_person_items == [f"{profile.merged_from[0]}/PROFILE"]
    counts = receipt.counts
    assert (counts["messages"], counts["edits"], counts["ledger_records"]) == (1, 1, 2)  # the send and its message
    assert counts["lineage"] == 2  # the merge, filed under both persons
    # archive keys end in {receipt time}-{request id}
    raw = {
        c.key.rsplit("-", 2)[-2] + "-" + c.key.rsplit("-", 1)[-1]: (c.action, c.rows_removed)
        for c in receipt.raw_archive_objects
    }
    assert raw == {"req-1": ("rewritten", 1), "req-2": ("deleted", 0), "req-3": ("deleted", 0)}
    assert [(c.action, c.rows_removed) for c in receipt.campaign_objects] == [("rewritten", 1), ("rewritten", 1)]
    assert [c.action for c in receipt.outbox_objects] == ["deleted"]
    assert {r.what.split(" (")[0] for r in receipt.retained} >= {"applied-event markers", "suppression items"}
    assert not _mentions(receipt.model_dump_json(), ANN_STRINGS)
    # and downstream systems are told
    assert [(e.person_id, e.merged_person_ids) for e in world.bus.erased()] == [(ann, list(profile.merged_from))]


def test_reingest_with_any_erased_identifier_is_dropped_whole(world: World) -> None:
    # Given Ann erased
    ann, _ = _ann_and_bob(world)
    world.erase(ann)
    before = _scan(world, PROFILES)

    # When an event with her phone arrives again
    event = parse_event(_event("e-again", "identify", [PHONE], {"name": "Ann Lee"}, 10))
    outcome = resolve_event(event, world.store, world.bus)

    # Then it is suppressed: no person, nothing stored
    assert outcome.suppressed and outcome.person_id is None and not outcome.applied
    assert world.person_of(PHONE) is None

    # When events bring her phone together with a new device id, and her e-mail with a phone never seen before
    new_device = {"type": "device_id", "value": "DEV-NEW-9"}
    fresh_phone = {"type": "phone", "value": "13700137000"}
    outcomes = [
        resolve_event(parse_event(_event("e-dev", "page_view", [PHONE, new_device], {"url": "/"}, 11)), *world.deps),
        resolve_event(parse_event(_event("e-new", "identify", [EMAIL, fresh_phone], {"name": "A"}, 12)), *world.deps),
    ]

    # Then both belong to the erased person and are dropped whole: no device-only or phone-only person appears,
    # and the profiles table holds exactly what it held before
    assert [(o.suppressed, o.person_id, o.applied) for o in outcomes] == [(True, None, False)] * 2
    assert world.person_of(new_device) is None and world.person_of(fresh_phone) is None
    assert _scan(world, PROFILES) == before


def test_a_repeated_erasure_returns_the_stored_receipt(world: World) -> None:
    # Given Ann erased once
    ann, _ = _ann_and_bob(world)
    merged_id = world.store.get(ann).merged_from[0]  # type: ignore[union-attr]
    first = world.erase(ann)

    # When she is erased again, by her id and by the id of the person merged into her
    again, via_merged = world.erase(ann), world.erase(merged_id)

    # Then both return the first receipt, and person.erased is published again (the first publish may have failed)
    assert again == first and via_merged == first
    assert len(world.bus.erased()) == 3
    # and an id that never existed is not found
    with pytest.raises(NotFoundError):
        world.erase("no-such-person")


def test_export_holds_the_profile_events_messages_and_history(world: World) -> None:
    # Given Ann with three events over two merged persons, a message, tags, a score and an edit
    ann, _ = _ann_and_bob(world)

    # When her data is exported, by her id and by the merged person's id
    export = export_person(ann, world.ports.records)
    merged_id = export.merged_person_ids[0]
    via_merged = export_person(merged_id, world.ports.records)

    # Then it holds her profile, identifiers, events, messages, merge history, edits, tags and scores
    assert export.person_id == via_merged.person_id == ann
    assert [e.event_id for e in export.events] == ["e-identify", "e-points", "e-order"]
    assert export.profile.traits.name == "Ann Lee" and export.profile.facts.order_count == 1
    assert len(export.identifiers) == 4 and [m.campaign_id for m in export.messages] == [CAMPAIGN]
    assert [r.kind for r in export.lineage] == ["merge"]
    assert export.edits[0]["traits"] == {"city": "Suzhou"}
    assert export.tags["lifecycle"].value == "growth" and export.scores["response"].score == 0.7
    assert "Ann Lee" in export.model_dump_json()  # serializable as the API will return it

    # And after the erasure there is nothing to export
    world.erase(ann)
    with pytest.raises(NotFoundError):
        export_person(ann, world.ports.records)


def _resolve(world: World, event_id: str, *identifiers: dict[str, str], n: int = 0) -> None:
    resolve_event(parse_event(_event(event_id, "identify", list(identifiers), {}, n)), world.store, world.bus)


def _table_mentions(world: World, needles: Sequence[str]) -> list[str]:
    found = []
    for table in (PROFILES, LEDGER):
        for item in _scan(world, table):
            if not item["pk"]["S"].startswith("ERASURE#") and _mentions(json.dumps(item), needles):
                found.append(f"{item['pk']['S']} {item['sk']['S']}")
    return found


def test_a_shared_tablet_keeps_serving_others_without_the_erased_person(world: World) -> None:
    # Given a store tablet used with Ann's phone and then with Carol's, so it is quarantined as a hub
    tablet = {"type": "device_id", "value": "store-tablet-1"}
    carol_phone = {"type": "phone", "value": "13600136000"}
    _resolve(world, "e-ann", PHONE, tablet, n=1)
    _resolve(world, "e-carol", carol_phone, tablet, n=2)
    ann, carol = world.person_of(PHONE), world.person_of(carol_phone)
    assert ann and carol and ann != carol
    assert [r["identifier"] for r in world.store.review_queue("g.demo-group")] == ["device_id:store-tablet-1"]

    # When Ann is erased
    receipt = world.erase(ann)

    # Then nothing names her or her phone: not the hub's record, not its review entry
    assert _table_mentions(world, (ann, "13800138000")) == []
    tablet_key = "device_id:store-tablet-1"
    record = world.store.lookup_identifiers("g.demo-group", [tablet_key])[tablet_key]
    assert record.shared == "hub" and record.up == frozenset({"phone:+8613600136000"})
    assert identifier_hash(tablet_key) not in receipt.identifiers_suppressed  # the tablet is nobody's to erase
    assert f"identifier:{identifier_hash(tablet_key)}" in receipt.redacted_items
    assert any(r.what.startswith("shared") and r.count == 1 for r in receipt.retained)
    # and Carol is untouched, and the tablet still works for her
    assert world.person_of(carol_phone) == carol
    _resolve(world, "e-carol-2", carol_phone, tablet, n=3)
    assert world.person_of(carol_phone) == carol


def test_a_person_split_off_keeps_their_history_without_the_erased_person(world: World) -> None:
    # Given Ann's device unbound from her by an operator, so it became a person of its own with a split in history
    from cdp.identity.service import IdentityOperations

    _resolve(world, "e-ann", PHONE, DEVICE, n=1)
    ann = world.person_of(PHONE)
    assert ann
    IdentityOperations(world.store, world.bus).unbind(ann, "device_id:dev-ann-1", "support", "sold the phone")
    other = world.person_of(DEVICE)
    assert other and other != ann
    assert any(ann in r.parts for r in world.store.lineage(other))

    # When Ann is erased
    receipt = world.erase(ann)

    # Then the other person's history and identifier record no longer name her or her phone
    assert _table_mentions(world, (ann, "13800138000")) == []
    history = world.store.lineage(other)
    assert [r.kind for r in history] == ["split"] and list(history[0].parts) == [other]
    assert f"lineage:{other}/" in " ".join(receipt.redacted_items)
    assert world.person_of(DEVICE) == other


def test_identifiers_are_suppressed_before_anything_is_deleted(world: World) -> None:
    # Given Ann, and a profiles-table adapter that logs its writes in order
    from cdp.privacy.aws import DynamoPersonRecords

    calls: list[str] = []

    class Logged(DynamoPersonRecords):
        def suppress(self, namespace: str, keys_: Any, at: datetime) -> None:
            calls.append("suppress")
            super().suppress(namespace, keys_, at)

        def delete(self, keys_: Any) -> None:
            calls.append("delete")
            super().delete(keys_)

        def save_receipt(self, receipt: ErasureReceipt, person_ids: Any) -> None:
            calls.append("receipt")
            super().save_receipt(receipt, person_ids)

    ann, _ = _ann_and_bob(world)
    records = Logged(PROFILES, client=world.db)

    # When she is erased
    erase_person(ann, "dpo", records, world.ports.archive, world.ports.ledger, world.ports.offers, world.bus, now=T0)

    # Then the suppressions came first, the receipt before the profile items went, and a final sweep found nothing
    assert calls == ["suppress", "delete", "receipt", "delete", "delete"]
