"""S3 adapter of the campaign artifact store."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from cdp.campaigns.ports import ArtifactStore
from cdp.errors import NotFoundError, StoreError
from cdp.shared.aws import client as default_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


class S3ArtifactStore(ArtifactStore):
    def __init__(self, bucket_name: str, client: S3Client | None = None) -> None:
        self._bucket = bucket_name
        self._client: S3Client = client or default_client("s3")

    def put_json(self, key: str, document: Any) -> None:
        body = json.dumps(document, separators=(",", ":")).encode("utf-8")
        try:
            self._client.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="application/json")
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"put s3://{self._bucket}/{key} failed: {exc}") from exc

    def get_json(self, key: str) -> Any:
        try:
            body = self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                raise NotFoundError(f"s3://{self._bucket}/{key} does not exist") from exc
            raise StoreError(f"get s3://{self._bucket}/{key} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"get s3://{self._bucket}/{key} failed: {exc}") from exc
        return json.loads(body)

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return False
            raise StoreError(f"head s3://{self._bucket}/{key} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"head s3://{self._bucket}/{key} failed: {exc}") from exc
        return True
