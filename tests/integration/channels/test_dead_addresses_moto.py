"""Dead addresses on DynamoDB (moto): recorded per brand, found in one read, forgotten after 180 days by TTL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cdp import topology
from cdp.channels.dead_addresses import DEAD_FOR, DynamoDeadAddresses, dead_pk

T0 = datetime(2026, 12, 7, tzinfo=UTC)


def test_a_buried_address_is_dead_for_its_brand_only(aws: Any) -> None:
    graveyard = DynamoDeadAddresses(topology.LEDGER_TABLE.local_name, client=aws.dynamodb)
    graveyard.bury("bakery", "phone:+8613800138001", "isv.MOBILE_NUMBER_ILLEGAL", T0)
    keys = ["phone:+8613800138001", "phone:+8613900139000", *(f"device_id:d{n}" for n in range(150))]
    assert graveyard.dead("bakery", keys) == {"phone:+8613800138001"}
    assert graveyard.dead("rival", keys) == set()
    item = aws.dynamodb.get_item(
        TableName=topology.LEDGER_TABLE.local_name,
        Key={"pk": {"S": dead_pk("bakery", "phone:+8613800138001")}, "sk": {"S": "DEAD"}},
    )["Item"]
    assert "+86" not in item["pk"]["S"]  # the number itself is not in the key
    assert int(item["expires_at"]["N"]) == int((T0 + DEAD_FOR).timestamp())
