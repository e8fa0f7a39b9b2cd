"""Alarms, all publishing to one operators' topic that always exists (subscribe e-mail, chat or paging to it).

What pages: a function's errors or throttles, the HTTP API's 5xx, a queue whose oldest message is older than its
consumer's retries can explain, any message in a dead-letter queue (and one about to expire there), DynamoDB
throttling, a failed state machine execution. Every alarm treats missing data as fine: idle is not broken.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import CfnOutput, Duration
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from cdp import topology
from infra.components.messaging import DEAD_LETTER_RETENTION

PERIOD = Duration.minutes(5)


def camel(key: str) -> str:
    """`platform_pull` -> `PlatformPull`, for construct ids."""
    return "".join(part.capitalize() for part in key.split("_"))


def work_queue_age_limit(spec: topology.QueueSpec) -> Duration:
    """A message older than every retry its consumer gets (visibility timeout x receives; 15 min today) means the
    consumer is not keeping up: by then a failing message would have moved to the DLQ."""
    return Duration.seconds(spec.visibility_timeout_s * spec.max_receive_count)


# Half the DLQ retention: a week left to redrive before SQS deletes the message for good.
DEAD_LETTER_AGE_LIMIT = Duration.days(DEAD_LETTER_RETENTION.to_days() // 2)


class Monitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, alarm_email: str | None = None) -> None:
        super().__init__(scope, construct_id)
        # A customer managed key: CloudWatch cannot publish to a topic encrypted with the AWS managed SNS key.
        key = kms.Key(self, "AlarmTopicKey", enable_key_rotation=True, description="cdp alarm topic")
        key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        self.topic = sns.Topic(self, "AlarmTopic", master_key=key, enforce_ssl=True, display_name="cdp alarms")
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        CfnOutput(self, "AlarmTopicArn", value=self.topic.topic_arn, description="subscribe operators' endpoints here")
        self.alarms: list[cloudwatch.Alarm] = []

    def _alarm(
        self, construct_id: str, metric: cloudwatch.IMetric, description: str, *, threshold: float = 0
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        self.alarms.append(alarm)
        return alarm

    def alarm_on_functions(self, functions: Mapping[str, lambda_.IFunction]) -> None:
        """Errors: an invocation raised or timed out. Throttles: concurrency ran out (events wait or are dropped)."""
        for key, fn in functions.items():
            name = camel(key)
            self._alarm(
                f"{name}ErrorsAlarm",
                fn.metric_errors(period=PERIOD, statistic="Sum"),
                f"{key}: invocations failed (raised or timed out)",
            )
            self._alarm(
                f"{name}ThrottlesAlarm",
                fn.metric_throttles(period=PERIOD, statistic="Sum"),
                f"{key}: invocations throttled (account or reserved concurrency exhausted)",
            )

    def alarm_on_http_api(self, api: apigwv2.IHttpApi) -> None:
        # Every input is meant to get a 2xx or a 4xx naming the problem: any 5xx is a defect or an outage.
        self._alarm(
            "HttpApi5xxAlarm",
            api.metric_server_error(period=PERIOD, statistic="Sum"),
            "the HTTP API answered 5xx",
        )

    def alarm_on_queue_age(self, queues: Mapping[str, tuple[sqs.IQueue, Duration]]) -> None:
        """`queues`: name -> (queue, the age of its oldest message beyond which someone should look)."""
        for name, (queue, limit) in queues.items():
            self._alarm(
                f"{name}AgeAlarm",
                queue.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Maximum"),
                f"the oldest message in {name} is older than {limit.to_human_string()}",
                threshold=limit.to_seconds(),
            )

    def alarm_on_dlqs(self, dlqs: Mapping[str, sqs.IQueue]) -> None:
        """Any dead letter pages; one left for half the retention pages again, before SQS deletes it."""
        for name, dlq in dlqs.items():
            metric = dlq.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum")
            self._alarm(f"{name}DepthAlarm", metric, f"messages waiting in the {name} dead-letter queue")
        self.alarm_on_queue_age({f"{name}Dlq": (dlq, DEAD_LETTER_AGE_LIMIT) for name, dlq in dlqs.items()})

    def alarm_on_tables(self, tables: Mapping[str, dynamodb.ITable]) -> None:
        """On-demand tables still throttle (a hot partition, the table's or account's limits): writes then fail."""
        for name, table in tables.items():
            for metric_name in ("ReadThrottleEvents", "WriteThrottleEvents"):
                self._alarm(
                    f"{name}{metric_name}Alarm",
                    table.metric(metric_name, period=PERIOD, statistic="Sum"),
                    f"{name}: DynamoDB {metric_name}",
                )

    def alarm_on_failed_executions(self, machines: Mapping[str, sfn.IStateMachine]) -> None:
        for key, machine in machines.items():
            metric = machine.metric_failed(period=PERIOD, statistic="Sum")
            self._alarm(f"{key.capitalize()}FailedAlarm", metric, f"{key} state machine executions failed")
