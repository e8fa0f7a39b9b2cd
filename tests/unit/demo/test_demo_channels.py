"""The demo brand's channel encoders, round trip: each native request, authenticated and mapped back by its real
connector (pure `map` with the `Binding` its `authenticate` gives), must say what the generated event said."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from cdp.connectors.base import Connector, InboundRequest, Mapped
from cdp.connectors.feedback_ses import SesConnector, StaticCertificateFetcher
from cdp.connectors.platforms import client_for
from cdp.connectors.platforms.ports import KINDS, Kind, MapContext
from cdp.connectors.platforms.transport import RecordedTransport
from cdp.connectors.registry import ROUTES, ConnectorRoute
from cdp.connectors.sources import SourcesConfig, parse_sources
from cdp.ingest.events import parse_event
from cdp.shared.time import parse_iso
from cdp_local.demo import SyntheticBrand, generate_brand
from cdp_local.demo.channels import (
    DROPPED,
    SNS_CERT_URL,
    ChannelEncoder,
    Encoded,
    NativeRequest,
    PlatformBatch,
    SnsSigner,
    demo_sources,
)
from cdp_local.demo.truth import event_keys

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # the brand's `now`: every signature is checked at this instant
WRITE_KEY = "local-write-key"
SOURCES = parse_sources(demo_sources(WRITE_KEY))
SECONDS = frozenset({"wechat_oa", "sms", "tmall", "jd"})  # channels whose native times are whole seconds
CONNECTORS = {"segment", "wechat_mp", "wechat_oa", "pos", "ads", "push", "sms", "ses"}


@dataclass(frozen=True)
class Demo:
    brand: SyntheticBrand
    signer: SnsSigner
    encoded: Encoded


@pytest.fixture(scope="module")
def demo() -> Demo:
    brand = generate_brand(customers=600, seed=3)
    signer = SnsSigner(SOURCES.ses.topic_arns[0] if SOURCES.ses else "", NOW)
    return Demo(brand, signer, ChannelEncoder(SOURCES, WRITE_KEY, sns=signer).encode(brand.events, NOW))


# ---- replaying native requests through the real connectors ------------------------------------------------------


def _route(request: NativeRequest) -> tuple[ConnectorRoute, str | None]:
    for route in ROUTES:
        pattern = "^" + re.escape(route.path).replace(r"\{key\}", "(?P<key>[^/]+)") + "$"
        found = re.match(pattern, request.route_path)
        if route.method == request.method and found:
            return route, found.groupdict().get("key")
    raise AssertionError(f"no connector route for {request.method} {request.route_path}")


def _connector(route: ConnectorRoute, signer: SnsSigner) -> Connector:
    if route.factory is SesConnector:  # the local runtime serves the demo's SNS certificate the same way
        return SesConnector(fetcher=StaticCertificateFetcher({SNS_CERT_URL: signer.pem}))
    return route.factory()


def replay(request: NativeRequest, signer: SnsSigner, sources: SourcesConfig = SOURCES) -> Mapped:
    """authenticate (signature, brand binding) then the pure map, as `cdp.connectors.service.receive` runs them."""
    route, key = _route(request)
    connector = _connector(route, signer)
    inbound = InboundRequest(
        connector=connector.name,
        method=request.method,
        body=request.body,
        received_at=NOW + timedelta(seconds=2),
        request_id="req-demo",
        key=key,
        headers=request.headers,
        query=request.query,
    )
    return connector.map(inbound, connector.authenticate(inbound, sources))


def pulled(batch: PlatformBatch, directory: Path) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(original, mapped) for every record of a pull batch, read back through the platform client and mapping."""
    batch.write(directory)
    shop = SOURCES.shops[batch.shop_id]
    client = client_for(shop, RecordedTransport.for_sources(directory, SOURCES))
    buyers: dict[str, str] = {}
    for kind in KINDS:
        cursor: str | None = None
        offset = 0
        while True:
            page = client.fetch(kind, NOW - timedelta(days=1), NOW, cursor)
            mapped = client.map_page(page, MapContext(batch.shop_id, shop, buyers.get))
            assert not mapped.rejected and not mapped.skipped, (mapped.rejected, mapped.skipped)
            buyers.update(mapped.buyers)
            for item, origin in zip(mapped.items, mapped.origins, strict=True):
                yield batch.originals[kind][offset + origin], item
            offset += len(page.records)
            cursor = page.next_cursor
            if cursor is None or kind is Kind.MEMBERS:
                break
        assert offset == len(batch.records[kind])


