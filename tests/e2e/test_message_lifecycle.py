"""A campaign message's whole life on the local runtime: sent through the brand's China SMS provider (the loopback
fake speaking Alibaba Cloud's SendSms), its provider's receipt posted back through the SMS feedback connector, and
the message's status moved by it in the message log, the person's 360 view and the run's counts; a receipt that
comes twice counts once, and a number the provider refuses for good ends `failed` and is never retried. A
mini-program's subscribe message goes the same way through the fake WeChat API, its status moved by the
subscribe_msg_sent_event WeChat posts to the app's message push URL."""

# ruff: noqa: RUF001 - Chinese template texts, with full-width punctuation

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any, Literal
from urllib.parse import urlencode

import pytest

from cdp import topology
from cdp.channels.messages import DynamoMessageLog
from cdp.channels.ports import LoggedMessage
from cdp.connectors.aws import SecretsManagerSources
from cdp.connectors.wechat import oa_signature
from cdp.ingest.security import sign_cdp
from cdp.shared.time import utc_now
from cdp_local.fakes.aliyun_sms import FakeAliyunSms
from cdp_local.fakes.wechat_api import FakeWeChatApi
from cdp_local.runtime import LocalRuntime

BRAND = "demo-brand"
SMS_SECRET = "local-sms-secret"  # the local `aliyun` receipts relay of demo-brand (LOCAL_SOURCES)
TEMPLATE = "SMS_468190012"


@pytest.fixture
def aliyun(runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAliyunSms]:
    """demo-brand's SMS sent through the fake Alibaba Cloud SMS (its account in the sources secret, re-read on every
    call while the test runs), removed afterwards."""
    secrets = runtime.client("secretsmanager")
    before = secrets.get_secret_value(SecretId=topology.SOURCES_SECRET_LOCAL_NAME)["SecretString"]
    with FakeAliyunSms() as fake:
        fake.register_template(TEMPLATE, "${name}您好，冬季蛋糕上市，回TD退订")
        document = {**json.loads(before), "senders": {BRAND: {"sms": {"default": fake.account()}}}}
        secrets.put_secret_value(SecretId=topology.SOURCES_SECRET_LOCAL_NAME, SecretString=json.dumps(document))
        monkeypatch.setattr(SecretsManagerSources, "TTL_S", 0.0)
        try:
            yield fake
        finally:
            secrets.put_secret_value(SecretId=topology.SOURCES_SECRET_LOCAL_NAME, SecretString=before)


def post_events(runtime: LocalRuntime, events: list[dict[str, Any]]) -> None:
    headers = {"content-type": "application/json", "x-api-key": runtime.api_key}
    assert runtime.http("POST", "/v1/events", json.dumps({"batch": events}).encode(), headers).status == 202


def customer(runtime: LocalRuntime, phone: str) -> str:
    """A member who opted in to marketing SMS: their person id."""
    now = utc_now().isoformat()
    base = {"schema_version": "1", "brand_id": BRAND, "source": "app", "occurred_at": now}
    ident = [{"type": "phone", "value": phone}]
    post_events(
        runtime,
        [
            {
                **base,
                "event_id": f"lc-id-{phone}",
                "event_type": "identify",
                "identifiers": ident,
                "properties": {"name": "小王"},
            },
            {
                **base,
                "event_id": f"lc-consent-{phone}",
                "event_type": "consent_changed",
                "identifiers": ident,
                "properties": {"channel": "sms", "granted": True, "purpose": "marketing"},
            },
        ],
    )
    runtime.drain()
    path = f"/v1/profiles/by-identifier/phone/%2B86{phone}?brand_id={BRAND}"
    response = runtime.http("GET", path, b"", {"x-api-key": runtime.admin_key})
    assert response.status == 200, response.body
    return str(json.loads(response.body)["person_id"])


