"""Erasure of a person's offers wallet and loyalty accounts (the offers table, under moto): entries, codes, limits,
expiry timers, budget holds, accounts, operations and timers of every id merged into the person go; what their offers
still reserved goes back to the pool, what they spent stays counted under a hold that no longer names them."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.budgets.ledger import BudgetPool
from cdp.identity.dynamodb import DynamoIdentityStore
from cdp.identity.service import resolve_event
from cdp.ingest.events import parse_event
from cdp.loyalty.dynamodb import DynamoAccountStore
from cdp.loyalty.service import LoyaltyService
from cdp.offers.catalog import Offer
from cdp.offers.dynamodb import DynamoOfferStore
from cdp.offers.providers import Payout
from cdp.offers.wallet import WalletEntry
from cdp.org import load_org
from cdp.privacy.aws import PrivacyPorts, privacy_ports
from cdp.privacy.models import ErasureReceipt
from cdp.privacy.service import erase_person, export_person
from cdp.profile.dynamodb import DynamoProfileStore
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher
from cdp_local.runtime.core import create_table

T0 = datetime(2026, 12, 6, 2, tzinfo=UTC)
BRAND = "demo-brand"
BUCKET = topology.DATA_BUCKET_LOCAL_NAME
PROFILES = topology.PROFILES_TABLE.local_name
LEDGER = topology.LEDGER_TABLE.local_name
OFFERS = topology.OFFERS_TABLE.local_name
PHONE = {"type": "phone", "value": "13800138000"}
DEVICE = {"type": "device_id", "value": "DEV-ANN-1"}
BOB_PHONE = {"type": "phone", "value": "13900139000"}


class Bus(EventPublisher):
    def __init__(self) -> None:
        self.published: list[Publishable] = []

    def publish(self, events: Sequence[Publishable], correlation_id: str) -> list[str]:
        self.published.extend(events)
        return [str(i) for i in range(len(events))]


@dataclass
class World:
    db: Any
    identity: DynamoIdentityStore
    offers: DynamoOfferStore
    loyalty: LoyaltyService
    ports: PrivacyPorts

    def resolve(self, event_id: str, *identifiers: dict[str, str]) -> str:
        raw = {
            "event_id": event_id,
            "event_type": "identify",
            "source": "app",
            "brand_id": BRAND,
            "occurred_at": T0.isoformat(),
            "identifiers": list(identifiers),
            "properties": {},
        }
        outcome = resolve_event(parse_event(raw), self.identity, Bus())
        assert outcome.person_id
        return outcome.person_id

    def issue(self, person_id: str, n: int) -> WalletEntry:
        """An issue under the id the offer service gives it (`{offer}:{person}:{caller's id}`)."""
        stored = self.offers.get(BRAND, "xmas50")
        assert stored is not None
        entry, new = self.offers.issue(stored, person_id, f"xmas50:{person_id}:{n}", T0)
        assert new
        return entry

    def erase(self, person_id: str) -> ErasureReceipt:
        p = self.ports
        return erase_person(person_id, "dpo", p.records, p.archive, p.ledger, p.offers, p.publisher, now=T0)

    def offer_items(self) -> list[dict[str, Any]]:
        pages = self.db.get_paginator("scan").paginate(TableName=OFFERS)
        return [item for page in pages for item in page["Items"]]

    def pool(self) -> tuple[int, int, int]:
        found = self.offers.budgets.balance(BRAND, "xmas")
        assert found is not None
        return found.available_minor, found.reserved_minor, found.committed_minor


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        db = boto3.client("dynamodb")
        for spec in topology.TABLES:
            create_table(db, spec)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        ports = privacy_ports(PROFILES, LEDGER, BUCKET, "cdp-bus", OFFERS, dynamodb=db, s3=s3)
        ports = PrivacyPorts(ports.records, ports.archive, ports.ledger, ports.offers, Bus())
        offers = DynamoOfferStore(OFFERS, client=db)
        offers.budgets.define(BudgetPool(brand_id=BRAND, pool_id="xmas", total_minor=100_000, currency="CNY"))
        coupon = {
            "brand_id": BRAND,
            "offer_id": "xmas50",
            "name": "50 off 300",
            "currency": "CNY",
            "coupon": {"amount_off_minor": 5_000, "threshold_minor": 30_000, "code_prefix": "XM"},
            "validity": {"days": 14},
            "budget_pools": ["xmas"],
            "per_person_limit": 5,
        }
        offers.define(Offer.model_validate(coupon), "marketer", T0)
        profiles = DynamoProfileStore(PROFILES, client=db)
        loyalty = LoyaltyService(DynamoAccountStore(OFFERS, client=db), profiles, Bus(), load_org(), now=lambda: T0)
        yield World(db, DynamoIdentityStore(PROFILES, client=db), offers, loyalty, ports)


def _naming(items: list[dict[str, Any]], needles: Sequence[str]) -> list[str]:
    return [f"{i['pk']['S']} {i['sk']['S']}" for i in items if any(n in json.dumps(i) for n in needles)]


def _ann_bob_and_their_offers(world: World) -> tuple[str, str, str, dict[str, WalletEntry]]:
    """Ann as two persons (phone, device) merged into one, each with coupons and club points before the merge;
    one of her coupons redeemed for 30 off, one still issued; Bob with a coupon and points of his own."""
    phone_person, device_person = world.resolve("e-1", PHONE), world.resolve("e-2", DEVICE)
    bob = world.resolve("e-bob", BOB_PHONE)
    entries = {
        "redeemed": world.issue(phone_person, 1),
        "issued": world.issue(phone_person, 2),
        "merged": world.issue(device_person, 1),
        "bob": world.issue(bob, 1),
    }
    world.offers.redeem(entries["redeemed"], "SH01-1", 3_000, T0 + timedelta(days=1))
    # the merged person's coupon was left pending at its provider: its marker names the person too
    pending = Payout(status="pending", provider="wechat_pay", reason="SYSTEM_ERROR", at=T0)
    entries["merged"] = world.offers.note_payout(entries["merged"], pending)
    for pid in (phone_person, device_person, bob):
        world.loyalty.grant(BRAND, "club", pid, 300, f"offer-xmas50:{pid}:bonus")
    ann = world.resolve("e-3", PHONE, DEVICE)  # the merge
    merged = device_person if ann == phone_person else phone_person
    world.loyalty.grant(BRAND, "club", ann, 50, "welcome-back")  # the survivor's account folds the merged one's
    return ann, merged, bob, entries


def test_erasure_removes_the_wallets_and_loyalty_accounts_of_every_merged_id(world: World) -> None:
    # Given Ann (two persons merged), with a redeemed coupon, two still issued and club points, and Bob
    ann, merged, bob, entries = _ann_bob_and_their_offers(world)
    ids = (ann, merged)
    assert _naming(world.offer_items(), ids)
    # 100,000: 3,000 spent of the redeemed hold, 5,000 still reserved for each of the three coupons still issued
    assert world.pool() == (82_000, 15_000, 3_000)
    # And her export (subject access) lists her wallet, the merged person's coupon included, and her club account
    export = export_person(ann, world.ports.records, now=T0, offers=world.ports.offers)
    assert sorted(e.issue_id for e in export.wallet) == sorted(
        entries[k].issue_id for k in ("redeemed", "issued", "merged")
    )
    accounts = {a.person_id: a for a in export.loyalty_accounts}
    assert set(accounts) == {ann, merged} and accounts[merged].merged_into == ann  # as held: the folded one too
    assert accounts[ann].balance == 650  # 300 + 300 folded + 50

    # When Ann is erased
    receipt = world.erase(ann)

    # Then nothing in the offers table names her ids: not a wallet entry, code, limit, timer, hold or account
    after = world.offer_items()
    assert _naming(after, ids) == []
    assert world.offers.by_code(BRAND, entries["issued"].code or "") is None  # her code no longer redeems
    # and what her offers still reserved went back to the pool; the 3,000 she spent stays committed
    assert world.pool() == (92_000, 5_000, 3_000)
    # under a hold that keeps the amounts and no longer names her
    (spent,) = [i for i in after if i["pk"]["S"].startswith(f"HOLD#{BRAND}#xmas50:erased:")]
    assert spent["state"]["S"] == "closed" and spent["spent"]["M"]["xmas"]["N"] == "3000"
    hold = world.offers.budgets.hold(BRAND, spent["pk"]["S"].removeprefix(f"HOLD#{BRAND}#"))
    assert hold is not None and hold.claims == {"xmas": 5_000} and hold.spent == {"xmas": 3_000}
    # and Bob keeps his coupon, its hold, his limit and his points
    assert world.offers.wallet(BRAND, bob) == [entries["bob"]]
    assert world.offers.by_code(BRAND, entries["bob"].code or "") == entries["bob"]
    assert world.loyalty.store.get(BRAND, "club", bob) is not None
    assert len(_naming(after, [bob])) == 8  # entry, code, limit, expiry timer, hold, account, operation, timer

    # And the receipt lists what went, per person id
    redeemed, issued, other = (entries[k].issue_id for k in ("redeemed", "issued", "merged"))
    assert receipt.wallet_entries == sorted(
        f"{e.person_id}/{e.issue_id}" for e in (entries["redeemed"], entries["issued"], entries["merged"])
    )
    assert receipt.budget_holds_released == sorted([issued, other])
    assert receipt.budget_holds == sorted([f"anonymised:{redeemed}", f"deleted:{issued}", f"deleted:{other}"])
    records = set(receipt.wallet_records)
    assert {f"code:{k}" for k in (redeemed, issued, other)} <= records
    assert {f"expiry:{issued}", f"expiry:{other}"} <= records and f"expiry:{redeemed}" not in records
    assert f"pending:{other}" in records and world.offers.due_pending(10) == []
    assert {f"limit:{pid}/xmas50" for pid in ids} <= records
    assert receipt.loyalty_accounts == sorted(f"{pid}/club" for pid in ids)
    ops = {f"club/grant:offer-xmas50:{pid}:bonus" for pid in ids} | {"club/grant:welcome-back"}
    assert set(receipt.loyalty_operations) == ops
    assert receipt.loyalty_timers == sorted(f"2027-12/club/{pid}" for pid in ids)  # the points' lots end then
    counts = receipt.counts
    assert (counts["wallet_entries"], counts["loyalty_accounts"], counts["loyalty_operations"]) == (3, 2, 3)
    # and says why the spent hold stays
    (kept,) = [r for r in receipt.retained if r.what.startswith("budget holds")]
    assert kept.count == 1 and "balance" in kept.reason


def test_a_second_erasure_changes_nothing(world: World) -> None:
    # Given Ann erased once
    ann, merged, _, _ = _ann_bob_and_their_offers(world)
    first = world.erase(ann)
    before = world.offer_items()

    # When she is erased again, and the offers table is swept again for her ids (an interrupted run's retry)
    again = world.erase(ann)
    wallet = world.ports.offers.erase_wallets(BRAND, [ann, merged], T0)
    loyalty = world.ports.offers.erase_loyalty(BRAND, [ann, merged])

    # Then the stored receipt comes back, nothing more is found, and the table and the pool are as they were
    assert again == first
    assert not any((wallet.entries, wallet.records, wallet.holds_released, wallet.holds))
    assert not any((loyalty.accounts, loyalty.operations, loyalty.timers))
    assert sorted(map(json.dumps, world.offer_items())) == sorted(map(json.dumps, before))
    assert world.pool() == (92_000, 5_000, 3_000)
