"""The benchmark's API-call counter prices what the SDK really sends (API parameters, not the HTTP request)."""

from __future__ import annotations

import boto3
from moto import mock_aws

from cdp import topology
from cdp_local.aws_costs import ApiCallCounter, cost_usd
from cdp_local.runtime.core import create_table


def test_counter_turns_calls_into_billing_units() -> None:
    with mock_aws():
        db = boto3.client("dynamodb")
        create_table(db, topology.LEDGER_TABLE)
        counter = ApiCallCounter()
        counter.install()
        # Given a 3-entry PutEvents, a 2-item transaction and a 2-key BatchGetItem
        boto3.client("events").put_events(Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}] * 3)
        table = topology.LEDGER_TABLE.local_name
        items = [{"Put": {"TableName": table, "Item": {"pk": {"S": f"k{i}"}, "sk": {"S": "s"}}}} for i in range(2)]
        client = boto3.client("dynamodb")
        client.transact_write_items(TransactItems=items)
        keys = [{"pk": {"S": f"k{i}"}, "sk": {"S": "s"}} for i in range(2)]
        client.batch_get_item(RequestItems={table: {"Keys": keys}})
        counter.uninstall()
    # Then units follow the price list's rules: entries, 2 WRU per transactional item, 1 RRU per key
    assert counter.units["eventbridge_events"] == 3
    assert counter.units["dynamodb_wru"] == 4
    assert counter.units["dynamodb_rru"] == 2
    assert counter.calls["dynamodb.TransactWriteItems"] == 1
    assert round(cost_usd(counter.units)["dynamodb_wru"], 9) == round(4 * 0.625 / 1_000_000, 9)
