"""Erasure against raw archive objects of every format, on the emulated bucket and tables (moto): requests go through
the real connector path (archive with metadata, dedupe ledger), the person is erased, and the archive can still be
replayed without bringing them back."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.connectors.base import Connector, InboundRequest
from cdp.connectors.feedback import SmsReceiptConnector
from cdp.connectors.pos import PosConnector
from cdp.connectors.registry import connector_for
from cdp.connectors.replay import ReplaySummary, replay_archive
from cdp.connectors.segment import SegmentConnector
from cdp.connectors.service import Ports, receive
from cdp.connectors.sources import StaticSources, parse_sources
from cdp.identity.dynamodb import DynamoIdentityStore
from cdp.identity.service import resolve_event
from cdp.ingest.aws import DynamoDedupeLedger, S3RawArchive
from cdp.ingest.events import CanonicalEvent, parse_event
from cdp.ingest.security import hmac_hex
from cdp.ingest.service import EventsReceived, ingest
from cdp.privacy.aws import privacy_ports
from cdp.privacy.models import ErasureReceipt
from cdp.privacy.service import erase_person
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher
from cdp_local.runtime.core import create_table

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BRAND = "demo-brand"
BUCKET = topology.DATA_BUCKET_LOCAL_NAME
PROFILES, LEDGER = topology.PROFILES_TABLE.local_name, topology.LEDGER_TABLE.local_name
OFFERS = topology.OFFERS_TABLE.local_name
SOURCES = parse_sources(
    {
        "write_keys": {"wk-1": {"brand_id": BRAND, "channel": "app"}},
        "sms": {"aliyun": {"brand_id": BRAND, "secret": "sms-secret"}},
        "pos": {"demo-pos": {"brand_id": BRAND, "store_id": "sh01", "secret": "pos-secret"}},
    }
)
# Ann as the channels wrote her (not normalized): the strings that must not survive in any raw object
ANN_PHONE, ANN_EMAIL, ANN_CARD = "138-0013-8000", "Ann.Lee@Example.com", "MC-ANN-1"
ANN_STRINGS = ("13800138000", "138-0013-8000", "ann.lee@example.com", "mc-ann-1", "ann lee", "dev-ann-1")
BOB_PHONE = "13900139000"
SOURCES_REPLAYED = ("segment", "sms-feedback", "pos", "events")


class Bus(EventPublisher):
    def __init__(self) -> None:
        self.published: list[Publishable] = []

    def publish(self, events: Sequence[Publishable], correlation_id: str) -> list[str]:
        self.published.extend(events)
        return [str(i) for i in range(len(events))]

    def drain(self) -> list[CanonicalEvent]:
        out = [ev for e in self.published if isinstance(e, EventsReceived) for ev in e.events]
        self.published.clear()
        return out


@dataclass
class World:
    db: Any
    s3: Any
    store: DynamoIdentityStore
    ports: Ports
    bus: Bus
    identity_bus: Bus

    def resolve_published(self) -> None:
        for event in self.bus.drain():
            resolve_event(event, self.store, self.identity_bus)

    def send(self, connector: Connector, body: bytes, minute: int, headers: dict[str, str], key: str | None = None):
        request = InboundRequest(
            connector.name, "POST", body, T0 + timedelta(minutes=minute), f"req-{minute}", key=key, headers=headers
        )
        result = receive(request, connector, self.ports).result
        assert not result.rejected, result.rejected
        self.resolve_published()

    def post_canonical(self, body: dict[str, Any], minute: int) -> None:
        archive, ledger = S3RawArchive(BUCKET, client=self.s3), DynamoDedupeLedger(LEDGER, client=self.db)
        result = ingest(
            json.dumps(body).encode(), f"req-{minute}", T0 + timedelta(minutes=minute), archive, ledger, self.bus
        )
        assert not result.rejected, result.rejected
        self.resolve_published()

    def erase(self, person_id: str) -> ErasureReceipt:
        p = privacy_ports(PROFILES, LEDGER, BUCKET, "cdp-bus", OFFERS, dynamodb=self.db, s3=self.s3)
        return erase_person(
            person_id, "dpo", p.records, p.archive, p.ledger, p.offers, self.identity_bus, now=T0 + timedelta(hours=2)
        )

    def replay(self, source: str) -> ReplaySummary:
        return replay_archive(source, T0, T0 + timedelta(hours=1), self.ports, connector_for)

    def person_of(self, kind: str, value: str) -> str | None:
        probe = {
            "event_id": "p",
            "event_type": "identify",
            "source": "app",
            "brand_id": BRAND,
            "occurred_at": T0.isoformat(),
            "identifiers": [{"type": kind, "value": value}],
            "properties": {},
        }
        return self.store.person_for_identifier(BRAND, parse_event(probe).identifiers[0].key)


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        db = boto3.client("dynamodb")
        for spec in topology.TABLES:
            create_table(db, spec)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        bus = Bus()
        ports = Ports(
            StaticSources(SOURCES),
            S3RawArchive(BUCKET, client=s3),
            DynamoDedupeLedger(LEDGER, client=db),
            bus,
            lambda _brand: "CN",
        )
        yield World(db, s3, DynamoIdentityStore(PROFILES, client=db), ports, bus, Bus())


def _basic() -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(b"wk-1:").decode()}


def _signed(body: bytes, secret: str, minute: int) -> dict[str, str]:
    t = int((T0 + timedelta(minutes=minute)).timestamp())
    return {"x-cdp-signature": f"t={t},v1={hmac_hex(secret, f'{t}.'.encode() + body)}"}


def _segment_batch() -> bytes:
    ann = {
        "type": "identify",
        "messageId": "m-ann",
        "userId": "u-ann",
        "anonymousId": "DEV-ANN-1",
        "traits": {"email": ANN_EMAIL, "phone": ANN_PHONE, "name": "Ann Lee"},
        "timestamp": "2026-03-02T09:00:00Z",
    }
    bob = {
        "type": "identify",
        "messageId": "m-bob",
        "userId": "u-bob",
        "traits": {"phone": BOB_PHONE, "name": "Bob"},
        "timestamp": "2026-03-02T09:00:01Z",
    }
    return json.dumps({"batch": [ann, bob], "sentAt": "2026-03-02T09:00:02Z"}).encode()


def _sms_receipts() -> bytes:
    def receipt(phone: str, biz: str, message: str) -> dict[str, Any]:
        return {
            "phone_number": phone,
            "send_time": "2026-03-02 09:10:00",
            "report_time": "2026-03-02 09:10:04",
            "success": True,
            "err_code": "DELIVERED",
            "err_msg": "ok",
            "sms_size": "1",
            "biz_id": biz,
            "out_id": f"{message}|spring",
        }

    return json.dumps(
        [receipt(ANN_PHONE.replace("-", ""), "b-1", "a" * 32), receipt(BOB_PHONE, "b-2", "b" * 32)]
    ).encode()


def _pos_sale() -> bytes:
    sale = {
        "type": "sale",
        "receipt_no": "SH01-1",
        "store_code": "sh01",
        "occurred_at": "2026-03-02T17:20:00+08:00",
        "currency": "CNY",
        "member": {"card_no": ANN_CARD, "phone": ANN_PHONE},
        "items": [{"sku": "CAKE-1", "name": "Cake", "category": "cake", "qty": 1, "unit_price": 26800}],
        "paid": {"total": 26800, "tenders": [{"method": "stored_value", "amount": 26800, "card_no": ANN_CARD}]},
    }
    return json.dumps(sale).encode()


def _ann_everywhere(world: World) -> str:
    """Ann (and Bob) through Segment (a gzip batch), SMS receipts (a list), POS (one sale) and POST /v1/events."""
    segment = gzip.compress(_segment_batch())
    world.send(SegmentConnector("batch"), segment, 1, {**_basic(), "content-encoding": "gzip"})
    sms = _sms_receipts()
    world.send(SmsReceiptConnector(), sms, 10, _signed(sms, "sms-secret", 10), key="aliyun")
    sale = _pos_sale()
    world.send(PosConnector(), sale, 20, _signed(sale, "pos-secret", 20), key="demo-pos")
    ann_event = {
        "event_id": "e-ann",
        "event_type": "identify",
        "source": "app",
        "brand_id": BRAND,
        "occurred_at": T0.isoformat(),
        "identifiers": [{"type": "phone", "value": ANN_PHONE}],
        "properties": {"name": "Ann Lee"},
    }
    bob_event = {
        **ann_event,
        "event_id": "e-bob",
        "identifiers": [{"type": "phone", "value": BOB_PHONE}],
        "properties": {"name": "Bob"},
    }
    world.post_canonical({"batch": [ann_event, bob_event]}, 30)
    ann = world.person_of("phone", ANN_PHONE)
    assert ann is not None and ann != world.person_of("phone", BOB_PHONE)
    return ann


def _raw_objects(world: World) -> dict[str, dict[str, Any]]:
    """Every version of every raw/ object: key#version -> its (decoded) text, metadata and content encoding."""
    out: dict[str, dict[str, Any]] = {}
    for page in world.s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET, Prefix="raw/"):
        for v in page.get("Versions", []):
            obj = world.s3.get_object(Bucket=BUCKET, Key=v["Key"], VersionId=v["VersionId"])
            body = obj["Body"].read()
            text = (gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body).decode()
            out[f"{v['Key']}#{v['VersionId']}"] = {
                "text": text,
                "meta": obj.get("Metadata", {}),
                "encoding": obj.get("ContentEncoding"),
                "gzip": body[:2] == b"\x1f\x8b",
            }
    return out


