"""The WeChat sender over real HTTP against the started fake WeChat API: a send, a read timeout (an unknown
outcome), a refused connection (certainly not sent), and the TEMPLATESENDJOBFINISH push WeChat then posts to the
official account, which the inbound connector reads as the delivery of the message with that msgid; likewise a
mini-program's subscribe message and the subscribe_msg_sent_event of its message push."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Literal

import pytest

from cdp.channels.models import OutboundMessage, message_id_for
from cdp.channels.ports import DeliveryRejected
from cdp.channels.wechat import WeChatChannel
from cdp.channels.wechat_tokens import InMemoryAccessTokens
from cdp.connectors.base import Binding, InboundRequest
from cdp.connectors.sender_accounts import WeChatSenders
from cdp.connectors.sources import WeChatApp
from cdp.connectors.wechat import OfficialAccountConnector, oa_signature, parse_push
from cdp.errors import ChannelError
from cdp_local.fakes.wechat_api import FakeWeChatApi, original_id

OA, OA_SECRET = "wx-local-oa", "oa-app-secret-9f8e7d6c5b4a39281706"
FOLLOWER, TEMPLATE = "oX7Pz5Hq2nTtY8kLmN3bVcR4sD1e", "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY"
CALLBACK_TOKEN = "local-wechat-token"
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def fake() -> Iterator[FakeWeChatApi]:
    with FakeWeChatApi() as api:
        api.add_app(OA, OA_SECRET, "official_account")
        api.add_template(OA, TEMPLATE, ["thing1", "amount2"])
        api.follow(OA, FOLLOWER)
        yield api


def sender(endpoint: str, tokens: InMemoryAccessTokens) -> WeChatChannel:
    app = WeChatApp(brand_id="demo-brand", kind="official_account", token=CALLBACK_TOKEN, app_secret=OA_SECRET)
    senders = WeChatSenders(apps=(OA,), endpoint=endpoint, timeout_s=0.2)
    return WeChatChannel(OA, app, senders, tokens)  # the default transport: urllib over the loopback


def message(person: str) -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id_for("spring-cake", "touch1", person),
        campaign_id="spring-cake",
        run_id="run-1",
        step="touch1",
        channel="wechat",
        person_id=person,
        address=FOLLOWER,
        address_scope=OA,
        body="您的草莓蛋糕已发货",
        template_ref=TEMPLATE,
        fields={"thing1": "草莓蛋糕", "amount2": "¥88.00"},
        link="https://shop.example.cn/orders/88",
        created_at=T0,
    )


def test_a_template_message_is_sent_over_http(fake: FakeWeChatApi) -> None:
    receipt = sender(fake.url, InMemoryAccessTokens()).send(message("p-1"))
    (sent,) = fake.sent
    assert receipt.provider_id == str(sent.msgid) and sent.data == {"thing1": "草莓蛋糕", "amount2": "¥88.00"}
    assert sent.url == "https://shop.example.cn/orders/88" and fake.token_fetches == 1


def test_a_read_timeout_is_an_unknown_outcome(fake: FakeWeChatApi) -> None:
    tokens = InMemoryAccessTokens()
    channel = sender(fake.url, tokens)
    channel.send(message("p-1"))  # the token is held: the next call is the send itself
    fake.delay_next(0.45)  # longer than the sender's 0.2 s
    with pytest.raises(ChannelError) as caught:
        channel.send(message("p-2"))
    token = tokens.current(OA)
    assert not isinstance(caught.value, DeliveryRejected)
    assert token and token not in str(caught.value)
    deadline = time.monotonic() + 3
    while len(fake.sent) < 2 and time.monotonic() < deadline:  # WeChat did send it, late
        time.sleep(0.05)
    assert len(fake.sent) == 2


def test_a_refused_connection_is_certainly_not_sent(fake: FakeWeChatApi) -> None:
    gone = FakeWeChatApi()
    url = gone.url
    gone.stop()  # nothing listens there any more
    with pytest.raises(DeliveryRejected) as caught:
        sender(url, InMemoryAccessTokens()).send(message("p-1"))
    assert not caught.value.permanent


def test_the_template_job_finish_push_names_the_sent_msgid(fake: FakeWeChatApi) -> None:
    receipt = sender(fake.url, InMemoryAccessTokens()).send(message("p-1"))
    body = fake.template_job_finish(OA, receipt.provider_id, status="failed:user block")
    push = parse_push(body)
    assert push["MsgType"] == "event" and push["Event"] == "TEMPLATESENDJOBFINISH"
    assert push["MsgID"] == receipt.provider_id and push["FromUserName"] == FOLLOWER
    assert push["ToUserName"] == original_id(OA) and push["Status"] == "failed:user block"
    # and the official account's connector reads it as the delivery report of that message
    timestamp, nonce = str(int(time.time())), "1514711492"
    request = InboundRequest(
        connector="wechat_oa",
        method="POST",
        body=body,
        received_at=datetime.now(UTC),
        request_id="req-1",
        key=OA,
        headers={"content-type": "text/xml"},
        query={"signature": oa_signature(CALLBACK_TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce},
    )
    binding = Binding(brand_id="demo-brand", label=f"wechat:{OA}", channel="wechat_oa")
    mapped = OfficialAccountConnector().map(request, binding)
    (event,) = mapped.items
    assert event["event_type"] == "message_delivered"
    assert event["properties"]["message_id"] == receipt.provider_id
    assert event["properties"]["status"] == "failed"


def test_a_push_for_a_message_never_sent_is_refused(fake: FakeWeChatApi) -> None:
    with pytest.raises(KeyError):
        fake.template_job_finish(OA, 1)
    with pytest.raises(ValueError, match="status"):
        fake.template_job_finish(OA, 1, status="delivered")


# ---- a mini-program's subscribe message and its sent event -------------------------------------------------------

MP, MP_SECRET, MP_TOKEN = "wx-local-mp", "mp-app-secret-0a1b2c3d4e5f6a7b8c9d", "mp-push-token"
SHIPPED = "Kx3bQ9mW2pLr7TnY5vZc8HdJ4fGs1aE6uO0iN-_qRtU"
MP_USER = "oMp4Kq7Zt2LwX9cVb3Nn8RjY5sHe"


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_the_subscribe_message_sent_event_names_the_sent_msgid(fmt: Literal["xml", "json"]) -> None:
    with FakeWeChatApi() as fake:
        fake.add_app(MP, MP_SECRET, "mini_program")
        fake.add_template(MP, SHIPPED, ["thing1", "character_string2"])
        # Given the person accepted the prompt (one send) and the subscribe message went out
        popup = fake.subscribe_popup(MP, MP_USER, {SHIPPED: "accept"}, fmt=fmt)
        assert fake.subscriptions_left(MP, MP_USER, SHIPPED) == 1
        app = WeChatApp(brand_id="demo-brand", kind="mini_program", token=MP_TOKEN, app_secret=MP_SECRET)
        channel = WeChatChannel(MP, app, WeChatSenders(apps=(MP,), endpoint=fake.url), InMemoryAccessTokens())
        shipped = message("p-9").model_copy(
            update={
                "address": MP_USER,
                "address_scope": MP,
                "template_ref": SHIPPED,
                "fields": {"thing1": "草莓蛋糕", "character_string2": "SF1234567890"},
                "link": "pages/orders/detail?id=88",
            }
        )
        receipt = channel.send(shipped)
        # Then the sender recorded WeChat's msgid as the provider id: the sent event names it
        (sent,) = fake.sent
        assert receipt.provider == "wechat" and receipt.provider_id == str(sent.msgid)
        assert sent.page == "pages/orders/detail?id=88" and fake.subscriptions_left(MP, MP_USER, SHIPPED) == 0
        binding = Binding(brand_id="demo-brand", label=f"wechat:{MP}", channel="mini_program")
        body = fake.subscribe_msg_sent(MP, receipt.provider_id, error_code=10003, error_status="fail", fmt=fmt)
        push_request = InboundRequest("wechat_oa", "POST", body, datetime.now(UTC), "req-mp", key=MP)
        (event,) = OfficialAccountConnector().map(push_request, binding).items
        assert event["event_type"] == "message_delivered" and event["source"] == "mini_program"
        assert event["properties"]["message_id"] == receipt.provider_id
        assert (event["properties"]["status"], event["properties"]["error_code"]) == ("failed", "10003")
        # and the popup push it answered with is the person's accept of that template
        (answer,) = (
            OfficialAccountConnector().map(InboundRequest("wechat_oa", "POST", popup, T0, "r", key=MP), binding).items
        )
        assert answer["properties"]["name"] == "wechat_subscribe_accepted"
        assert answer["properties"]["template_id"] == SHIPPED


def test_the_fake_refuses_pushes_for_what_did_not_happen(fake: FakeWeChatApi) -> None:
    with pytest.raises(KeyError):
        fake.subscribe_msg_sent(OA, 1)  # an official account sends no subscribe messages
    with pytest.raises(KeyError):
        fake.subscribe_popup(OA, FOLLOWER, {TEMPLATE: "accept"})
    fake.add_app(MP, MP_SECRET, "mini_program")
    with pytest.raises(KeyError):
        fake.subscribe_popup(MP, MP_USER, {"unknown-template": "accept"})
    with pytest.raises(ValueError, match="accept"):
        fake.subscribe_popup(MP, MP_USER, {SHIPPED: "maybe"})
