"""The S3 model registry under moto: layout, promotion, and the hash check on load."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.errors import ModelIntegrityError, NotFoundError, StoreError
from cdp.models.artifact import ModelManifest
from cdp.models.store import S3ModelStore, latest_key, manifest_key, model_key
from cdp.models.training import TrainRequest, train_model
from tests.fakes.model_histories import CAMPAIGN_ID, HORIZON, synthetic_histories

BUCKET = topology.DATA_BUCKET_LOCAL_NAME
PROMOTED_AT = datetime(2026, 7, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def trained() -> tuple[bytes, ModelManifest]:
    request = TrainRequest(
        model_name="summer_response", campaign_id=CAMPAIGN_ID, window_days=14, algorithm="logistic_regression"
    )
    return train_model(request, synthetic_histories(200, seed=5).histories, HORIZON)


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


def test_save_promote_load_round_trip(s3: Any, trained: tuple[bytes, ModelManifest]) -> None:
    # Given a saved version
    blob, manifest = trained
    store = S3ModelStore(BUCKET, client=s3)
    store.save(blob, manifest)
    # Then the objects sit under the models prefix from the topology, and nothing is promoted yet
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=topology.MODELS_PREFIX)["Contents"]}
    assert keys == {model_key("summer_response", manifest.version), manifest_key("summer_response", manifest.version)}
    assert all(k.startswith(f"models/summer_response/{manifest.version}/") for k in keys)
    assert store.latest("summer_response") is None
    with pytest.raises(NotFoundError, match="no promoted version"):
        store.load("summer_response")
    # When promoted
    pointer = store.promote("summer_response", manifest.version, PROMOTED_AT)
    # Then latest.json names the version and its hash, and load() without a version returns it verified
    latest = json.loads(s3.get_object(Bucket=BUCKET, Key=latest_key("summer_response"))["Body"].read())
    assert latest["version"] == manifest.version == pointer.version
    assert latest["sha256"] == manifest.sha256
    loaded = store.load("summer_response")
    assert loaded.manifest == manifest
    stored_manifest = json.loads(
        s3.get_object(Bucket=BUCKET, Key=manifest_key("summer_response", manifest.version))["Body"].read()
    )
    assert stored_manifest["metrics"]["held_out"]["roc_auc"] == manifest.metrics.held_out.roc_auc
    assert stored_manifest["label"]["campaign_id"] == CAMPAIGN_ID


def test_tampered_bytes_are_refused_on_load_and_on_promote(s3: Any, trained: tuple[bytes, ModelManifest]) -> None:
    # Given a saved version whose model.joblib is later overwritten
    blob, manifest = trained
    store = S3ModelStore(BUCKET, client=s3)
    store.save(blob, manifest)
    s3.put_object(Bucket=BUCKET, Key=model_key("summer_response", manifest.version), Body=blob + b"\x00")
    # When loaded or promoted / Then ModelIntegrityError, and latest.json is never written
    with pytest.raises(ModelIntegrityError, match="sha256"):
        store.load("summer_response", manifest.version)
    with pytest.raises(ModelIntegrityError):
        store.promote("summer_response", manifest.version, PROMOTED_AT)
    assert store.latest("summer_response") is None


def test_missing_and_broken_objects(s3: Any, trained: tuple[bytes, ModelManifest]) -> None:
    blob, manifest = trained
    store = S3ModelStore(BUCKET, client=s3)
    # Given nothing saved / Then NotFoundError for the manifest
    with pytest.raises(NotFoundError):
        store.promote("summer_response", "v-missing", PROMOTED_AT)
    # Given a manifest without bytes / Then an integrity error, not a crash in joblib
    s3.put_object(Bucket=BUCKET, Key=manifest_key("m2", "v1"), Body=manifest.model_dump_json().encode())
    with pytest.raises(ModelIntegrityError, match=r"no model\.joblib"):
        store.load("m2", "v1")
    # Given a corrupt latest.json / Then an integrity error naming the object
    s3.put_object(Bucket=BUCKET, Key=latest_key("m3"), Body=b"{not json")
    with pytest.raises(ModelIntegrityError, match=r"latest\.json"):
        store.latest("m3")
    # Given bytes that do not match the manifest at save time / Then nothing is written
    with pytest.raises(ModelIntegrityError):
        store.save(blob[:-1], manifest)


def test_sdk_errors_become_store_errors(s3: Any, trained: tuple[bytes, ModelManifest]) -> None:
    # Given a bucket that does not exist / Then the adapter raises its typed, retryable error
    blob, manifest = trained
    store = S3ModelStore("cdp-no-such-bucket", client=s3)
    with pytest.raises(StoreError):
        store.save(blob, manifest)


def test_models_and_their_versions_are_listed_across_pages(s3: Any, trained: tuple[bytes, ModelManifest]) -> None:
    # Given two models: one with three saved versions and a pointer, one with a version whose manifest is not written
    # yet (a save in progress writes the bytes first), and objects elsewhere in the bucket
    blob, manifest = trained
    store = S3ModelStore(BUCKET, client=s3)
    versions = ["20260101T000000Z-aaaaaaaa", "20260102T000000Z-bbbbbbbb", "20260103T000000Z-cccccccc"]
    for version in reversed(versions):
        store.save(blob, manifest.model_copy(update={"version": version}))
    store.promote("summer_response", versions[1], PROMOTED_AT, by="ops-admin")
    s3.put_object(Bucket=BUCKET, Key=model_key("churn", "20260104T000000Z-dddddddd"), Body=blob)
    s3.put_object(Bucket=BUCKET, Key="campaigns/run-1/summary.json", Body=b"{}")
    # When listed page by page (a page holds one key here: the walk must follow the continuation tokens)
    paged = _PagedS3(s3)
    listed = S3ModelStore(BUCKET, client=paged)
    # Then every model name is found, and the versions of each are those with a manifest, oldest first
    assert listed.list_models() == ["churn", "summer_response"]
    assert listed.versions("summer_response") == versions
    assert listed.versions("churn") == [] and listed.versions("unknown") == []
    assert paged.pages > 3
    # And the pointer records who promoted it; a pointer written before promoted_by existed still reads
    pointer = store.latest("summer_response")
    assert pointer is not None and (pointer.version, pointer.promoted_by) == (versions[1], "ops-admin")
    old = {"model_name": "m", "version": versions[0], "sha256": manifest.sha256, "promoted_at": PROMOTED_AT.isoformat()}
    s3.put_object(Bucket=BUCKET, Key=latest_key("m"), Body=json.dumps(old).encode())
    assert store.latest("m") is not None and store.latest("m").promoted_by is None  # type: ignore[union-attr]


def test_a_failed_listing_is_a_store_error(s3: Any) -> None:
    # Given a bucket that does not exist / When listed / Then the adapter's typed, retryable error
    store = S3ModelStore("cdp-no-such-bucket", client=s3)
    with pytest.raises(StoreError):
        store.list_models()
    with pytest.raises(StoreError):
        store.versions("summer_response")


class _PagedS3:
    """The moto client, with every ListObjectsV2 page cut to one key or prefix (MaxKeys=1), pages counted."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.pages = 0

    def get_paginator(self, name: str) -> Any:
        paginator = self._client.get_paginator(name)
        outer = self

        class OnePerPage:
            def paginate(self, **kwargs: Any) -> Iterator[Any]:
                for page in paginator.paginate(**kwargs, PaginationConfig={"PageSize": 1}):
                    outer.pages += 1
                    yield page

        return OnePerPage()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)
