"""The message log on DynamoDB (moto): messages recorded as they leave, receipts moving their status once and in
rank order whatever order they come in, counts per run that follow, and a brand's receipts never touching another's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cdp import topology
from cdp.channels.lifecycle import Receipt
from cdp.channels.messages import DynamoMessageLog
from cdp.channels.ports import Applied, LoggedMessage, StepOf
from cdp.channels.receipts import apply_receipt
from cdp.ingest.events import parse_event

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
TABLE = topology.LEDGER_TABLE.local_name


def message(n: int, channel: str = "sms", provider: str = "aliyun", **changes: Any) -> LoggedMessage:
    values: dict[str, Any] = {
        "message_id": f"m-{n}",
        "brand_id": "bakery",
        "person_id": f"p-{n}",
        "campaign_id": "spring",
        "run_id": "run-1",
        "step": "touch1",
        "channel": channel,
        "status": "sent",
        "sent_at": T0,
        "provider": provider,
        "provider_id": f"biz-{n}",
    }
    return LoggedMessage(**{**values, **changes})


def receipt(message_id: str, status: str, minutes: int = 1, **changes: Any) -> Receipt:
    values: dict[str, Any] = {
        "brand_id": "bakery",
        "message_id": message_id,
        "channel": "sms",
        "status": status,
        "at": T0 + timedelta(minutes=minutes),
        "event_id": f"e-{message_id}-{status}-{minutes}",
    }
    return Receipt(**{**values, **changes})


@pytest.fixture
def log(aws: Any) -> DynamoMessageLog:
    return DynamoMessageLog(TABLE, client=aws.dynamodb)


def apply_all(log: DynamoMessageLog, receipts: list[Receipt]) -> list[Applied]:
    applied = [a for a in (log.apply(r) for r in receipts) if a is not None]
    log.count_moves(applied)
    return applied


def test_receipts_move_a_message_forward_once_whatever_their_order(log: DynamoMessageLog) -> None:
    # Given two messages sent and one refused for good
    log.record([message(1), message(2), message(3, status="failed", code="invalid_address")])
    assert log.counts("bakery", "spring") == {"run-1": {"sms": {"sent": 2, "failed": 1}}}
    # When m-1's click, open and delivery come in reverse order (and the click twice), and m-2 bounces
    apply_all(
        log,
        [
            receipt("m-1", "clicked", 9),
            receipt("m-1", "opened", 5),
            receipt("m-1", "delivered", 2),
            receipt("m-1", "clicked", 9),
            receipt("m-2", "bounced", 3, code="UNDELIV"),
        ],
    )
    # Then m-1 shows clicked with the first time of every status, m-2 bounced with its code
    found = log.get_many(["m-1", "m-2", "m-3", "m-404"])
    assert set(found) == {"m-1", "m-2", "m-3"}
    assert found["m-1"].status == "clicked"
    assert found["m-1"].times == {
        "sent": T0,
        "delivered": T0 + timedelta(minutes=2),
        "opened": T0 + timedelta(minutes=5),
        "clicked": T0 + timedelta(minutes=9),
    }
    assert (found["m-2"].status, found["m-2"].code) == ("bounced", "UNDELIV")
    assert found["m-3"].status == "failed"
    # And the run's counts show each message once, at its current status
    assert log.counts("bakery", "spring") == {"run-1": {"sms": {"clicked": 1, "bounced": 1, "failed": 1}}}


def test_a_duplicate_receipt_is_applied_once(log: DynamoMessageLog) -> None:
    log.record([message(1)])
    first = log.apply(receipt("m-1", "delivered"))
    second = log.apply(receipt("m-1", "delivered"))
    assert first is not None and first.moved and first.previous == "sent"
    assert second is not None and not second.moved
    log.count_moves([a for a in (first, second) if a])
    assert log.counts("bakery", "spring") == {"run-1": {"sms": {"delivered": 1}}}


def test_a_complaint_outranks_everything_and_an_unknown_id_is_none(log: DynamoMessageLog) -> None:
    log.record([message(1, channel="email", provider="ses")])
    apply_all(log, [receipt("m-1", "complained", 30, channel="email"), receipt("m-1", "opened", 10, channel="email")])
    assert log.get_many(["m-1"])["m-1"].status == "complained"
    assert log.apply(receipt("m-nope", "delivered")) is None


def test_another_brands_receipt_changes_nothing(log: DynamoMessageLog) -> None:
    log.record([message(1)])
    assert log.apply(receipt("m-1", "clicked", brand_id="rival")) is None
    assert log.get_many(["m-1"])["m-1"].status == "sent"


def test_a_receipt_naming_only_the_providers_id_finds_its_message(log: DynamoMessageLog) -> None:
    # Given a WeChat template message, whose status push names only WeChat's MsgID
    log.record([message(1, channel="wechat", provider="wechat", provider_id="200228332")])
    applied = log.apply(receipt("200228332", "delivered", channel="wechat", provider="wechat"))
    assert applied is not None and applied.message.message_id == "m-1" and applied.moved
    assert log.get_many(["m-1"])["m-1"].status == "delivered"
    # A MsgID no message of ours has is unknown
    assert log.apply(receipt("999", "delivered", channel="wechat", provider="wechat")) is None


def test_counts_are_summed_over_shards_and_runs(log: DynamoMessageLog) -> None:
    log.record([message(n) for n in range(1, 41)] + [message(99, run_id="run-2", channel="email", provider="ses")])
    apply_all(log, [receipt(f"m-{n}", "delivered") for n in range(1, 31)])
    assert log.counts("bakery", "spring") == {
        "run-1": {"sms": {"sent": 10, "delivered": 30}},
        "run-2": {"email": {"sent": 1}},
    }


def test_a_receipt_that_overtakes_its_message_is_applied_when_it_is_recorded(log: DynamoMessageLog) -> None:
    # Given a delivery report and a WeChat status push that arrive before their batch recorded the messages
    assert log.apply(receipt("m-1", "delivered", 1)) is None
    assert log.apply(receipt("777", "delivered", 2, channel="wechat", provider="wechat")) is None
    # When the batch records them
    log.record([message(1), message(2, channel="wechat", provider="wechat", provider_id="777")])
    # Then both show delivered, counted once, and the kept receipts are gone
    found = log.get_many(["m-1", "m-2"])
    assert (found["m-1"].status, found["m-2"].status) == ("delivered", "delivered")
    assert log.counts("bakery", "spring") == {"run-1": {"sms": {"delivered": 1}, "wechat": {"delivered": 1}}}
    log.record([message(3)])  # a later batch adopts nothing twice
    assert log.counts("bakery", "spring") == {"run-1": {"sms": {"delivered": 1, "sent": 1}, "wechat": {"delivered": 1}}}


def test_a_kept_receipt_of_another_brand_is_never_applied(log: DynamoMessageLog) -> None:
    assert log.apply(receipt("m-1", "clicked", brand_id="rival")) is None
    log.record([message(1)])
    assert log.get_many(["m-1"])["m-1"].status == "sent"


def delivered_event(message_id: str, at: datetime) -> Any:
    return parse_event(
        {
            "schema_version": "1",
            "event_id": f"rcpt-{message_id}",
            "event_type": "message_delivered",
            "source": "sms",
            "brand_id": "bakery",
            "occurred_at": at.isoformat(),
            "identifiers": [{"type": "phone", "value": "+8613800138000"}],
            "properties": {"message_id": message_id, "channel": "sms", "status": "delivered"},
        }
    )


def test_a_recent_receipt_waits_for_its_message_and_an_old_one_of_no_message_is_not_kept(log: DynamoMessageLog) -> None:
    applied: list[Applied] = []
    # Given a receipt from a minute ago whose message is not recorded yet, and one from last week of no message
    now = T0 + timedelta(minutes=1)
    assert apply_receipt(delivered_event("m-1", T0), log, applied, now) == "kept"
    assert apply_receipt(delivered_event("m-2", T0 - timedelta(days=7)), log, applied, now) == "unknown"
    # When both messages are recorded / Then only the recent receipt applied
    log.record([message(1), message(2)])
    found = log.get_many(["m-1", "m-2"])
    assert (found["m-1"].status, found["m-2"].status) == ("delivered", "sent")
    # And a receipt of a recorded message moves it, once
    assert apply_receipt(delivered_event("m-2", now), log, applied, now) == "moved"
    assert apply_receipt(delivered_event("m-2", now), log, applied, now) == "unchanged"


def test_a_journeys_messages_are_counted_per_step_and_arm_in_the_same_write_as_the_runs(log: DynamoMessageLog) -> None:
    # Given a journey's messages (every entry and lap of a step counts at its place) and a run item stored before
    # steps were counted, written as the log wrote it then
    journey = {"campaign_id": "cart", "run_id": "cart-v1-journey"}
    log.record(
        [
            message(1, step="e1-s0", variant="a", **journey),
            message(2, step="e2-s0", variant="a", **journey),  # a second entry's, the same step
            message(3, step="e1-s0", variant="b", **journey),
            message(4, step="e1-thanks-s2-r1", **journey),  # a loop's second lap on a path, no variants
        ]
    )
    old = {"pk": {"S": "MSGSTATS#bakery#cart"}, "sk": {"S": "cart-v1-journey#3"}, "n_sms_sent": {"N": "5"}}
    log._client.put_item(TableName=TABLE, Item=old)
    # When receipts come for three of them (a click proves the delivery)
    apply_all(log, [receipt("m-1", "delivered"), receipt("m-3", "clicked"), receipt("m-4", "delivered")])
    # Then each step and arm shows its messages by status; the old item has no step and is left out of these
    assert log.step_counts("bakery", "cart") == {
        StepOf("cart-v1-journey", "s0", "a"): {"sms": {"sent": 1, "delivered": 1}},
        StepOf("cart-v1-journey", "s0", "b"): {"sms": {"clicked": 1}},
        StepOf("cart-v1-journey", "thanks-s2", None): {"sms": {"delivered": 1}},
    }
    # and the run's counts sum every step's with the old item's
    assert log.counts("bakery", "cart") == {"cart-v1-journey": {"sms": {"sent": 6, "delivered": 2, "clicked": 1}}}
    # and the message keeps its arm (receipts read it back to count it at its step)
    assert log.get_many(["m-3"])["m-3"].variant == "b"
    # A scheduled run's messages have no step: none in the step counts
    log.record([message(5)])
    assert log.step_counts("bakery", "spring") == {} and log.counts("bakery", "spring") == {
        "run-1": {"sms": {"sent": 1}}
    }
