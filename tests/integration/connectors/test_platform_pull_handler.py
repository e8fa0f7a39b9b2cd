"""The platform_pull handler in-process on moto, with the recorded TOP/JOS answers: shops from the sources secret,
raw pages in S3, cursors and order buyers in the ledger, rejects in S3, events on the bus; reruns are duplicates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.connectors.platforms.aws import DynamoPullState
from cdp.errors import InvalidInputError
from cdp.settings import get_settings
from cdp_local.runtime.core import create_table
from cdp_local.runtime.environment import LOCAL_SOURCES


class FakeContext:
    function_name = "cdp-platform-pull"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:cdp-platform-pull"

    def __init__(self, request_id: str) -> None:
        self.aws_request_id = request_id

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    env = {
        topology.LEDGER_TABLE.env_var: topology.LEDGER_TABLE.local_name,
        topology.DATA_BUCKET_ENV: topology.DATA_BUCKET_LOCAL_NAME,
        topology.EVENT_BUS_ENV: topology.EVENT_BUS_LOCAL_NAME,
        topology.SOURCES_SECRET_ENV: topology.SOURCES_SECRET_LOCAL_NAME,
        "PLATFORM_TRANSPORT": "recorded",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        get_settings.cache_clear()
        from functions.platform_pull import handler

        handler.dependencies.cache_clear()
        ddb = boto3.client("dynamodb")
        create_table(ddb, topology.LEDGER_TABLE)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=topology.DATA_BUCKET_LOCAL_NAME)
        boto3.client("events").create_event_bus(Name=topology.EVENT_BUS_LOCAL_NAME)
        boto3.client("secretsmanager").create_secret(
            Name=topology.SOURCES_SECRET_LOCAL_NAME, SecretString=json.dumps({"shops": LOCAL_SOURCES["shops"]})
        )
        yield {"s3": s3, "ddb": ddb, "handler": handler}
        handler.dependencies.cache_clear()
        get_settings.cache_clear()


def invoke(aws: dict[str, Any], event: dict[str, Any], request_id: str) -> dict[str, Any]:
    result: dict[str, Any] = aws["handler"].lambda_handler(event, FakeContext(request_id))
    return {s["shop_id"]: s for s in result["shops"]}


def keys(aws: dict[str, Any], prefix: str) -> list[str]:
    listed = aws["s3"].list_objects_v2(Bucket=topology.DATA_BUCKET_LOCAL_NAME, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def test_every_shop_is_pulled_archived_and_its_cursor_kept_in_the_ledger(aws: dict[str, Any]) -> None:
    # Given the two local shops / When the schedule's input runs
    summaries = invoke(aws, {"shops": "all"}, "req-1")
    # Then both shops were pulled with their accepted, rejected and skipped records counted
    assert set(summaries) == {"tmall-demo", "jd-demo"}
    assert (summaries["tmall-demo"]["accepted"], summaries["tmall-demo"]["rejected"]) == (5, 3)
    assert (summaries["jd-demo"]["accepted"], summaries["jd-demo"]["rejected"]) == (5, 2)
    # and every page is in the raw archive under its platform, the rejects under rejects/platforms/
    assert len(keys(aws, "raw/platform-tmall/")) == 4 and len(keys(aws, "raw/platform-jd/")) == 4
    rejects = keys(aws, "rejects/platforms/")
    assert len(rejects) == 2 and all(k.endswith("/req-1.jsonl") for k in rejects)
    # and the cursors and order buyers are in the ledger table
    state = DynamoPullState(topology.LEDGER_TABLE.local_name, client=aws["ddb"])
    for shop_id in ("tmall-demo", "jd-demo"):
        cursor = state.cursor(shop_id)
        assert cursor is not None and abs(datetime.now(UTC) - cursor) < timedelta(minutes=1)
    assert state.buyer_of("jd-demo", "283746519201") == "jdOpenBuyer7Fq2LxAe9Wm"


def test_a_rerun_is_all_duplicates(aws: dict[str, Any]) -> None:
    invoke(aws, {"shops": ["jd-demo"]}, "req-1")
    again = invoke(aws, {"shops": ["jd-demo"]}, "req-2")["jd-demo"]
    assert (again["accepted"], again["duplicates"]) == (0, 5)


def test_an_unknown_shop_is_refused_before_anything_is_pulled(aws: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match="no-such-shop"):
        invoke(aws, {"shops": ["no-such-shop"]}, "req-1")
    assert keys(aws, "raw/") == []


def test_the_cursor_never_moves_backwards(aws: dict[str, Any]) -> None:
    state = DynamoPullState(topology.LEDGER_TABLE.local_name, client=aws["ddb"])
    late, early = datetime(2026, 3, 6, 12, tzinfo=UTC), datetime(2026, 3, 6, 11, tzinfo=UTC)
    state.advance("s", late)
    state.advance("s", early)  # a slower overlapping run finishing last
    assert state.cursor("s") == late
