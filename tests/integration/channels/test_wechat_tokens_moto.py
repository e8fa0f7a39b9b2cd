"""The shared WeChat access tokens on DynamoDB (moto): two containers (two `DynamoAccessTokens`) share one token
through the LEDGER table, a warm container answers from its own cache, a discard removes only the token still
stored, an expiring token is not handed out; and two senders in two containers replace a refused token once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from cdp import topology
from cdp.channels.models import OutboundMessage, message_id_for
from cdp.channels.wechat import WeChatChannel
from cdp.channels.wechat_tokens import DynamoAccessTokens, token_pk
from cdp.connectors.sender_accounts import WeChatSenders
from cdp.connectors.sources import WeChatApp
from cdp_local.fakes.wechat_api import FakeWeChatApi
from tests.integration.channels.conftest import Aws

TABLE = topology.LEDGER_TABLE.local_name
OA, OA_SECRET = "wx-local-oa", "oa-app-secret-9f8e7d6c5b4a39281706"
FOLLOWER, TEMPLATE = "oX7Pz5Hq2nTtY8kLmN3bVcR4sD1e", "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY"
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def at(when: datetime) -> Callable[[], datetime]:
    return lambda: when


def container(aws: Aws, now: datetime = T0) -> DynamoAccessTokens:
    return DynamoAccessTokens(TABLE, client=aws.dynamodb, clock=at(now))


def item(aws: Aws) -> dict[str, dict[str, str]] | None:
    key = {"pk": {"S": token_pk(OA)}, "sk": {"S": "TOKEN"}}
    found: dict[str, dict[str, str]] | None = aws.dynamodb.get_item(TableName=TABLE, Key=key).get("Item")
    return found


def test_a_token_stored_by_one_container_is_used_by_another(aws: Aws) -> None:
    one, two = container(aws), container(aws)
    assert two.current(OA) is None
    one.store(OA, "token-1", T0 + timedelta(hours=2))
    assert two.current(OA) == "token-1"
    stored = item(aws)
    assert stored is not None and stored["access_token"]["S"] == "token-1"
    ttl = topology.LEDGER_TABLE.ttl_attribute or "expires_at"
    assert stored[ttl]["N"] == str(int((T0 + timedelta(hours=2)).timestamp()))


def test_a_warm_container_answers_from_its_cache_without_reading_dynamodb(aws: Aws) -> None:
    one, warm = container(aws), container(aws)
    one.store(OA, "token-1", T0 + timedelta(hours=2))
    assert warm.current(OA) == "token-1"
    aws.dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": token_pk(OA)}, "sk": {"S": "TOKEN"}})
    assert warm.current(OA) == "token-1"  # cached: DynamoDB was not asked
    assert container(aws).current(OA) is None  # a cold container asks, and finds nothing


def test_discard_removes_only_the_token_still_stored(aws: Aws) -> None:
    one, two = container(aws), container(aws)
    one.store(OA, "token-1", T0 + timedelta(hours=2))
    two.store(OA, "token-2", T0 + timedelta(hours=2, minutes=1))  # a later (forced) fetch
    one.discard(OA, "token-1")  # one saw token-1 refused: its successor stays
    assert container(aws).current(OA) == "token-2" and one.current(OA) == "token-2"
    two.discard(OA, "token-2")
    assert item(aws) is None and container(aws).current(OA) is None and two.cached(OA) is None


def test_an_older_fetch_does_not_replace_a_later_one(aws: Aws) -> None:
    one, two = container(aws), container(aws)
    two.store(OA, "token-2", T0 + timedelta(hours=2, minutes=1))
    one.store(OA, "token-1", T0 + timedelta(hours=2))  # fetched before token-2, stored after it
    assert container(aws).current(OA) == "token-2"
    assert one.current(OA) == "token-2"  # its own cache dropped the superseded token


@pytest.mark.parametrize(
    ("later", "usable"),
    [(timedelta(minutes=54), True), (timedelta(minutes=56), False), (timedelta(hours=2), False)],
)
def test_a_token_in_its_last_five_minutes_or_expired_is_not_used(aws: Aws, later: timedelta, usable: bool) -> None:
    writer = container(aws)
    writer.store(OA, "token-1", T0 + timedelta(hours=1))
    assert container(aws, T0 + later).current(OA) == ("token-1" if usable else None)
    assert DynamoAccessTokens(TABLE, client=aws.dynamodb, clock=at(T0 + later)).current(OA) == (
        "token-1" if usable else None
    )


# ---- two senders, two containers -----------------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeWeChatApi]:
    api = FakeWeChatApi()  # in-process
    api.add_app(OA, OA_SECRET, "official_account")
    api.add_template(OA, TEMPLATE, ["thing1"])
    api.follow(OA, FOLLOWER)
    yield api
    api.stop()


def sender(fake: FakeWeChatApi, tokens: DynamoAccessTokens) -> WeChatChannel:
    app = WeChatApp(brand_id="demo-brand", kind="official_account", token="cb", app_secret=OA_SECRET)
    senders = WeChatSenders.model_validate(fake.senders(OA))
    return WeChatChannel(OA, app, senders, tokens, fake.transport())


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
        fields={"thing1": "草莓蛋糕"},
        created_at=T0,
    )


def test_containers_share_the_token_and_a_refused_one_is_replaced_once(aws: Aws, fake: FakeWeChatApi) -> None:
    one, two = DynamoAccessTokens(TABLE, client=aws.dynamodb), DynamoAccessTokens(TABLE, client=aws.dynamodb)
    sender(fake, one).send(message("p-1"))
    sender(fake, two).send(message("p-2"))
    assert fake.token_fetches == 1
    fake.expire_tokens()
    sender(fake, two).send(message("p-3"))  # refused: two forces a new token and stores it
    assert fake.token_fetches == 2 and fake.forced_fetches == 1
    sender(fake, one).send(message("p-4"))  # one's cached token is refused: it finds two's successor, no fetch
    assert fake.token_fetches == 2 and len(fake.sent) == 4
    assert one.cached(OA) == two.cached(OA)
