"""Alarms: any message in a DLQ and any failed state machine execution page the operators' topic."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct


class Monitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, alarm_email: str | None = None) -> None:
        super().__init__(scope, construct_id)
        # A customer managed key: CloudWatch cannot publish to a topic encrypted with the AWS managed SNS key.
        key = kms.Key(self, "AlarmTopicKey", enable_key_rotation=True, description="cdp alarm topic")
        key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        self.topic = sns.Topic(self, "AlarmTopic", master_key=key, enforce_ssl=True, display_name="cdp alarms")
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        self.alarms: list[cloudwatch.Alarm] = []

    def _alarm(self, construct_id: str, metric: cloudwatch.IMetric, description: str) -> None:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=0,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        self.alarms.append(alarm)

    def alarm_on_dlqs(self, dlqs: Mapping[str, sqs.IQueue]) -> None:
        for name, dlq in dlqs.items():
            metric = dlq.metric_approximate_number_of_messages_visible(period=Duration.minutes(5), statistic="Maximum")
            self._alarm(f"{name}DepthAlarm", metric, f"messages waiting in the {name} dead-letter queue")

    def alarm_on_failed_executions(self, machines: Mapping[str, sfn.IStateMachine]) -> None:
        for key, machine in machines.items():
            metric = machine.metric_failed(period=Duration.minutes(5), statistic="Sum")
            self._alarm(f"{key.capitalize()}FailedAlarm", metric, f"{key} state machine executions failed")