def _mentions(text: str) -> list[str]:
    low = text.lower()
    return [s for s in ANN_STRINGS if s in low]


def test_erasure_scrubs_every_raw_format_and_keeps_what_replay_reads(world: World) -> None:
    # Given Ann and Bob delivered by four channels, each archived in its own format (one gzip-encoded)
    ann = _ann_everywhere(world)
    before = _raw_objects(world)
    assert len(before) == 4 and all(_mentions(o["text"]) for o in before.values())
    segment_meta = next(o["meta"] for o in before.values() if o["meta"].get("connector") == "segment")

    # When Ann is erased
    receipt = world.erase(ann)

    # Then no version of any raw object names her, and Bob's items are still there
    after = _raw_objects(world)
    assert not {k: _mentions(o["text"]) for k, o in after.items() if _mentions(o["text"])}
    texts = "\n".join(o["text"] for o in after.values())
    assert "m-bob" in texts and BOB_PHONE in texts and "e-bob" in texts
    # and a rewritten object keeps its metadata, and its body matches its content-encoding
    segment = next(o for o in after.values() if o["meta"].get("connector") == "segment")
    assert segment["meta"] == segment_meta and segment["meta"]["content-encoding"] == "gzip" and segment["gzip"]
    # and the receipt lists every raw object: three batches rewritten without her item, the POS sale deleted whole
    by_source = {c.key.split("/")[1]: (c.action, c.rows_removed) for c in receipt.raw_archive_objects}
    assert by_source == {
        "segment": ("rewritten", 1),
        "sms-feedback": ("rewritten", 1),
        "pos": ("deleted", 0),
        "events": ("rewritten", 1),
    }
    assert receipt.raw_objects_not_located == []


