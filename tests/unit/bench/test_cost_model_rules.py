"""The cost model's metering rules on hand-computed cases (sizes in bytes, units as AWS bills them)."""

from __future__ import annotations

import pytest

from cdp import topology
from cdp_local import cost_model as cm


def test_an_item_is_its_attribute_names_and_values() -> None:
    # Given an item with a string, a number, a map and a list
    item = {
        "pk": {"S": "person#1"},  # 2 + 8
        "n": {"N": "123.45"},  # 1 + (5 digits -> ceil(5/2) + 1 = 4)
        "tags": {"M": {"a": {"BOOL": True}}},  # 4 + (3 + 1 name + 1 value + 1 element)
        "l": {"L": [{"S": "xy"}, {"NULL": True}]},  # 1 + (3 + (2 + 1) + (1 + 1))
    }
    # Then its size is the sum worked out by hand
    assert cm.item_size(item) == 10 + 5 + 10 + 9


@pytest.mark.parametrize(
    ("number", "size"),
    [("0", 1), ("100", 2), ("0.000123", 3), ("-5", 3), ("12345678901234567890", 11), ("1.50", 2)],
)
def test_a_number_is_half_its_significant_digits_plus_one(number: str, size: int) -> None:
    assert cm.number_size(number) == size


def test_strings_count_utf8_bytes_and_binary_its_bytes() -> None:
    # Given a two-character Chinese string (3 bytes each) and 5 raw bytes (as boto3 sends) or base64 (as moto keeps)
    assert cm.item_size({"名": {"S": "张三"}}) == 3 + 6
    assert cm.item_size({"b": {"B": b"12345"}}) == 1 + 5
    assert cm.item_size({"b": {"B": "MTIzNDU="}}) == 1 + 5


def test_a_write_bills_each_started_kilobyte_of_the_larger_item() -> None:
    # Given items of exactly 1 KB and one byte more
    assert cm.write_units(0, 1024) == 1
    assert cm.write_units(0, 1025) == 2
    # When an update grows an item from 900 B to 1,500 B, or shrinks it from 2,100 B to 600 B
    assert cm.write_units(900, 1500) == 2
    assert cm.write_units(2100, 600) == 3
    # And a delete of a 35-byte item, or a failed conditional put where nothing exists, still bills 1
    assert cm.write_units(35, 0) == 1
    assert cm.write_units(0, 0) == 1


def test_a_query_of_ten_items_of_1_5_kb_rounds_their_sum() -> None:
    # Given 10 items of 1.5 KB read by one Query: 15 KB summed
    read = 10 * 1536
    # Then a strongly consistent Query bills 4 RRU (15 KB -> 16 KB) and an eventually consistent one half
    assert cm.read_units(read, consistent=True) == 4
    assert cm.read_units(read, consistent=False) == 2
    # While a BatchGetItem of the same items rounds each: 10 x 1 RRU
    assert sum(cm.read_units(1536, consistent=True) for _ in range(10)) == 10


def test_an_eventbridge_entry_bills_per_64_kb_chunk() -> None:
    # Given a 70 KB entry and one of exactly 64 KB (Source + DetailType + Detail)
    big = {"Source": "cdp", "DetailType": "x", "Detail": "a" * (70 * 1024 - 4)}
    exact = {"Source": "cdp", "DetailType": "x", "Detail": "a" * (64 * 1024 - 4)}
    # Then the first is 2 billed events and the second 1; Time adds 14 bytes to the size
    assert cm.put_events_entry_size(big) == 70 * 1024
    assert cm.eventbridge_units([big, exact]) == 2 + 1
    assert cm.put_events_entry_size({**exact, "Time": "2026-12-06T00:00:00Z"}) == 64 * 1024 + 14


def test_sqs_bills_each_64_kb_of_payload_as_a_request() -> None:
    # Given a 100 KB message, and a batch of ten 10 KB messages
    assert cm.sqs_requests(cm.sqs_message_size("a" * 100 * 1024)) == 2
    assert cm.sqs_requests(sum(cm.sqs_message_size("a" * 10 * 1024) for _ in range(10))) == 2
    # And message attributes count their name, type and value
    attrs = {"kind": {"DataType": "String", "StringValue": "order"}}
    assert cm.sqs_message_size("{}", attrs) == 2 + 4 + 6 + 5


def test_lambda_bills_the_modelled_duration_rounded_up_to_the_millisecond() -> None:
    # Given a modelled 12.3 ms, or exactly 12 ms
    assert cm.lambda_billed_ms(12.3) == 13
    assert cm.lambda_billed_ms(12.0) == 12
    assert cm.lambda_billed_ms(0.2) == 1
    # Then 13 ms at 512 MB are 0.0065 GB-s
    assert cm.lambda_gb_seconds(13, 512) == pytest.approx(0.0065)
    # And 10 ms of CPU on a 512 MB function (0.29 of a vCPU) with two 5 ms DynamoDB calls last
    # 10 x 1769 / 512 + 10 + 1 (runtime API) = 45.55 ms -> 46 ms billed
    latency = 2 * cm.call_latency_ms("dynamodb", "GetItem")
    assert cm.lambda_billed_ms(cm.lambda_modelled_ms(10.0, latency, 512)) == 46
    # And at 1,769 MB or more the CPU work is not stretched
    assert cm.lambda_modelled_ms(10.0, 0.0, 3008) == pytest.approx(11.0)


def test_the_pipeline_functions_memory_comes_from_the_topology() -> None:
    # The bench bills GB-s with the memory the stack deploys; the model's CPU scaling applies below a full vCPU
    assert topology.INGEST.memory_mb == 512
    assert cm.lambda_cpu_scale(topology.INGEST.memory_mb) == pytest.approx(1769 / 512)


def test_cloudwatch_logs_bill_bytes_plus_26_per_event() -> None:
    # Given 1,000 log lines of 100 bytes
    gb = cm.log_units_gb(1000, 100_000)
    # Then 126,000 bytes are ingested, $0.50 per GB
    assert gb == pytest.approx(126_000 / 1024**3)
    assert cm.cost_usd({"cloudwatch_logs_gb": 1.0})["cloudwatch_logs_gb"] == pytest.approx(0.50)


def test_every_price_is_sourced_and_priced_per_million_units() -> None:
    assert all(p.source.startswith("https://aws.amazon.com/") for p in cm.PRICES.values())
    usd = cm.cost_usd({"dynamodb_wru": 1_000_000, "s3_put": 1000, "s3_get": 1000, "stepfunctions_transitions": 1000})
    assert usd["dynamodb_wru"] == pytest.approx(0.625)
    assert usd["s3_put"] == pytest.approx(0.005)
    assert usd["s3_get"] == pytest.approx(0.0004)
    assert usd["stepfunctions_transitions"] == pytest.approx(0.025)
    assert cm.http_api_units(512 * 1024) == 1 and cm.http_api_units(512 * 1024 + 1) == 2
