"""AWS adapters of the file import: the data bucket (S3) and the progress record in the ledger table (DynamoDB)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cdp import topology
from cdp.connectors.files import BadFileError
from cdp.errors import StoreError
from cdp.imports.models import ImportProgress, ImportReport, ObjectInfo, RowCounts
from cdp.imports.ports import ImportFiles, ProgressStore
from cdp.shared.aws import client as default_client
from cdp.shared.aws import is_missing_object, read_object, write_object
from cdp.shared.dynamo import from_item, to_attr
from cdp.shared.time import iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

PK = topology.LEDGER_TABLE.partition_key
SK = topology.LEDGER_TABLE.sort_key
PROGRESS_SK = "IMPORT"
PROGRESS_RETENTION = timedelta(days=90)
STREAM_PIECE = 1 << 20


def progress_pk(import_id: str) -> str:
    return f"IMPORT#{import_id}"


class S3ImportFiles(ImportFiles):
    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self._s3: S3Client = client or default_client("s3")

    def head(self, key: str) -> ObjectInfo | None:
        try:
            head = self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if is_missing_object(exc):
                return None
            raise StoreError(f"head s3://{self.bucket}/{key} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"head s3://{self.bucket}/{key} failed: {exc}") from exc
        version = head.get("VersionId")
        return ObjectInfo(
            size=head["ContentLength"],
            etag=head["ETag"],
            version_id=version if version and version != "null" else None,
        )

    def _get(self, key: str, info: ObjectInfo, **extra: Any) -> Any:
        # The planned version exactly: a file replaced mid-import must not mix two files' rows.
        pin = {"VersionId": info.version_id} if info.version_id else {"IfMatch": info.etag}
        try:
            return self._s3.get_object(Bucket=self.bucket, Key=key, **pin, **extra)  # type: ignore[arg-type]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "412") or is_missing_object(exc):
                raise BadFileError(f"{key} was replaced or deleted during the import; drop it again", "key") from exc
            raise StoreError(f"get s3://{self.bucket}/{key} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"get s3://{self.bucket}/{key} failed: {exc}") from exc

    def stream(self, key: str, info: ObjectInfo) -> Iterator[bytes]:
        body = self._get(key, info)["Body"]
        try:
            yield from body.iter_chunks(STREAM_PIECE)
        except BotoCoreError as exc:
            raise StoreError(f"reading s3://{self.bucket}/{key} failed: {exc}") from exc

    def read_range(self, key: str, info: ObjectInfo, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        body: bytes = self._get(key, info, Range=f"bytes={start}-{end - 1}")["Body"].read()
        return body

    def read(self, key: str) -> bytes | None:
        return read_object(self._s3, self.bucket, key)

    def write(self, key: str, body: bytes, content_type: str) -> None:
        write_object(self._s3, self.bucket, key, body, content_type)


class DynamoProgressStore(ProgressStore):
    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        self._table = table
        self._db: DynamoDBClient = client or default_client("dynamodb")

    @staticmethod
    def _key(import_id: str) -> dict[str, Any]:
        return {PK: {"S": progress_pk(import_id)}, SK: {"S": PROGRESS_SK}}

    def start(self, progress: ImportProgress) -> None:
        started = progress.started_at
        item = {k: to_attr(v) for k, v in progress.model_dump(mode="json", exclude_none=True).items()}
        if started is not None:
            item["expires_at"] = {"N": str(int((started + PROGRESS_RETENTION).timestamp()))}
        try:
            self._db.put_item(TableName=self._table, Item={**self._key(progress.import_id), **item})
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"writing import progress {progress.import_id} failed: {exc}") from exc

    def chunk_done(self, import_id: str, index: int, counts: RowCounts, at: datetime) -> bool:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key(import_id),
                UpdateExpression=(
                    "ADD rows_done :rows, accepted :acc, duplicates :dup, rejected :rej, chunks_done :one, "
                    "done_chunks :index SET updated_at = :at"
                ),
                # one ADD per chunk index: a chunk retried after its counts landed is not counted twice
                ConditionExpression="attribute_exists(#pk) AND NOT contains(done_chunks, :i)",
                ExpressionAttributeNames={"#pk": PK},
                ExpressionAttributeValues={
                    ":rows": {"N": str(counts.rows)},
                    ":acc": {"N": str(counts.accepted)},
                    ":dup": {"N": str(counts.duplicates)},
                    ":rej": {"N": str(counts.rejected)},
                    ":one": {"N": "1"},
                    ":index": {"NS": [str(index)]},
                    ":i": {"N": str(index)},
                    ":at": {"S": iso(at)},
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise StoreError(f"updating import progress {import_id} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"updating import progress {import_id} failed: {exc}") from exc
        return True

    def finish(self, report: ImportReport) -> None:
        counts = report.counts
        self._set(
            report.import_id,
            {
                "status": "succeeded",
                "rows_total": report.rows_total,
                "rows_done": counts.rows,
                "accepted": counts.accepted,
                "duplicates": counts.duplicates,
                "rejected": counts.rejected,
                "chunks_done": report.chunks,
                "finished_at": iso(report.finished_at),
                "updated_at": iso(report.finished_at),
                "report_key": report.report_key,
                "rejects_key": report.rejects_key,
            },
        )

    def fail(self, import_id: str, error: str, at: datetime) -> None:
        self._set(import_id, {"status": "failed", "error": error[:2000], "finished_at": iso(at), "updated_at": iso(at)})

    def _set(self, import_id: str, values: dict[str, Any]) -> None:
        names = {f"#a{i}": name for i, name in enumerate(values)}
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key(import_id),
                UpdateExpression="SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(values))),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={f":a{i}": to_attr(v) for i, v in enumerate(values.values())},
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"updating import progress {import_id} failed: {exc}") from exc

    def get(self, import_id: str) -> ImportProgress | None:
        try:
            item = self._db.get_item(TableName=self._table, Key=self._key(import_id), ConsistentRead=True).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"reading import progress {import_id} failed: {exc}") from exc
        if not item:
            return None
        values = from_item(item)
        values.setdefault("import_id", import_id)
        return ImportProgress.model_validate(values)
