"""One CloudWatch dashboard charts what the operators watch (ingest, sends per channel, budget pools, errors, queues,
executions, the API), reading the metrics the handlers really emit; sends failing on a channel and budget pools
running low page through the alarm topic like the other alarms."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from cdp import topology
from infra.components.monitoring import ALARMED_CHANNELS, SEND_FAILURE_MIN_MESSAGES, SEND_FAILURE_PERCENT
from infra.stack import BUDGET_DRAWERS
from tests.infra.conftest import Synth, product_functions

pytestmark = pytest.mark.xdist_group("cdk")

ROOT = Path(__file__).resolve().parents[2]


def _rendered(value: Any) -> str:
    """A `Fn::Join` of the body rendered to text, each reference as the logical id (or pseudo parameter) it names."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(_rendered(part) for part in parts)
    if "Ref" in value:
        return str(value["Ref"])
    if "Fn::GetAtt" in value:
        return str(value["Fn::GetAtt"][0])
    raise AssertionError(f"unexpected intrinsic in the dashboard body: {value}")


@pytest.fixture(scope="module")
def widgets(synth: Synth) -> dict[str, dict[str, Any]]:
    (dashboard,) = synth.resources("AWS::CloudWatch::Dashboard").values()
    body = json.loads(_rendered(dashboard["Properties"]["DashboardBody"]))
    found = {w["properties"]["title"]: w["properties"] for w in body["widgets"] if "title" in w["properties"]}
    assert len(found) == len(body["widgets"]), "every widget has a title of its own"
    return found


def _lines(widget: dict[str, Any]) -> list[list[Any]]:
    """The widget's plain metric lines: [namespace, name, dimension name, value, ..., options]."""
    return [m for m in widget["metrics"] if isinstance(m[0], str)]


def _dimensions(line: list[Any]) -> dict[str, str]:
    parts = [p for p in line[2:] if not isinstance(p, dict)]
    return dict(zip(parts[::2], parts[1::2], strict=True))


def _custom_lines(widget: dict[str, Any], metric_name: str) -> list[dict[str, str]]:
    return [
        _dimensions(line) for line in _lines(widget) if line[0] == topology.METRICS_NAMESPACE and line[1] == metric_name
    ]


def test_there_is_one_dashboard_named_by_cloudformation_with_every_row(
    synth: Synth, widgets: dict[str, dict[str, Any]]
) -> None:
    (dashboard,) = synth.resources("AWS::CloudWatch::Dashboard").values()
    assert "DashboardName" not in dashboard["Properties"]
    assert any(key.startswith("MonitoringDashboardName") for key in synth.raw["Outputs"])
    assert set(widgets) == {
        "Ingest: events per minute",
        "Messages sent per channel",
        "Sends failed per channel",
        "Budget: draws leaving a pool under 10%",
        "Errors per function",
        "Throttles per function",
        "HTTP API: 4xx and 5xx",
        "HTTP API: latency (ms)",
        "Work queues: oldest message (s)",
        "Dead letters waiting",
        "Executions failed",
        "Executions succeeded",
    }


def test_the_ingest_row_charts_accepted_and_rejected_events_per_minute(widgets: dict[str, dict[str, Any]]) -> None:
    widget = widgets["Ingest: events per minute"]
    for name in ("EventsAccepted", "EventsRejected"):
        assert _custom_lines(widget, name) == [{"service": topology.INGEST.local_name}]
    assert {line[-1]["period"] for line in _lines(widget)} == {60}


@pytest.mark.parametrize(
    ("title", "metric_name"),
    [("Messages sent per channel", "MessagesSent"), ("Sends failed per channel", "MessagesFailed")],
)
def test_sends_and_failures_are_charted_per_channel(
    widgets: dict[str, dict[str, Any]], title: str, metric_name: str
) -> None:
    lines = _custom_lines(widgets[title], metric_name)
    assert lines == [
        {topology.CHANNEL_DIMENSION: channel, "service": topology.SEND.local_name} for channel in ALARMED_CHANNELS
    ]
    assert "outbox" not in ALARMED_CHANNELS and {"sms", "email", "wechat"} <= set(ALARMED_CHANNELS)


def test_the_charted_product_metrics_are_the_ones_the_handlers_emit(widgets: dict[str, dict[str, Any]]) -> None:
    # Given every product metric the dashboard reads, by the service that emits it (the low-pool count is the
    # topology's name, emitted by `functions.budget_watch`: see the last test)
    services = {spec.local_name: spec for spec in topology.FUNCTIONS}
    read = {
        (_dimensions(line)["service"], line[1])
        for widget in widgets.values()
        for line in _lines(widget)
        if line[0] == topology.METRICS_NAMESPACE and line[1] != topology.BUDGET_POOL_LOW_METRIC
    }
    assert {name for _, name in read} == {"EventsAccepted", "EventsRejected", "MessagesSent", "MessagesFailed"}
    for service, name in read:
        # Then that function's handler names it (a renamed metric would leave an empty chart and a silent alarm)
        source = (ROOT / "functions" / services[service].key / "handler.py").read_text(encoding="utf-8")
        assert f'name="{name}"' in source, (service, name)


