"""The pull run with in-memory ports: archive first, cursor only after publishing, reruns are duplicates, rejects
are written with their reasons, queued bindings are confirmed only once published."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from cdp.connectors.platforms import client_for
from cdp.connectors.platforms.ports import (
    Kind,
    MapContext,
    MappedPage,
    Page,
    PlatformClient,
    PullState,
    RejectsSink,
)
from cdp.connectors.platforms.service import PullPorts, pull_shop, rejects_key
from cdp.connectors.platforms.transport import RecordedTransport
from cdp.connectors.sources import PlatformShop
from cdp.errors import PublishError
from cdp.ingest.ports import ArchivedRequest, DedupeLedger, DedupeStatus, RawArchive
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher

EVENTS = Path(__file__).resolve().parents[3] / "events"
NOW = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
TMALL = PlatformShop(brand_id="demo-brand", platform="tmall", app_key="local-tmall", app_secret=SecretStr("s"))
JD = PlatformShop(brand_id="demo-brand", platform="jd", app_key="local-jd", app_secret=SecretStr("s"))


class Log(list[str]):
    """What happened, in order, across the fakes."""


class FakeArchive(RawArchive):
    def __init__(self, log: Log) -> None:
        self.log = log
        self.objects: dict[str, tuple[bytes, dict[str, str]]] = {}

    def archive(
        self, request_id: str, body: bytes, received_at: datetime, source_hint: str, meta: dict[str, str] | None = None
    ) -> str:
        key = f"raw/{source_hint}/{request_id}"
        self.objects[key] = (body, dict(meta or {}))
        self.log.append(f"archive {request_id}")
        return key

    def keys_between(self, source_hint: str, start: datetime, end: datetime) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(f"raw/{source_hint}/"))

    def read(self, key: str) -> ArchivedRequest:
        body, meta = self.objects[key]
        return ArchivedRequest(key, body, meta)


class FakeLedger(DedupeLedger):
    def __init__(self) -> None:
        self.status: dict[str, str] = {}

    def claim(self, dedupe_key: str, raw_key: str, received_at: datetime) -> DedupeStatus:
        old = self.status.setdefault(dedupe_key, "pending")
        return DedupeStatus.DUPLICATE if old == "published" else DedupeStatus.NEW

    def confirm(self, dedupe_keys: list[str], raw_key: str, received_at: datetime) -> None:
        self.status.update(dict.fromkeys(dedupe_keys, "published"))


class FakePublisher(EventPublisher):
    def __init__(self, log: Log) -> None:
        self.log = log
        self.events: list[dict[str, Any]] = []
        self.fail = False

    def publish(self, events: Sequence[Publishable], correlation_id: str) -> list[str]:
        if self.fail:
            raise PublishError("bus down")
        self.events.extend(ev for e in events for ev in e.model_dump(mode="json")["events"])
        self.log.append(f"publish {correlation_id}")
        return [str(i) for i in range(len(events))]


class FakeState(PullState):
    def __init__(self, log: Log) -> None:
        self.log = log
        self.cursors: dict[str, datetime] = {}
        self.buyers: dict[tuple[str, str], str] = {}

    def cursor(self, shop_id: str) -> datetime | None:
        return self.cursors.get(shop_id)

    def advance(self, shop_id: str, end: datetime) -> None:
        self.cursors[shop_id] = max(end, self.cursors.get(shop_id, end))
        self.log.append(f"advance {end:%H:%M}")

    def remember_buyers(self, shop_id: str, buyers: dict[str, str]) -> None:
        self.buyers.update({(shop_id, o): b for o, b in buyers.items()})

    def buyer_of(self, shop_id: str, order_id: str) -> str | None:
        return self.buyers.get((shop_id, order_id))


class FakeRejects(RejectsSink):
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def write(self, key: str, body: bytes) -> None:
        self.objects[key] = body


class World:
    def __init__(self) -> None:
        self.log = Log()
        self.archive = FakeArchive(self.log)
        self.ledger = FakeLedger()
        self.publisher = FakePublisher(self.log)
        self.state = FakeState(self.log)
        self.rejects = FakeRejects()
        self.transport = RecordedTransport(EVENTS, {"local-tmall": "s", "local-jd": "s"})
        self.ports = PullPorts(self.archive, self.ledger, self.publisher, lambda _b: "CN", self.state, self.rejects)

    def pull(
        self, shop: PlatformShop = TMALL, shop_id: str = "tmall-demo", run_id: str = "run-1", now: datetime = NOW
    ) -> Any:
        client = client_for(shop, self.transport)
        return pull_shop(shop_id, shop, client, self.ports, now, run_id)

    def methods(self) -> list[str]:
        return [m for m, _ in self.transport.calls]


@pytest.fixture
def world() -> World:
    return World()


def test_first_run_pulls_the_last_day_publishes_then_moves_the_cursor(world: World) -> None:
    # Given a shop never pulled / When it is pulled
    summary = world.pull()
    # Then one window [now - 1 day, now) was pulled: bindings (queue), then orders, refunds and reviews
    assert (
        summary.window_start == NOW - timedelta(days=1) and summary.cursor == NOW == world.state.cursors["tmall-demo"]
    )
    assert summary.pages == 4
    # bind + unbind, the paid order, the refund, the review; three rejects; two records skipped on purpose
    assert (summary.accepted, summary.duplicates, summary.rejected) == (5, 0, 3)
    assert summary.skipped == {"order status WAIT_BUYER_PAY": 1, "refund status WAIT_SELLER_AGREE": 1}
    # and the cursor moved only after the last page was published
    assert world.log[-1] == "advance 12:00" and world.log[-2].startswith("publish run-1-reviews")


def test_every_page_is_archived_before_its_events_are_published(world: World) -> None:
    world.pull()
    assert [e.split()[0] for e in world.log[:2]] == ["archive", "publish"]
    for entry in world.log:
        if entry.startswith("publish"):
            request_id = entry.split()[1]
            assert world.log.index(f"archive {request_id}") < world.log.index(entry)
    # each archived page carries what replay needs to map it again
    body, meta = world.archive.objects["raw/platform-tmall/run-1-orders-0002"]
    assert meta | {"window-start": "", "window-end": ""} == {
        "connector": "platform-tmall",
        "shop-id": "tmall-demo",
        "brand-id": "demo-brand",
        "kind": "orders",
        "method": "taobao.trades.sold.increment.get",
        "page-cursor": "",
        "window-start": "",
        "window-end": "",
    }
    assert "trades_sold_increment_get_response" in json.loads(body)


def test_queued_bindings_are_confirmed_only_after_they_are_published(world: World) -> None:
    world.pull()
    consume, confirm = (
        world.methods().index("taobao.tmc.messages.consume"),
        world.methods().index("taobao.tmc.messages.confirm"),
    )
    assert consume < confirm
    assert world.transport.calls[confirm][1]["s_message_ids"] == (
        "6912345678901234501,6912345678901234502,6912345678901234503"
    )
    assert {e["event_id"] for e in world.publisher.events} >= {"tmall-bind-6912345678901234501"}


def test_rejects_are_written_one_line_per_record_with_field_and_reason(world: World) -> None:
    summary = world.pull()
    key = rejects_key("tmall-demo", NOW, "run-1")
    assert summary.rejects_key == key == "rejects/platforms/tmall-demo/2026/03/06/run-1.jsonl"
    lines = [json.loads(line) for line in world.rejects.objects[key].decode().splitlines()]
    assert [(x["kind"], x["id"], x["field"]) for x in lines] == [
        ("members", "6912345678901234502", "content.mobile"),
        ("orders", "3456789012345678903", "orders.0.price"),
        ("reviews", "3456789000000000777", "tid"),
    ]
    assert all(x["reason"] and x["raw_key"].startswith("raw/platform-tmall/") for x in lines)
    assert "137****2222" not in world.rejects.objects[key].decode()  # the record stays in the raw archive only


def test_a_validation_failure_is_a_reject_too(world: World) -> None:
    # Given the JD sample's order that claims more paid than its lines / When pulled
    summary = world.pull(JD, "jd-demo")
    lines = [json.loads(x) for x in world.rejects.objects[summary.rejects_key or ""].decode().splitlines()]
    # Then it is rejected by validation with the event id and field, next to the mapping reject (score 0)
    assert [(x["kind"], x["id"], x["field"]) for x in lines] == [
        ("orders", "jd-order-283746519203", "properties"),
        ("reviews", "13888880002", "score"),
    ]
    assert "total_minor" in lines[0]["reason"]
    # and the bound member card, the paid order, its refund and its review are accepted
    assert summary.accepted == 5 and summary.skipped == {"order state TRADE_CANCELED": 1, "refund status 0": 1}


def test_a_failure_mid_run_leaves_cursor_and_queue_and_the_rerun_counts_once(world: World) -> None:
    # Given the bus fails / When the shop is pulled / Then the run fails, the cursor stays, nothing is confirmed
    world.publisher.fail = True
    with pytest.raises(PublishError):
        world.pull(run_id="run-1")
    assert world.state.cursor("tmall-demo") is None
    assert "taobao.tmc.messages.confirm" not in world.methods()
    # When the bus is back and the run is repeated / Then everything is published once
    world.publisher.fail = False
    first = world.pull(run_id="run-2")
    assert (first.accepted, first.duplicates) == (5, 0) and world.state.cursor("tmall-demo") == NOW
    # and a third run over the same records (overlap, or the queue redelivering) counts them as duplicates
    again = world.pull(run_id="run-3", now=NOW + timedelta(minutes=15))
    assert (again.accepted, again.duplicates) == (0, 5)
    assert again.window_start == NOW - timedelta(minutes=5)  # the overlap before the cursor
    assert len(world.publisher.events) == 5


class WindowClient(PlatformClient):
    """Orders only, one record per window; fails on a chosen window."""

    platform = "tmall"
    max_window = timedelta(hours=1)

    def __init__(self, fail_at: datetime | None = None) -> None:
        self.fail_at = fail_at
        self.windows: list[tuple[datetime, datetime]] = []

    def fetch(self, kind: Kind, start: datetime, end: datetime, cursor: str | None) -> Page:
        if kind is not Kind.ORDERS:
            return Page(kind, "none", {}, [], None)
        if start == self.fail_at:
            raise PublishError("platform down")
        self.windows.append((start, end))
        return Page(kind, "orders", {}, [{"tid": f"{start:%H%M}"}], None)

    def map_page(self, page: Page, context: MapContext) -> MappedPage:
        out = MappedPage()
        for index, record in enumerate(page.records):
            out.items.append(
                {
                    "event_id": f"w-{record['tid']}",
                    "event_type": "custom",
                    "source": "tmall",
                    "brand_id": "demo-brand",
                    "occurred_at": "2026-03-06T00:00:00Z",
                    "identifiers": [{"type": "platform_buyer_id", "scope": "tmall", "value": "b1"}],
                    "properties": {"name": "probe"},
                }
            )
            out.origins.append(index)
        return out


def test_a_long_gap_is_pulled_in_platform_sized_windows_and_a_failure_keeps_the_finished_ones(world: World) -> None:
    # Given a cursor 2h55m old and a platform allowing one-hour windows
    world.state.cursors["tmall-demo"] = NOW - timedelta(hours=2, minutes=55)
    start = NOW - timedelta(hours=3)  # cursor - 5 min overlap
    client = WindowClient(fail_at=start + timedelta(hours=2))
    # When the third window fails
    with pytest.raises(PublishError):
        pull_shop("tmall-demo", TMALL, client, world.ports, NOW, "run-w")
    # Then the two finished windows were published and the cursor sits at the end of the second
    assert client.windows == [
        (start, start + timedelta(hours=1)),
        (start + timedelta(hours=1), start + timedelta(hours=2)),
    ]
    assert world.state.cursor("tmall-demo") == start + timedelta(hours=2)
    # When the platform is back / Then the run picks up 5 minutes before that cursor and reaches now
    summary = pull_shop("tmall-demo", TMALL, WindowClient(), world.ports, NOW, "run-w2")
    assert summary.window_start == start + timedelta(hours=1, minutes=55) and summary.cursor == NOW


def test_a_later_refund_finds_its_buyer_from_an_earlier_run(world: World) -> None:
    # Given an earlier run saw the order (its buyer is remembered)
    world.pull(run_id="run-1")
    assert world.state.buyers[("tmall-demo", "3456789012345678901")] == "AAF2xnOfAHYSGdyr1hq7iN6A"
    # When a new run maps the review alone (no order in this run)
    client = client_for(TMALL, world.transport)
    page = client.fetch(Kind.REVIEWS, NOW, NOW, None)
    mapped = client.map_page(page, MapContext("tmall-demo", TMALL, lambda o: world.state.buyer_of("tmall-demo", o)))
    # Then the review is attributed to that buyer
    assert mapped.items[0]["identifiers"][0]["value"] == "AAF2xnOfAHYSGdyr1hq7iN6A"
