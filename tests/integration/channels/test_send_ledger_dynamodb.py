"""The send ledger on DynamoDB (moto), and the same contract on the in-memory fake used by the unit suite."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cdp import topology
from cdp.channels.ledger import DynamoSendLedger, send_pk
from cdp.channels.ports import DEFAULT_LEASE, ClaimOutcome, SendKey, SendLedger
from tests.fakes.channels import InMemorySendLedger

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
KEY = SendKey("spring-cake", "touch1", "p-1")
TABLE = topology.LEDGER_TABLE.local_name


@pytest.fixture(params=["dynamodb", "in_memory"])
def make_ledger(request: pytest.FixtureRequest) -> Callable[[], SendLedger]:
    if request.param == "in_memory":
        shared = InMemorySendLedger()
        return lambda: shared
    aws = request.getfixturevalue("aws")
    return lambda: DynamoSendLedger(TABLE, client=aws.dynamodb)


def test_sent_record_is_never_claimed_again(make_ledger: Callable[[], SendLedger]) -> None:
    # Given a send claimed and marked sent
    ledger = make_ledger()
    claim = ledger.claim(KEY, "m-1", "run-1", T0)
    assert claim.outcome is ClaimOutcome.CLAIMED and claim.attempt_id
    ledger.mark_sent(KEY, claim.attempt_id, "prov-1", T0)
    # When a retry (even a day later, from another run) claims it
    again = ledger.claim(KEY, "m-1", "run-2", T0 + timedelta(days=1))
    # Then it is a duplicate
    assert again.outcome is ClaimOutcome.ALREADY_SENT


def test_pending_within_lease_is_in_flight_then_taken_over_after_it(make_ledger: Callable[[], SendLedger]) -> None:
    # Given an attempt that claimed and then crashed (never marked sent)
    ledger = make_ledger()
    first = ledger.claim(KEY, "m-1", "run-1", T0)
    # When another attempt claims before the lease ends
    early = ledger.claim(KEY, "m-1", "run-1", T0 + DEFAULT_LEASE - timedelta(seconds=1))
    # Then it must not send
    assert early.outcome is ClaimOutcome.IN_FLIGHT
    # When it claims after the lease
    late = ledger.claim(KEY, "m-1", "run-1", T0 + DEFAULT_LEASE + timedelta(seconds=1))
    # Then it takes the send over with a new attempt id, and can finish it
    assert late.outcome is ClaimOutcome.CLAIMED and late.taken_over
    assert late.attempt_id != first.attempt_id and late.attempt_id
    ledger.mark_sent(KEY, late.attempt_id, "prov-2", T0 + DEFAULT_LEASE + timedelta(seconds=2))
    assert ledger.claim(KEY, "m-1", "run-1", T0 + timedelta(hours=1)).outcome is ClaimOutcome.ALREADY_SENT


def test_released_claim_can_be_retried_at_once(make_ledger: Callable[[], SendLedger]) -> None:
    # Given an attempt whose provider rejected the message, so it released its lease
    ledger = make_ledger()
    claim = ledger.claim(KEY, "m-1", "run-1", T0)
    assert claim.attempt_id
    ledger.release(KEY, claim.attempt_id, T0 + timedelta(seconds=1))
    # When a retry claims a moment later
    retry = ledger.claim(KEY, "m-1", "run-1", T0 + timedelta(seconds=2))
    # Then it owns the send
    assert retry.outcome is ClaimOutcome.CLAIMED and retry.taken_over


def test_release_by_a_stale_attempt_does_not_free_the_new_owner(make_ledger: Callable[[], SendLedger]) -> None:
    # Given attempt A's lease expired and attempt B took the send over
    ledger = make_ledger()
    a = ledger.claim(KEY, "m-1", "run-1", T0)
    b = ledger.claim(KEY, "m-1", "run-1", T0 + DEFAULT_LEASE + timedelta(seconds=1))
    assert a.attempt_id and b.outcome is ClaimOutcome.CLAIMED
    # When the slow attempt A releases
    ledger.release(KEY, a.attempt_id, T0 + DEFAULT_LEASE + timedelta(seconds=2))
    # Then B's lease still holds
    third = ledger.claim(KEY, "m-1", "run-1", T0 + DEFAULT_LEASE + timedelta(seconds=3))
    assert third.outcome is ClaimOutcome.IN_FLIGHT


class _RaceBeforeUpdate:
    """A DynamoDB client that lets a rival finish its claim just before our takeover write reaches the table."""

    def __init__(self, real: Any, rival: Callable[[], Any]) -> None:
        self._real = real
        self._rival = rival
        self.rival_result: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def update_item(self, **kwargs: Any) -> Any:
        if self.rival_result is None:
            self.rival_result = self._rival()
        return self._real.update_item(**kwargs)


def test_two_takeovers_of_a_crashed_send_only_one_wins(aws: Any) -> None:
    # Given a pending send whose lease expired, and two retries that both read it as expired
    DynamoSendLedger(TABLE, client=aws.dynamodb).claim(KEY, "m-1", "run-1", T0)
    later = T0 + DEFAULT_LEASE + timedelta(seconds=1)
    rival = DynamoSendLedger(TABLE, client=aws.dynamodb)
    racing = _RaceBeforeUpdate(aws.dynamodb, lambda: rival.claim(KEY, "m-1", "run-1", later))
    ours = DynamoSendLedger(TABLE, client=racing)  # type: ignore[arg-type]
    # When the rival's takeover lands between our read and our conditional update
    outcome = ours.claim(KEY, "m-1", "run-1", later)
    # Then the rival owns the send and we back off
    assert racing.rival_result.outcome is ClaimOutcome.CLAIMED
    assert outcome.outcome is ClaimOutcome.IN_FLIGHT


def test_dynamodb_record_shape(aws: Any) -> None:
    # Given a claimed, taken-over and sent record
    ledger = DynamoSendLedger(TABLE, client=aws.dynamodb)
    ledger.claim(KEY, "m-1", "run-1", T0)
    late = ledger.claim(KEY, "m-1", "run-2", T0 + DEFAULT_LEASE + timedelta(seconds=1))
    assert late.attempt_id
    ledger.mark_sent(KEY, late.attempt_id, "prov-9", T0 + DEFAULT_LEASE + timedelta(seconds=2))
    # When the raw item is read
    item = ledger.record(KEY)
    # Then it carries the key shape, final status, provider id, attempt count and a TTL
    assert item is not None
    assert item[topology.LEDGER_TABLE.partition_key]["S"] == send_pk(KEY) == "SEND#spring-cake#touch1#p-1"
    assert item[topology.LEDGER_TABLE.sort_key]["S"] == "SEND"
    assert (item["status"]["S"], item["provider_id"]["S"], item["attempts"]["N"]) == ("sent", "prov-9", "2")
    assert item["run_id"]["S"] == "run-2" and "lease_until_ms" not in item
    assert int(item["expires_at"]["N"]) > int((T0 + timedelta(days=365)).timestamp())


def test_a_send_refused_for_good_is_final(make_ledger: Callable[[], SendLedger]) -> None:
    # Given a send the provider refused for good (an invalid number)
    ledger = make_ledger()
    claim = ledger.claim(KEY, "m-1", "run-1", T0)
    assert claim.attempt_id
    ledger.mark_failed(KEY, claim.attempt_id, "invalid_address", T0)
    # When a retry claims it, even after every lease
    again = ledger.claim(KEY, "m-1", "run-1", T0 + timedelta(hours=1))
    # Then it is not sent again
    assert again.outcome is ClaimOutcome.FAILED_FOR_GOOD


def test_only_the_owner_of_a_claim_marks_it_failed(make_ledger: Callable[[], SendLedger]) -> None:
    ledger = make_ledger()
    first = ledger.claim(KEY, "m-1", "run-1", T0)
    assert first.attempt_id
    later = ledger.claim(KEY, "m-1", "run-1", T0 + DEFAULT_LEASE + timedelta(seconds=1))  # took over
    assert later.outcome is ClaimOutcome.CLAIMED and later.taken_over
    ledger.mark_failed(KEY, first.attempt_id, "refused", T0)  # the slow first attempt's refusal
    assert ledger.claim(KEY, "m-1", "run-1", T0 + DEFAULT_LEASE * 3).outcome is ClaimOutcome.CLAIMED
