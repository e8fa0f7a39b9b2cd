"""Ad platform callbacks, pure: our signature scheme, click callbacks and lead forms tied together by the click id."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cdp.connectors.ads import AdsConnector, device_ids
from cdp.connectors.base import Binding, InboundRequest, Mapped
from cdp.connectors.sources import parse_sources
from cdp.errors import AuthenticationError, InvalidInputError
from cdp.ingest.events import parse_event
from cdp.ingest.security import sign_cdp
from cdp_local.runtime.environment import LOCAL_SOURCES

SAMPLES = Path(__file__).resolve().parents[3] / "events" / "ads"
NOW = datetime(2026, 3, 10, 10, 3, 5, tzinfo=UTC)
PLATFORM, SECRET = "oceanengine", "local-oceanengine-secret"
SOURCES = parse_sources(LOCAL_SOURCES)
BINDING = Binding(brand_id="demo-brand", label=f"ads:{PLATFORM}", channel="ads")
CLICK_ID = "B.Ffk2RzVqN0xXaUZtT3A1cUt3bGd6WkE"


def sample(name: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    return {**data, **changes}


def request(body: Any, secret: str = SECRET, at: datetime = NOW, key: str = PLATFORM) -> InboundRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return InboundRequest(
        connector="ads",
        method="POST",
        body=raw,
        received_at=NOW,
        request_id="req-1",
        key=key,
        headers={"x-cdp-signature": sign_cdp(secret, raw, int(at.timestamp()))},
    )


def mapped(body: Any, key: str = PLATFORM) -> Mapped:
    return AdsConnector().map(request(body, key=key), BINDING)


def only(body: Any, key: str = PLATFORM) -> dict[str, Any]:
    result = mapped(body, key)
    assert not result.rejected and len(result.items) == 1, result.rejected
    parse_event(result.items[0])
    return result.items[0]


def test_each_platform_signs_with_its_own_secret() -> None:
    # Given a callback signed with Ocean Engine's secret / Then it authenticates there, and not as Tencent Ads
    assert AdsConnector().authenticate(request(sample("click")), SOURCES).brand_id == "demo-brand"
    with pytest.raises(AuthenticationError):
        AdsConnector().authenticate(request(sample("click"), key="tencent-ads"), SOURCES)


@pytest.mark.parametrize(
    "req",
    [
        request(sample("click"), secret="wrong"),
        request(sample("click"), at=datetime(2026, 3, 10, 9, 0, tzinfo=UTC)),
        replace(request(sample("click")), headers={"x-cdp-signature": "v1=abc"}),
        request(sample("click"), key="google-ads"),
    ],
    ids=["wrong-secret", "stale", "malformed", "unconfigured-platform"],
)
def test_a_bad_or_replayed_signature_is_refused(req: InboundRequest) -> None:
    with pytest.raises(AuthenticationError):
        AdsConnector().authenticate(req, SOURCES)


def test_a_click_becomes_ad_clicked_with_the_click_id_and_device_ids() -> None:
    click = only(sample("click"))
    assert click["event_type"] == "ad_clicked" and click["source"] == "ads"
    assert click["event_id"] == f"oceanengine:click:{CLICK_ID}"
    assert click["occurred_at"] == "2026-03-10T10:00:00.123Z"  # __TS__ is in milliseconds
    assert {(i["type"], i["value"], i.get("scope")) for i in click["identifiers"]} == {
        ("ad_click_id", CLICK_ID, "oceanengine"),
        ("device_id", "d3b1e0f4-6a2c-4d7f-9e8b-2c1a5f6e7d80", None),
        ("device_id", "9f86d081884c7d65", None),
    }
    assert click["properties"] == {
        "platform": "oceanengine",
        "click_id": CLICK_ID,
        "campaign_id": "1795032514563074",
        "adgroup_id": "1795032609482761",
        "ad_id": "7345012398476512300",
        "placement": "douyin_feed",
    }
    assert click["context"]["ip"] == "198.51.100.77"


def test_a_lead_carries_the_click_id_and_the_phone_so_they_link() -> None:
    lead = only(sample("lead"))
    assert lead["event_type"] == "lead_submitted" and lead["event_id"] == "oceanengine:lead:7345098871234567890"
    assert {(i["type"], i["value"]) for i in lead["identifiers"]} == {
        ("ad_click_id", CLICK_ID),
        ("phone", "13911223344"),
    }
    props = lead["properties"]
    assert props["click_id"] == CLICK_ID and props["form_id"] == "7290011223344556677"
    assert props["name"] == "Zhang Wei" and props["city"] == "Shanghai"


def test_numeric_ids_and_unix_seconds_are_accepted() -> None:
    # Given a Tencent Ads lead with 64-bit numeric ids, time in seconds and no click id
    lead = only(sample("lead", click_id=None, campaign_id=7012345678901234567, ts=1773136981), key="tencent-ads")
    assert lead["properties"]["campaign_id"] == "7012345678901234567" and lead["occurred_at"].startswith("2026-03-10")
    assert [i["type"] for i in lead["identifiers"]] == ["phone"]


def test_placeholder_and_zeroed_device_ids_are_dropped() -> None:
    # a zeroed IDFA (tracking limited) or an unreplaced macro is the same value for millions of strangers
    device = {"idfa": "00000000-0000-0000-0000-000000000000", "oaid": "__OAID__", "android_id": "null"}
    assert device_ids(device) == []
    click = only(sample("click", device=device))
    assert [i["type"] for i in click["identifiers"]] == ["ad_click_id"]


@pytest.mark.parametrize(
    ("callback", "field"),
    [
        (sample("click", type="impression"), "type"),
        (sample("click", click_id=None), "click_id"),
        (sample("click", ts="yesterday"), "ts"),
        (sample("lead", lead_id=None), "lead_id"),
        (sample("lead", click_id=None, phone=None, email=None), "phone"),
        (sample("click", campaign_id={"id": 1}), "campaign_id"),
    ],
    ids=["unknown-type", "no-click-id", "bad-ts", "no-lead-id", "nobody", "bad-campaign"],
)
def test_a_callback_that_cannot_be_mapped_is_rejected_naming_the_field(callback: dict[str, Any], field: str) -> None:
    result = mapped(callback)
    assert not result.items and result.rejected[0].errors[0].field == field


def test_a_batch_of_callbacks_and_malformed_json() -> None:
    result = mapped({"records": [sample("click"), sample("lead")]})
    assert [e["event_type"] for e in result.items] == ["ad_clicked", "lead_submitted"]
    with pytest.raises(InvalidInputError) as error:
        mapped(b'{"type": "click"')
    assert error.value.location == "body"
