"""A mini-program's message push on the WeChat route: its subscribe-message events, in XML and in JSON.

`subscribe_msg_sent_event` is the receipt of the subscribe message with that MsgID; `subscribe_msg_popup_event` and
`subscribe_msg_change_event` are the person's answer per template (custom events, not channel consent). Signed like
an official account's pushes (and encrypted in safe mode); hostile bodies are a 400 naming the field, a bad entry is
rejected alone, and the app's other pushes are answered "success" and not ingested."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cdp.channels.lifecycle import receipt_of
from cdp.connectors.base import Binding, InboundRequest, Mapped
from cdp.connectors.replay import replay_archive
from cdp.connectors.service import Ports, receive
from cdp.connectors.sources import StaticSources, parse_sources
from cdp.connectors.wechat import MAX_LIST_ITEMS, OfficialAccountConnector, oa_msg_signature, oa_signature
from cdp.errors import AuthenticationError, InvalidInputError, UnsupportedMediaTypeError
from cdp.ingest.events import parse_event
from tests.fakes.ledger import MemoryLedger
from tests.unit.connectors.test_wechat_oa_security import MemoryArchive, MemoryPublisher, encrypt

SAMPLES = Path(__file__).resolve().parents[3] / "events" / "wechat"
NOW = datetime(2026, 1, 1, 4, 0, tzinfo=UTC)
MP, SAFE_MP, OA = "wx-push-mp", "wx-safe-mp", "wx-push-oa"
TOKEN = "mp-push-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
OPENID = "oMp4Kq7Zt2LwX9cVb3Nn8RjY5sHe"
SHIPPED, PICKUP = "Kx3bQ9mW2pLr7TnY5vZc8HdJ4fGs1aE6uO0iN-_qRtU", "Vn8cR2yT6wQm4ZsK1pLx9HbF3jDg7eA5oU0iM_-tYrE"
SOURCES = parse_sources(
    {
        "wechat": {
            MP: {"brand_id": "demo-brand", "kind": "mini_program", "secret": "relay-secret", "token": TOKEN},
            SAFE_MP: {"brand_id": "demo-brand", "kind": "mini_program", "token": TOKEN, "encoding_aes_key": AES_KEY},
            OA: {"brand_id": "demo-brand", "kind": "official_account", "token": TOKEN},
        }
    }
)
MINI = Binding(brand_id="demo-brand", label=f"wechat:{MP}", channel="mini_program")


def sample(name: str, **replace: str) -> bytes:
    text = (SAMPLES / name).read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    return text.encode()


def request(
    body: bytes, key: str = MP, token: str = TOKEN, content_type: str = "application/json", nonce: str = "42"
) -> InboundRequest:
    timestamp = str(int(NOW.timestamp()))
    query = {"signature": oa_signature(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
    headers = {"content-type": content_type}
    return InboundRequest("wechat_oa", "POST", body, NOW, f"req-{nonce}", key=key, headers=headers, query=query)


def mapped(body: bytes, binding: Binding = MINI) -> Mapped:
    result = OfficialAccountConnector().map(request(body), binding)
    assert result.reply is not None and result.reply.body == "success"
    return result


def events(body: bytes, binding: Binding = MINI) -> list[dict[str, Any]]:
    result = mapped(body, binding)
    assert result.rejected == [], result.rejected
    for item in result.items:
        parse_event(item)  # each is a valid canonical event
    return result.items


def json_push(event: str, entries: Any, **top: Any) -> bytes:
    head = {"ToUserName": "gh_8c1d2e3f4a5b", "FromUserName": OPENID, "CreateTime": "1767240000", "MsgType": "event"}
    return json.dumps({**head, "Event": event, "List": entries, **top}).encode()


def sent_entry(**changes: str) -> dict[str, str]:
    return {"TemplateId": SHIPPED, "MsgID": "3012659473502674945", "ErrorCode": "0", "ErrorStatus": "success"} | changes


# ---- subscribe_msg_sent_event: the message's receipt ------------------------------------------------------------


@pytest.mark.parametrize("name", ["subscribe_msg_sent.xml", "subscribe_msg_sent.json"])
def test_a_sent_event_is_the_delivery_receipt_of_the_message_with_that_msgid(name: str) -> None:
    [event] = events(sample(name))
    assert event["event_type"] == "message_delivered" and event["source"] == "mini_program"
    assert event["properties"] == {
        "message_id": "3012659473502674945",
        "channel": "wechat",
        "provider": "wechat",
        "status": "delivered",
        "provider_status": "success",
        "template_id": SHIPPED,
    }
    assert event["identifiers"] == [{"type": "wechat_openid", "value": OPENID, "scope": MP}]
    assert event["event_id"] == f"{MP}:sub:3012659473502674945"  # WeChat's retries of the push count once
    assert event["occurred_at"] == "2026-01-01T04:00:00.000Z"
    # and the message log reads it as the receipt of the message WeChat knows by that msgid
    receipt = receipt_of(parse_event(event))
    assert receipt is not None
    assert (receipt.provider, receipt.message_id, receipt.status, receipt.code) == (
        "wechat",
        "3012659473502674945",
        "delivered",
        None,
    )


def test_xml_and_json_of_the_same_push_are_the_same_event() -> None:
    assert events(sample("subscribe_msg_sent.xml")) == events(sample("subscribe_msg_sent.json"))
    assert events(sample("subscribe_msg_popup.xml")) == events(sample("subscribe_msg_popup.json"))


def test_a_failed_delivery_carries_wechats_code() -> None:
    [event] = events(json_push("subscribe_msg_sent_event", sent_entry(ErrorCode="10003", ErrorStatus="fail")))
    assert event["properties"]["status"] == "failed" and event["properties"]["error_code"] == "10003"
    receipt = receipt_of(parse_event(event))
    assert receipt is not None and (receipt.status, receipt.code) == ("failed", "10003")


def test_numbers_may_come_as_json_numbers_and_list_under_the_events_own_key() -> None:
    entry = {"TemplateId": SHIPPED, "MsgID": 3012659473502674945, "ErrorCode": 0, "ErrorStatus": "success"}
    body = json.dumps(
        {
            "ToUserName": "gh_8c1d2e3f4a5b",
            "FromUserName": OPENID,
            "CreateTime": 1767240000,
            "MsgType": "event",
            "Event": "subscribe_msg_sent_event",
            "SubscribeMsgSentEvent": {"List": [entry]},
        }
    ).encode()
    [event] = events(body)
    assert event["properties"]["message_id"] == "3012659473502674945"
    assert event["properties"]["status"] == "delivered"


# ---- popup and settings: the person's answer per template ---------------------------------------------------------


@pytest.mark.parametrize("name", ["subscribe_msg_popup.xml", "subscribe_msg_popup.json"])
def test_a_popup_answer_is_one_custom_event_per_template(name: str) -> None:
    accepted, rejected = events(sample(name))
    assert accepted["event_type"] == rejected["event_type"] == "custom"
    assert accepted["properties"] == {
        "name": "wechat_subscribe_accepted",
        "template_id": SHIPPED,
        "granted": True,
        "status": "accept",
        "via": "popup",
        "popup_scene": "0",
        "app_id": MP,
    }
    assert rejected["properties"]["name"] == "wechat_subscribe_rejected"
    assert (rejected["properties"]["template_id"], rejected["properties"]["granted"]) == (PICKUP, False)
    assert accepted["event_id"] != rejected["event_id"]  # one answer per template, each counted once
    assert accepted["event_id"] == events(sample(name))[0]["event_id"]  # a retried push has the same ids
    assert accepted["identifiers"] == [{"type": "wechat_openid", "value": OPENID, "scope": MP}]


@pytest.mark.parametrize("name", ["subscribe_msg_change.xml", "subscribe_msg_change.json"])
def test_a_refusal_in_the_settings_is_a_rejected_answer(name: str) -> None:
    [event] = events(sample(name))
    assert event["properties"]["name"] == "wechat_subscribe_rejected"
    assert event["properties"]["via"] == "settings" and event["properties"]["template_id"] == SHIPPED
    assert "popup_scene" not in event["properties"]


@pytest.mark.parametrize("status", ["acceptWithAudio", "acceptWithAlert"])
def test_an_accept_with_a_reminder_is_an_accept(status: str) -> None:
    entry = {"TemplateId": SHIPPED, "SubscribeStatusString": status, "PopupScene": "0"}
    [event] = events(json_push("subscribe_msg_popup_event", entry))
    assert event["properties"]["name"] == "wechat_subscribe_accepted" and event["properties"]["status"] == status


def test_the_answers_are_not_channel_consent() -> None:
    # a template's answer neither grants nor withdraws the person's WeChat opt-in (following the account)
    for name in ("subscribe_msg_popup.json", "subscribe_msg_change.json"):
        assert {e["event_type"] for e in events(sample(name))} == {"custom"}


def test_an_official_accounts_subscription_notices_map_the_same_way() -> None:
    binding = Binding(brand_id="demo-brand", label=f"wechat:{OA}", channel="wechat_oa")
    [event] = events(sample("subscribe_msg_change.xml"), binding)
    assert event["source"] == "wechat_oa" and event["properties"]["name"] == "wechat_subscribe_rejected"


# ---- the app's other pushes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(
            {
                "ToUserName": "gh_8c1d2e3f4a5b",
                "FromUserName": OPENID,
                "CreateTime": 1767240000,
                "MsgType": "event",
                "Event": "wxa_media_check",
                "appid": MP,
                "trace_id": "967e945cd8a3e458f3c74dcb886068e9",
                "result": {"suggest": "pass", "label": 100},
            }
        ).encode(),
        b"<xml><ToUserName>gh_8c1d2e3f4a5b</ToUserName><FromUserName>oMp</FromUserName><CreateTime>1767240000"
        b"</CreateTime><MsgType>text</MsgType><Content>hello</Content><MsgId>24563128973541248</MsgId></xml>",
        json.dumps({"MsgType": "event", "Event": "user_enter_tempsession"}).encode(),  # no envelope: not read
    ],
    ids=["media-check", "customer-service-message", "unknown-event"],
)
def test_a_mini_programs_other_pushes_are_answered_success_and_not_ingested(body: bytes) -> None:
    result = mapped(body)
    assert result.items == [] and result.rejected == []


# ---- authentication ----------------------------------------------------------------------------------------------


def test_a_push_signed_with_the_mini_programs_token_binds_it_as_a_mini_program() -> None:
    binding = OfficialAccountConnector().authenticate(request(sample("subscribe_msg_sent.json")), SOURCES)
    assert (binding.brand_id, binding.channel) == ("demo-brand", "mini_program")
    xml = request(sample("subscribe_msg_sent.xml"), content_type="text/xml")
    assert OfficialAccountConnector().authenticate(xml, SOURCES).channel == "mini_program"


def test_a_wrong_signature_is_refused() -> None:
    with pytest.raises(AuthenticationError, match="bad signature"):
        OfficialAccountConnector().authenticate(request(sample("subscribe_msg_sent.json"), token="guess"), SOURCES)


def test_an_official_account_takes_xml_only() -> None:
    with pytest.raises(UnsupportedMediaTypeError):
        OfficialAccountConnector().authenticate(request(sample("subscribe_msg_sent.json"), key=OA), SOURCES)


def test_the_relay_route_refuses_a_mini_program_without_its_relay_secret() -> None:
    from cdp.connectors.wechat import MiniProgramConnector

    relay = InboundRequest("wechat_mp", "POST", b"{}", NOW, "r", key=SAFE_MP, headers={"x-cdp-signature": "t=1,v1=0"})
    with pytest.raises(AuthenticationError, match="no relay secret"):
        MiniProgramConnector().authenticate(relay, SOURCES)


@pytest.fixture
def ports() -> Ports:
    return Ports(StaticSources(SOURCES), MemoryArchive(), MemoryLedger(), MemoryPublisher(), lambda _: "CN")


def test_a_safe_mode_json_push_is_decrypted_mapped_and_replayed(ports: Ports) -> None:
    # Given a mini-program in safe mode, and WeChat's JSON envelope of an encrypted sent event
    encrypted = encrypt(sample("subscribe_msg_sent.json"), app_id=SAFE_MP)
    timestamp, nonce = str(int(NOW.timestamp())), "99"
    query = {
        "msg_signature": oa_msg_signature(TOKEN, timestamp, nonce, encrypted),
        "encrypt_type": "aes",
        "timestamp": timestamp,
        "nonce": nonce,
    }
    body = json.dumps({"ToUserName": "gh_8c1d2e3f4a5b", "Encrypt": encrypted}).encode()
    inbound = InboundRequest("wechat_oa", "POST", body, NOW, "req-safe", key=SAFE_MP, query=query)
    # When it is received, and again (WeChat's retry)
    first = receive(inbound, OfficialAccountConnector(), ports)
    again = receive(inbound, OfficialAccountConnector(), ports)
    # Then the receipt is published once, and the archive holds the decrypted push, which replays without the key
    assert (first.result.accepted, again.result.duplicates) == (1, 1)
    assert first.reply is not None and first.reply.body == "success"
    assert {o.body for o in ports.archive.objects.values()} == {sample("subscribe_msg_sent.json")}  # type: ignore[attr-defined]
    hour = timedelta(hours=1)
    summary = replay_archive("wechat_oa", NOW - hour, NOW + hour, ports, lambda _s, _m: OfficialAccountConnector())
    assert (summary.failures, summary.accepted) == ([], 1)  # one archived request (the retry had its id)
    # And the same envelope with a msg_signature made for another body is refused
    forged = InboundRequest("wechat_oa", "POST", body, NOW, "r", key=SAFE_MP, query={**query, "msg_signature": "0"})
    with pytest.raises(AuthenticationError, match="bad msg_signature"):
        receive(forged, OfficialAccountConnector(), ports)


# ---- hostile bodies ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"ToUserName": "gh", "FromUserName": ', "body"),  # truncated JSON
        (b'{"a": NaN}', "body"),
        (b"{" * 40 + b"}" * 40, "body"),  # deeper than any push
        (b'["subscribe_msg_sent_event"]', "body"),  # JSON, but not an object
        (json_push("subscribe_msg_sent_event", ["not an object"]), "List.0"),
        (json_push("subscribe_msg_sent_event", [sent_entry()] * (MAX_LIST_ITEMS + 1)), "List"),
        (
            json.dumps({"MsgType": "event", "Event": "subscribe_msg_sent_event", "List": sent_entry()}).encode(),
            "FromUserName",
        ),
        (json_push("subscribe_msg_sent_event", sent_entry(), CreateTime="yesterday"), "CreateTime"),
        (json_push("subscribe_msg_sent_event", sent_entry(), CreateTime=True), "CreateTime"),
        (json_push("subscribe_msg_sent_event", sent_entry(), FromUserName=["o"]), "FromUserName"),
        (json.dumps({"ToUserName": "gh", "Encrypt": "c2VjcmV0"}).encode(), "Encrypt"),  # safe mode, no key here
        (sample("subscribe_msg_sent.xml")[:-20], "body"),  # truncated XML
        (b'<!DOCTYPE xml [<!ENTITY x "y">]><xml><FromUserName>&x;</FromUserName></xml>', "body"),
    ],
    ids=[
        "truncated-json",
        "nan",
        "deep",
        "array",
        "entry-not-object",
        "too-many-entries",
        "no-sender",
        "bad-time",
        "bool-time",
        "nested-sender",
        "encrypted-without-key",
        "truncated-xml",
        "entities",
    ],
)
def test_a_malformed_push_is_400_naming_the_field(body: bytes, field: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        OfficialAccountConnector().map(request(body), MINI)
    assert err.value.location == field


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        (sent_entry(MsgID=""), "List.0.MsgID"),
        (sent_entry(MsgID="../../etc/passwd\u0000"), "List.0.MsgID"),
        (sent_entry(ErrorCode="ok"), "List.0.ErrorCode"),
        ({k: v for k, v in sent_entry().items() if k != "ErrorCode"}, "List.0.ErrorCode"),
        (sent_entry(TemplateId="<script>"), "List.0.TemplateId"),
        (sent_entry(TemplateId="x" * 129), "List.0.TemplateId"),
    ],
    ids=["no-msgid", "unsafe-msgid", "text-code", "no-code", "unsafe-template", "long-template"],
)
def test_a_bad_entry_is_rejected_alone_and_the_push_still_answered_success(entry: dict[str, str], field: str) -> None:
    good = sent_entry(MsgID="3012659473502674946")
    result = mapped(json_push("subscribe_msg_sent_event", [entry, good]))
    assert [e["properties"]["message_id"] for e in result.items] == ["3012659473502674946"]
    assert [r.errors[0].field for r in result.rejected] == [field]


def test_an_unknown_answer_or_an_empty_list_is_rejected() -> None:
    odd = {"TemplateId": SHIPPED, "SubscribeStatusString": "maybe"}
    assert (
        mapped(json_push("subscribe_msg_popup_event", odd)).rejected[0].errors[0].field
        == "List.0.SubscribeStatusString"
    )
    for empty in ([], None):
        result = mapped(json_push("subscribe_msg_popup_event", empty))
        assert result.items == [] and result.rejected[0].errors[0].field == "List"