def test_every_function_machine_and_queue_is_charted(synth: Synth, widgets: dict[str, dict[str, Any]]) -> None:
    def charted(title: str, namespace: str, metric_name: str) -> set[str]:
        return {
            value
            for line in _lines(widgets[title])
            if line[:2] == [namespace, metric_name]
            for value in _dimensions(line).values()
        }

    functions = set(product_functions(synth))
    assert charted("Errors per function", "AWS/Lambda", "Errors") == functions
    assert charted("Throttles per function", "AWS/Lambda", "Throttles") == functions
    machines = set(synth.resources("AWS::StepFunctions::StateMachine"))
    assert charted("Executions failed", "AWS/States", "ExecutionsFailed") == machines
    assert charted("Executions succeeded", "AWS/States", "ExecutionsSucceeded") == machines
    queues = synth.resources("AWS::SQS::Queue")
    work = {k for k, q in queues.items() if "RedrivePolicy" in q["Properties"]}
    assert charted("Work queues: oldest message (s)", "AWS/SQS", "ApproximateAgeOfOldestMessage") == work
    assert charted("Dead letters waiting", "AWS/SQS", "ApproximateNumberOfMessagesVisible") == set(queues) - work


def test_the_api_row_charts_4xx_5xx_and_latency_percentiles(synth: Synth, widgets: dict[str, dict[str, Any]]) -> None:
    (api_id,) = synth.resources("AWS::ApiGatewayV2::Api")
    errors = _lines(widgets["HTTP API: 4xx and 5xx"])
    assert [line[1] for line in errors] == ["4xx", "5xx"]
    latency = _lines(widgets["HTTP API: latency (ms)"])
    assert [line[-1]["stat"] for line in latency] == ["p50", "p99"]
    for line in errors + latency:
        assert line[0] == "AWS/ApiGateway" and _dimensions(line) == {"ApiId": api_id}


def test_the_budget_row_sums_the_low_pool_counts_of_every_function_that_draws(
    widgets: dict[str, dict[str, Any]],
) -> None:
    widget = widgets["Budget: draws leaving a pool under 10%"]
    (expression,) = [m[0]["expression"] for m in widget["metrics"] if isinstance(m[0], dict)]
    assert expression.startswith("SUM([")
    assert _custom_lines(widget, topology.BUDGET_POOL_LOW_METRIC) == [
        {"service": spec.local_name} for spec in BUDGET_DRAWERS
    ]


# ---- the alarms -------------------------------------------------------------------------------------------------


def _math_alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    return {
        k: a["Properties"] for k, a in synth.resources("AWS::CloudWatch::Alarm").items() if "Metrics" in a["Properties"]
    }


def _stats(props: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {q["Id"]: q["MetricStat"] for q in props["Metrics"] if "MetricStat" in q}


def test_each_channel_pages_when_a_tenth_of_enough_sends_fail(synth: Synth) -> None:
    by_channel: dict[str, dict[str, Any]] = {}
    for props in _math_alarms(synth).values():
        stats = _stats(props)
        if {s["Metric"]["MetricName"] for s in stats.values()} == {"MessagesSent", "MessagesFailed"}:
            dims = {d["Name"]: d["Value"] for d in stats["f"]["Metric"]["Dimensions"]}
            assert dims["service"] == topology.SEND.local_name
            by_channel[dims[topology.CHANNEL_DIMENSION]] = props
    # Given every channel a send goes out on (not the dry run's outbox) / Then each has its failure-share alarm
    assert set(by_channel) == set(ALARMED_CHANNELS)
    for props in by_channel.values():
        (expression,) = [q["Expression"] for q in props["Metrics"] if "Expression" in q]
        assert expression == f"IF(s + f >= {SEND_FAILURE_MIN_MESSAGES}, 100 * f / (s + f), 0)"
        assert props["Threshold"] == SEND_FAILURE_PERCENT == 10
        assert props["ComparisonOperator"] == "GreaterThanThreshold" and props["EvaluationPeriods"] == 1
        assert {s["Stat"] for s in _stats(props).values()} == {"Sum"}
        assert {s["Period"] for s in _stats(props).values()} == {300}


def test_a_draw_leaving_any_budget_pool_low_pages(synth: Synth) -> None:
    (props,) = [
        p
        for p in _math_alarms(synth).values()
        if {s["Metric"]["MetricName"] for s in _stats(p).values()} == {topology.BUDGET_POOL_LOW_METRIC}
    ]
    services = {d["Value"] for s in _stats(props).values() for d in s["Metric"]["Dimensions"] if d["Name"] == "service"}
    assert services == {spec.local_name for spec in BUDGET_DRAWERS} and len(services) <= 10
    (expression,) = [q["Expression"] for q in props["Metrics"] if "Expression" in q]
    assert re.fullmatch(r"SUM\(\[m\d(, m\d)*\]\)", expression)
    assert props["Threshold"] == 0 and props["ComparisonOperator"] == "GreaterThanThreshold"


def test_the_functions_wired_to_count_low_pools_are_among_the_alarmed_drawers() -> None:
    # Given the handlers that pass the low-pool watch to their budget ledger or offer store
    wired = {
        path.parent.name
        for path in (ROOT / "functions").glob("*/handler.py")
        if "count_low_pool" in path.read_text(encoding="utf-8")
    }
    # Then the alarm reads each of them
    assert {"send", "campaign", "offer_api", "offer_events"} <= wired
    assert wired <= {spec.key for spec in BUDGET_DRAWERS}
