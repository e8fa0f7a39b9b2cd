"""The S3 artifact store under moto: round trip, existence, typed errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp.campaigns.s3 import S3ArtifactStore
from cdp.errors import NotFoundError, StoreError
from cdp.settings import CampaignSettings, get_settings


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=topology.DATA_BUCKET_LOCAL_NAME)
        yield client


def test_round_trip_and_existence(s3: Any) -> None:
    # Given the data bucket
    store = S3ArtifactStore(topology.DATA_BUCKET_LOCAL_NAME, client=s3)
    key = f"{topology.CAMPAIGNS_PREFIX}run-1/audience.json"
    # When a document is written / Then it reads back equal and exists; another key does not
    assert not store.exists(key)
    store.put_json(key, {"treatment": [{"person_id": "p1", "score": 0.5}], "n": 1})
    assert store.get_json(key) == {"treatment": [{"person_id": "p1", "score": 0.5}], "n": 1}
    assert store.exists(key)
    assert s3.head_object(Bucket=topology.DATA_BUCKET_LOCAL_NAME, Key=key)["ContentType"] == "application/json"
    # And a missing key is a typed NotFoundError
    with pytest.raises(NotFoundError):
        store.get_json(f"{topology.CAMPAIGNS_PREFIX}run-1/missing.json")


def test_sdk_errors_become_store_errors(s3: Any) -> None:
    # Given a bucket that does not exist / When written or read / Then StoreError (retryable) wraps the SDK error
    store = S3ArtifactStore("no-such-bucket", client=s3)
    with pytest.raises(StoreError):
        store.put_json("campaigns/x/a.json", {})
    with pytest.raises(StoreError):
        store.get_json("campaigns/x/a.json")


def test_handler_settings_name_the_tables_and_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the campaign function's environment as the stack sets it (names from topology)
    for name in topology.CAMPAIGN.env:
        monkeypatch.setenv(name, "cdp-test-value")
    get_settings.cache_clear()
    # When read / Then every variable the function declares is validated into its settings
    settings = get_settings(CampaignSettings)
    assert settings.data_bucket == settings.profiles_table == settings.ledger_table == "cdp-test-value"
    get_settings.cache_clear()
