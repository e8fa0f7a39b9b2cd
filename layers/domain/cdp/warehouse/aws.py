"""AWS adapters of the warehouse ports: one parallel scan of the profiles table, and the data bucket."""

from __future__ import annotations

import math
import queue
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cdp.errors import StoreError
from cdp.ingest.events import parse_event
from cdp.observability import logger
from cdp.org import OrgDirectory, load_org
from cdp.profile import keys
from cdp.profile.dynamodb import PK, SK, to_profile
from cdp.shared.aws import client as default_client
from cdp.shared.aws import read_object
from cdp.shared.dynamo import from_item
from cdp.warehouse.ports import FiledEventItem, PersonItem, SourceItem, WarehouseObjects, WarehouseSource

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

_DONE = object()
_QUEUED_BATCHES = 8  # per scan: how many pages' items wait for the consumer (bounds memory)


class DynamoWarehouseSource(WarehouseSource):
    """Surviving persons (person item + tags item) and filed events, from one parallel scan of the profiles table.

    DynamoDB bills a scan for every item it reads, whatever the filter keeps: the filter only saves the transfer
    and the parsing of what the run does not need (merged-away persons, other brands, events before `since`)."""

    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient | None = None,
        org: OrgDirectory | None = None,
        segments: int = 4,
    ) -> None:
        self._table = table_name
        self._db: DynamoDBClient = client or default_client("dynamodb")
        self._org = org or load_org()
        self._segments = segments
        self._units = 0.0
        self._lock = threading.Lock()
        self._namespaces: dict[str, str] = {}

    @property
    def read_units(self) -> float:
        return self._units

    def scan(self, since: date | None, brand_id: str | None) -> Iterator[SourceItem]:
        self._units = 0.0
        batches: queue.Queue[Any] = queue.Queue(maxsize=_QUEUED_BATCHES * self._segments)
        stop = threading.Event()
        workers = [
            threading.Thread(target=self._segment, args=(n, since, brand_id, batches, stop), daemon=True)
            for n in range(self._segments)
        ]
        for worker in workers:
            worker.start()
        running = len(workers)
        try:
            while running:
                batch = batches.get()
                if batch is _DONE:
                    running -= 1
                elif isinstance(batch, ClientError | BotoCoreError):
                    raise StoreError(f"scan of {self._table} failed: {batch}") from batch
                elif isinstance(batch, BaseException):  # never an export of what part of the table was read
                    raise batch
                else:
                    yield from batch
        finally:
            stop.set()
            for worker in workers:  # let a worker blocked on a full queue see the stop
                while worker.is_alive():
                    try:
                        batches.get_nowait()
                    except queue.Empty:
                        worker.join(timeout=0.05)

    def _request(self, segment: int, since: date | None, brand_id: str | None) -> dict[str, Any]:
        person = "#sk = :profile AND attribute_not_exists(merged_into) AND attribute_not_exists(dissolved)"
        event = "begins_with(#sk, :timeline)"
        values: dict[str, Any] = {
            ":profile": {"S": keys.PROFILE_SK},
            ":tags": {"S": keys.TAGS_SK},
            ":timeline": {"S": keys.TIMELINE_PREFIX},
        }
        if since is not None:
            event += " AND #sk >= :from"  # timeline sort keys start with the ISO time the event occurred
            values[":from"] = {"S": f"{keys.TIMELINE_PREFIX}{since.isoformat()}"}
        if brand_id is not None:
            person += " AND brand_id = :brand"
            event += " AND brand_id = :brand"
            values[":brand"] = {"S": brand_id}
        return {
            "TableName": self._table,
            "Segment": segment,
            "TotalSegments": self._segments,
            "FilterExpression": f"({person}) OR #sk = :tags OR ({event})",
            "ExpressionAttributeNames": {"#sk": SK},
            "ExpressionAttributeValues": values,
            "ReturnConsumedCapacity": "TOTAL",
        }

    def _segment(
        self, segment: int, since: date | None, brand_id: str | None, out: queue.Queue[Any], stop: threading.Event
    ) -> None:
        """Scan one segment; a person's tags item follows their person item in it (one partition, key order)."""
        pending: dict[str, Any] | None = None
        try:
            pages = self._db.get_paginator("scan").paginate(**self._request(segment, since, brand_id))
            for page in pages:
                if stop.is_set():
                    return
                with self._lock:
                    self._units += float(page.get("ConsumedCapacity", {}).get("CapacityUnits", 0.0))
                batch: list[SourceItem] = []
                for raw in page.get("Items", []):
                    item = from_item(raw)
                    sk = item[SK]
                    if sk == keys.PROFILE_SK:
                        if pending is not None:
                            batch.append(self._person(pending, None))
                        pending = item
                    elif sk == keys.TAGS_SK:  # a tags item of a person filtered out (merged away) has no pending
                        if pending is not None:
                            batch.append(self._person(pending, item if pending[PK] == item[PK] else None))
                        pending = None
                    else:
                        batch += self._event(item)
                out.put(batch)
            if pending is not None:
                out.put([self._person(pending, None)])
        except Exception as exc:  # the consumer raises it: a failed segment fails the run
            out.put(exc)
        finally:
            out.put(_DONE)

    def _event(self, item: dict[str, Any]) -> list[SourceItem]:
        try:
            return [FiledEventItem(anchor=item[PK], event=parse_event(item["event"]))]
        except ValueError as exc:  # a stored event this version cannot read: the rest of the run goes on
            logger.warning("filed event skipped: unreadable", key=f"{item[PK]}/{item[SK]}", error=str(exc)[:300])
            return []

    def _person(self, item: dict[str, Any], tags: dict[str, Any] | None) -> PersonItem:
        profile = to_profile(item, tags)
        namespace = self._namespaces.get(profile.brand_id)
        if namespace is None:  # a brand the org file does not list gets its config built on every call
            namespace = self._namespaces.setdefault(profile.brand_id, self._org.brand(profile.brand_id).namespace)
        return PersonItem(profile, tuple(keys.anchor_pk(namespace, key) for key in profile.identifiers))