def test_erase_then_replay_does_not_bring_the_person_back(world: World) -> None:
    # Given Ann erased after four channels delivered her
    ann = _ann_everywhere(world)
    world.erase(ann)
    bob = world.person_of("phone", BOB_PHONE)

    # When every source's archive is replayed over the range, and what it republishes is resolved again
    summaries = [world.replay(s) for s in SOURCES_REPLAYED]
    world.resolve_published()

    # Then no replay fails (metadata intact), and Ann is nobody again while Bob is still Bob
    assert [s.failures for s in summaries] == [[], [], [], []]
    assert sum(s.objects for s in summaries) == 3  # the POS sale was hers alone and is gone
    assert world.person_of("phone", ANN_PHONE) is None and world.person_of("device_id", "DEV-ANN-1") is None
    assert world.person_of("email", ANN_EMAIL) is None
    assert world.person_of("phone", BOB_PHONE) == bob


def test_replay_then_erase_erases_everything(world: World) -> None:
    # Given Ann delivered by four channels and the archive replayed (a redelivery of every event)
    ann = _ann_everywhere(world)
    assert all(not world.replay(s).failures for s in SOURCES_REPLAYED)
    world.resolve_published()
    assert world.person_of("phone", ANN_PHONE) == ann

    # When Ann is erased
    world.erase(ann)

    # Then nothing raw names her, and a second replay still fails nowhere and brings nobody back
    assert not [k for k, o in _raw_objects(world).items() if _mentions(o["text"])]
    assert all(not world.replay(s).failures for s in SOURCES_REPLAYED)
    world.resolve_published()
    assert world.person_of("phone", ANN_PHONE) is None


