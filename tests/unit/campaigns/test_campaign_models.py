"""The campaign request and its tag condition: validation and matching."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from cdp.campaigns.models import Audience, CampaignCommand, CampaignRequest, SelectCommand, TagCondition, dump
from cdp.profile.models import Profile

ProfileFactory = Callable[..., Profile]
RequestFactory = Callable[..., CampaignRequest]
SAMPLE = Path(__file__).resolve().parents[3] / "events" / "sfn" / "campaign_input.json"


def test_sample_state_machine_input_parses(profile: ProfileFactory) -> None:
    # Given the canonical sample input of the campaign state machine
    raw = json.loads(SAMPLE.read_text())
    # When the select command is built from it
    command = TypeAdapter(CampaignCommand).validate_python({"action": "select", **raw})
    # Then the request carries the audience, both touches and the budget
    assert isinstance(command, SelectCommand)
    req = command.request
    assert req.touch1.channel == "sms" and req.touch2 is not None and req.touch2.channel == "email"
    assert req.audience.any_of[0].in_ == ["champions", "loyal", "potential", "at_risk"]
    assert req.budget.amount_minor // req.budget.cost_per_message_minor["sms"] == 20_000
    # And the dump round-trips with the JSON alias "in"
    assert dump(req)["audience"]["any_of"][0]["in"] == ["champions", "loyal", "potential", "at_risk"]
    assert CampaignRequest.model_validate(dump(req)) == req


@pytest.mark.parametrize("body", [{"tag": "lifecycle"}, {"tag": "lifecycle", "equals": "mature", "in": ["mature"]}])
def test_tag_condition_needs_exactly_one_test(body: dict[str, Any]) -> None:
    # Given a condition with no test or with both tests / When validated / Then it is rejected
    with pytest.raises(ValidationError, match="exactly one"):
        TagCondition.model_validate(body)


def test_tag_condition_matching(profile: ProfileFactory) -> None:
    # Given a profile with a string, a boolean and an int tag
    p = profile("p1", tags={"lifecycle": "mature", "purchased_last_7d": False, "orders_90d": 1})
    # When / Then: equals and in compare values, a missing tag never matches
    assert TagCondition(tag="lifecycle", equals="mature").matches(p)
    assert TagCondition.model_validate({"tag": "lifecycle", "in": ["growth", "mature"]}).matches(p)
    assert not TagCondition(tag="lifecycle", equals="dormant").matches(p)
    assert not TagCondition(tag="rfm_segment", equals="champions").matches(p)
    assert TagCondition(tag="purchased_last_7d", equals=False).matches(p)
    # And booleans and ints are not confused (True == 1 in Python)
    assert not TagCondition(tag="purchased_last_7d", equals=0).matches(p)
    assert not TagCondition(tag="orders_90d", equals=True).matches(p)
    assert TagCondition(tag="orders_90d", equals=1).matches(p)


def test_audience_combines_all_any_none(profile: ProfileFactory) -> None:
    # Given an audience: not bought in 7 days AND (champion OR dormant) AND NOT churned
    audience = Audience.model_validate(
        {
            "all_of": [{"tag": "purchased_last_7d", "equals": False}],
            "any_of": [{"tag": "rfm_segment", "equals": "champions"}, {"tag": "lifecycle", "equals": "dormant"}],
            "none_of": [{"tag": "lifecycle", "equals": "churned"}],
        }
    )
    # When profiles are tested / Then each clause counts
    assert audience.matches(profile("a", tags={"purchased_last_7d": False, "rfm_segment": "champions"}))
    assert audience.matches(profile("b", tags={"purchased_last_7d": False, "lifecycle": "dormant"}))
    assert not audience.matches(profile("c", tags={"purchased_last_7d": True, "lifecycle": "dormant"}))
    assert not audience.matches(profile("d", tags={"purchased_last_7d": False, "rfm_segment": "loyal"}))
    assert not audience.matches(
        profile("e", tags={"purchased_last_7d": False, "rfm_segment": "champions", "lifecycle": "churned"})
    )
    assert not audience.matches(profile("f"))
    # And an empty audience condition matches everyone
    assert Audience().matches(profile("g"))


def test_request_rejects_a_touch_channel_without_a_cost(request_for: RequestFactory) -> None:
    # Given a budget pricing only SMS / When the follow-up goes by e-mail / Then the request is rejected
    with pytest.raises(ValidationError, match="no cost for touch2"):
        request_for(budget={"amount_minor": 1000, "currency": "CNY", "cost_per_message_minor": {"sms": 5}})


def test_request_rejects_a_free_first_touch_and_an_email_without_subject(request_for: RequestFactory) -> None:
    # Given a zero SMS price / Then the budget cut would divide by zero: rejected
    with pytest.raises(ValidationError, match="non-zero cost"):
        request_for(budget={"amount_minor": 1000, "currency": "CNY", "cost_per_message_minor": {"sms": 0, "email": 1}})
    # Given an e-mail touch without a subject / Then rejected
    with pytest.raises(ValidationError, match="subject"):
        request_for(touch2={"channel": "email", "template": {"body": "hi"}})


def test_request_defaults_and_consent_channel(request_for: RequestFactory) -> None:
    # Given a request without touch2 and without an explicit consent channel
    req = request_for(touch2=None, audience={})
    # Then the follow-up is off, consent is required on touch1's channel, defaults are explicit
    assert not req.follow_up
    assert req.consent_channel == "sms"
    assert req.score_model == "response" and req.holdout_fraction == 0.1
