"""Short tracked links for SMS: `{base}/r/{code}` instead of a ~250-character signed token.

An SMS is billed per 70 characters (UCS-2) or 160 (GSM-7): a tracked link must be short. The code is 9 characters of
[0-9A-Za-z] drawn from the OS's CSPRNG (62^9 = 2^53.6 codes: guessing a live one is hopeless), stored with the full
signed token it stands for (`cdp.connectors.redirect.mint_token`) on the LEDGER table (`LINK#{code}`, expiring with
the link). `GET /r/{code}` resolves the code to its token, then verifies that token exactly like a long link's: the
stored item alone cannot make a redirect (no token without the secret), the target stays checked, and an unknown or
expired code is a 404 that never redirects. API Gateway throttles the route (`DeployConfig.redirect_rate_limit`).
"""

from __future__ import annotations

import re
import secrets
import string
from abc import ABC, abstractmethod
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from cdp import topology
from cdp.errors import StoreError
from cdp.shared import aws

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CODE_LENGTH = 9
ALPHABET = string.digits + string.ascii_letters
SHORT_CODE = re.compile(rf"^[0-9A-Za-z]{{{CODE_LENGTH}}}$")
LINK_LIFETIME = timedelta(days=180)
LINK_SK = "LINK"
_ATTEMPTS = 4  # a fresh code colliding with a live one is ~2^-40 at a billion live links: retrying is enough
_PK = topology.LEDGER_TABLE.partition_key
_SK = topology.LEDGER_TABLE.sort_key
_TTL = topology.LEDGER_TABLE.ttl_attribute or "expires_at"


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


class ShortLinks(ABC):
    @abstractmethod
    def shorten(self, token: str, now: datetime) -> str:
        """A new code standing for `token` (stored before it is returned)."""

    @abstractmethod
    def resolve(self, code: str, now: datetime) -> str | None:
        """The token of a live code, or None."""


class DynamoShortLinks(ShortLinks):
    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._client: DynamoDBClient | None = client

    @property
    def _db(self) -> DynamoDBClient:
        if self._client is None:  # built on first use: the ingest function reads it only for short links
            self._client = aws.client("dynamodb")
        return self._client

    def shorten(self, token: str, now: datetime) -> str:
        expires = int((now + LINK_LIFETIME).timestamp())
        for _ in range(_ATTEMPTS):
            code = new_code()
            try:
                self._db.put_item(
                    TableName=self._table,
                    Item={
                        _PK: {"S": f"LINK#{code}"},
                        _SK: {"S": LINK_SK},
                        "token": {"S": token},
                        _TTL: {"N": str(expires)},
                    },
                    ConditionExpression="attribute_not_exists(#pk)",
                    ExpressionAttributeNames={"#pk": _PK},
                )
                return code
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise StoreError(f"storing a short link failed: {exc}") from exc
            except BotoCoreError as exc:
                raise StoreError(f"storing a short link failed: {exc}") from exc
        raise StoreError(f"no free short code after {_ATTEMPTS} attempts")

    def resolve(self, code: str, now: datetime) -> str | None:
        if not SHORT_CODE.match(code):
            return None
        try:
            item = self._db.get_item(TableName=self._table, Key={_PK: {"S": f"LINK#{code}"}, _SK: {"S": LINK_SK}}).get(
                "Item"
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"reading a short link failed: {exc}") from exc
        if item is None or int(item.get(_TTL, {}).get("N", "0")) <= int(now.timestamp()):
            return None  # unknown, or expired and not yet removed by DynamoDB's TTL
        return item["token"]["S"]
