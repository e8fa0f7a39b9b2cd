"""The send step's payload: validation of the batch request, the sample event, deterministic message ids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cdp.channels.models import MAX_INLINE_PERSONS, SendBatchRequest, message_id_for

SAMPLE = Path(__file__).resolve().parents[3] / "events" / "sfn" / "send_input.json"


def request(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "campaign_id": "c1",
        "run_id": "r1",
        "step": "touch1",
        "channel": "sms",
        "template": {"body": "Hi {{ traits.name }}"},
        "person_ids": ["p1", "p2"],
    }
    base.update(overrides)
    return base


def test_sample_send_input_parses() -> None:
    # Given the canonical sample of the send step's input
    raw = json.loads(SAMPLE.read_text())
    # When it is parsed
    parsed = SendBatchRequest.model_validate(raw)
    # Then it is a batch-file request for the sms channel with its offer
    assert parsed.batch_key == "campaigns/spring-cake-2026-r1/batches/0.json"
    assert parsed.person_ids is None
    assert parsed.offer is not None and parsed.offer.code == "CAKE20"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batch_key": "campaigns/r1/batches/0.json"}, "exactly one of batch_key or person_ids"),
        ({"person_ids": None}, "exactly one of batch_key or person_ids"),
        ({"person_ids": None, "batch_key": "campaigns/other-run/batches/0.json"}, "batch_key must be a .json key"),
        ({"person_ids": None, "batch_key": "campaigns/r1/batches/../../x.json"}, "batch_key must be a .json key"),
        ({"channel": "email"}, "an email template needs a subject"),
        ({"channel": "fax"}, "channel"),
        ({"template": {"body": "Hi {{ traits.name "}}, "template syntax error"),
        ({"person_ids": [f"p{i}" for i in range(MAX_INLINE_PERSONS + 1)]}, "at most 500"),
    ],
)
def test_invalid_requests_are_rejected_with_a_reason(overrides: dict[str, Any], message: str) -> None:
    # Given a request broken in one way
    # When it is parsed
    with pytest.raises(ValidationError) as caught:
        SendBatchRequest.model_validate(request(**overrides))
    # Then the error names what is wrong
    assert message in str(caught.value)


def test_inline_request_with_500_persons_is_accepted() -> None:
    # Given the largest inline batch
    ids = [f"p{i}" for i in range(MAX_INLINE_PERSONS)]
    # When it is parsed / Then it is accepted as is
    assert SendBatchRequest.model_validate(request(person_ids=ids)).person_ids == ids


def test_message_id_is_stable_per_campaign_step_person() -> None:
    # Given the same (campaign, step, person) twice, and a different step
    first = message_id_for("c1", "touch1", "p1")
    again = message_id_for("c1", "touch1", "p1")
    other_step = message_id_for("c1", "touch2", "p1")
    # Then a retry reuses the id and another step does not
    assert first == again
    assert first != other_step


def test_a_runs_follow_up_repeats_the_first_touchs_coupon_and_each_journey_entry_gets_its_own() -> None:
    from cdp.channels.models import SendBatchRequest
    from cdp.channels.service import offer_issue_id

    def request(run_id: str, step: str) -> SendBatchRequest:
        return SendBatchRequest(
            campaign_id="c", run_id=run_id, step=step, channel="sms", template={"body": "x"}, person_ids=["p"],
            offer={"offer_id": "winter-cake-20"},
        )  # fmt: skip

    # a campaign run's touch2 asks for the coupon under the same id as touch1: the wallet answers the same entry
    assert offer_issue_id(request("run-1", "touch1")) == offer_issue_id(request("run-1", "touch2")) == "run-1"
    assert offer_issue_id(request("run-2", "touch1")) != offer_issue_id(request("run-1", "touch1"))
    # a journey's steps of one entry share it; the next entry (next year's birthday) is a new issue
    journey = "cart-v1-journey"
    assert offer_issue_id(request(journey, "e1-0")) == offer_issue_id(request(journey, "e1-2")) == f"{journey}:e1"
    assert offer_issue_id(request(journey, "e2-0")) == f"{journey}:e2"
