"""The pure scrubbing rules erasure applies to documents, raw bodies and other persons' records."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cdp.privacy.models import ErasureReceipt, ObjectChange
from cdp.privacy.scrub import ERASED, drop_values, mentions, scrub_json, scrub_raw_body
from cdp.privacy.service import identifier_hash
from cdp.profile.keys import suppressed_pk

ANN, BOB = "a" * 32, "b" * 32


def test_rows_naming_the_person_go_whole_and_other_rows_stay() -> None:
    # Given an audience document with Ann and Bob as rows, and a batch file listing their ids
    audience = {
        "manifest": {"run_id": "r1", "counts": {"treatment": 2}},
        "treatment": [
            {"person_id": ANN, "score": 0.7},
            {"person_id": BOB, "score": 0.4},
        ],
    }

    # When Ann is dropped from both
    clean, removed = drop_values(audience, {ANN})
    batch, batch_removed = drop_values([ANN, BOB], {ANN})

    # Then only her rows are gone (aggregates are left as they were)
    assert clean == {
        "manifest": {"run_id": "r1", "counts": {"treatment": 2}},
        "treatment": [{"person_id": BOB, "score": 0.4}],
    }
    assert (removed, batch, batch_removed) == (1, [BOB], 1)


def test_lineage_of_another_person_loses_the_erased_person_and_identifiers() -> None:
    # Given a split record filed under Bob that names Ann, her phone and the rule text of an unbind
    phone = "phone:+8613800138000"
    lineage = {
        "kind": "split",
        "person_ids": [ANN, BOB],
        "survivor_id": ANN,
        "identifiers": [phone, "device_id:d1"],
        "parts": {ANN: [phone], BOB: ["device_id:d1"]},
        "rule": f"unbind {phone}: sold the phone",
    }

    # When Ann and her phone are dropped
    clean, removed = drop_values(lineage, {ANN, phone})

    # Then Bob's side of the record is all that is left, and the rule text is masked
    assert clean == {
        "kind": "split",
        "person_ids": [BOB],
        "identifiers": ["device_id:d1"],
        "parts": {BOB: ["device_id:d1"]},
        "rule": f"unbind {ERASED}: sold the phone",
    }
    assert removed == 5


def test_a_document_about_the_person_is_deleted_whole() -> None:
    # Given an outbox-like message to Ann, and a document about several persons
    message = json.dumps({"message": {"person_id": ANN, "address": "+8613800138000"}}).encode()
    mixed = json.dumps({"rows": [{"person_id": ANN}, {"person_id": BOB}], "note": f"sent to {ANN}"}).encode()

    # When they are scrubbed of Ann
    # Then the message to her is deleted whole (her address goes with it), as is a document that names her directly
    assert scrub_json(message, {ANN})[0] is None
    assert scrub_json(json.dumps({"person_id": ANN, "city": "Shanghai"}).encode(), {ANN}) == (None, 0)
    # and the mixed document keeps Bob's row, with the free text masked
    clean, removed = scrub_json(mixed, {ANN})
    assert clean is not None and json.loads(clean) == {"rows": [{"person_id": BOB}], "note": f"sent to {ERASED}"}
    assert removed == 2 and not mentions(clean, {ANN})
    # and a document that is not JSON but names her cannot be rewritten
    assert scrub_json(f"{ANN},0.7\n".encode(), {ANN}) == (None, 0)


def test_raw_bodies_lose_the_persons_events_only() -> None:
    # Given a batch with Ann's and Bob's events, and a single-event body of Ann's
    ann_event = {
        "brand_id": "b",
        "source": "app",
        "event_id": "e1",
        "identifiers": [{"type": "phone", "value": "13800138000"}],
    }
    bob_event = {
        "brand_id": "b",
        "source": "pos",
        "event_id": "e2",
        "identifiers": [{"type": "phone", "value": "13900139000"}],
    }
    batch = json.dumps({"batch": [ann_event, bob_event]}).encode()

    # When Ann's event (b#app#e1) is scrubbed
    clean, removed = scrub_raw_body(batch, {"b#app#e1"})
    single, single_removed = scrub_raw_body(json.dumps(ann_event).encode(), {"b#app#e1"})
    untouched, none_removed = scrub_raw_body(batch, {"b#web#e9"})
    other_brand, other_removed = scrub_raw_body(batch, {"c#app#e1"})

    # Then the batch keeps Bob's event, the single body is to be deleted, and an unrelated body is left as it was
    assert clean is not None and json.loads(clean) == {"batch": [bob_event]} and removed == 1
    assert (single, single_removed) == (None, 1)
    assert (untouched, none_removed) == (batch, 0)
    assert (other_brand, other_removed) == (batch, 0)  # the same source and id at another brand is another event
    assert scrub_raw_body(json.dumps({"batch": [ann_event]}).encode(), {"b#app#e1"}) == (None, 1)


def test_the_receipt_counts_and_hashes_match_the_suppression_list() -> None:
    # Given a receipt of an erasure
    key = "phone:+8613800138000"
    receipt = ErasureReceipt(
        person_id=ANN,
        requested_id=ANN,
        brand_id="demo-brand",
        namespace="g.demo-group",
        erased_at=datetime(2026, 3, 1, tzinfo=UTC),
        actor="dpo",
        identifiers_suppressed=[identifier_hash(key)],
        filed_events=["app#e1", "app#e2"],
        outbox_objects=[ObjectChange(key="outbox/sms/r1/m1.json", action="deleted")],
    )

    # When it is stored and read back
    again = ErasureReceipt.model_validate_json(receipt.model_dump_json())

    # Then its counts follow its lists, and its hashes are those of the suppression items
    assert again == receipt
    assert (receipt.counts["filed_events"], receipt.counts["outbox_objects"], receipt.counts["messages"]) == (2, 1, 0)
    assert suppressed_pk("g.demo-group", key).endswith(receipt.identifiers_suppressed[0])
    assert "8613800138000" not in receipt.model_dump_json()