def send(
    runtime: LocalRuntime, campaign_id: str, person_ids: list[str], template: dict[str, Any] | None = None
) -> dict[str, Any]:
    request = {
        "campaign_id": campaign_id,
        "run_id": f"{campaign_id}-r1",
        "brand_id": BRAND,
        "step": "touch1",
        "channel": "sms",
        "template": template
        or {
            "body": "【本地测试】{{ traits.name }}您好，冬季蛋糕上市，回TD退订",
            "sms": {"code": TEMPLATE, "params": {"name": "{{ traits.name }}"}},
        },
        "person_ids": person_ids,
    }
    result: dict[str, Any] = runtime.invoke(topology.SEND.key, request)
    return result


def messages(runtime: LocalRuntime, person_id: str) -> list[dict[str, Any]]:
    response = runtime.http("GET", f"/v1/profiles/{person_id}", b"", {"x-api-key": runtime.admin_key})
    assert response.status == 200, response.body
    found: list[dict[str, Any]] = json.loads(response.body)["messages"]
    return found


def post_receipts(runtime: LocalRuntime, receipts: list[dict[str, Any]]) -> dict[str, Any]:
    body = json.dumps(receipts, ensure_ascii=False).encode()
    headers = {"content-type": "application/json", "x-cdp-signature": sign_cdp(SMS_SECRET, body, int(time.time()))}
    response = runtime.http("POST", "/v1/feedback/sms/aliyun", body, headers)
    assert response.status == 202, response.body
    answer: dict[str, Any] = json.loads(response.body)
    return answer


def test_a_message_goes_out_through_the_provider_and_its_receipts_move_its_status(
    runtime: LocalRuntime, aliyun: FakeAliyunSms
) -> None:
    # Given two opted-in members, one of whose numbers the provider will report as undeliverable
    tag = str(uuid.uuid4().int)[:8]
    delivered_phone, failed_phone = f"139{tag}", f"138{tag}"
    delivered, failed = customer(runtime, delivered_phone), customer(runtime, failed_phone)
    campaign = f"lifecycle-{tag}"
    # When a campaign step sends them an SMS
    result = send(runtime, campaign, [delivered, failed])
    # Then the provider took both, rendered from its registered template
    assert (result["sent"], result["by_channel"]) == (2, {"sms": 2})
    assert sorted(s.phone for s in aliyun.sent) == sorted([delivered_phone, failed_phone])
    assert {s.text for s in aliyun.sent} == {"【本地测试】小王您好，冬季蛋糕上市，回TD退订"}
    assert [m["status"] for m in messages(runtime, delivered)] == ["sent"]

    # When the provider's receipts come back (twice: the relay retried)
    receipts = aliyun.receipts(failed_phones=(failed_phone,), err_code="MK:0001")
    assert post_receipts(runtime, receipts)["accepted"] == 2
    assert post_receipts(runtime, receipts)["duplicates"] == 2
    runtime.drain()
    # Then each message shows what its receipt said, with the provider's id and code
    [ok] = messages(runtime, delivered)
    [bad] = messages(runtime, failed)
    assert (ok["status"], ok["provider"], ok["channel"]) == ("delivered", "aliyun", "sms")
    assert set(ok["status_times"]) == {"sent", "delivered"}
    assert (bad["status"], bad["error_code"]) == ("failed", "MK:0001")
    # And the run's counts show each message once, at its current status
    log = DynamoMessageLog(topology.LEDGER_TABLE.local_name, client=runtime.client("dynamodb"))
    assert log.counts(BRAND, campaign) == {f"{campaign}-r1": {"sms": {"delivered": 1, "failed": 1}}}