# ---- what "the same event" means --------------------------------------------------------------------------------


def _time(value: str, channel: str) -> datetime:
    moment = parse_iso(value)
    return moment.replace(microsecond=0) if channel in SECONDS else moment


def disagreements(original: dict[str, Any], mapped: dict[str, Any], channel: str) -> list[str]:
    """Where the connector's canonical event differs from the generated one (empty: the meaning survived)."""
    out = [
        f"{name}: {original.get(name)!r} != {mapped.get(name)!r}"
        for name in ("event_type", "source", "brand_id", "store_id")
        if original.get(name) != mapped.get(name)
    ]
    if sorted(event_keys(original)) != sorted(event_keys(mapped)):
        out.append(f"identifiers: {event_keys(original)} != {event_keys(mapped)}")
    if _time(original["occurred_at"], channel) != parse_iso(mapped["occurred_at"]):
        out.append(f"occurred_at: {original['occurred_at']} != {mapped['occurred_at']}")
    dropped = DROPPED.get((channel, original["event_type"]), frozenset())
    # compared as the platform reads them: validated, with each type's defaults (fulfilment, purpose, status)
    want = parse_event(original).properties.model_dump()
    got = parse_event(mapped).properties.model_dump()
    for name, value in want.items():
        if name in dropped or (name == "gender" and value == "unknown" and got.get(name) is None):
            continue
        if name == "lines":
            keep = [
                k for k in ("sku", "name", "category", "quantity", "unit_price_minor") if f"lines.{k}" not in dropped
            ]
            value = [{k: line.get(k) for k in keep} for line in value]
            have = [{k: line.get(k) for k in keep} for line in got.get("lines", [])]
            if value != have:
                out.append(f"lines: {value} != {have}")
        elif name == "url" and channel == "wechat_mp":  # a mini-program page is its path
            if got.get("url") != "mp://" + urlsplit(value).path.lstrip("/"):
                out.append(f"url: {value} != {got.get('url')}")
        elif got.get(name) != value:
            out.append(f"properties.{name}: {value!r} != {got.get(name)!r}")
    return out


# ---- tests --------------------------------------------------------------------------------------------------------


def test_every_native_request_maps_back_to_the_generated_events(demo: Demo) -> None:
    # Given every request the encoders built for the brand's ~18 months
    checked: Counter[str] = Counter()
    problems: list[str] = []
    for request in demo.encoded.requests:
        # When its connector authenticates it with the brand's secrets and maps it
        mapped = replay(request, demo.signer)
        # Then every native item became exactly one canonical event, equal in meaning to the one it encodes
        assert not mapped.rejected, (request.connector, mapped.rejected[:3])
        assert len(mapped.items) == len(request.events), request.connector
        for item, origin in zip(mapped.items, mapped.origins or [], strict=True):
            found = disagreements(request.events[origin], item, request.connector)
            problems += [f"{request.connector}: {p}" for p in found]
            checked[request.connector] += 1
    assert not problems, problems[:10]
    assert set(checked) == CONNECTORS, checked


def test_every_pulled_record_maps_back_to_the_generated_events(demo: Demo, tmp_path: Path) -> None:
    # Given the Tmall and JD records, written as the recorded TOP/JOS answers a pull run reads
    assert {b.platform for b in demo.encoded.pulls} == {"tmall", "jd"}
    for batch in demo.encoded.pulls:
        # When the platform client fetches them (signed calls, paged) and maps each page
        pairs = list(pulled(batch, tmp_path / batch.shop_id))
        # Then every record comes back as the event it encodes
        assert len(pairs) == len(batch.events) > 0
        problems = [p for original, item in pairs for p in disagreements(original, item, batch.platform)]
        assert not problems, problems[:10]
    kinds = {(b.platform, k) for b in demo.encoded.pulls for k in Kind if b.records[k]}
    assert {("tmall", Kind.MEMBERS), ("tmall", Kind.ORDERS), ("tmall", Kind.REFUNDS), ("jd", Kind.REVIEWS)} <= kinds


