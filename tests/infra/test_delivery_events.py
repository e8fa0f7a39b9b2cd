"""The AWS senders' delivery events come back: SES and End User Messaging configuration sets that every send names,
the SES events published to the account's default bus, and the rule there feeding the delivery events function."""

from __future__ import annotations

import pytest

from cdp import topology
from tests.infra.conftest import Synth, function_by_handler

pytestmark = pytest.mark.xdist_group("cdk")


def test_the_send_function_names_both_configuration_sets(synth: Synth) -> None:
    (ses_id,) = synth.resources("AWS::SES::ConfigurationSet")
    (sms_id,) = synth.resources("AWS::SMSVOICE::ConfigurationSet")
    _, send = function_by_handler(synth, topology.SEND.handler)
    env = send["Properties"]["Environment"]["Variables"]
    assert env[topology.SES_CONFIGURATION_SET_ENV] == {"Ref": ses_id}
    assert env[topology.SMS_CONFIGURATION_SET_ENV] == {"Ref": sms_id}


def test_ses_publishes_every_receipt_kind_to_the_default_bus(synth: Synth) -> None:
    (destination,) = synth.resources("AWS::SES::ConfigurationSetEventDestination").values()
    spec = destination["Properties"]["EventDestination"]
    assert spec["Enabled"] is True
    assert set(spec["MatchingEventTypes"]) == {
        "delivery", "bounce", "complaint", "reject", "open", "click", "subscription",
    }  # fmt: skip
    assert "event-bus/default" in str(spec["EventBridgeDestination"]["EventBusArn"])


def test_the_default_bus_rule_forwards_ses_and_sms_events_to_their_function(synth: Synth) -> None:
    rules = synth.resources("AWS::Events::Rule")
    (rule,) = [r for r in rules.values() if r["Properties"]["EventPattern"] == topology.DELIVERY_EVENTS_RULE.pattern]
    assert rule["Properties"]["EventBusName"] == "default"
    assert set(topology.DELIVERY_EVENTS_RULE.pattern["source"]) == {"aws.ses", "aws.sms-voice"}
    function_by_handler(synth, topology.DELIVERY_EVENTS.handler)  # exists, fed by the rule's queue (test_stack)