def test_a_number_the_provider_refuses_for_good_ends_failed_and_is_not_retried(
    runtime: LocalRuntime, aliyun: FakeAliyunSms
) -> None:
    # Given a member whose stored number the provider does not accept (a landline-like mainland number)
    tag = str(uuid.uuid4().int)[:8]
    person = customer(runtime, f"139{tag}")
    aliyun.fail_next(
        200,
        json.dumps({"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号", "RequestId": "r"}).encode(),
        headers={"content-type": "application/json"},
    )
    campaign = f"refused-{tag}"
    # When the step is sent, and the batch is retried
    first = send(runtime, campaign, [person])
    again = send(runtime, campaign, [person])
    # Then it failed for good once, and the retry sent nothing
    assert (first["failed"], first["failed_for_good"], first["sent"]) == (1, 1, 0)
    assert (again["sent"], again["failed"], again["suppressed_no_address"]) == (0, 0, 1)  # the number is dead
    assert aliyun.sent == []  # a second call would have been accepted: the fake refused only the first
    # And the next campaign does not send to the dead number at all (the person has no other)
    later = send(runtime, f"{campaign}-next", [person])
    assert (later["sent"], later["suppressed_no_address"]) == (0, 1) and aliyun.sent == []
    statuses = {(m["campaign_id"], m["status"], m.get("error_code")) for m in messages(runtime, person)}
    assert (campaign, "failed", "isv.MOBILE_NUMBER_ILLEGAL") in statuses
    assert (f"{campaign}-next", "suppressed_no_address", None) in statuses


def sms_status_event(message_id: str, phone: str, kind: str, brand: str | None = BRAND) -> dict[str, Any]:
    """End User Messaging's "Text Message Delivery Status Updated" as EventBridge delivers it (AWS's example)."""
    context = {"message_id": message_id, "campaign_id": "eum-test", **({"brand_id": brand} if brand else {})}
    return {
        "Source": "aws.sms-voice",
        "DetailType": "Text Message Delivery Status Updated",
        "EventBusName": "default",
        "Detail": json.dumps(
            {
                "eventType": kind,
                "eventVersion": "1.0",
                "eventTimestamp": int(time.time() * 1000),
                "isFinal": True,
                "originationPhoneNumber": "+12065550152",
                "destinationPhoneNumber": phone,
                "messageId": f"eum-{uuid.uuid4()}",
                "messageStatus": kind.removeprefix("TEXT_"),
                "context": context,
                "totalMessageParts": 1,
            }
        ),
    }


def test_end_user_messaging_status_events_move_the_message_and_foreign_ones_are_parked(runtime: LocalRuntime) -> None:
    # Given a message sent through AWS End User Messaging (recorded in the log as it left)
    tag = str(uuid.uuid4().int)[:8]
    phone = f"+1206555{tag[:4]}"
    log = DynamoMessageLog(topology.LEDGER_TABLE.local_name, client=runtime.client("dynamodb"))
    message_id = f"eum-msg-{tag}"
    log.record(
        [
            LoggedMessage(
                message_id=message_id,
                brand_id=BRAND,
                person_id=f"p-{tag}",
                campaign_id="eum-test",
                run_id=f"eum-run-{tag}",
                step="touch1",
                channel="sms",
                status="sent",
                sent_at=utc_now(),
                provider="end_user_messaging",
                provider_id="eum-1",
            )
        ]
    )
    parked_before = {m["MessageId"] for m in runtime.dlq_messages(topology.DELIVERY_EVENTS_QUEUE)}
    # When AWS reports it delivered on the account's default bus, and a text of another system (no brand) fails
    events = runtime.client("events")
    events.put_events(Entries=[sms_status_event(message_id, phone, "TEXT_DELIVERED")])
    events.put_events(Entries=[sms_status_event("not-ours", phone, "TEXT_BLOCKED", brand=None)])
    runtime.drain()
    # Then the message shows delivered, and the foreign event is parked with its reason, not dropped
    assert log.get_many([message_id])[message_id].status == "delivered"
    parked = [m for m in runtime.dlq_messages(topology.DELIVERY_EVENTS_QUEUE) if m["MessageId"] not in parked_before]
    assert [json.loads(m["Body"])["detail"]["context"]["message_id"] for m in parked] == ["not-ours"]
    reason = {k: v["StringValue"] for k, v in parked[0]["MessageAttributes"].items()}
    assert reason["cdp-permanent"] == "true" and "not sent by this platform" in reason["cdp-error"]