def test_import_files_lose_her_rows_in_the_dropped_file_its_rejects_and_reports(world: World) -> None:
    # Given an imported members file whose row for Ann became an event (the ledger points at the file), a second
    # import where only her rejected row is, and the rejects and chunk reports of both
    header = "member_card,phone,name\n"
    first, second = "imports/incoming/demo-brand/members/a.csv", "imports/incoming/demo-brand/members/b.csv"
    files = {
        first: header + f"MC-ANN-1,{ANN_PHONE},Ann Lee\nM-2,{BOB_PHONE},Bob\n",
        second: header + "MC-ANN-1,13800138000,Ann\nM-3,13700137000,Cy\n",
        "imports/rejects/imp-2/rejects.csv": 'row,field,reason,raw\n2,birthday,bad date,"MC-ANN-1,13800138000,Ann"\n',
        "imports/reports/imp-2.json": json.dumps({"import_id": "imp-2", "key": second}),
        "imports/reports/imp-2/chunks/00000.json": json.dumps(
            {"rejects": [{"row": 2, "field": "birthday", "reason": "bad", "raw": "MC-ANN-1,13800138000,Ann"}]}
        ),
    }
    for key, text in files.items():
        world.s3.put_object(Bucket=BUCKET, Key=key, Body=text.encode(), Metadata={"import-id": "x"})
    ledger = DynamoDedupeLedger(LEDGER, client=world.db)
    event = {
        "event_id": "imp-ann",
        "event_type": "identify",
        "source": "batch",
        "brand_id": BRAND,
        "occurred_at": T0.isoformat(),
        "identifiers": [{"type": "phone", "value": ANN_PHONE}],
        "properties": {},
    }
    parsed = parse_event(event)
    ledger.claim(parsed.dedupe_key, first, T0)
    resolve_event(parsed, world.store, world.identity_bus)
    ann = world.person_of("phone", ANN_PHONE)
    assert ann

    # When Ann is erased
    receipt = world.erase(ann)

    # Then her rows are gone from both dropped files, the rejects and the chunk report; the other rows stay
    def text(key: str) -> str:
        return world.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()

    assert text(first) == header + f"M-2,{BOB_PHONE},Bob\n"
    assert text(second) == header + "M-3,13700137000,Cy\n"
    assert text("imports/rejects/imp-2/rejects.csv") == "row,field,reason,raw\n"
    assert json.loads(text("imports/reports/imp-2/chunks/00000.json")) == {"rejects": []}
    # and the objects keep their metadata, and are listed in the receipt
    assert world.s3.head_object(Bucket=BUCKET, Key=first)["Metadata"] == {"import-id": "x"}
    assert {c.key: c.rows_removed for c in receipt.import_objects} == {
        first: 1,
        second: 1,
        "imports/rejects/imp-2/rejects.csv": 1,
        "imports/reports/imp-2/chunks/00000.json": 1,
    }
