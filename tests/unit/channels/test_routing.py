"""Which sender delivers a message (cdp.channels.routing): the brand's accounts per channel, mainland numbers to the
China provider, the stack's defaults, the local outbox, and a clear permanent refusal where nothing is configured;
each sender retries transient refusals and is rebuilt when its account changes."""

# ruff: noqa: RUF001 - Chinese template texts, with full-width punctuation

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from cdp.channels.models import ChannelName, DeliveryReceipt, OutboundMessage
from cdp.channels.ports import Channel, DeliveryRejected
from cdp.channels.retries import Backoff
from cdp.channels.routing import ProviderKit, SenderDirectory, StackDefaults
from cdp.connectors.sources import SourceRegistry, SourcesConfig, parse_sources
from cdp.shared.http import HttpAnswer, HttpTransport
from cdp_local.fakes.aliyun_sms import FakeAliyunSms
from cdp_local.fakes.webhook_receiver import FakeWebhookReceiver

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
TEMPLATE = "SMS_468190012"


class Sources(SourceRegistry):
    def __init__(self, document: dict[str, Any]) -> None:
        self.config = parse_sources(document)

    def sources(self) -> SourcesConfig:
        return self.config


class Outbox(Channel):
    name: ChannelName = "outbox"

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    def send(self, message: OutboundMessage) -> DeliveryReceipt:
        self.sent.append(message)
        return DeliveryReceipt(message_id=message.message_id, channel=message.channel, provider_id="k", accepted_at=T0)


@pytest.fixture
def aliyun() -> Iterator[FakeAliyunSms]:
    fake = FakeAliyunSms()  # never started: called in-process
    fake.register_template(TEMPLATE, "${name}您好，春季新品上市，回TD退订")
    yield fake
    fake.stop()


@pytest.fixture
def hook() -> Iterator[FakeWebhookReceiver]:
    fake = FakeWebhookReceiver()
    yield fake
    fake.stop()