def stored_links(runtime: LocalRuntime) -> int:
    pages = (
        runtime.client("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName=topology.LEDGER_TABLE.local_name,
            FilterExpression="begins_with(pk, :link)",
            ExpressionAttributeValues={":link": {"S": "LINK#"}},
            Select="COUNT",
        )
    )
    return sum(page["Count"] for page in pages)


def test_an_sms_link_is_short_and_its_click_moves_the_message_to_clicked(
    runtime: LocalRuntime, aliyun: FakeAliyunSms
) -> None:
    # Given a member and an SMS template whose link goes in as a variable
    aliyun.register_template("SMS_468190099", "${name}您好，冬季蛋糕上市，详情 ${link} 回TD退订")
    person = customer(runtime, f"139{str(uuid.uuid4().int)[:8]}")
    target = "https://shop.demo-bakery.example.cn/winter-cakes?utm_source=sms"
    template = {
        "body": "【本地测试】{{ traits.name }}您好，冬季蛋糕上市，详情 " + target + " 回TD退订",
        "sms": {"code": "SMS_468190099", "params": {"name": "{{ traits.name }}", "link": target}},
    }
    # When it is sent
    links_before = stored_links(runtime)
    assert send(runtime, f"link-{uuid.uuid4().hex[:8]}", [person], template)["sent"] == 1
    assert stored_links(runtime) == links_before + 1  # the link in the text and in the variable: one short link
    # Then the provider got a short tracked link (base + /r/ + 9 characters), not the ~250-character token
    [sms] = aliyun.sent
    link = sms.params["link"]
    code = link.rsplit("/r/", 1)[1]
    assert link == f"http://127.0.0.1:8787/r/{code}" and len(code) == 9
    assert len(sms.text) <= 70  # one UCS-2 segment with the sign name
    # When the person taps it
    response = runtime.http("GET", f"/r/{code}", b"", {"user-agent": "Mozilla/5.0 (Linux; Android 14)"})
    runtime.drain()
    # Then they land on the target only, and the message shows clicked
    assert response.status == 302, response.body
    assert {k.lower(): v for k, v in response.headers.items()}["location"] == target
    [message] = messages(runtime, person)
    assert message["status"] == "clicked" and "clicked" in message["status_times"]
    # And a code nobody was sent answers 404 and redirects nowhere
    assert runtime.http("GET", "/r/Zz9Zz9Zz9", b"", {}).status == 404


