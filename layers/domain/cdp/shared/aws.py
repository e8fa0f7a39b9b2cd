"""Small AWS helpers: lazy clients (never at import time, so moto can start first) and the EventBridge publisher."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from cdp.errors import NotFoundError, PublishError, StoreError
from cdp.shared.envelope import Publishable
from cdp.shared.ports import EventPublisher, ObjectStore

# parameter_validation off: every request is built by code (not typed by a user) and the service validates it
# anyway; client-side validation of nested DynamoDB maps was the largest single cost of the ingest path.
_RETRIES = Config(retries={"max_attempts": 5, "mode": "standard"}, parameter_validation=False)


def client(service: str) -> Any:
    """A boto3 client with standard retries. Adapters accept an injected client and call this only as a default."""
    return boto3.client(service, config=_RETRIES)


class EventBridgePublisher(EventPublisher):
    MAX_ENTRIES = 10  # PutEvents limit per call
    MAX_REQUEST_BYTES = 256 * 1024  # PutEvents limit on the entries of one call, counted as AWS counts them

    def __init__(self, bus_name: str, events_client: Any = None) -> None:
        self._bus = bus_name
        self._client = events_client or client("events")

    def publish(self, events: Sequence[Publishable], correlation_id: str) -> list[str]:
        return self.publish_batches([(events, correlation_id)])

    def publish_batches(self, batches: Sequence[tuple[Sequence[Publishable], str]]) -> list[str]:
        ids: list[str] = []
        entries = [
            {
                "Source": e.event_source,
                "DetailType": e.event_name,
                "Detail": json.dumps(e.envelope(correlation_id), separators=(",", ":")),
                "EventBusName": self._bus,
            }
            for events, correlation_id in batches
            for e in events
        ]
        for chunk in put_events_chunks(entries, self.MAX_ENTRIES, self.MAX_REQUEST_BYTES):
            try:
                response = self._client.put_events(Entries=chunk)
            except (ClientError, BotoCoreError) as exc:
                raise PublishError(f"put_events failed: {exc}") from exc
            if response.get("FailedEntryCount", 0):
                failed = [r for r in response["Entries"] if r.get("ErrorCode")]
                raise PublishError(f"{len(failed)} of {len(chunk)} events not published: {failed[:3]}")
            ids.extend(r["EventId"] for r in response["Entries"])
        return ids


def entry_size(entry: dict[str, Any]) -> int:
    """An entry's size as PutEvents counts it: Source, DetailType and Detail in UTF-8 (plus Time and Resources)."""
    size = sum(len(str(entry.get(k, "")).encode()) for k in ("Source", "DetailType", "Detail"))
    size += sum(len(r.encode()) for r in entry.get("Resources", ()))
    return size + (14 if "Time" in entry else 0)


def put_events_chunks(entries: list[dict[str, Any]], max_entries: int, max_bytes: int) -> list[list[dict[str, Any]]]:
    """Consecutive chunks within both PutEvents limits (ingest caps each event well below `max_bytes`)."""
    chunks: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    current_bytes = 0
    for entry in entries:
        size = entry_size(entry)
        if current and (len(current) == max_entries or current_bytes + size > max_bytes):
            chunks.append(current)
            current, current_bytes = [], 0
        current.append(entry)
        current_bytes += size
    if current:
        chunks.append(current)
    return chunks


_MISSING_OBJECT = frozenset({"NoSuchKey", "404", "NotFound"})


def is_missing_object(exc: ClientError) -> bool:
    """S3 says "no such key" as NoSuchKey on GET and as a bare 404 on HEAD."""
    return exc.response.get("Error", {}).get("Code") in _MISSING_OBJECT


def read_object(s3: Any, bucket: str, key: str) -> bytes | None:
    """An object's bytes, or None when it does not exist; other SDK failures raise StoreError."""
    try:
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if is_missing_object(exc):
            return None
        raise StoreError(f"get s3://{bucket}/{key} failed: {exc}") from exc
    except BotoCoreError as exc:
        raise StoreError(f"get s3://{bucket}/{key} failed: {exc}") from exc
    return body


def write_object(s3: Any, bucket: str, key: str, body: bytes, content_type: str = "application/json") -> None:
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
    except (ClientError, BotoCoreError) as exc:
        raise StoreError(f"put s3://{bucket}/{key} failed: {exc}") from exc


class S3ObjectStore(ObjectStore):
    def __init__(self, bucket_name: str, s3_client: Any = None) -> None:
        self._bucket = bucket_name
        self._client = s3_client or client("s3")

    def list_keys(self, prefix: str) -> list[str]:
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix)
            return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"list s3://{self._bucket}/{prefix} failed: {exc}") from exc

    def get_bytes(self, key: str) -> bytes:
        body = read_object(self._client, self._bucket, key)
        if body is None:
            raise NotFoundError(f"s3://{self._bucket}/{key} does not exist")
        return body

    def put_bytes(self, key: str, body: bytes, content_type: str = "application/json") -> None:
        write_object(self._client, self._bucket, key, body, content_type)

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self._bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"delete s3://{self._bucket}/{key} failed: {exc}") from exc
