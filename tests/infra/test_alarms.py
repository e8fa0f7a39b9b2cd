"""Alarms always reach the operators' topic, and they cover every function, queue, table, machine and the API; the
scheduled functions' failed runs land in an alarmed queue instead of vanishing."""

from __future__ import annotations

from typing import Any

import pytest

from cdp import topology
from tests.infra.conftest import (
    Synth,
    function_by_handler,
    get_att_id,
    policy_statements,
    product_functions,
    referenced_ids,
    statement_actions,
)

pytestmark = pytest.mark.xdist_group("cdk")


def _topic_id(synth: Synth) -> str:
    (topic_id,) = synth.resources("AWS::SNS::Topic")
    return topic_id


def _alarms(synth: Synth, namespace: str, metric_name: str) -> list[dict[str, Any]]:
    return [
        a["Properties"]
        for a in synth.resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Namespace") == namespace and a["Properties"].get("MetricName") == metric_name
    ]


def _alarmed_ids(synth: Synth, namespace: str, metric_name: str, dimension: str) -> dict[str, dict[str, Any]]:
    """The resources a metric's alarms watch, by logical id (from the one dimension naming them)."""
    out: dict[str, dict[str, Any]] = {}
    for props in _alarms(synth, namespace, metric_name):
        (dim,) = props["Dimensions"]
        assert dim["Name"] == dimension
        out[get_att_id(dim["Value"])] = props
    return out


def test_the_alarm_topic_exists_without_an_email_and_is_encrypted_and_tls_only(synth: Synth) -> None:
    # Given the test context, which sets no alarmEmail / Then the topic exists anyway, with a KMS key
    (topic,) = synth.resources("AWS::SNS::Topic").values()
    assert "KmsMasterKeyId" in topic["Properties"]
    # And its policy refuses publishing without TLS
    (policy,) = synth.resources("AWS::SNS::TopicPolicy").values()
    denies = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert any(s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)
    # And no subscription is invented
    assert synth.resources("AWS::SNS::Subscription") == {}


@pytest.mark.parametrize(("email", "subscriptions"), [(None, 0), ("ops@brand.example.com", 1)])
def test_the_alarm_email_only_adds_a_subscription(email: str | None, subscriptions: int) -> None:
    from aws_cdk import App, Stack
    from aws_cdk.assertions import Template

    from infra.components.monitoring import Monitoring

    # Given the monitoring construct with or without an e-mail / When synthesized
    stack = Stack(App(), "T")
    Monitoring(stack, "Monitoring", alarm_email=email)
    template = Template.from_stack(stack)
    # Then there is always one topic, and an e-mail subscription exactly when an address is given
    template.resource_count_is("AWS::SNS::Topic", 1)
    template.resource_count_is("AWS::SNS::Subscription", subscriptions)
    if email:
        template.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": email})


def test_every_alarm_publishes_to_the_topic_and_idle_is_not_breaching(synth: Synth) -> None:
    alarms = synth.resources("AWS::CloudWatch::Alarm")
    assert alarms
    for alarm_id, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == [{"Ref": _topic_id(synth)}], alarm_id
        assert props["TreatMissingData"] == "notBreaching", alarm_id


@pytest.mark.parametrize("metric_name", ["Errors", "Throttles"])
def test_every_function_has_an_errors_and_a_throttles_alarm(synth: Synth, metric_name: str) -> None:
    # Given every function in the template (not only the topology's: a new one must be alarmed too)
    functions = set(product_functions(synth))
    # Then each has an alarm on any error / throttle
    alarmed = _alarmed_ids(synth, "AWS/Lambda", metric_name, "FunctionName")
    assert set(alarmed) == functions
    for props in alarmed.values():
        assert props["Threshold"] == 0 and props["ComparisonOperator"] == "GreaterThanThreshold"


def test_the_http_api_5xx_is_alarmed(synth: Synth) -> None:
    (api_id,) = synth.resources("AWS::ApiGatewayV2::Api")
    alarmed = _alarmed_ids(synth, "AWS/ApiGateway", "5xx", "ApiId")
    assert set(alarmed) == {api_id}
    assert alarmed[api_id]["Statistic"] == "Sum"


def test_every_queue_has_an_age_alarm_below_what_its_retries_or_retention_allow(synth: Synth) -> None:
    queues = synth.resources("AWS::SQS::Queue")
    alarmed = _alarmed_ids(synth, "AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName")
    # Given every queue / Then each has an age alarm
    assert set(alarmed) == set(queues)
    for queue_id, queue in queues.items():
        props = queue["Properties"]
        threshold = alarmed[queue_id]["Threshold"]
        if "RedrivePolicy" in props:
            # A work queue: older than all its consumer's retries (15 min today) means the consumer is behind
            assert threshold == props["VisibilityTimeout"] * props["RedrivePolicy"]["maxReceiveCount"], queue_id
            assert threshold <= 15 * 60, queue_id
        else:
            # A dead-letter queue: half its retention, a week before SQS deletes the message
            assert threshold == props["MessageRetentionPeriod"] / 2, queue_id


@pytest.mark.parametrize("metric_name", ["ReadThrottleEvents", "WriteThrottleEvents"])
def test_every_table_has_throttling_alarms(synth: Synth, metric_name: str) -> None:
    alarmed = _alarmed_ids(synth, "AWS/DynamoDB", metric_name, "TableName")
    assert set(alarmed) == set(synth.resources("AWS::DynamoDB::Table"))


def test_every_state_machine_has_a_failed_executions_alarm(synth: Synth) -> None:
    alarmed = _alarmed_ids(synth, "AWS/States", "ExecutionsFailed", "StateMachineArn")
    assert set(alarmed) == set(synth.resources("AWS::StepFunctions::StateMachine"))


def test_scheduled_functions_send_failed_runs_to_an_alarmed_queue(synth: Synth) -> None:
    configs = {
        get_att_id(c["Properties"]["FunctionName"]): c["Properties"]
        for c in synth.resources("AWS::Lambda::EventInvokeConfig").values()
    }
    depth_alarmed = set(_alarmed_ids(synth, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName"))
    scheduled = {spec.target_function for spec in topology.SCHEDULES if spec.target_function is not None}
    assert {topology.TAG_SWEEP, topology.PLATFORM_PULL} <= scheduled
    for spec in scheduled:
        # Given a function a schedule invokes (asynchronously: Scheduler only sees Lambda accept the event)
        fn_id, fn = function_by_handler(synth, spec.handler)
        # Then a run that still fails after Lambda's retries goes to an SQS queue, with a depth alarm on it
        config = configs[fn_id]
        queue_id = get_att_id(config["DestinationConfig"]["OnFailure"]["Destination"])
        assert queue_id in synth.resources("AWS::SQS::Queue")
        assert queue_id in depth_alarmed
        assert config["MaximumRetryAttempts"] >= 1
        # And the function may send to that queue (Lambda sends with the function's role)
        statements = policy_statements(synth, get_att_id(fn["Properties"]["Role"]))
        senders = [s for s in statements if "sqs:SendMessage" in statement_actions([s])]
        assert any(queue_id in referenced_ids(s) for s in senders)


def test_every_schedule_target_retries_then_dead_letters_into_an_alarmed_queue(synth: Synth) -> None:
    depth_alarmed = set(_alarmed_ids(synth, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName"))
    for schedule in synth.resources("AWS::Scheduler::Schedule").values():
        target = schedule["Properties"]["Target"]
        assert get_att_id(target["DeadLetterConfig"]["Arn"]) in depth_alarmed
        assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
        assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 24 * 3600
