"""S3 adapter of the campaign artifact store."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cdp.campaigns.ports import ArtifactStore
from cdp.errors import NotFoundError, StoreError
from cdp.shared.aws import client as default_client
from cdp.shared.aws import is_missing_object, read_object, write_object

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class S3ArtifactStore(ArtifactStore):
    def __init__(self, bucket_name: str, client: S3Client | None = None) -> None:
        self._bucket = bucket_name
        self._client: S3Client = client or default_client("s3")

    def put_json(self, key: str, document: Any) -> None:
        body = json.dumps(document, separators=(",", ":")).encode("utf-8")
        write_object(self._client, self._bucket, key, body)

    def get_json(self, key: str) -> Any:
        body = read_object(self._client, self._bucket, key)
        if body is None:
            raise NotFoundError(f"s3://{self._bucket}/{key} does not exist")
        return json.loads(body)

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if is_missing_object(exc):
                return False
            raise StoreError(f"head s3://{self._bucket}/{key} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"head s3://{self._bucket}/{key} failed: {exc}") from exc
        return True
