"""The send function's metrics: sent and failed per channel, each channel its own EMF line with a `channel`
dimension (the per-channel failure alarms read them), beside the function-wide totals."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cdp import topology
from cdp.channels.models import SendBatchResult
from cdp.observability import metrics
from functions.send import handler


def emf_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]


def test_each_channel_the_batch_used_gets_one_emf_line_with_its_sent_and_failed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the send function's service name, and a batch that sent on SMS and e-mail and failed on SMS and push
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", topology.SEND.local_name)
    result = SendBatchResult(
        campaign_id="cake",
        run_id="r1",
        step="touch1",
        channel="sms",
        sent=4,
        failed=3,
        by_channel={"sms": 3, "email": 1},
        failed_by_channel={"sms": 2, "push": 1},
    )
    # When its counts are emitted
    handler.count_by_channel(result)
    # Then one line per channel, in the product's namespace, dimensioned by channel and service
    lines = emf_lines(capsys.readouterr().out)
    assert [line["channel"] for line in lines] == ["email", "push", "sms"]
    for line in lines:
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == topology.METRICS_NAMESPACE
        assert [sorted(d) for d in directive["Dimensions"]] == [[topology.CHANNEL_DIMENSION, "service"]]
        assert {m["Name"] for m in directive["Metrics"]} == {"MessagesSent", "MessagesFailed"}
        assert line["service"] == topology.SEND.local_name
    counts = [(line["MessagesSent"], line["MessagesFailed"]) for line in lines]
    assert counts == [([1.0], [0.0]), ([0.0], [1.0]), ([3.0], [2.0])]
    # And the function-wide metric set is left as it was (its one dimension set stays `service`)
    assert "MessagesSent" not in metrics.metric_set


def test_a_batch_that_used_no_channel_prints_no_line(capsys: pytest.CaptureFixture[str]) -> None:
    handler.count_by_channel(SendBatchResult(campaign_id="cake", run_id="r1", step="touch1", channel="sms"))
    assert emf_lines(capsys.readouterr().out) == []
