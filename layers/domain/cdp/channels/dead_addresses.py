"""Addresses a provider said will never work (a number that does not exist, a push token the platform disabled, an
OpenID the app no longer knows): kept per brand so no later campaign sends there again.

`DEADADDR#{brand}#{sha256 of the identifier key}` on the LEDGER table, expiring after 180 days (numbers are given
out again). A send batch reads its persons' candidate addresses in one BatchGetItem per 100; a person whose latest
address is dead is sent to an older one of the same kind, or not at all (`suppressed_no_address`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from cdp import topology
from cdp.channels.ports import DeadAddresses
from cdp.errors import StoreError
from cdp.shared import aws
from cdp.shared.dynamo import batch_get
from cdp.shared.time import iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DEAD_SK = "DEAD"
DEAD_FOR = timedelta(days=180)
_PK = topology.LEDGER_TABLE.partition_key
_SK = topology.LEDGER_TABLE.sort_key
_TTL = topology.LEDGER_TABLE.ttl_attribute or "expires_at"


def dead_pk(brand_id: str, address_key: str) -> str:
    return f"DEADADDR#{brand_id}#{hashlib.sha256(address_key.encode()).hexdigest()[:40]}"


class DynamoDeadAddresses(DeadAddresses):
    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._client: DynamoDBClient = client or aws.client("dynamodb")

    def dead(self, brand_id: str, address_keys: Iterable[str]) -> set[str]:
        by_pk = {dead_pk(brand_id, key): key for key in dict.fromkeys(address_keys)}
        keys = [{_PK: {"S": pk}, _SK: {"S": DEAD_SK}} for pk in by_pk]
        only_keys = ("#pk", {"#pk": _PK})
        found = batch_get(
            self._client, self._table, keys, "reading dead addresses", consistent=False, projection=only_keys
        )
        return {by_pk[item[_PK]["S"]] for item in found}

    def bury(self, brand_id: str, address_key: str, code: str, at: datetime) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    _PK: {"S": dead_pk(brand_id, address_key)},
                    _SK: {"S": DEAD_SK},
                    "code": {"S": code[:64]},
                    "at": {"S": iso(at)},
                    _TTL: {"N": str(int((at + DEAD_FOR).timestamp()))},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"recording a dead address failed: {exc}") from exc
