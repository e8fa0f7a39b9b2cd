"""The WeChat sender against the fake WeChat API in-process (no sockets): what a template message and a subscribe
message carry, the shared access token (fetched once, replaced once when WeChat refuses it) and how each of
WeChat's answers ends the send."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from cdp.channels.models import OutboundMessage, message_id_for
from cdp.channels.ports import DeliveryRejected
from cdp.channels.wechat import WeChatChannel
from cdp.channels.wechat_tokens import AccessTokens, InMemoryAccessTokens
from cdp.connectors.sender_accounts import WeChatSenders
from cdp.connectors.sources import WeChatApp
from cdp.errors import ChannelError, StoreError
from cdp.shared.http import HttpAnswer, HttpTransport, HttpUnreachable
from cdp_local.fakes.wechat_api import FakeWeChatApi

OA, MP, LINKED_MP = "wx-local-oa", "wx-local-mp", "wx5d7269cc1ef5a340"
OA_SECRET, MP_SECRET = "oa-app-secret-9f8e7d6c5b4a39281706", "mp-app-secret-0a1b2c3d4e5f60718293"
FOLLOWER, STRANGER, USER = (
    "oX7Pz5Hq2nTtY8kLmN3bVcR4sD1e",
    "oStranger0000000000000000000",
    "oUser00000000000000000000000",
)
SHIPPED, REMINDER = "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY", "t7jHOgnrU4zbr8VFuQdA7LPjSplAQSlH5GHYtp6mXsk"
FIELDS = {"thing1": "草莓蛋糕", "amount2": "¥88.00"}
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def fake() -> Iterator[FakeWeChatApi]:
    api = FakeWeChatApi()  # never started: called in-process
    api.add_app(OA, OA_SECRET, "official_account")
    api.add_app(MP, MP_SECRET, "mini_program")
    api.add_template(OA, SHIPPED, FIELDS)
    api.add_template(MP, REMINDER, FIELDS)
    api.follow(OA, FOLLOWER)
    api.add_user(OA, STRANGER)  # known to the account, not following it
    api.grant_subscription(MP, USER, REMINDER, times=1)
    yield api
    api.stop()


def wechat_app(app_id: str) -> WeChatApp:
    if app_id == OA:
        return WeChatApp(brand_id="demo-brand", kind="official_account", token="cb-token", app_secret=OA_SECRET)
    return WeChatApp(brand_id="demo-brand", kind="mini_program", secret="mp-hmac", app_secret=MP_SECRET)


def channel(
    fake: FakeWeChatApi,
    app_id: str = OA,
    tokens: AccessTokens | None = None,
    transport: HttpTransport | None = None,
    **options: Any,
) -> WeChatChannel:
    senders = WeChatSenders.model_validate(fake.senders(OA, MP))
    return WeChatChannel(
        app_id,
        wechat_app(app_id),
        senders,
        tokens or InMemoryAccessTokens(),
        transport or fake.transport(),
        **options,
    )


def message(address: str = FOLLOWER, app_id: str = OA, person: str = "p-1", **changes: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "message_id": message_id_for("spring-cake", "touch1", person),
        "campaign_id": "spring-cake",
        "run_id": "run-1",
        "step": "touch1",
        "channel": "wechat",
        "person_id": person,
        "brand_id": "demo-brand",
        "address": address,
        "address_scope": app_id.lower(),
        "body": "您的草莓蛋糕已发货",
        "template_ref": SHIPPED if app_id == OA else REMINDER,
        "fields": FIELDS,
        "created_at": T0,
        **changes,
    }
    return OutboundMessage(**values)


def rejected(send: WeChatChannel, outbound: OutboundMessage) -> DeliveryRejected:
    with pytest.raises(DeliveryRejected) as caught:
        send.send(outbound)
    return caught.value


# ---- what is sent --------------------------------------------------------------------------------------------


def test_a_template_message_carries_the_fields_the_web_link_and_the_message_id_as_client_msg_id(
    fake: FakeWeChatApi,
) -> None:
    outbound = message(link="https://shop.example.cn/orders/88?utm_source=wechat")
    receipt = channel(fake).send(outbound)
    (sent,) = fake.sent
    assert sent.app_id == OA and sent.openid == FOLLOWER and sent.template_id == SHIPPED
    assert sent.data == FIELDS
    assert sent.url == "https://shop.example.cn/orders/88?utm_source=wechat" and sent.miniprogram_appid is None
    assert sent.client_msg_id == outbound.message_id
    assert receipt.provider == "wechat" and receipt.channel == "wechat"
    assert receipt.provider_id == str(sent.msgid) and receipt.message_id == outbound.message_id


def test_a_page_link_opens_the_configured_mini_program_else_the_message_goes_without_a_jump(
    fake: FakeWeChatApi,
) -> None:
    channel(fake, mini_program_app_id=LINKED_MP).send(message(link="pages/order/detail?id=88"))
    channel(fake).send(message(person="p-2", link="pages/order/detail?id=88"))
    linked, plain = fake.sent
    assert linked.miniprogram_appid == LINKED_MP and linked.page == "pages/order/detail?id=88" and linked.url is None
    assert plain.miniprogram_appid is None and plain.page is None and plain.url is None


def test_a_subscribe_message_carries_page_state_and_lang_and_uses_one_subscription(fake: FakeWeChatApi) -> None:
    receipt = channel(fake, MP, miniprogram_state="trial").send(
        message(USER, MP, link="pages/cake/detail?sku=strawberry")
    )
    (sent,) = fake.sent
    assert sent.kind == "mini_program" and sent.openid == USER and sent.template_id == REMINDER
    assert sent.data == FIELDS and sent.page == "pages/cake/detail?sku=strawberry"
    assert sent.miniprogram_state == "trial" and sent.lang == "zh_CN" and sent.client_msg_id is None
    assert receipt.provider_id == str(sent.msgid)
    assert fake.subscriptions_left(MP, USER, REMINDER) == 0


def test_a_web_link_is_left_out_of_a_subscribe_message(fake: FakeWeChatApi) -> None:
    channel(fake, MP).send(message(USER, MP, link="https://shop.example.cn/cakes"))
    assert fake.sent[0].page is None


def test_the_same_message_again_is_deduplicated_by_client_msg_id(fake: FakeWeChatApi) -> None:
    sender = channel(fake)
    first, again = sender.send(message()), sender.send(message())
    assert first.provider_id == again.provider_id and len(fake.sent) == 1


# ---- the access token ----------------------------------------------------------------------------------------


def test_the_token_is_fetched_once_and_shared_by_every_send_and_sender(fake: FakeWeChatApi) -> None:
    tokens = InMemoryAccessTokens()
    one, two = channel(fake, tokens=tokens), channel(fake, tokens=tokens)
    one.send(message(person="p-1"))
    two.send(message(person="p-2"))
    one.send(message(person="p-3"))
    assert fake.token_fetches == 1 and len(fake.sent) == 3


def test_an_expired_token_is_replaced_by_one_forced_fetch_and_the_message_sent(fake: FakeWeChatApi) -> None:
    tokens = InMemoryAccessTokens()
    sender = channel(fake, tokens=tokens)
    sender.send(message(person="p-1"))
    before = tokens.current(OA)
    fake.expire_tokens()
    receipt = sender.send(message(person="p-2"))
    assert fake.token_fetches == 2 and fake.forced_fetches == 1
    assert len(fake.sent) == 2 and receipt.provider_id == str(fake.sent[1].msgid)
    assert tokens.current(OA) not in (None, before)
    channel(fake, tokens=tokens).send(message(person="p-3"))  # the fresh token is shared too
    assert fake.token_fetches == 2


def test_a_token_refused_again_after_the_refresh_is_final(fake: FakeWeChatApi) -> None:
    inner: HttpTransport = fake.transport()

    def always_expired(method: str, url: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        if "/message/" in url:
            return HttpAnswer(200, b'{"errcode":42001,"errmsg":"access_token expired"}')
        return inner(method, url, headers, body)

    error = rejected(channel(fake, transport=always_expired), message())
    # final: a retry would force another refresh (WeChat allows 20 a day) and be refused the same way
    assert error.permanent and error.code == "token_rejected"
    assert fake.token_fetches == 2 and fake.forced_fetches == 1 and not fake.sent


def test_a_wrong_app_secret_is_permanent_and_nothing_is_sent(fake: FakeWeChatApi) -> None:
    senders = WeChatSenders.model_validate(fake.senders(OA))
    app = WeChatApp(brand_id="demo-brand", kind="official_account", token="cb", app_secret="not-the-secret")
    error = rejected(WeChatChannel(OA, app, senders, InMemoryAccessTokens(), fake.transport()), message())
    assert error.permanent and error.code == "credentials_rejected" and not fake.sent
    assert "not-the-secret" not in str(error)


def test_a_busy_token_endpoint_is_transient(fake: FakeWeChatApi) -> None:
    fake.fail_next(200, b'{"errcode":-1,"errmsg":"system error"}')
    error = rejected(channel(fake), message())
    assert not error.permanent and error.code == "busy" and not fake.sent


# ---- how WeChat's answers end the send -----------------------------------------------------------------------


def test_template_missing_is_refused_before_any_call(fake: FakeWeChatApi) -> None:
    calls: list[str] = []
    inner: HttpTransport = fake.transport()

    def counting(method: str, url: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        calls.append(url)
        return inner(method, url, headers, body)

    for outbound in (message(template_ref=None), message(fields={})):
        error = rejected(channel(fake, transport=counting), outbound)
        assert error.permanent and error.code == "template_missing"
    assert calls == [] and fake.token_fetches == 0


def test_an_openid_of_another_app_is_refused_before_any_call(fake: FakeWeChatApi) -> None:
    error = rejected(channel(fake), message(address_scope=MP))
    assert error.permanent and not error.invalid_address and error.code == "wrong_app"
    assert fake.token_fetches == 0


@pytest.mark.parametrize(
    ("app_id", "address", "changes", "code", "invalid_address"),
    [
        (OA, "oNeverSeen000000000000000000", {}, "invalid_openid", True),
        (OA, STRANGER, {}, "not_following", False),
        (MP, "oNoSubscription0000000000000", {}, "invalid_openid", True),
        (OA, FOLLOWER, {"template_ref": "unknown-template"}, "invalid_template", False),
        (OA, FOLLOWER, {"fields": {"thing1": "草莓蛋糕"}}, "invalid_data", False),
        (OA, FOLLOWER, {"fields": {**FIELDS, "time3": "10:00"}}, "invalid_data", False),
    ],
)
def test_refusals_for_the_person_or_the_template_are_permanent(
    fake: FakeWeChatApi, app_id: str, address: str, changes: dict[str, Any], code: str, invalid_address: bool
) -> None:
    error = rejected(channel(fake, app_id), message(address, app_id, **changes))
    assert error.permanent and error.code == code and error.invalid_address is invalid_address
    assert not fake.sent


def test_a_mini_program_user_without_a_subscription_left_refused(fake: FakeWeChatApi) -> None:
    sender = channel(fake, MP)
    sender.send(message(USER, MP, person="p-1"))  # the one subscription granted
    error = rejected(sender, message(USER, MP, person="p-2"))
    assert error.permanent and error.code == "user_refused" and len(fake.sent) == 1


def test_the_days_quota_spent_is_permanent(fake: FakeWeChatApi) -> None:
    fake.quota_next()
    error = rejected(channel(fake), message())
    assert error.permanent and error.code == "quota_exceeded" and not fake.sent


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (200, b'{"errcode":-1,"errmsg":"system error"}', "busy"),
        (200, b'{"errcode":45011,"errmsg":"api minute-quota reach limit"}', "busy"),
        (500, b"", "http_500"),
        (502, b"<html>bad gateway</html>", "http_502"),
        (429, b"", "http_429"),
        (200, b'{"errcode":99999,"errmsg":"something new"}', "wechat_99999"),
    ],
)
def test_busy_answers_are_transient(fake: FakeWeChatApi, status: int, body: bytes, code: str) -> None:
    tokens = InMemoryAccessTokens()
    channel(fake, tokens=tokens).send(message(person="p-0"))  # the token is held: the next call is the send
    fake.fail_next(status, body)
    error = rejected(channel(fake, tokens=tokens), message())
    assert not error.permanent and not error.invalid_address and error.code == code
    assert len(fake.sent) == 1


def test_no_connection_is_transient_and_no_answer_is_an_unknown_outcome(fake: FakeWeChatApi) -> None:
    tokens = InMemoryAccessTokens()
    channel(fake, tokens=tokens).send(message(person="p-0"))
    token = tokens.current(OA)
    assert token

    def unreachable(sent: bool | None) -> HttpTransport:
        def send(method: str, url: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
            raise HttpUnreachable(url, "timed out" if sent is None else "connection refused", sent)

        return send

    refused = rejected(channel(fake, tokens=tokens, transport=unreachable(False)), message())
    assert not refused.permanent
    with pytest.raises(ChannelError) as caught:
        channel(fake, tokens=tokens, transport=unreachable(None)).send(message())
    assert not isinstance(caught.value, DeliveryRejected)
    for error in (refused, caught.value):  # the URL carried the token: it is not repeated
        assert token not in str(error) and OA_SECRET not in str(error)
        assert error.__cause__ is None and error.__suppress_context__


def test_an_unreadable_answer_to_a_send_is_an_unknown_outcome(fake: FakeWeChatApi) -> None:
    tokens = InMemoryAccessTokens()
    channel(fake, tokens=tokens).send(message(person="p-0"))
    fake.fail_next(200, b"<html>proxy</html>")
    with pytest.raises(ChannelError) as caught:
        channel(fake, tokens=tokens).send(message())
    assert not isinstance(caught.value, DeliveryRejected)


def test_an_app_without_its_secret_cannot_send(fake: FakeWeChatApi) -> None:
    senders = WeChatSenders.model_validate(fake.senders(OA))
    app = WeChatApp(brand_id="demo-brand", kind="official_account", token="cb")
    with pytest.raises(ValueError, match="app_secret"):
        WeChatChannel(OA, app, senders, InMemoryAccessTokens(), fake.transport())


class BrokenStore(AccessTokens):
    """DynamoDB down: every read and write fails."""

    def current(self, app_id: str) -> str | None:
        raise StoreError("reading the WeChat access token failed: ServiceUnavailable")

    def store(self, app_id: str, token: str, expires_at: datetime) -> None:
        raise StoreError("storing the WeChat access token failed: ServiceUnavailable")

    def discard(self, app_id: str, token: str) -> None:
        raise StoreError("discarding the WeChat access token failed: ServiceUnavailable")


def test_a_failing_token_store_does_not_stop_the_send(fake: FakeWeChatApi) -> None:
    sender = channel(fake, tokens=BrokenStore())
    sender.send(message(person="p-1"))
    sender.send(message(person="p-2"))  # nothing held: asked again (normal mode answers the token already issued)
    assert len(fake.sent) == 2 and fake.token_fetches == 2 and fake.forced_fetches == 0