MULTIPART_FROM = 64 * 1024 * 1024
PART_SIZE = 8 * 1024 * 1024  # boto3's default multipart chunk: one PUT per part


class S3WarehouseObjects(WarehouseObjects):
    """The data bucket's warehouse/ prefix; `requests` counts the S3 calls made (for the run's cost figures)."""

    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self._bucket = bucket
        self._s3: S3Client = client or default_client("s3")
        self.requests: Counter[str] = Counter()

    def keys(self, prefix: str, start_after: str | None = None) -> list[str]:
        request: dict[str, Any] = {"Bucket": self._bucket, "Prefix": prefix}
        if start_after:
            request["StartAfter"] = start_after
        found: list[str] = []
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(**request):
                self.requests["LIST"] += 1
                found += [obj["Key"] for obj in page.get("Contents", [])]
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"listing s3://{self._bucket}/{prefix} failed: {exc}") from exc
        return found

    def read(self, key: str) -> bytes | None:
        self.requests["GET"] += 1
        return read_object(self._s3, self._bucket, key)

    def write(self, key: str, body: bytes, content_type: str = "application/json") -> None:
        self.requests["PUT"] += 1
        try:
            self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"put s3://{self._bucket}/{key} failed: {exc}") from exc

    def upload(self, key: str, path: Path) -> int:
        size = path.stat().st_size
        try:
            if size < MULTIPART_FROM:
                self.requests["PUT"] += 1
                self._s3.put_object(
                    Bucket=self._bucket, Key=key, Body=path.read_bytes(), ContentType="application/vnd.apache.parquet"
                )
            else:  # create + parts + complete, each billed as a PUT
                self.requests["PUT"] += math.ceil(size / PART_SIZE) + 2
                self._s3.upload_file(
                    str(path), self._bucket, key, ExtraArgs={"ContentType": "application/vnd.apache.parquet"}
                )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"upload s3://{self._bucket}/{key} failed: {exc}") from exc
        return size

    def download(self, key: str, path: Path) -> None:
        self.requests["GET"] += 1
        try:
            self._s3.download_file(self._bucket, key, str(path))
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"download s3://{self._bucket}/{key} failed: {exc}") from exc

    def delete(self, keys: Iterable[str]) -> None:
        wanted = list(keys)
        for start in range(0, len(wanted), 1000):
            chunk: list[Any] = [{"Key": k} for k in wanted[start : start + 1000]]
            self.requests["DELETE"] += 1
            try:
                response = self._s3.delete_objects(Bucket=self._bucket, Delete={"Objects": chunk, "Quiet": True})
            except (ClientError, BotoCoreError) as exc:
                raise StoreError(f"delete under s3://{self._bucket}/warehouse failed: {exc}") from exc
            if response.get("Errors"):
                raise StoreError(f"delete under s3://{self._bucket}/warehouse failed: {response['Errors'][:3]}")