def test_an_email_through_ses_with_a_configuration_set_comes_back_delivered(
    runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given demo-brand sending e-mail through SES v2 with its configuration set (the local runtime publishes SES's
    # events for it to the default bus, as SES does)
    sender = "news@bakery.example"
    runtime.client("sesv2").create_email_identity(EmailIdentity=sender)
    secrets = runtime.client("secretsmanager")
    before = secrets.get_secret_value(SecretId=topology.SOURCES_SECRET_LOCAL_NAME)["SecretString"]
    email = {"from_address": sender, "configuration_set": "cdp-messages"}
    document = {**json.loads(before), "senders": {BRAND: {"email": email}}}
    secrets.put_secret_value(SecretId=topology.SOURCES_SECRET_LOCAL_NAME, SecretString=json.dumps(document))
    monkeypatch.setattr(SecretsManagerSources, "TTL_S", 0.0)
    try:
        tag = uuid.uuid4().hex[:10]
        address = f"li.{tag}@example.cn"
        now = utc_now().isoformat()
        base = {"schema_version": "1", "brand_id": BRAND, "source": "web", "occurred_at": now}
        ident = [{"type": "email", "value": address}]
        post_events(
            runtime,
            [
                {**base, "event_id": f"lc-e-{tag}", "event_type": "identify", "identifiers": ident},
                {**base, "event_id": f"lc-ec-{tag}", "event_type": "consent_changed", "identifiers": ident,
                 "properties": {"channel": "email", "granted": True, "purpose": "marketing"}},
            ],
        )  # fmt: skip
        runtime.drain()
        path = f"/v1/profiles/by-identifier/email/{address}?brand_id={BRAND}"
        person = json.loads(runtime.http("GET", path, b"", {"x-api-key": runtime.admin_key}).body)["person_id"]
        # When a campaign step e-mails them
        request = {
            "campaign_id": f"mail-{tag}",
            "run_id": f"mail-{tag}-r1",
            "brand_id": BRAND,
            "step": "touch1",
            "channel": "email",
            "template": {"subject": "Winter cakes", "body": "Hello {{ traits.name or 'there' }}, our cakes are in."},
            "person_ids": [person],
        }
        assert runtime.invoke(topology.SEND.key, request)["sent"] == 1
        runtime.drain()
        # Then SES's delivery event came back through the default bus and the message shows delivered
        [message] = messages(runtime, person)
        assert (message["status"], message["provider"], message["channel"]) == ("delivered", "ses", "email")
    finally:
        secrets.put_secret_value(SecretId=topology.SOURCES_SECRET_LOCAL_NAME, SecretString=before)


# ---- a mini-program's subscribe message -------------------------------------------------------------------------

MP, MP_TOKEN = "wx-local-mp", "local-mini-program-token"  # LOCAL_SOURCES: the mini-program's message push token
MP_APP_SECRET = "local-mp-app-secret-5e6f7a8b9c0d"  # the fake WeChat API's AppSecret of the mini-program
SHIPPED = "Kx3bQ9mW2pLr7TnY5vZc8HdJ4fGs1aE6uO0iN-_qRtU"


@pytest.fixture
def wechat(runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWeChatApi]:
    """demo-brand's mini-program sending through the fake WeChat API (its app_secret and the `senders` entry in the
    sources secret while the test runs), removed afterwards."""
    secrets = runtime.client("secretsmanager")
    before = secrets.get_secret_value(SecretId=topology.SOURCES_SECRET_LOCAL_NAME)["SecretString"]
    with FakeWeChatApi() as fake:
        fake.add_app(MP, MP_APP_SECRET, "mini_program")
        fake.add_template(MP, SHIPPED, ["thing1", "character_string2"])
        document = json.loads(before)
        document["wechat"][MP] = {**document["wechat"][MP], "app_secret": MP_APP_SECRET}
        document["senders"] = {BRAND: {"wechat": fake.senders(MP)}}
        secrets.put_secret_value(SecretId=topology.SOURCES_SECRET_LOCAL_NAME, SecretString=json.dumps(document))
        monkeypatch.setattr(SecretsManagerSources, "TTL_S", 0.0)
        try:
            yield fake
        finally:
            secrets.put_secret_value(SecretId=topology.SOURCES_SECRET_LOCAL_NAME, SecretString=before)


def mp_push(runtime: LocalRuntime, body: bytes, fmt: Literal["xml", "json"], nonce: str) -> None:
    """A push as WeChat posts it to the mini-program's message push URL (signed with its token), answered success."""
    timestamp = str(int(time.time()))
    query = {"signature": oa_signature(MP_TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
    content_type = "application/json" if fmt == "json" else "text/xml"
    response = runtime.http("POST", f"/v1/wechat/{MP}?{urlencode(query)}", body, {"content-type": content_type})
    assert (response.status, response.body) == (200, b"success"), response.body


def mp_user(runtime: LocalRuntime, openid: str) -> dict[str, Any]:
    path = f"/v1/profiles/by-identifier/wechat_openid/{openid}?brand_id={BRAND}&identifier_scope={MP}"
    response = runtime.http("GET", path, b"", {"x-api-key": runtime.admin_key})
    assert response.status == 200, response.body
    found: dict[str, Any] = json.loads(response.body)
    return found


def test_a_subscribe_message_is_moved_by_the_mini_programs_sent_event(
    runtime: LocalRuntime, wechat: FakeWeChatApi
) -> None:
    # Given two mini-program users who accepted the "order shipped" prompt (WeChat pushes their answers: JSON here)
    tag = uuid.uuid4().hex[:10]
    delivered_openid, failed_openid = f"oE2eMpShipOk{tag}", f"oE2eMpShipKo{tag}"
    for i, openid in enumerate((delivered_openid, failed_openid)):
        popup = wechat.subscribe_popup(MP, openid, {SHIPPED: "accept"}, fmt="json")
        mp_push(runtime, popup, "json", f"{tag}-p{i}")
    runtime.drain()
    delivered, failed = mp_user(runtime, delivered_openid), mp_user(runtime, failed_openid)
    assert delivered["activity"]["custom_counts"] == {"wechat_subscribe_accepted": 1}
    assert "wechat" not in delivered["consent"]  # a template's answer is not the WeChat opt-in
    # When a service step sends them the subscribe message through the mini-program
    campaign = f"shipped-{tag}"
    request = {
        "campaign_id": campaign,
        "run_id": f"{campaign}-r1",
        "brand_id": BRAND,
        "step": "touch1",
        "channel": "wechat",
        "purpose": "service",
        "template": {
            "body": "您的订单已发货",
            "wechat": {
                "template_id": SHIPPED,
                "fields": {"thing1": "草莓蛋糕", "character_string2": "SF1234567890"},
                "page": "pages/orders/detail",
            },
        },
        "person_ids": [delivered["person_id"], failed["person_id"]],
    }
    result = runtime.invoke(topology.SEND.key, request)
    assert (result["sent"], result["by_channel"]) == (2, {"wechat": 2}), result
    msgids = {m.openid: m.msgid for m in wechat.sent}
    [sent] = messages(runtime, delivered["person_id"])
    assert (sent["status"], sent["provider"]) == ("sent", "wechat")
    # And WeChat posts each delivery result to the message push URL (XML here), the first one twice (a retry)
    ok = wechat.subscribe_msg_sent(MP, msgids[delivered_openid])
    ko = wechat.subscribe_msg_sent(MP, msgids[failed_openid], error_code=10003, error_status="fail")
    for nonce, body in ((f"{tag}-s1", ok), (f"{tag}-s1", ok), (f"{tag}-s2", ko)):
        mp_push(runtime, body, "xml", nonce)
    runtime.drain()
    # Then each message shows what WeChat said, in the person's 360 view
    [ok_message] = messages(runtime, delivered["person_id"])
    [ko_message] = messages(runtime, failed["person_id"])
    assert (ok_message["status"], ok_message["channel"]) == ("delivered", "wechat")
    assert set(ok_message["status_times"]) == {"sent", "delivered"}
    assert (ko_message["status"], ko_message["error_code"]) == ("failed", "10003")
    # And the run counts each message once, at its current status (the retried push moved nothing twice)
    log = DynamoMessageLog(topology.LEDGER_TABLE.local_name, client=runtime.client("dynamodb"))
    assert log.counts(BRAND, campaign) == {f"{campaign}-r1": {"wechat": {"delivered": 1, "failed": 1}}}
    # When the first person then refuses the template in the mini-program's settings
    mp_push(runtime, wechat.subscribe_settings_reject(MP, delivered_openid, [SHIPPED]), "xml", f"{tag}-c1")
    runtime.drain()
    # Then it is on their profile as their answer, and WeChat holds no send of it for them any more
    counts = mp_user(runtime, delivered_openid)["activity"]["custom_counts"]
    assert counts == {"wechat_subscribe_accepted": 1, "wechat_subscribe_rejected": 1}
    assert wechat.subscriptions_left(MP, delivered_openid, SHIPPED) == 0
