"""Emulated AWS (moto) for the channels suite: the ledger and profiles tables from `cdp.topology`, the data bucket,
and a verified SES sender."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology

SENDER = "news@bakery.example"


def create_table(db: Any, spec: topology.TableSpec) -> None:
    db.create_table(
        TableName=spec.local_name,
        KeySchema=[
            {"AttributeName": spec.partition_key, "KeyType": "HASH"},
            {"AttributeName": spec.sort_key, "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": spec.partition_key, "AttributeType": "S"},
            {"AttributeName": spec.sort_key, "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


@dataclass
class Aws:
    dynamodb: Any
    s3: Any
    sesv2: Any
    sender: str = SENDER


@pytest.fixture
def aws() -> Iterator[Aws]:
    with mock_aws():
        db = boto3.client("dynamodb")
        for spec in topology.TABLES:
            create_table(db, spec)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=topology.DATA_BUCKET_LOCAL_NAME)
        ses = boto3.client("sesv2")
        ses.create_email_identity(EmailIdentity=SENDER)
        yield Aws(dynamodb=db, s3=s3, sesv2=ses)