def test_every_event_goes_somewhere_once_and_most_through_a_channel(demo: Demo) -> None:
    # Given the encoding of the whole brand
    encoded, brand = demo.encoded, demo.brand
    channelled = [e for r in encoded.requests for e in r.events] + [e for b in encoded.pulls for e in b.events]
    # When the events it routes are counted
    ids = [e["event_id"] for e in channelled + encoded.fallback]
    # Then each generated event is sent exactly once, every fallback has a reason, and most use a channel
    assert sorted(ids) == sorted(e["event_id"] for e in brand.events)
    assert sum(encoded.reasons.values()) == len(encoded.fallback)
    assert len(channelled) > 0.4 * len(brand.events)
    # and only what no connector can say goes to /v1/events: never an app/web page view, cart, order or custom event
    by_type = Counter((e["source"], e["event_type"]) for e in encoded.fallback)
    for source in ("app", "web"):
        for kind in ("page_view", "add_to_cart", "review_posted", "custom", "order_returned"):
            assert by_type[(source, kind)] == 0, (source, kind)
    assert by_type[("ads", "ad_clicked")] == by_type[("push", "message_opened")] == 0


def test_encoding_is_deterministic_so_a_resent_request_is_a_duplicate(demo: Demo) -> None:
    # Given the same brand encoded again by a fresh encoder at the same instant
    again = ChannelEncoder(SOURCES, WRITE_KEY, sns=demo.signer).encode(demo.brand.events, NOW)
    # When the requests are compared (SES notifications carry SNS's own random-free message id and signature)
    # Then they are byte for byte the same, and the mapped event ids are unique per source: dedupe keys are stable
    assert [(r.path, r.body) for r in again.requests] == [(r.path, r.body) for r in demo.encoded.requests]
    keys = Counter()
    for request in demo.encoded.requests:
        for item in replay(request, demo.signer).items:
            keys[(item["source"], item["event_id"])] += 1
    assert max(keys.values()) == 1


def test_a_request_signed_with_another_secret_is_refused(demo: Demo) -> None:
    # Given sources where every connector has other secrets (a rotated deployment) but the same brand
    other = parse_sources(
        {
            **demo_sources("another-write-key"),
            "pos": {"demo-pos": {"brand_id": "demo-brand", "secret": "rotated"}},
            "push": {"jpush": {"brand_id": "demo-brand", "secret": "rotated"}},
        }
    )
    # When a Segment batch and a POS batch are replayed against them / Then both fail authentication
    from cdp.errors import AuthenticationError

    for connector in ("segment", "pos", "push"):
        request = next(r for r in demo.encoded.requests if r.connector == connector)
        with pytest.raises(AuthenticationError):
            replay(request, demo.signer, other)


def test_the_new_event_kinds_are_acquisition_push_and_custom_actions(demo: Demo) -> None:
    # Given the brand's ad clicks and leads, push receipts and opens, and custom actions
    events = demo.brand.events
    first_trace: dict[str, str] = {}
    clicks: dict[str, tuple[str, str]] = {}
    for event in events:
        owners = [demo.brand.truth[k] for k in event_keys(event) if k in demo.brand.truth]
        if not owners:
            continue  # a shared device alone (a family iPad's page view)
        owner = owners[0]
        if event["event_type"] == "ad_clicked":
            clicks[event["properties"]["click_id"]] = (owner, event["occurred_at"])
        elif event["event_type"] != "lead_submitted":
            first_trace.setdefault(owner, event["occurred_at"])
    # When read back
    leads = [e for e in events if e["event_type"] == "lead_submitted"]
    opens = [e for e in events if e["event_type"] == "message_opened"]
    customs = [e for e in events if e["event_type"] == "custom"]
    # Then each lead follows its click (same click id and person) with the person's phone, before their first trace
    assert leads and len(leads) == len(clicks)
    for lead in leads:
        owner, clicked_at = clicks[lead["properties"]["click_id"]]
        assert demo.brand.truth[event_keys(lead)[0]] == owner and clicked_at < lead["occurred_at"]
        assert {i["type"] for i in lead["identifiers"]} == {"ad_click_id", "phone"}
        assert lead["occurred_at"] < first_trace.get(owner, "9999")
    # and push opens come from app devices that received that message, custom actions from the app and the site
    received = {
        (e["properties"]["message_id"], e["identifiers"][0]["value"])
        for e in events
        if e["event_type"] == "message_delivered" and e["source"] == "push"
    }
    assert opens and all((e["properties"]["message_id"], e["identifiers"][0]["value"]) in received for e in opens)
    assert customs and {e["source"] for e in customs} == {"app", "web"}
    assert {e["properties"]["name"] for e in customs} >= {"Store Locator Used", "Coupon Viewed"}
