"""The WeChat access tokens the senders share: one per app, fetched from `stable_token` and kept until shortly before
it expires, so every container of every function sends with the same token instead of each fetching its own.

WeChat's stable token has a daily fetch quota, and a forced refresh (`force_refresh: true`) invalidates the token
every other holder is still using; so a token is fetched only when none is stored and usable, and forced only after
WeChat refused the stored one (`cdp.channels.wechat`). `DynamoAccessTokens` keeps one item per app on the LEDGER
table (`WXTOKEN#{app id}` / `TOKEN`, its TTL the token's expiry) behind an in-process cache, so a warm Lambda
container reads DynamoDB once per token, not once per send; keep one instance per container (module level in the
handler) for the cache to live as long as the container.

The token is a credential: it never appears in an error message or a log line written here.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cdp import topology
from cdp.errors import StoreError
from cdp.shared import aws
from cdp.shared.time import utc_now

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TOKEN_SK = "TOKEN"  # noqa: S105 - a sort key, not a secret
MARGIN = timedelta(minutes=5)  # a token is not used in its last 5 minutes (WeChat rolls the stable token then)

_PK = topology.LEDGER_TABLE.partition_key
_SK = topology.LEDGER_TABLE.sort_key
_TTL = topology.LEDGER_TABLE.ttl_attribute or "expires_at"


def token_pk(app_id: str) -> str:
    return f"WXTOKEN#{app_id}"


class AccessTokens(ABC):
    """Where the senders of every container find an app's access token."""

    @abstractmethod
    def current(self, app_id: str) -> str | None:
        """The app's token while it has more than `MARGIN` left, else None (fetch one)."""

    @abstractmethod
    def store(self, app_id: str, token: str, expires_at: datetime) -> None:
        """Keep a freshly fetched token (a token expiring before the one stored does not replace it: the later
        fetch is the one WeChat honours)."""

    @abstractmethod
    def discard(self, app_id: str, token: str) -> None:
        """WeChat refused `token`: forget it, but only if it is still the one stored (another container may have
        stored its successor already)."""


@dataclass(frozen=True)
class _Held:
    token: str
    expires_at: datetime


class InMemoryAccessTokens(AccessTokens):
    """One process's tokens (the local runtime, the unit tests): the same rules as `DynamoAccessTokens`."""

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        self._clock = clock
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()

    def current(self, app_id: str) -> str | None:
        with self._lock:
            held = self._held.get(app_id)
        return held.token if held is not None and _usable(held, self._clock()) else None

    def store(self, app_id: str, token: str, expires_at: datetime) -> None:
        with self._lock:
            held = self._held.get(app_id)
            if held is None or held.expires_at <= expires_at:
                self._held[app_id] = _Held(token, expires_at)

    def discard(self, app_id: str, token: str) -> None:
        with self._lock:
            held = self._held.get(app_id)
            if held is not None and held.token == token:
                del self._held[app_id]


def _usable(held: _Held, now: datetime) -> bool:
    return held.expires_at - MARGIN > now


def _seconds(at: datetime) -> int:
    return int(at.timestamp())


class DynamoAccessTokens(AccessTokens):
    """The item: `access_token`, `expires_at` (the table's TTL attribute: unix seconds, the token's expiry, so
    DynamoDB removes a dead token on its own; an item it has not removed yet is still checked here) and
    `stored_at`. Conditional writes keep the latest fetch (see `store`) and a discard from removing a successor."""

    def __init__(
        self, table_name: str, client: DynamoDBClient | None = None, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._table = table_name
        self._client: DynamoDBClient = client or aws.client("dynamodb")
        self._clock = clock
        self._cache: dict[str, _Held] = {}
        self._lock = threading.Lock()

    def _key(self, app_id: str) -> dict[str, Any]:
        return {_PK: {"S": token_pk(app_id)}, _SK: {"S": TOKEN_SK}}

    def current(self, app_id: str) -> str | None:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(app_id)
        if cached is not None and _usable(cached, now):
            return cached.token
        held = self._read(app_id)
        with self._lock:
            if held is not None and _usable(held, now):
                self._cache[app_id] = held
                return held.token
            self._cache.pop(app_id, None)
        return None

    def store(self, app_id: str, token: str, expires_at: datetime) -> None:
        with self._lock:  # this container sends with it whatever DynamoDB says next
            self._cache[app_id] = _Held(token, expires_at)
        item = {
            **self._key(app_id),
            "access_token": {"S": token},
            _TTL: {"N": str(_seconds(expires_at))},
            "stored_at": {"N": str(_seconds(self._clock()))},
        }
        try:
            self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(#pk) OR #expires <= :expires",
                ExpressionAttributeNames={"#pk": _PK, "#expires": _TTL},
                ExpressionAttributeValues={":expires": {"N": str(_seconds(expires_at))}},
            )
        except ClientError as exc:
            if _conditional_failed(exc):  # a later fetch is stored: ours was superseded, read theirs next time
                with self._lock:
                    self._cache.pop(app_id, None)
                return
            raise StoreError(f"storing the WeChat access token of app {app_id} failed: {_reason(exc)}") from None
        except BotoCoreError as exc:
            raise StoreError(f"storing the WeChat access token of app {app_id} failed: {_reason(exc)}") from None

    def discard(self, app_id: str, token: str) -> None:
        with self._lock:
            cached = self._cache.get(app_id)
            if cached is not None and cached.token == token:
                del self._cache[app_id]
        try:
            self._client.delete_item(
                TableName=self._table,
                Key=self._key(app_id),
                ConditionExpression="#token = :token",
                ExpressionAttributeNames={"#token": "access_token"},
                ExpressionAttributeValues={":token": {"S": token}},
            )
        except ClientError as exc:
            if not _conditional_failed(exc):  # else already gone, or a successor is stored: keep it
                raise StoreError(f"discarding the WeChat access token of app {app_id} failed: {_reason(exc)}") from None
        except BotoCoreError as exc:
            raise StoreError(f"discarding the WeChat access token of app {app_id} failed: {_reason(exc)}") from None

    def _read(self, app_id: str) -> _Held | None:
        try:
            item = self._client.get_item(TableName=self._table, Key=self._key(app_id), ConsistentRead=True).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"reading the WeChat access token of app {app_id} failed: {_reason(exc)}") from None
        if not item or "access_token" not in item or _TTL not in item:
            return None
        return _Held(item["access_token"]["S"], datetime.fromtimestamp(int(item[_TTL]["N"]), UTC))

    def cached(self, app_id: str) -> str | None:
        """What this container holds without asking DynamoDB (for tests and operators)."""
        with self._lock:
            held = self._cache.get(app_id)
        return held.token if held is not None else None


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _reason(exc: Exception) -> str:
    """The SDK's error without the request it carried (the item holds the token)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'ClientError')}: {error.get('Message', '')}".strip()
    return type(exc).__name__