def by_url(*fakes: Any) -> HttpTransport:
    def send(method: str, url: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        fake = next(f for f in fakes if url.startswith(f.url))
        answer: HttpAnswer = fake.transport()(method, url, headers, body)
        return answer

    return send


def message(channel: ChannelName, address: str, brand: str = "bakery", **changes: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "message_id": f"m-{channel}-{address}",
        "campaign_id": "spring",
        "run_id": "r1",
        "step": "touch1",
        "channel": channel,
        "person_id": "p1",
        "brand_id": brand,
        "address": address,
        "body": "【本地测试】小王您好，春季新品上市，回TD退订",
        "template_ref": TEMPLATE,
        "fields": {"name": "小王"},
        "created_at": T0,
    }
    return OutboundMessage(**{**values, **changes})


def directory(sources: SourceRegistry | None, *fakes: Any, **defaults: Any) -> tuple[SenderDirectory, Outbox]:
    outbox = Outbox()
    kit = ProviderKit(transport=lambda _timeout: by_url(*fakes), backoff=Backoff(3, (0.0,)), sleep=lambda _s: None)
    return SenderDirectory(sources, StackDefaults(**defaults), kit, outbox=outbox), outbox


def test_a_brands_mainland_numbers_go_to_its_china_provider_and_webhooks_to_its_endpoint(
    aliyun: FakeAliyunSms, hook: FakeWebhookReceiver
) -> None:
    # Given a brand with Alibaba Cloud SMS for mainland numbers and a webhook endpoint
    sources = Sources({"senders": {"bakery": {"sms": {"default": aliyun.account()}, "webhook": hook.account()}}})
    senders, outbox = directory(sources, aliyun, hook, via_outbox=True)
    channels = senders.channels()
    # When an SMS to a mainland number and a webhook message are sent
    sms = channels["sms"].send(message("sms", "+8613900001111"))
    webhook = channels["webhook"].send(message("webhook", "p1"))
    # Then the provider took each, and nothing went to the outbox
    assert (sms.provider, sms.provider_id) == ("aliyun", aliyun.sent[0].biz_id)
    assert aliyun.sent[0].phone == "13900001111"
    assert webhook.provider == "webhook" and [d.body["message_id"] for d in hook.received] == ["m-webhook-p1"]
    assert outbox.sent == []


def test_a_channel_the_brand_has_no_account_for_is_refused_for_good_when_deployed() -> None:
    # Given a deployed stack (no outbox) and a brand naming no push, WeChat or webhook account
    senders, _ = directory(Sources({}), email_from="news@bakery.example", sms_origination="pool-1")
    channels = senders.channels()
    for name, address in (("push", "token-1"), ("wechat", "openid-1"), ("webhook", "p1")):
        # When a message goes out on it / Then it is refused for good, saying what to configure
        with pytest.raises(DeliveryRejected, match=f"senders.<brand>.{name}") as refused:
            channels[name].send(message(name, address))  # type: ignore[arg-type]
        assert refused.value.permanent and refused.value.code == "no_sender"


def test_locally_a_channel_without_an_account_goes_to_the_outbox() -> None:
    senders, outbox = directory(None, via_outbox=True, email_from="news@bakery.example")
    for name in ("sms", "email", "push", "wechat", "webhook"):
        senders.channels()[name].send(message(name, "addr"))  # type: ignore[arg-type]
    assert [m.channel for m in outbox.sent] == ["sms", "email", "push", "wechat", "webhook"]


def test_a_wechat_message_needs_a_sending_app_that_owns_the_openid(aliyun: FakeAliyunSms) -> None:
    document = {
        "wechat": {"wx-oa": {"brand_id": "bakery", "kind": "official_account", "token": "t", "app_secret": "s"}},
        "senders": {"bakery": {"wechat": {"apps": ["wx-oa"]}}},
    }
    senders, _ = directory(Sources(document), via_outbox=True)
    with pytest.raises(DeliveryRejected, match="owns the person's OpenID") as refused:
        senders.channels()["wechat"].send(message("wechat", "openid-1", address_scope="wx-other"))
    assert refused.value.permanent and refused.value.code == "no_sender"


def test_a_sending_app_must_be_one_of_the_brands_apps_with_its_secret() -> None:
    document = {
        "wechat": {"wx-oa": {"brand_id": "bakery", "kind": "official_account", "token": "t"}},
        "senders": {"bakery": {"wechat": {"apps": ["wx-oa"]}}},
    }
    with pytest.raises(Exception, match=r"senders.bakery.wechat.apps: wx-oa must be one of the brand's apps"):
        parse_sources(document)


def test_a_transient_refusal_is_retried_and_a_permanent_one_is_not(aliyun: FakeAliyunSms) -> None:
    sources = Sources({"senders": {"bakery": {"sms": {"default": aliyun.account()}}}})
    senders, _ = directory(sources, aliyun)
    sms = senders.channels()["sms"]
    # Given the provider throttling the next call / When a message is sent / Then the retry gets it through
    aliyun.throttle_next(1)
    assert sms.send(message("sms", "+8613900001111")).provider == "aliyun"
    assert len(aliyun.calls()) == 2
    # Given a template the provider does not know / Then one call, refused for good
    with pytest.raises(DeliveryRejected) as refused:
        sms.send(message("sms", "+8613900002222", template_ref="SMS_000000000"))
    assert refused.value.permanent and len(aliyun.calls()) == 3


def test_a_changed_account_builds_a_new_sender(aliyun: FakeAliyunSms) -> None:
    sources = Sources({"senders": {"bakery": {"sms": {"default": aliyun.account()}}}})
    senders, _ = directory(sources, aliyun)
    first = senders.sender_for("sms", message("sms", "+8613900001111"))
    assert senders.sender_for("sms", message("sms", "+8613900003333")) is first  # reused while unchanged
    sources.config = parse_sources({"senders": {"bakery": {"sms": {"default": aliyun.account(sign_name="新签名")}}}})
    assert senders.sender_for("sms", message("sms", "+8613900001111")) is not first
