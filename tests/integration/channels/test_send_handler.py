"""The send Lambda end to end under moto: profiles made by identity resolution, SES and the outbox, exactly once."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from cdp import topology
from cdp.campaigns.catalog import BrandSwitch
from cdp.campaigns.dynamodb import DynamoCampaignCatalog
from cdp.identity.dynamodb import DynamoIdentityStore
from cdp.identity.service import resolve_event
from cdp.ingest.events import parse_event
from cdp.settings import get_settings
from cdp.shared.ports import EventPublisher
from functions.send import handler

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
BUCKET = topology.DATA_BUCKET_LOCAL_NAME
_ids = itertools.count()


class _NoBus(EventPublisher):
    def publish(self, events: Any, correlation_id: str) -> list[str]:
        return [f"e{i}" for i, _ in enumerate(events)]


@dataclass
class LambdaContext:
    function_name: str = topology.SEND.local_name
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:us-east-1:123456789012:function:{topology.SEND.local_name}"
    aws_request_id: str = "req-1"


def _event(event_type: str, identifiers: list[dict[str, str]], **props: Any) -> Any:
    n = next(_ids)
    return parse_event(
        {
            "event_id": f"send-evt-{n}",
            "event_type": event_type,
            "source": "app",
            "brand_id": "bakery",
            "occurred_at": (T0 + timedelta(minutes=n)).isoformat(),
            "identifiers": identifiers,
            "properties": props,
        }
    )


def make_person(store: DynamoIdentityStore, email: str, name: str, consent: bool) -> str:
    ident = [{"type": "email", "value": email}]
    outcome = resolve_event(_event("identify", ident, name=name), store, _NoBus())
    resolve_event(_event("consent_changed", ident, channel="email", granted=consent), store, _NoBus())
    return outcome.person_id


@pytest.fixture
def env(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoIdentityStore]:
    values = {
        "PROFILES_TABLE": topology.PROFILES_TABLE.local_name,
        "LEDGER_TABLE": topology.LEDGER_TABLE.local_name,
        "CAMPAIGNS_TABLE": topology.CAMPAIGNS_TABLE.local_name,
        "OFFERS_TABLE": topology.OFFERS_TABLE.local_name,
        "EVENT_BUS_NAME": topology.EVENT_BUS_LOCAL_NAME,
        "DATA_BUCKET": BUCKET,
        "SMS_ORIGINATION_IDENTITY": "pool-local",
        "EMAIL_FROM_ADDRESS": aws.sender,
        "SEND_VIA_OUTBOX": "false",
        "SEND_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/cdp-send-dlq",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    handler._ports.cache_clear()
    yield DynamoIdentityStore(topology.PROFILES_TABLE.local_name, client=aws.dynamodb)
    get_settings.cache_clear()
    handler._ports.cache_clear()


def request(batch_key: str, channel: str = "email") -> dict[str, Any]:
    return {
        "campaign_id": "spring-cake",
        "run_id": "r1",
        "step": "touch1",
        "channel": channel,
        "template": {"subject": "For you, {{ traits.name }}", "body": "Use {{ offer.code }} before Sunday."},
        "offer": {"coupon_id": "cpn-1", "code": "CAKE20"},
        "batch_key": batch_key,
    }


def test_batch_file_is_emailed_once_and_recorded(aws: Any, env: DynamoIdentityStore) -> None:
    # Given two opted-in persons, one opted-out person, and a batch file naming all three
    ann = make_person(env, "ann@example.com", "Ann", consent=True)
    bob = make_person(env, "bob@example.com", "Bob", consent=True)
    eve = make_person(env, "eve@example.com", "Eve", consent=False)
    key = "campaigns/r1/batches/0.json"
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps([ann, bob, eve]).encode())
    # When the send Lambda runs, and then runs again (a Step Functions retry)
    first = handler.lambda_handler(request(key), LambdaContext())
    second = handler.lambda_handler(request(key), LambdaContext())
    # Then SES got exactly two e-mails, personalized, and the rerun only found duplicates
    mails = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    assert sorted(m.subject for m in mails) == ["For you, Ann", "For you, Bob"]
    assert (first["sent"], first["suppressed_no_consent"], first["by_channel"]) == (2, 1, {"email": 2})
    assert (second["sent"], second["duplicates_skipped"]) == (0, 2)
    # And the profiles carry the message records (sent with SES's id, suppressed with its reason)
    assert [m.status for m in env.messages(ann)] == ["sent"]
    assert env.messages(ann)[0].provider_id in {m.id for m in mails}
    assert "suppressed_no_consent" in {m.status for m in env.messages(eve)}


def test_the_brands_stop_switch_holds_a_batch_of_a_run_in_flight(aws: Any, env: DynamoIdentityStore) -> None:
    # Given an opted-in person in a batch of a running campaign of bakery, whose stop switch is then turned on
    ann = make_person(env, "ann@example.com", "Ann", consent=True)
    key = "campaigns/r1/batches/0.json"
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps([ann]).encode())
    catalog = DynamoCampaignCatalog(topology.CAMPAIGNS_TABLE.local_name, client=aws.dynamodb)
    at = datetime(2026, 12, 6, tzinfo=UTC)
    catalog.put_switch(BrandSwitch(brand_id="bakery", stopped=True, reason="wrong price", by="ops", at=at))
    # When the batch is sent / Then nothing leaves and the batch says why
    held = handler.lambda_handler({**request(key), "brand_id": "bakery"}, LambdaContext())
    assert (held["sent"], held["held_stop_switch"]) == (0, 1)
    assert ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages == []
    # And another brand's switch, or the switch turned off, lets it through
    catalog.put_switch(BrandSwitch(brand_id="bakery", stopped=False, by="ops", at=at))
    sent = handler.lambda_handler({**request(key), "brand_id": "bakery"}, LambdaContext())
    assert (sent["sent"], sent["held_stop_switch"]) == (1, 0)


def test_outbox_routing_writes_messages_to_s3(
    aws: Any, env: DynamoIdentityStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the local setting that routes every channel to the outbox
    monkeypatch.setenv("SEND_VIA_OUTBOX", "true")
    ann = make_person(env, "ann@example.com", "Ann", consent=True)
    key = "campaigns/r1/batches/0.json"
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps([ann]).encode())
    # When the send Lambda runs for e-mail
    result = handler.lambda_handler(request(key), LambdaContext())
    # Then nothing went to SES; the message is in the outbox, counted under its requested channel
    assert ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages == []
    listed = aws.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{topology.OUTBOX_PREFIX}email/r1/")["Contents"]
    assert len(listed) == 1 and result["by_channel"] == {"email": 1}
    body = json.loads(aws.s3.get_object(Bucket=BUCKET, Key=listed[0]["Key"])["Body"].read())
    assert body["message"]["subject"] == "For you, Ann" and body["message"]["address"] == "ann@example.com"


def test_invalid_input_is_refused_before_any_send(env: DynamoIdentityStore) -> None:
    # Given a request with neither a batch file nor person ids
    bad = request("campaigns/r1/batches/0.json") | {"batch_key": None}
    # When the Lambda runs / Then validation fails and nothing is claimed
    with pytest.raises(ValueError, match="exactly one of batch_key or person_ids"):
        handler.lambda_handler(bad, LambdaContext())
