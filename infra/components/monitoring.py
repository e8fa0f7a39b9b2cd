"""Alarms, all publishing to one operators' topic that always exists (subscribe e-mail, chat or paging to it), and
one dashboard of the same signals.

What pages: a function's errors or throttles, the HTTP API's 5xx, a queue whose oldest message is older than its
consumer's retries can explain, any message in a dead-letter queue (and one about to expire there), DynamoDB
throttling, a failed state machine execution, a channel failing a tenth of its sends, a budget pool drawn below a
tenth of its total. Every alarm treats missing data as fine: idle is not broken.

The dashboard charts each alarm's metric beside its healthy counterpart (accepted beside rejected events, sent beside
failed messages, succeeded beside failed executions), plus the API's 4xx and latency, which page nobody.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import get_args

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
from cdp.budgets.ledger import LOW_SHARE
from cdp.channels.models import ChannelName
from infra.components.messaging import DEAD_LETTER_RETENTION

PERIOD = Duration.minutes(5)
WIDE = 24  # the dashboard grid's width: a row's graphs share it

# Every channel a send can go out on but the outbox (the S3 drop of dry runs and the local runtime: no provider).
ALARMED_CHANNELS: tuple[str, ...] = tuple(c for c in get_args(ChannelName) if c != "outbox")
# A channel failing more than this share of its sends in 5 minutes pages. A share, not a count: a big campaign's
# few refused addresses (failures include addresses refused for good, a few percent on a stale list) must not page,
# a small one failing whole must. Below the volume this alarm stays quiet (a journey's single sends failing on bad
# addresses is not an outage; a batch failing whole also raises, which the send function's Errors alarm pages).
SEND_FAILURE_PERCENT = 10
SEND_FAILURE_MIN_MESSAGES = 20


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
        # Named by CloudFormation like the other resources; each `alarm_on_*` / `chart_*` call adds its row.
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=Duration.hours(3))
        CfnOutput(self, "DashboardName", value=self.dashboard.dashboard_name, description="CloudWatch > Dashboards")

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

    def _row(self, *widgets: tuple[str, Sequence[cloudwatch.IMetric]]) -> None:
        """One dashboard row of graphs, each (title, its lines), sharing the width."""
        width = WIDE // len(widgets)
        self.dashboard.add_widgets(
            *(cloudwatch.GraphWidget(title=title, left=list(lines), width=width, height=6) for title, lines in widgets)
        )

    def chart_ingest(self, service: str) -> None:
        """Events the ingest function accepted and rejected (a caller's bad input: charted, paging nobody)."""
        per_minute = [
            _custom(f"Events{outcome}", service, label=outcome.lower(), period=Duration.minutes(1))
            for outcome in ("Accepted", "Rejected")
        ]
        self._row(("Ingest: events per minute", per_minute))

    def alarm_on_sends(self, service: str, channels: Sequence[str] = ALARMED_CHANNELS) -> None:
        """Per channel (the send function's `channel` dimension): the share of its messages that failed."""
        sent: dict[str, cloudwatch.Metric] = {}
        failed: dict[str, cloudwatch.Metric] = {}
        for channel in channels:
            by_channel = {topology.CHANNEL_DIMENSION: channel}
            sent[channel] = _custom("MessagesSent", service, label=channel, dimensions=by_channel)
            failed[channel] = _custom("MessagesFailed", service, label=channel, dimensions=by_channel)
            share = cloudwatch.MathExpression(
                expression=f"IF(s + f >= {SEND_FAILURE_MIN_MESSAGES}, 100 * f / (s + f), 0)",
                using_metrics={"s": sent[channel], "f": failed[channel]},
                label=f"{channel} failed %",
                period=PERIOD,
            )
            self._alarm(
                f"{camel(channel)}SendFailuresAlarm",
                share,
                f"{channel}: over {SEND_FAILURE_PERCENT}% of sends failed (at least {SEND_FAILURE_MIN_MESSAGES} "
                "messages in 5 minutes)",
                threshold=SEND_FAILURE_PERCENT,
            )
        self._row(
            ("Messages sent per channel", list(sent.values())), ("Sends failed per channel", list(failed.values()))
        )

    def alarm_on_budgets(self, services: Sequence[str]) -> None:
        """Any draw that left a budget pool (or a refused draw that found it) under a tenth of its total: top it up
        before the campaigns drawing on it are refused. The warning logged with it names the brand and the pool.
        `services`: the functions that draw (at most 10: the metrics one alarm's expression may read)."""
        counts = {
            f"m{i}": _custom(topology.BUDGET_POOL_LOW_METRIC, service, label=service)
            for i, service in enumerate(services)
        }
        low = cloudwatch.MathExpression(
            expression=f"SUM([{', '.join(counts)}])", using_metrics=counts, label="draws on a low pool", period=PERIOD
        )
        self._alarm("BudgetPoolLowAlarm", low, "a budget pool has under a tenth of its total left (see the logs)")
        self._row((f"Budget: draws leaving a pool under {LOW_SHARE:.0%}", [low]))

    def alarm_on_functions(self, functions: Mapping[str, lambda_.IFunction]) -> None:
        """Errors: an invocation raised or timed out. Throttles: concurrency ran out (events wait or are dropped)."""
        self._row(
            (
                "Errors per function",
                [fn.metric_errors(period=PERIOD, statistic="Sum", label=k) for k, fn in functions.items()],
            ),
            (
                "Throttles per function",
                [fn.metric_throttles(period=PERIOD, statistic="Sum", label=k) for k, fn in functions.items()],
            ),
        )
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
        self._row(
            (
                "HTTP API: 4xx and 5xx",
                [
                    api.metric_client_error(period=PERIOD, statistic="Sum", label="4xx"),
                    api.metric_server_error(period=PERIOD, statistic="Sum", label="5xx"),
                ],
            ),
            (
                "HTTP API: latency (ms)",
                [api.metric_latency(period=PERIOD, statistic=s, label=s) for s in ("p50", "p99")],
            ),
        )

    def alarm_on_queue_age(self, queues: Mapping[str, tuple[sqs.IQueue, Duration]]) -> None:
        """`queues`: name -> (queue, the age of its oldest message beyond which someone should look)."""
        self._age_alarms(queues)
        ages = [_oldest(queue, label=name) for name, (queue, _) in queues.items()]
        self._row(("Work queues: oldest message (s)", ages))

    def _age_alarms(self, queues: Mapping[str, tuple[sqs.IQueue, Duration]]) -> None:
        for name, (queue, limit) in queues.items():
            self._alarm(
                f"{name}AgeAlarm",
                _oldest(queue),
                f"the oldest message in {name} is older than {limit.to_human_string()}",
                threshold=limit.to_seconds(),
            )

    def alarm_on_dlqs(self, dlqs: Mapping[str, sqs.IQueue]) -> None:
        """Any dead letter pages; one left for half the retention pages again, before SQS deletes it."""
        for name, dlq in dlqs.items():
            self._alarm(f"{name}DepthAlarm", _depth(dlq), f"messages waiting in the {name} dead-letter queue")
        self._age_alarms({f"{name}Dlq": (dlq, DEAD_LETTER_AGE_LIMIT) for name, dlq in dlqs.items()})
        self._row(("Dead letters waiting", [_depth(dlq, label=name) for name, dlq in dlqs.items()]))

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
        self._row(
            (
                "Executions failed",
                [m.metric_failed(period=PERIOD, statistic="Sum", label=k) for k, m in machines.items()],
            ),
            (
                "Executions succeeded",
                [m.metric_succeeded(period=PERIOD, statistic="Sum", label=k) for k, m in machines.items()],
            ),
        )


def _custom(
    name: str,
    service: str,
    *,
    label: str,
    dimensions: Mapping[str, str] | None = None,
    period: Duration = PERIOD,
) -> cloudwatch.Metric:
    """A product metric (Powertools EMF), summed: its `service` dimension is the emitting function's local name."""
    return cloudwatch.Metric(
        namespace=topology.METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={**(dimensions or {}), "service": service},
        statistic="Sum",
        period=period,
        label=label,
    )


def _oldest(queue: sqs.IQueue, label: str | None = None) -> cloudwatch.Metric:
    return queue.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Maximum", label=label)


def _depth(queue: sqs.IQueue, label: str | None = None) -> cloudwatch.Metric:
    return queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum", label=label)
